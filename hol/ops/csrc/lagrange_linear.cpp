// Fused piecewise Lagrange layer: the basis values and their product with the weights in one operator (CPU
// kernels of hol/ops/lagrange_linear.py), registered as hol_cpu::lagrange_linear_forward and
// hol_cpu::lagrange_linear_backward.
//
// Inputs x [B, I], per-input maps u = x scale[i] + shift[i] onto the segment coordinate (u in [0, S] over the
// domain), weight w [O, I, K] and the n x n matrix C with phi_k(t) = sum_j T_j(t) C[j, k] (T_j the Chebyshev
// polynomials, by their recurrence):
//
//   fold     clamp: u -> clamp(u, 0, S); mirror: u -> S - |remainder(u, 2S) - S|; polynomial, linear: u
//   segment  s = clamp(floor(u), 0, S - 1) (NaN: 0), local coordinate t = 2 (u - s) - 1
//   basis    phi_k(t); linear: outside [-1, 1] the end's tangent phi(t_c) + (t - t_c) phi'(t_c), t_c = clamp(t)
//   y[b, o]  = sum_i sum_k phi_k(t_bi) w[o, i, s_bi stride + k]      (stride n - 1 continuous, n otherwise)
//
// and its backward, for an output gradient gy [B, O]:
//
//   gx[b, i]                 = sum_k dphi_k(b, i) sum_o gy[b, o] w[o, i, s_bi stride + k]
//   gw[o, i, s stride + k]   = sum over the samples b in segment s of input i of phi_k(t_bi) gy[b, o]
//
// with dphi_k = phi_k'(t) 2 scale fold'(u): fold' is 1, or for clamp 1 on [0, S] and 0 elsewhere (exactly 0,
// whatever phi' is, as torch.clamp's gradient), for mirror +-1 (0 where remainder(u, 2S) = S, as abs's).
//
// The basis values are computed in vectors of samples of one input (x is copied input-major first; n^2 multiply-
// adds per sample and input, the loops unrolled for n = 3..6) and live only in a chunk's small buffers: the forward
// keeps no activation and the backward recomputes phi and phi' from x. The weight is packed into panels
// panel[i][m][o] = w[o, i0 + i, m] (the transposed layout [I, K, O], one block of inputs at a time,
// hol/ops/csrc/panels.h): the n rows that one (sample, input) touches are contiguous vectors over the outputs, so
// every (sample, input, node) costs one AXPY over the outputs. The forward walks the samples in order, their
// outputs in registers over all inputs, where the panel stays in L1 or there are too few samples per segment for
// grouping to pay (narrow layers); otherwise it groups the samples of a chunk of one input by segment (a stable
// counting sort) and keeps each segment's weight rows in registers while its samples stream through, as the
// backward always does, with the weight-gradient rows of the segment in registers too. A weight stored links-major
// (a contiguous [I, K, O] seen as [O, I, K], with O a whole number of vectors) is its own panel: nothing is packed,
// the weight gradient is written in place in the same layout (nothing unpacked), and the next segment's rows are
// prefetched from memory (measured, 256 x 256 layer, n = 5, S = 64, 1024 samples: forward 15.0 -> 12.9 ms, backward
// 34.7 -> 28.5 ms). Panels and chunk buffers are per-thread memory kept from call to call; weight gradients of 256
// KiB and more reuse freed ones (hol::GradientCache).
//
// Threads (at::parallel_for): the forward splits output tiles and batch chunks, each output row written by one
// thread; the backward splits inputs, so every thread owns its inputs' weight-gradient rows and input-gradient
// columns: no atomics, and the summation order depends on the shapes only, never on the number of threads
// (bitwise reproducible). Only ATen and the operator registry are included (no Python module).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "gradient_memory.h"
#include "instruction_sets.h"
#include "panels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace {

enum Extrapolation : int64_t { POLYNOMIAL = 0, CLAMP = 1, LINEAR = 2, MIRROR = 3 };

constexpr int64_t MAX_N = 32;                     // nodes per segment the kernels take (the Python side checks)
// output vectors of 64 bytes per forward tile: a tile's panel and output rows share the cache, and every tile
// evaluates the basis values again (measured, I = O = 256, n = 5, 1024 samples: 16 vectors 7-8% faster than 8
// at S = 2 and 4)
constexpr int64_t MAX_TILE_VECTORS = 16;
constexpr int64_t FORWARD_PANEL_BYTES = 256 * 1024;   // cache budget of the forward's packed weight panel
constexpr int64_t IN_ORDER_PANEL_BYTES = 40 * 1024;   // of a panel the forward walks in sample order (L1)
constexpr size_t REUSE_FROM = 256 * 1024;             // bytes from which weight gradients reuse memory
constexpr int64_t BACKWARD_PANEL_BYTES = 128 * 1024;  // of the backward's weight and weight-gradient panels
constexpr int64_t BASIS_BYTES = 12 * 1024;            // of the basis values of one chunk (forward, in order)
constexpr int64_t BACKWARD_BASIS_BYTES = 24 * 1024;   // of phi and dphi of one chunk of samples (backward)
constexpr int64_t SEGMENT_SAMPLES = 16;  // grouped chunks grow to this many samples per segment on average
constexpr int64_t OUTPUT_BYTES = 256 * 1024;           // of the output rows of one chunk of samples (forward)
constexpr int64_t SERIAL_WORK = int64_t(1) << 17;  // multiply-adds under which a call stays on the calling thread
constexpr int MAX_KC = 6;                          // nodes per pass over a segment (registers: 2 KC GV + 2 GV + 1)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// The grain of at::parallel_for over ``tasks`` tasks: all of them (one thread) for a small problem, else 1.
int64_t grain(int64_t tasks, int64_t work) { return work < SERIAL_WORK ? std::max<int64_t>(tasks, 1) : 1; }

