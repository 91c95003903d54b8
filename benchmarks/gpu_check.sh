#!/usr/bin/env bash
# The device check (issue 16): on a machine with a CUDA GPU, run hol's CUDA tests and its benchmarks on the GPU,
# installing and downloading nothing, in under 8 minutes (each step has a time limit; the limits add up to 7.8
# minutes; a run on an H100-class GPU should need about half of that), and write the results:
#
#   OUT/gpu_check.txt           everything printed: machine, versions, each step's output, time and exit status
#   OUT/results/*.json          the benchmark tables in benchmarks/results.py's format (copy them into
#                               benchmarks/results/ and mark them in README.md to render them there)
#   OUT/cache/sparse_cost.json  the cost model's calibration on this GPU (backend="auto" on CUDA), measured
#                               during the run
#
# Usage:
#   benchmarks/gpu_check.sh [OUT]          on the GPU (default OUT: gpu_check, in the current directory)
#   benchmarks/gpu_check.sh --smoke [OUT]  the same steps on the CPU at toy sizes, to check the script itself
#                                          (fixed CPU costs instead of a calibration, three times the limits)
# The Python used: $PYTHON, else .venv/bin/python, else python3; hol is taken from this checkout (PYTHONPATH).
# It needs torch with CUDA, triton, numpy and pytest; the runner's tests and the epoch benchmark also need
# lightning, torchmetrics, hydra-core, omegaconf, tensorboard and matplotlib (without them those two steps fail
# and the others run). The C++ CPU kernels are switched off (HOL_SPARSE_CPP=0, HOL_PRODUCT_UNITS_CPP=0): the CPU
# only computes references here, and building the kernels would take a minute. Exit status: the number of
# failed steps.
set -u -o pipefail

SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
OUT=${1:-gpu_check}
mkdir -p "$OUT/results" "$OUT/cache"
OUT=$(cd "$OUT" && pwd)  # a relative OUT is relative to where the script is started, not to the checkout
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
LOG="$OUT/gpu_check.txt"
: > "$LOG"
export HOL_RESULTS_DIR="$OUT/results" HOL_CACHE_DIR="$OUT/cache" HOL_SPARSE_CPP=0 HOL_PRODUCT_UNITS_CPP=0
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
FAILED=0
SCALE=1  # of the time limits

say() { echo "$*" | tee -a "$LOG"; }

# step NAME SECONDS COMMAND...: run COMMAND with a time limit, its output into the log, its status counted
step() {
    local name=$1 limit=$2 start status
    shift 2
    say ""
    say "=== $name (limit $((limit * SCALE)) s): $*"
    start=$SECONDS
    timeout -k 5 "$((limit * SCALE))" "$@" 2>&1 | tee -a "$LOG"
    status=$?
    say "=== $name: exit $status after $((SECONDS - start)) s"
    [ "$status" -eq 0 ] || FAILED=$((FAILED + 1))
}

say "hol device check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
command -v nvidia-smi > /dev/null && nvidia-smi -L 2>&1 | tee -a "$LOG"
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import platform

import torch

print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
try:
    import triton
    print(f"triton {triton.__version__}")
except ImportError as error:
    print(f"triton not importable ({error}): CUDA calls of the sparse operators use torch's sparse ops")
for index in range(torch.cuda.device_count()):
    print(f"cuda:{index}: {torch.cuda.get_device_name(index)}")
EOF

if [ "$SMOKE" -eq 1 ]; then
    say "smoke mode: the steps on the CPU at toy sizes (CUDA tests are collected and skipped)"
    DEVICE=cpu
    SCALE=3
    export HOL_SPARSE_COST=3.6,0.9,4.0
    SPARSE=(--batch 64 --features 16 --segments 1,2,4 --dense-max-segments 4 --rounds 1)
    LAYERS=(--batch 32 --features 8 --segments 1,2 --kinds continuous,continuous_prod,polynomial,relu
            --backends auto,dense,sparse --rounds 1)
    PRODUCTS=(--batch 32 --features 8 --segments 1,2 --rounds 1)
    CONV=(--batch 2 --rounds 1)
    EPOCH=(--batches 2 --repeats 1)
    PROFILE=(--batch 16 --features 8 --n 3 --rounds 1)
    PROFILE_LARGE=(--batch 32 --features 16 --n 3 --rounds 1)
    AUTO=(--shapes 8x8x1,16x8x4 --n 3 --rounds 1)
else
    if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        say "no CUDA GPU visible to torch: nothing to check (benchmarks/gpu_check.sh --smoke checks the script)"
        exit 1
    fi
    DEVICE=cuda
    SPARSE=(--segments 1,2,4,8,16,32,64,128 --dense-max-segments 128 --rounds 9)
    LAYERS=(--segments 1,2,4,8,16,32,64,128 --backends auto,dense,sparse --rounds 7)
    PRODUCTS=(--segments 1,2,16,64,128 --rounds 7)
    CONV=(--rounds 7)
    EPOCH=(--batches 100 --repeats 3)
    PROFILE=(--rounds 9)
    PROFILE_LARGE=(--batch 8192 --features 512 --rounds 5
                   --cases linear,continuous:8:dense,continuous:8:sparse,continuous:64:sparse,continuous_prod:2)
    AUTO=(--rounds 7)
fi

step "CUDA tests: kernels and layers" 125 "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests/ops tests/layers
step "CUDA tests: every experiment with trainer=gpu" 105 \
    "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests/runner
step "segment-sparse vs dense over S" 30 \
    "$PYTHON" benchmarks/bench_sparse.py --device "$DEVICE" "${SPARSE[@]}" --record "sparse_$DEVICE"
step "every fc kind over nn.Linear(I*n, O)" 40 \
    "$PYTHON" benchmarks/bench_layers.py --device "$DEVICE" --skip-reference "${LAYERS[@]}" --record "layers_$DEVICE"
step "product units" 30 \
    "$PYTHON" benchmarks/bench_products.py --device "$DEVICE" "${PRODUCTS[@]}" --record "products_$DEVICE"
step "convolution" 23 "$PYTHON" benchmarks/bench_conv.py --device "$DEVICE" "${CONV[@]}" --record "conv_$DEVICE"
step "host and device time of one step" 20 \
    "$PYTHON" benchmarks/profile_step.py --device "$DEVICE" "${PROFILE[@]}" --record "profile_$DEVICE"
step "host and device time of one step, large shapes" 20 \
    "$PYTHON" benchmarks/profile_step.py --device "$DEVICE" "${PROFILE_LARGE[@]}" --record "profile_${DEVICE}_large"
step "backend=auto against the faster path" 20 \
    "$PYTHON" benchmarks/bench_auto.py --device "$DEVICE" "${AUTO[@]}" --record "auto_$DEVICE"
step "invariant_mnist epoch vs layer=relu" 55 \
    "$PYTHON" benchmarks/bench_epoch.py --device "$DEVICE" --precision bf16-mixed "${EPOCH[@]}" \
    --record "epoch_$DEVICE"

say ""
say "=== cost model calibration (HOL_CACHE_DIR=$OUT/cache):"
cat "$OUT/cache/sparse_cost.json" 2>/dev/null | tee -a "$LOG" \
    || say "(none: nothing was calibrated; HOL_SPARSE_COST or HOL_SPARSE_COST_CUDA fixes the costs when set)"
say ""
say "=== result files: $(cd "$OUT/results" && ls | tr '\n' ' ')"
say "=== $FAILED failed step(s), $SECONDS s in all"
exit "$FAILED"
