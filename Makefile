# hol: make install | train | test | test-slow | test-all | bench | lint | typecheck
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install train test test-slow test-all bench lint typecheck clean

install: $(STAMP)

# torch and torchvision first, pinned, so pip takes the builds on this machine's disk; then hol with the exact
# versions the tests run with (constraints.txt; pyproject.toml declares ranges).
$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt $(TORCH)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# the default experiment: learn the seed's 1-D function (about 20 s on 2 idle CPU cores); prints the test metrics
# and the TensorBoard command
train: install
	$(VENV)/bin/hol train experiment=function

# the fast tier (every module's behaviour, a few minutes); the slow tier: end-to-end CLI runs, the documented
# commands, benchmark scripts, kernel builds from scratch (the tests marked slow); CI runs both (.ci/run)
test: install
	$(PY) -m pytest -q -m "not slow"

test-slow: install
	$(PY) -m pytest -q -m slow

test-all: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/bench_layers.py
	$(PY) benchmarks/bench_products.py
	$(PY) benchmarks/bench_conv.py
	$(PY) benchmarks/bench_sparse.py

# ruff's rules and mypy's files are declared in pyproject.toml
lint: install
	$(VENV)/bin/ruff check hol hydra_plugins tests benchmarks tools setup.py

typecheck: install
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) outputs .pytest_cache