// Per-thread scratch memory, kept from call to call (the pool's threads persist): a fresh panel at every call
// would cost a page fault per 4 KiB and its zero-initialization, as much time as packing the weight it holds.
// Buffers over KEEP_SCRATCH bytes (one input's panel of a very wide layer) are freed when a task ends.
enum ScratchSlot { PANEL, GRAD_PANEL, PHI, DPHI, DOT, SEGMENT, PADDED, SLOTS };
constexpr size_t KEEP_SCRATCH = size_t(4) << 20;

class Scratch {
 public:
  ~Scratch() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > bytes_) {
      std::free(data_);
      bytes_ = size_t(round_up(int64_t(std::max<size_t>(bytes, 64)), 4096));
      data_ = std::aligned_alloc(64, bytes_);
      TORCH_CHECK(data_ != nullptr, "out of memory for ", bytes_, " bytes of scratch");
    }
    return data_;
  }
  void trim() {
    if (bytes_ > KEEP_SCRATCH) {
      std::free(data_);
      data_ = nullptr;
      bytes_ = 0;
    }
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

Scratch* scratch_buffers() {
  thread_local Scratch buffers[SLOTS];
  return buffers;
}

// ``count`` uninitialized values of type V in this thread's buffer ``slot`` (64-byte aligned).
template <typename V>
V* scratch(ScratchSlot slot, int64_t count) {
  return static_cast<V*>(scratch_buffers()[slot].get(size_t(count) * sizeof(V)));
}

// Frees this thread's buffers over KEEP_SCRATCH bytes (at the end of a task).
void trim_scratch() {
  for (int slot = 0; slot < SLOTS; ++slot) scratch_buffers()[slot].trim();
}

template <typename T>
struct Vec : hol::Vec64<T> {
  using typename hol::Vec64<T>::vec;
  using hol::Vec64<T>::LANES;
  // Signed integers as wide as T, so that a vector of them has LANES lanes too (conversions lane by lane).
  using Int = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef Int ivec __attribute__((vector_size(64)));
  static vec splat(T value) { return vec{} + value; }
};

// The geometry and basis of a layer, and the per-input maps.
template <typename T>
struct Problem {
  const T* x;  // input-major [I, B]
  const T *scale, *shift, *w, *C;
  int64_t B, I, O, K, n, S, stride, mode;
  bool links_major;  // w stored as [I, K, O] (links_major_layout): its rows are the panels, nothing to pack
};

// Basis values of ``count`` samples xs[0..count) of one input: segment[l] = s (the sample touches the weight
// rows s stride .. s stride + n), phi[k * ld + l] (PHI) and dphi[k * ld + l] = d phi_k / d x (DPHI), for l < count
// rounded up to whole vectors (the padded lanes hold the values of x = 0). ``ld`` is a multiple of LANES.
// N: the number of nodes when known at compile time (the loops over nodes unrolled, the Chebyshev terms in
// registers), 0 for any n.
template <typename T, int64_t MODE, bool PHI, bool DPHI, int64_t N>
void evaluate_basis(const Problem<T>& p, const T* xs, int64_t count, T scale, T shift, int32_t* segment, T* phi,
                    T* dphi, int64_t ld) {
  using V = Vec<T>;
  using vec = typename V::vec;
  using ivec = typename V::ivec;
  constexpr int64_t L = V::LANES;
  const int64_t n = N > 0 ? N : p.n;
  const T S = T(p.S), last = T(p.S - 1), chain = T(2) * scale;
  const vec zero{}, one = V::splat(T(1));
  vec terms[N > 0 ? N : MAX_N], slopes[N > 0 ? N : MAX_N];  // T_j(t) and T_j'(t)
  for (int64_t l0 = 0; l0 < count; l0 += L) {
    vec x;
    if (l0 + L <= count) {
      x = V::load(xs + l0);
    } else {
      T tail[L] = {};
      std::copy(xs + l0, xs + count, tail);
      x = V::load(tail);
    }
    vec u = x * scale + shift, fold = one;
    if constexpr (MODE == CLAMP) {
      if constexpr (DPHI) fold = (u >= zero) & (u <= S) ? one : zero;
      u = u < zero ? zero : u;  // NaN stays NaN, as torch.clamp
      u = u > S ? V::splat(S) : u;
    } else if constexpr (MODE == MIRROR) {
      T r[L];
      const T period = 2 * S;
      for (int64_t l = 0; l < L; ++l) {  // torch.remainder: fmod, moved to the divisor's sign
        T m = std::fmod(u[l], period);
        r[l] = (m != 0 && m < 0) ? m + period : m;
      }
      const vec rv = V::load(r);
      if constexpr (DPHI)
        fold = rv < S ? one : (rv > S ? -one : (rv == S ? zero : V::splat(std::numeric_limits<T>::quiet_NaN())));
      const vec a = rv - S;
      u = S - (a < zero ? -a : a);
    }
    vec v = u > zero ? u : zero;  // NaN -> 0
    v = v < last ? v : V::splat(last);
    const vec s = __builtin_convertvector(__builtin_convertvector(v, ivec), vec);  // v >= 0: truncation = floor
    for (int64_t l = 0; l < L; ++l) segment[l0 + l] = int32_t(s[l]);
    vec t = (u - s) * T(2) - T(1), beyond{};
    if constexpr (MODE == LINEAR) {
      vec clamped = t < -one ? -one : t;
      clamped = clamped > one ? one : clamped;
      beyond = t - clamped;
      t = clamped;
    }
    constexpr bool SLOPES = DPHI || (PHI && MODE == LINEAR);
    if constexpr (PHI) {
      terms[0] = one;
      if (n > 1) terms[1] = t;
      const vec twice = t + t;
      for (int64_t j = 2; j < n; ++j) terms[j] = twice * terms[j - 1] - terms[j - 2];
    }
    if constexpr (SLOPES) {  // T_j' = j U_{j-1}, U of the second kind by recurrence
      vec u_prev = zero, u_j = one;
      const vec twice = t + t;
      slopes[0] = zero;
      for (int64_t j = 1; j < n; ++j) {
        slopes[j] = T(j) * u_j;
        const vec next = twice * u_j - u_prev;
        u_prev = u_j;
        u_j = next;
      }
    }
    if constexpr (PHI) {
      if constexpr (MODE == LINEAR)
        for (int64_t j = 0; j < n; ++j) terms[j] += beyond * slopes[j];
      for (int64_t k = 0; k < n; ++k) {
        vec acc = terms[0] * p.C[k];
        for (int64_t j = 1; j < n; ++j) acc += terms[j] * p.C[j * n + k];
        V::store(phi + k * ld + l0, acc);
      }
    }
    if constexpr (DPHI) {
      const vec factor = fold * chain;
      for (int64_t k = 0; k < n; ++k) {
        vec acc = slopes[0] * p.C[k];
        for (int64_t j = 1; j < n; ++j) acc += slopes[j] * p.C[j * n + k];
        V::store(dphi + k * ld + l0, fold == zero ? zero : acc * factor);
      }
    }
  }
}

template <typename T, int64_t MODE, bool PHI, bool DPHI>
void basis_nodes(const Problem<T>& p, const T* xs, int64_t count, T scale, T shift, int32_t* segment, T* phi,
                 T* dphi, int64_t ld) {
  switch (p.n) {  // the usual node counts unrolled
    case 3: evaluate_basis<T, MODE, PHI, DPHI, 3>(p, xs, count, scale, shift, segment, phi, dphi, ld); break;
    case 4: evaluate_basis<T, MODE, PHI, DPHI, 4>(p, xs, count, scale, shift, segment, phi, dphi, ld); break;
    case 5: evaluate_basis<T, MODE, PHI, DPHI, 5>(p, xs, count, scale, shift, segment, phi, dphi, ld); break;
    case 6: evaluate_basis<T, MODE, PHI, DPHI, 6>(p, xs, count, scale, shift, segment, phi, dphi, ld); break;
    default: evaluate_basis<T, MODE, PHI, DPHI, 0>(p, xs, count, scale, shift, segment, phi, dphi, ld);
  }
}

template <typename T, bool PHI, bool DPHI>
void basis(const Problem<T>& p, int64_t i, int64_t b0, int64_t count, int32_t* segment, T* phi, T* dphi,
           int64_t ld) {
  const T* xs = p.x + i * p.B + b0;
  const T scale = p.scale[i], shift = p.shift[i];
  switch (p.mode) {
    case CLAMP: basis_nodes<T, CLAMP, PHI, DPHI>(p, xs, count, scale, shift, segment, phi, dphi, ld); break;
    case LINEAR: basis_nodes<T, LINEAR, PHI, DPHI>(p, xs, count, scale, shift, segment, phi, dphi, ld); break;
    case MIRROR: basis_nodes<T, MIRROR, PHI, DPHI>(p, xs, count, scale, shift, segment, phi, dphi, ld); break;
    default: basis_nodes<T, POLYNOMIAL, PHI, DPHI>(p, xs, count, scale, shift, segment, phi, dphi, ld);
  }
}

// ------------------------------------------------------------------------------------------------- forward

// Samples 0 <= l < count grouped by segment (a stable counting sort): the samples of segment s are
// order[starts[s] .. starts[s + 1]), in increasing l.
struct SegmentGroups {
  std::vector<int32_t> order;
  std::vector<int64_t> starts, next;

  void build(const int32_t* segment, int64_t count, int64_t segments) {
    starts.assign(segments + 1, 0);
    order.resize(count);
    if (segments == 1) {
      starts[1] = count;
      for (int64_t l = 0; l < count; ++l) order[l] = int32_t(l);
      return;
    }
    for (int64_t l = 0; l < count; ++l) ++starts[segment[l] + 1];
    for (int64_t s = 0; s < segments; ++s) starts[s + 1] += starts[s];
    next.assign(starts.begin(), starts.end() - 1);
    for (int64_t l = 0; l < count; ++l) order[next[segment[l]]++] = int32_t(l);
  }
  int64_t count(int64_t s) const { return starts[s + 1] - starts[s]; }
  const int32_t* samples(int64_t s) const { return order.data() + starts[s]; }
};

// The widest group of output vectors (4, 2 or 1) that divides ``vectors``.
int64_t vector_group(int64_t vectors) { return vectors % 4 == 0 ? 4 : vectors % 2 == 0 ? 2 : 1; }

// One pass over the samples of one segment of one input, for nodes k0 .. k0 + KC and output vectors c .. c + GV:
// out[l][c + v] (+)= sum_k phi[k][l] rows[k][c + v]. The KC x GV weight vectors stay in registers while each
// sample's GV output vectors are read and written once (written without reading when ``first``).
template <typename T, int KC, int GV>
void forward_pass(const T* rows, int64_t width, const int32_t* samples, int64_t count, const T* phi, int64_t ld,
                  T* out, int64_t out_stride, int64_t c, bool first) {
  using V = Vec<T>;
  using vec = typename V::vec;
  constexpr int64_t L = V::LANES;
  vec w[KC][GV];
  for (int k = 0; k < KC; ++k)
    for (int v = 0; v < GV; ++v) w[k][v] = V::load(rows + k * width + (c + v) * L);
  for (int64_t j = 0; j < count; ++j) {
    const int64_t l = samples[j];
    T* o = out + l * out_stride + c * L;
    vec acc[GV];
    for (int v = 0; v < GV; ++v) acc[v] = first ? vec{} : V::load(o + v * L);
    for (int k = 0; k < KC; ++k) {
      const T pk = phi[k * ld + l];
      for (int v = 0; v < GV; ++v) acc[v] += pk * w[k][v];
    }
    for (int v = 0; v < GV; ++v) V::store(o + v * L, acc[v]);
  }
}

template <typename T>
using ForwardPass = void (*)(const T*, int64_t, const int32_t*, int64_t, const T*, int64_t, T*, int64_t, int64_t,
                             bool);

template <typename T, int GV>
ForwardPass<T> forward_pass_for(int64_t kc) {
  switch (kc) {
    case 1: return &forward_pass<T, 1, GV>;
    case 2: return &forward_pass<T, 2, GV>;
    case 3: return &forward_pass<T, 3, GV>;
    case 4: return &forward_pass<T, 4, GV>;
    case 5: return &forward_pass<T, 5, GV>;
    default: return &forward_pass<T, 6, GV>;
  }
}

// out[l][:tile] (+)= sum_{i < ni} sum_k phi[i][k][l] panel[i][segment[i][l] stride + k][:] for the R samples
// l0 .. l0 + R in input order, for panels small enough to stay in L1: each sample's NV output vectors stay in
// registers over all inputs of the panel, and the R NV independent accumulation chains hide the latency of the
// multiply-adds.
template <typename T, int NV, int R>
inline void forward_samples(const T* panel, int64_t tile, int64_t K, int64_t n, int64_t stride, int64_t ni,
                            const int32_t* segment, const T* phi, int64_t ld, int64_t l0, T* out, int64_t out_stride,
                            bool first) {
  using V = Vec<T>;
  typename V::vec acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = first ? typename V::vec{} : V::load(out + (l0 + r) * out_stride + v * V::LANES);
  for (int64_t i = 0; i < ni; ++i) {
    const T* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = panel + (i * K + segment[i * ld + l0 + r] * stride) * tile;
    const T* ph = phi + i * n * ld + l0;
    for (int64_t k = 0; k < n; ++k)
      for (int r = 0; r < R; ++r) {
        const T pk = ph[k * ld + r];
        for (int v = 0; v < NV; ++v) acc[r][v] += pk * V::load(rows[r] + k * tile + v * V::LANES);
      }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) V::store(out + (l0 + r) * out_stride + v * V::LANES, acc[r][v]);
}

template <typename T, int NV>
void forward_in_order(const T* panel, int64_t tile, int64_t K, int64_t n, int64_t stride, int64_t ni,
                      const int32_t* segment, const T* phi, int64_t ld, int64_t count, T* out, int64_t out_stride,
                      bool first) {
  constexpr int R = NV >= 4 ? 1 : 4 / NV;  // samples in flight
  int64_t l = 0;
  for (; l + R <= count; l += R)
    forward_samples<T, NV, R>(panel, tile, K, n, stride, ni, segment, phi, ld, l, out, out_stride, first);
  for (; l < count; ++l)
    forward_samples<T, NV, 1>(panel, tile, K, n, stride, ni, segment, phi, ld, l, out, out_stride, first);
}

// y [B, O]. Threads split output tiles (and batch chunks when there are more threads than tiles). Per task, per
// panel of inputs (the task's tile of the weight, packed), per chunk of samples: the basis values, then either
// (small panels, which stay in L1) the samples in order, each sample's outputs in registers over the whole panel
// (forward_in_order), or the samples of each input grouped by segment, each segment's weight rows in registers
// over its samples (forward_pass).
template <typename T>
void forward_kernel(const Problem<T>& p, T* y) {
  using V = Vec<T>;
  constexpr int64_t L = V::LANES;
  // links-major weights: one tile of all outputs, so that each input's rows are read once, in order
  const int64_t vectors = p.links_major ? p.O / L : std::min<int64_t>(MAX_TILE_VECTORS, ceil_div(p.O, L));
  const int64_t tile = vectors * L;
  const int64_t tiles = ceil_div(p.O, tile);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(p.B, ceil_div(at::get_num_threads(), tiles)));
  const int64_t chunk = ceil_div(p.B, chunks);
  const int64_t input_bytes = p.K * tile * int64_t(sizeof(T));  // one input's panel
  const bool in_order = vectors <= 2 && (IN_ORDER_PANEL_BYTES / input_bytes >= std::min<int64_t>(p.I, 4) ||
                                        p.B < SEGMENT_SAMPLES * p.S);
  const int64_t ib = std::max<int64_t>(
      1, std::min<int64_t>(p.I, (in_order ? IN_ORDER_PANEL_BYTES : FORWARD_PANEL_BYTES) / input_bytes));
  // samples per chunk: in order, the basis values of the panel's inputs fit BASIS_BYTES; grouped, the chunk's
  // output rows fit OUTPUT_BYTES, or more rows where that leaves fewer than SEGMENT_SAMPLES samples per segment
  // (each segment's weight rows are loaded once per chunk). Measured on a 256 x 256 layer, n = 5, S = 64, 1024
  // samples (Intel Xeon, AVX-512): 64 KiB chunks 18.7 ms, 256 KiB 15.6 ms.
  const int64_t ld = std::clamp<int64_t>(
      round_up(in_order ? BASIS_BYTES / (ib * p.n * int64_t(sizeof(T)))
                        : std::max(OUTPUT_BYTES / (tile * int64_t(sizeof(T))), SEGMENT_SAMPLES * p.S),
               L),
      L, 1024);
  const int64_t work = p.B * p.I * p.n * (p.O + p.n);
  at::parallel_for(0, tiles * chunks, grain(tiles * chunks, work), [&](int64_t task0, int64_t task1) {
    T* packed = p.links_major ? nullptr : scratch<T>(PANEL, ib * p.K * tile);
    T* phi = scratch<T>(PHI, (in_order ? ib : 1) * p.n * ld);
    int32_t* segment = scratch<int32_t>(SEGMENT, (in_order ? ib : 1) * ld);
    SegmentGroups groups;
    for (int64_t task = task0; task < task1; ++task) {
      const int64_t o0 = (task % tiles) * tile, width = std::min(tile, p.O - o0);
      const int64_t b0 = (task / tiles) * chunk, b1 = std::min(p.B, b0 + chunk);
      if (b0 >= b1) continue;
      const int64_t used = ceil_div(width, L), gv = vector_group(used);  // output vectors of this tile
      ForwardPass<T> (*pick)(int64_t) =
          gv == 4 ? &forward_pass_for<T, 4> : gv == 2 ? &forward_pass_for<T, 2> : &forward_pass_for<T, 1>;
      T* out = y + b0 * p.O + o0;
      int64_t out_stride = p.O;
      T* padded = nullptr;
      if (width < tile) {  // a partial tile: accumulate in padded rows, copied into y at the end
        padded = out = scratch<T>(PADDED, (b1 - b0) * tile);
        out_stride = tile;
      }
      for (int64_t i0 = 0; i0 < p.I; i0 += ib) {
        const int64_t ni = std::min(ib, p.I - i0);
        const T* panel = packed;  // rows of ``row`` values: panel[(i K + m) row + j] = w[o0 + j, i0 + i, m]
        int64_t row = tile;
        if (p.links_major) {
          panel = p.w + i0 * p.K * p.O + o0;
          row = p.O;
        } else {
          if (width < tile) std::fill(packed, packed + ni * p.K * tile, T(0));
          hol::transpose_ahead<hol::SOURCE>(p.w + (o0 * p.I + i0) * p.K, p.I * p.K, packed, tile, width, ni * p.K);
        }
        for (int64_t c0 = b0; c0 < b1; c0 += ld) {
          const int64_t count = std::min(ld, b1 - c0);
          T* rows_out = out + (c0 - b0) * out_stride;
          if (in_order) {
            for (int64_t i = 0; i < ni; ++i)
              basis<T, true, false>(p, i0 + i, c0, count, segment + i * ld, phi + i * p.n * ld, nullptr, ld);
            if (used == 1)
              forward_in_order<T, 1>(panel, row, p.K, p.n, p.stride, ni, segment, phi, ld, count, rows_out,
                                     out_stride, i0 == 0);
            else
              forward_in_order<T, 2>(panel, row, p.K, p.n, p.stride, ni, segment, phi, ld, count, rows_out,
                                     out_stride, i0 == 0);
            continue;
          }
          for (int64_t i = 0; i < ni; ++i) {
            basis<T, true, false>(p, i0 + i, c0, count, segment, phi, nullptr, ld);
            groups.build(segment, count, p.S);
            for (int64_t s = 0; s < p.S; ++s) {
              if (groups.count(s) == 0) continue;
              const T* rows = panel + (i * p.K + s * p.stride) * row;
              if (p.links_major && s + 1 < p.S)  // the next segment's weight rows, read from memory
                for (int64_t k = 0; k < p.n; ++k)
                  for (int64_t c = 0; c < used; ++c) __builtin_prefetch(rows + (p.stride + k) * row + c * L, 0, 1);
              for (int64_t k0 = 0; k0 < p.n; k0 += MAX_KC) {
                const auto run = pick(std::min<int64_t>(MAX_KC, p.n - k0));
                for (int64_t c = 0; c < used; c += gv)
                  run(rows + k0 * row, row, groups.samples(s), groups.count(s), phi + k0 * ld, ld, rows_out,
                      out_stride, c, i0 + i == 0 && k0 == 0);
              }
            }
          }
        }
      }
      if (width < tile)
        for (int64_t b = b0; b < b1; ++b)
          std::copy(padded + (b - b0) * tile, padded + (b - b0) * tile + width, y + b * p.O + o0);
    }
    trim_scratch();
  });
}

// ------------------------------------------------------------------------------------------------ backward

// One pass over the samples of one segment, for nodes k0 .. k0 + KC and output vectors c .. c + GV:
//   WG: grad[k][c + v] += sum over the samples of phi[k][l] gy[b][c + v]   (registers, added once)
//   XG: dot[l] (+)= sum_v gy[b][c + v] sum_k dphi[k][l] rows[k][c + v]      (lanes summed later)
// ``rows`` and ``grad`` point at the segment's first node in the weight and weight-gradient panels (row length
// ``width``); ``gy`` at sample b0's gradient row (row length ``gy_stride``).
template <typename T, int KC, int GV, bool XG, bool WG>
void segment_pass(const T* gy, int64_t gy_stride, const int32_t* samples, int64_t count, const T* phi,
                  const T* dphi, int64_t ld, const T* rows, T* grad, int64_t width, int64_t c,
                  typename Vec<T>::vec* dot, bool first) {
  using V = Vec<T>;
  using vec = typename V::vec;
  constexpr int64_t L = V::LANES;
  vec w[KC][GV], acc[KC][GV];
  for (int k = 0; k < KC; ++k)
    for (int v = 0; v < GV; ++v) {
      if constexpr (XG) w[k][v] = V::load(rows + k * width + (c + v) * L);
      if constexpr (WG) acc[k][v] = vec{};
    }
  for (int64_t j = 0; j < count; ++j) {
    const int64_t l = samples[j];
    const T* g = gy + l * gy_stride + c * L;
    vec gv[GV];
    for (int v = 0; v < GV; ++v) gv[v] = V::load(g + v * L);
    if constexpr (WG)
      for (int k = 0; k < KC; ++k) {
        const T pk = phi[k * ld + l];
        for (int v = 0; v < GV; ++v) acc[k][v] += pk * gv[v];
      }
    if constexpr (XG) {
      vec d{};
      for (int v = 0; v < GV; ++v) {
        vec combined = dphi[l] * w[0][v];
        for (int k = 1; k < KC; ++k) combined += dphi[k * ld + l] * w[k][v];
        d += gv[v] * combined;
      }
      dot[l] = first ? d : dot[l] + d;
    }
  }
  if constexpr (WG)
    for (int k = 0; k < KC; ++k)
      for (int v = 0; v < GV; ++v) {
        T* r = grad + k * width + (c + v) * L;
        V::store(r, V::load(r) + acc[k][v]);
      }
}

template <typename T, bool XG, bool WG>
struct Passes {
  using Fn = void (*)(const T*, int64_t, const int32_t*, int64_t, const T*, const T*, int64_t, const T*, T*, int64_t,
                      int64_t, typename Vec<T>::vec*, bool);
  template <int GV>
  static Fn pick(int64_t kc) {
    switch (kc) {
      case 1: return &segment_pass<T, 1, GV, XG, WG>;
      case 2: return &segment_pass<T, 2, GV, XG, WG>;
      case 3: return &segment_pass<T, 3, GV, XG, WG>;
      case 4: return &segment_pass<T, 4, GV, XG, WG>;
      case 5: return &segment_pass<T, 5, GV, XG, WG>;
      default: return &segment_pass<T, 6, GV, XG, WG>;
    }
  }
};

// gx^T [I, B] (XG) and gw [O, I, K] (WG). Threads split blocks of inputs; per input, chunks of samples are
// evaluated (phi, dphi), grouped by segment and streamed through segment_pass once per (node group, output
// vector group).
template <typename T, bool XG, bool WG>
void backward_kernel(const Problem<T>& p, const T* gy, int64_t gy_stride, T* gx_t, T* gw) {
  using V = Vec<T>;
  using vec = typename V::vec;
  constexpr int64_t L = V::LANES;
  const int64_t width = round_up(p.O, L), vectors = width / L;
  const int64_t panel_bytes = p.K * width * int64_t(sizeof(T)) * (int64_t(XG) + int64_t(WG));
  const int64_t most = std::max<int64_t>(1, BACKWARD_PANEL_BYTES / panel_bytes);
  const int64_t threads = at::get_num_threads();
  const int64_t blocks = std::min(p.I, ceil_div(ceil_div(p.I, most), threads) * threads);
  const int64_t ib = ceil_div(p.I, blocks);
  const int64_t ld = std::clamp<int64_t>(
      round_up(std::max(BACKWARD_BASIS_BYTES / (2 * p.n * int64_t(sizeof(T))), SEGMENT_SAMPLES * p.S), L), L, 2048);
  const int64_t gv = vectors % 2 == 0 ? 2 : 1;
  const auto pass = gv == 2 ? Passes<T, XG, WG>::template pick<2> : Passes<T, XG, WG>::template pick<1>;
  const int64_t work = p.B * p.I * p.n * (p.O + 2 * p.n);
  at::parallel_for(0, ceil_div(p.I, ib), grain(ceil_div(p.I, ib), work), [&](int64_t q0, int64_t q1) {
    T* packed = XG && !p.links_major ? scratch<T>(PANEL, ib * p.K * width) : nullptr;
    T* packed_grad = WG && !p.links_major ? scratch<T>(GRAD_PANEL, ib * p.K * width) : nullptr;
    T* phi = WG ? scratch<T>(PHI, p.n * ld) : nullptr;
    T* dphi = XG ? scratch<T>(DPHI, p.n * ld) : nullptr;
    vec* dot = XG ? scratch<vec>(DOT, ld) : nullptr;
    int32_t* segment = scratch<int32_t>(SEGMENT, ld);
    SegmentGroups groups;
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i0 = q * ib, ni = std::min(ib, p.I - i0);
      // the panels [ni K, width] of the weight and its gradient: packed, or (links-major) the tensors' own rows
      const T* panel = p.links_major ? p.w + i0 * p.K * width : packed;
      T* grad = p.links_major && WG ? gw + i0 * p.K * width : packed_grad;
      if constexpr (XG) {
        if (!p.links_major) {
          if (width > p.O) std::fill(packed, packed + ni * p.K * width, T(0));
          hol::transpose_ahead<hol::SOURCE>(p.w + i0 * p.K, p.I * p.K, packed, width, p.O, ni * p.K);
        }
      }
      if constexpr (WG) std::fill(grad, grad + ni * p.K * width, T(0));
      for (int64_t i = 0; i < ni; ++i) {
        for (int64_t c0 = 0; c0 < p.B; c0 += ld) {
          const int64_t count = std::min(ld, p.B - c0);
          basis<T, WG, XG>(p, i0 + i, c0, count, segment, phi, dphi, ld);
          groups.build(segment, count, p.S);
          for (int64_t s = 0; s < p.S; ++s) {
            const int64_t members = groups.count(s);
            if (members == 0) continue;
            const int32_t* samples = groups.samples(s);
            const int64_t row = (i * p.K + s * p.stride) * width;
            if (p.links_major && XG && s + 1 < p.S)  // the next segment's weight rows, read from memory
              for (int64_t m = (i * p.K + (s + 1) * p.stride) * width, end = m + p.n * width; m < end; m += L)
                __builtin_prefetch(panel + m, 0, 1);
            for (int64_t k0 = 0; k0 < p.n; k0 += MAX_KC) {
              const auto run = pass(std::min<int64_t>(MAX_KC, p.n - k0));
              for (int64_t c = 0; c < vectors; c += gv)
                run(gy + c0 * gy_stride, gy_stride, samples, members, WG ? phi + k0 * ld : nullptr,
                    XG ? dphi + k0 * ld : nullptr, ld, XG ? panel + row + k0 * width : nullptr,
                    WG ? grad + row + k0 * width : nullptr, width, c, dot, k0 == 0 && c == 0);
            }
          }
          if constexpr (XG) {
            T* out = gx_t + (i0 + i) * p.B + c0;
            for (int64_t l = 0; l < count; ++l) out[l] = V::sum(dot[l]);
          }
        }
      }
      if constexpr (WG)
        if (!p.links_major)
          hol::transpose_ahead<hol::DESTINATION>(grad, width, gw + i0 * p.K, p.I * p.K, ni * p.K, p.O);
    }
    trim_scratch();
  });
}

// -------------------------------------------------------------------------------------------------- operators

void check_operands(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift, const at::Tensor& w,
                    const at::Tensor& C, int64_t segments, bool continuous, int64_t mode) {
  for (const auto* t : {&x, &scale, &shift, &w, &C}) {
    TORCH_CHECK(t->device().is_cpu() && (t == &w || t->is_contiguous()), "contiguous CPU tensors expected");
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "all operands must share x's dtype");
  }
  TORCH_CHECK(x.dim() == 2 && w.dim() == 3 && C.dim() == 2, "x [B, I], weight [O, I, K], transform [n, n]");
  const int64_t I = x.size(1), n = C.size(0);
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == I && shift.dim() == 1 && shift.size(0) == I,
              "scale and shift must be [I]");
  TORCH_CHECK(C.size(1) == n && n >= 1 && n <= MAX_N, "transform must be [n, n] with 1 <= n <= ", MAX_N);
  TORCH_CHECK(segments >= 1 && segments < (int64_t(1) << 24), "segments must be in [1, 2^24)");
  const int64_t K = continuous ? (n - 1) * segments + 1 : n * segments;
  TORCH_CHECK(w.size(1) == I && w.size(2) == K, "weight must be [O, ", I, ", ", K, "], got ", w.sizes());
  TORCH_CHECK(K < (int64_t(1) << 31), "at most 2^31 values per link");
  TORCH_CHECK(mode >= POLYNOMIAL && mode <= MIRROR, "extrapolation code must be 0..3, got ", mode);
}

// Whether w [O, I, K] is stored links-major, as a contiguous [I, K, O] (the layout of hol's Lagrange layers'
// weights, hol/layers/fully_connected.py), with O a whole number of vectors: then the rows of w and of its gradient
// are the kernels' panels, read and written in place (no packing, no unpacking).
bool links_major_layout(const at::Tensor& w, int64_t lanes) {
  return !w.is_contiguous() && w.permute({1, 2, 0}).is_contiguous() && w.size(0) % lanes == 0;
}

// w as the kernels read it: links-major (links_major_layout) or contiguous (a copy of any other layout).
at::Tensor kernel_layout(const at::Tensor& w, int64_t lanes) {
  return links_major_layout(w, lanes) ? w : w.contiguous();
}

// An uninitialized weight gradient: from hol::GradientCache (the memory of an earlier step's gradient of the same
// size, else fresh huge pages) from REUSE_FROM bytes on, where a fresh buffer would cost a page fault per 4 KiB at
// every step (a training loop sets the gradients to None at every step); from torch below.
at::Tensor reusable_empty(at::IntArrayRef shape, const at::TensorOptions& options) {
  const size_t bytes = size_t(c10::multiply_integers(shape)) * options.dtype().itemsize();
  if (bytes < REUSE_FROM) return at::empty(shape, options);
  void* data = hol::GradientCache::instance().take(bytes);
  return at::from_blob(data, shape, [bytes](void* p) { hol::GradientCache::instance().give_back(p, bytes); },
                       options);
}

// x input-major ([I, B]: the samples of one input contiguous), in ``storage`` (x itself when I or B is 1). Plain
// memory, not a tensor: the kernels' scratch dispatches no torch operator.
template <typename T>
const T* input_major(const at::Tensor& x, std::vector<T>& storage) {
  const int64_t B = x.size(0), I = x.size(1);
  if (I == 1 || B == 1) return x.data_ptr<T>();
  storage.resize(size_t(B * I));
  hol::transpose(x.data_ptr<T>(), I, storage.data(), B, B, I);
  return storage.data();
}

template <typename T>
Problem<T> problem(const T* x_t, const at::Tensor& scale, const at::Tensor& shift, const at::Tensor& w,
                   const at::Tensor& C, int64_t B, int64_t I, int64_t segments, bool continuous, int64_t mode) {
  const int64_t n = C.size(0);
  return {x_t, scale.data_ptr<T>(), shift.data_ptr<T>(), w.data_ptr<T>(), C.data_ptr<T>(),
          B, I, w.size(0), w.size(2), n, segments, continuous ? n - 1 : n, mode,
          links_major_layout(w, Vec<T>::LANES)};
}

// y [B, O].
at::Tensor forward(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift, const at::Tensor& w,
                   const at::Tensor& C, int64_t segments, bool continuous, int64_t mode) {
  check_operands(x, scale, shift, w, C, segments, continuous, mode);
  const int64_t B = x.size(0), I = x.size(1), O = w.size(0);
  if (B == 0 || O == 0 || I == 0) return at::zeros({B, O}, x.options());
  auto y = at::empty({B, O}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lagrange_linear_forward", [&] {
    std::vector<scalar_t> columns;
    const scalar_t* x_t = input_major(x, columns);
    const at::Tensor weight = kernel_layout(w, Vec<scalar_t>::LANES);
    forward_kernel<scalar_t>(problem<scalar_t>(x_t, scale, shift, weight, C, B, I, segments, continuous, mode),
                             y.data_ptr<scalar_t>());
  });
  return y;
}

// (grad_x [B, I], grad_weight [O, I, K]); each only when asked for (else an empty tensor). The weight gradient has
// the weight's layout where that is links-major (as autograd's gradient layout contract asks, so that it is kept
// as it is), else it is contiguous.
std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& scale,
                                            const at::Tensor& shift, const at::Tensor& w, const at::Tensor& C,
                                            int64_t segments, bool continuous, int64_t mode, bool x_grad,
                                            bool weight_grad) {
  check_operands(x, scale, shift, w, C, segments, continuous, mode);
  const int64_t B = x.size(0), I = x.size(1), O = w.size(0);
  TORCH_CHECK(gy.device().is_cpu() && gy.is_contiguous() && gy.dim() == 2 && gy.size(0) == B && gy.size(1) == O &&
              gy.scalar_type() == x.scalar_type(), "grad_y must be a contiguous [B, O] tensor of x's dtype");
  const bool degenerate = B == 0 || O == 0 || I == 0;  // zero gradients, no kernel
  const at::Tensor gx = !x_grad ? at::empty({0}, x.options())
                        : degenerate ? at::zeros({B, I}, x.options()) : at::empty({B, I}, x.options());
  const int64_t lanes = 64 / int64_t(w.element_size());
  const bool links_major = links_major_layout(w, lanes);
  const at::Tensor gw = !weight_grad            ? at::empty({0}, w.options())
                        : B == 0 || O == 0 ? at::zeros(w.sizes(), w.options())
                        : links_major      ? reusable_empty({I, w.size(2), O}, w.options()).permute({2, 0, 1})
                                           : reusable_empty(w.sizes(), w.options());
  if ((!x_grad && !weight_grad) || degenerate) return {gx, gw};
  const at::Tensor weight = kernel_layout(w, lanes);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lagrange_linear_backward", [&] {
    using T = scalar_t;
    constexpr int64_t L = Vec<T>::LANES;
    std::vector<T> columns, gx_columns;  // x and its gradient input-major
    const auto p = problem<T>(input_major(x, columns), scale, shift, weight, C, B, I, segments, continuous, mode);
    const T* g = gy.data_ptr<T>();
    int64_t stride = O;
    std::vector<T> padded;  // rows of whole vectors: zero-padded when O is not a multiple of LANES
    if (O % L != 0) {
      stride = round_up(O, L);
      padded.assign(B * stride, T(0));
      for (int64_t b = 0; b < B; ++b) std::copy(g + b * O, g + (b + 1) * O, padded.data() + b * stride);
      g = padded.data();
    }
    if (x_grad) gx_columns.resize(size_t(B * I));
    T* gx_data = x_grad ? gx_columns.data() : nullptr;
    T* gw_data = weight_grad ? gw.data_ptr<T>() : nullptr;
    if (x_grad && weight_grad) backward_kernel<T, true, true>(p, g, stride, gx_data, gw_data);
    else if (x_grad) backward_kernel<T, true, false>(p, g, stride, gx_data, gw_data);
    else backward_kernel<T, false, true>(p, g, stride, gx_data, gw_data);
    if (x_grad) hol::transpose(gx_data, B, gx.data_ptr<T>(), I, I, B);
  });
  return {gx, gw};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hol_cpu, m) {
  m.def("lagrange_linear_forward(Tensor x, Tensor scale, Tensor shift, Tensor weight, Tensor transform, "
        "int segments, bool continuous, int extrapolation) -> Tensor", &forward);
  m.def("lagrange_linear_backward(Tensor grad_y, Tensor x, Tensor scale, Tensor shift, Tensor weight, "
        "Tensor transform, int segments, bool continuous, int extrapolation, bool x_grad, bool weight_grad) "
        "-> (Tensor, Tensor)", &backward);
  m.def("lagrange_linear_instruction_sets() -> str[]", &hol::instruction_sets);
}
