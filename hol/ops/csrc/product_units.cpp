// Product units without the [B, O, I] tensor of link values (CPU kernels for hol.layers.product_units),
// registered as the torch operators hol_cpu::product_units_forward and hol_cpu::product_units_backward.
//
//   f[b, o, i] = sum_k phi[b, i, k] * w[o, i, base[b, i] + k]            (link value, recomputed, never stored)
//   y[b, o]    = prod_i (1 + f[b, o, i]) - 1 - (1 - alpha) * sum_i f[b, o, i]
//
// Zero factors are counted, never divided by: the forward also returns, per (b, o), the product of the nonzero
// factors ``prod`` and ``zero_at`` = -1 (no factor is zero), i (only factor i is zero) or -2 (two or more are).
// The backward needs d y / d f[b, o, i] = prod_{j != i} (1 + f_j) - (1 - alpha), which is
//   prod / (1 + f_i)   when zero_at = -1 (every factor nonzero),
//   prod               for i = zero_at, and 0 for the other i, when exactly one factor is zero,
//   0                  when two or more are,
// so with the saved [B, O] state every link's coefficient c = dy * (d y / d f) is local and the backward is
//   d phi[b, i, k]              = sum_o c[b, o, i] * w[o, i, base[b, i] + k]
//   d w[o, i, base[b, i] + k]  += sum_b c[b, o, i] * phi[b, i, k].
// The backward recomputes f with the same code as the forward (link_values), so it finds the same values bit for
// bit, and divides only where the forward found no zero factor.
//
// Layout (as in segment_sparse.cpp): blocks of the weight are packed into panels panel[i][m][j] = w[o0 + j, i0 + i,
// m] of TILE output columns, so the n active rows of one input are contiguous TILE-vectors and every (sample,
// input, node) costs one AXPY or dot product of TILE values held in registers; two consecutive samples whose input
// falls in the same segment (always for links without segments) share those loads and stores. Threads: the
// forward splits output tiles (and batch chunks when there are more threads than tiles); the backward splits input
// blocks, so every thread owns its rows of d w and d phi (no atomics; repeated indices accumulate in order, nothing
// is dropped). Only ATen and the operator registry are included (no Python module): the build takes ~10 s, a
// third of what torch/extension.h costs.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include "gradient_memory.h"
#include "panels.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace {

constexpr int64_t NV = 8;                    // native vectors of 64 bytes per output tile
constexpr int64_t PANEL_BYTES = 256 * 1024;  // cache budget of one packed panel of the backward (it has two)
// Cache budget of the forward's panel: fewer, longer passes over the per-sample state when K is large (measured
// 30% faster at K=257 than 256 KiB).
constexpr int64_t FORWARD_PANEL_BYTES = 1024 * 1024;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// TILE = NV * LANES outputs as NV native vectors of 64 bytes (128 float, 64 double), kept in registers.
template <typename T>
struct Tile : hol::Vec64<T> {
  using typename hol::Vec64<T>::vec;
  using hol::Vec64<T>::LANES;
  static constexpr int64_t SIZE = NV * LANES;
  static vec splat(T value) { return vec{} + value; }
  // Whether any lane of the comparison result ``mask`` (lanes 0 or -1, 64 bytes) is set.
  template <typename M>
  static bool any(const M& mask) {
    static_assert(sizeof(M) == 64, "a mask of one native vector");
#ifdef __AVX512F__
    __m512i bits;
    __builtin_memcpy(&bits, &mask, 64);
    return _mm512_test_epi32_mask(bits, bits) != 0;
#else
    for (int64_t l = 0; l < LANES; ++l)
      if (mask[l]) return true;
    return false;
#endif
  }
};

// Inputs per panel so that a panel of ``K x TILE`` values per input fits ``bytes``.
template <typename T>
int64_t inputs_per_panel(int64_t I, int64_t K, int64_t bytes) {
  return std::max<int64_t>(1, std::min<int64_t>(I, bytes / (K * Tile<T>::SIZE * int64_t(sizeof(T)))));
}


// f[v] = sum_k ph[k] * rows[k * TILE + v * LANES ...]: the TILE link values of one (sample, input). The forward
// and the backward both call this, so the backward's recomputed values equal the forward's bit for bit.
template <typename T>
inline void link_values(const T* ph, const T* rows, int64_t n, typename Tile<T>::vec* f) {
  using V = Tile<T>;
  for (int64_t v = 0; v < NV; ++v) f[v] = typename V::vec{};
  for (int64_t k = 0; k < n; ++k) {
    const T p = ph[k];
    const T* r = rows + k * V::SIZE;
    for (int64_t v = 0; v < NV; ++v) f[v] += p * V::load(r + v * V::LANES);
  }
}

// The operands. Row (b, i) of phi (n values), of its gradient and of base lies at b * sample + i * input:
// sample-major ([B, I], as given) suits blocks of many inputs; with one or a few inputs per block (large K) the
// kernels walk the samples of one input, and input-major rows ([I, B]) keep those reads sequential (sample-major,
// consecutive samples are I n values apart: a new page for every sample when I n is large).
template <typename T>
struct Problem {
  const T* phi;
  const int64_t* base;
  const T* w;
  int64_t B, I, n, K, O;
  int64_t sample, input;
  int64_t row(int64_t b, int64_t i) const { return b * sample + i * input; }
};

constexpr int64_t INPUT_MAJOR_BELOW = 4;  // inputs per block under which the rows are made input-major

// One sample over inputs [i0, i0 + ni) of a panel: prod *= (1 + f), sum += f (WITH_SUM: alpha != 1), zero
// factors tracked in ``zero`` (float lanes holding -1, -2 or the input index). The fast loop assumes no factor is
// zero; a lane whose product is then zero (or NaN) makes the block run again from the saved state with the
// bookkeeping.
template <typename T, bool WITH_SUM>
void forward_block(const Problem<T>& p, const T* panel, int64_t b, int64_t i0, int64_t ni, T* prod_state,
                   T* sum_state, T* zero_state) {
  using V = Tile<T>;
  using vec = typename V::vec;
  vec prod[NV], sum[NV], f[NV];
  for (int64_t v = 0; v < NV; ++v) {
    prod[v] = V::load(prod_state + v * V::LANES);
    if constexpr (WITH_SUM) sum[v] = V::load(sum_state + v * V::LANES);
  }
  for (int64_t i = 0; i < ni; ++i) {
    const int64_t row = p.row(b, i0 + i);
    link_values(p.phi + row * p.n, panel + (i * p.K + p.base[row]) * V::SIZE, p.n, f);
    for (int64_t v = 0; v < NV; ++v) {
      prod[v] *= f[v] + T(1);
      if constexpr (WITH_SUM) sum[v] += f[v];
    }
  }
  auto degenerate = (prod[0] == T(0)) | (prod[0] != prod[0]);
  for (int64_t v = 1; v < NV; ++v) degenerate |= (prod[v] == T(0)) | (prod[v] != prod[v]);
  if (V::any(degenerate)) {  // again, from the saved state, with the zero bookkeeping
    vec zero[NV];
    for (int64_t v = 0; v < NV; ++v) {
      prod[v] = V::load(prod_state + v * V::LANES);
      if constexpr (WITH_SUM) sum[v] = V::load(sum_state + v * V::LANES);
      zero[v] = V::load(zero_state + v * V::LANES);
    }
    for (int64_t i = 0; i < ni; ++i) {
      const int64_t row = p.row(b, i0 + i);
      link_values(p.phi + row * p.n, panel + (i * p.K + p.base[row]) * V::SIZE, p.n, f);
      const vec index = V::splat(T(i0 + i));
      for (int64_t v = 0; v < NV; ++v) {
        const vec one = f[v] + T(1);
        const auto is_zero = one == T(0);
        prod[v] = is_zero ? prod[v] : prod[v] * one;
        zero[v] = is_zero ? (zero[v] == T(-1) ? index : V::splat(T(-2))) : zero[v];
        if constexpr (WITH_SUM) sum[v] += f[v];
      }
    }
    for (int64_t v = 0; v < NV; ++v) V::store(zero_state + v * V::LANES, zero[v]);
  }
  for (int64_t v = 0; v < NV; ++v) {
    V::store(prod_state + v * V::LANES, prod[v]);
    if constexpr (WITH_SUM) V::store(sum_state + v * V::LANES, sum[v]);
  }
}

template <typename T, bool WITH_SUM>
void forward_kernel(const Problem<T>& p, T alpha, T* y, T* prod_out, int32_t* zero_out) {
  using V = Tile<T>;
  constexpr int64_t TILE = V::SIZE;
  const int64_t tiles = ceil_div(p.O, TILE);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(p.B, ceil_div(at::get_num_threads(), tiles)));
  const int64_t chunk = ceil_div(p.B, chunks);
  const int64_t ib = inputs_per_panel<T>(p.I, p.K, FORWARD_PANEL_BYTES);
  at::parallel_for(0, tiles * chunks, 1, [&](int64_t task0, int64_t task1) {
    std::vector<T> panel(ib * p.K * TILE), prod(chunk * TILE), sum(WITH_SUM ? chunk * TILE : 0), zero(chunk * TILE);
    for (int64_t task = task0; task < task1; ++task) {
      const int64_t o0 = (task % tiles) * TILE, width = std::min(TILE, p.O - o0);
      const int64_t b0 = (task / tiles) * chunk, b1 = std::min(p.B, b0 + chunk);
      std::fill(prod.begin(), prod.end(), T(1));
      std::fill(sum.begin(), sum.end(), T(0));
      std::fill(zero.begin(), zero.end(), T(-1));
      for (int64_t i0 = 0; i0 < p.I; i0 += ib) {
        const int64_t ni = std::min(ib, p.I - i0);
        hol::pack_panel<Tile<T>::SIZE>(p.w, p.I, p.K, o0, width, i0, ni, panel.data());
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t s = (b - b0) * TILE;
          T* sum_state = WITH_SUM ? sum.data() + s : nullptr;
          forward_block<T, WITH_SUM>(p, panel.data(), b, i0, ni, prod.data() + s, sum_state, zero.data() + s);
        }
      }
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = (b - b0) * TILE, out = b * p.O + o0;
        for (int64_t j = 0; j < width; ++j) {
          const T z = zero[s + j];
          y[out + j] = (z == T(-1) ? prod[s + j] : T(0)) - T(1);
          if constexpr (WITH_SUM) y[out + j] -= (T(1) - alpha) * sum[s + j];
          prod_out[out + j] = prod[s + j];
          zero_out[out + j] = int32_t(z);
        }
      }
    }
  });
}

// 1 / x for the fast path of the backward (no factor is zero there): with AVX-512 the 14-bit estimate
// refined by Newton steps e = 1 - x r, r += r e (one for float, two for double: relative error below 2^-28
// and 2^-56, i.e. within rounding), four FMA-unit operations instead of one division.
template <typename T>
inline typename Tile<T>::vec reciprocal(const typename Tile<T>::vec& x) {
  using vec = typename Tile<T>::vec;
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    vec r = (vec)_mm512_rcp14_ps((__m512)x);
    return r + r * (T(1) - x * r);
  } else {
    vec r = (vec)_mm512_rcp14_pd((__m512d)x);
    r = r + r * (T(1) - x * r);
    return r + r * (T(1) - x * r);
  }
#else
  return T(1) / x;
#endif
}

// Per-(sample, output) inputs of the backward, in padded output tiles: entry (t * B + b) * TILE + j is output
// o = t * TILE + j of sample b. Padding lanes have dy = 0, so their coefficients are 0.
template <typename T>
struct BackwardState {
  std::vector<T> scaled;           // dy * prod (product of the nonzero factors)
  std::vector<T> shift;            // dy * (1 - alpha)
  std::vector<T> zero;             // zero_at as T (-1 in padding lanes)
  std::vector<uint8_t> has_zero;   // per (t, b): some lane has a zero factor
};

template <typename T>
BackwardState<T> backward_state(const T* gy, const T* prod, const int32_t* zero, T alpha, int64_t B, int64_t O) {
  constexpr int64_t TILE = Tile<T>::SIZE;
  const int64_t tiles = ceil_div(O, TILE);
  BackwardState<T> state{std::vector<T>(tiles * B * TILE, T(0)), std::vector<T>(tiles * B * TILE, T(0)),
                         std::vector<T>(tiles * B * TILE, T(-1)), std::vector<uint8_t>(tiles * B, 0)};
  at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t o = 0; o < O; ++o) {
        const int64_t t = o / TILE, at = (t * B + b) * TILE + o % TILE;
        const T g = gy[b * O + o];
        state.scaled[at] = g * prod[b * O + o];
        state.shift[at] = g * (T(1) - alpha);
        state.zero[at] = T(zero[b * O + o]);
        if (zero[b * O + o] != -1) state.has_zero[t * B + b] = 1;
      }
  });
  return state;
}

// c = dy (prod / (1 + f) - (1 - alpha)) where no factor of the (sample, output) is zero.
template <typename T>
inline void plain_coefficients(const typename Tile<T>::vec* f, const T* scaled, const T* shift,
                               typename Tile<T>::vec* c) {
  using V = Tile<T>;
  for (int64_t v = 0; v < NV; ++v)
    c[v] = V::load(scaled + v * V::LANES) * reciprocal<T>(f[v] + T(1)) - V::load(shift + v * V::LANES);
}

// c where some factor is zero (the lanes' own cases, module comment); never a division by a zero factor.
template <typename T>
inline void zero_coefficients(const typename Tile<T>::vec* f, const T* scaled, const T* shift, const T* zero,
                              int64_t input, typename Tile<T>::vec* c) {
  using V = Tile<T>;
  using vec = typename V::vec;
  const vec index = V::splat(T(input));
  for (int64_t v = 0; v < NV; ++v) {
    const vec z = V::load(zero + v * V::LANES), one = f[v] + T(1), s = V::load(scaled + v * V::LANES);
    const vec others = z == T(-1) ? s / (one == T(0) ? V::splat(T(1)) : one) : vec{};
    c[v] = others + (z == index ? s : vec{}) - V::load(shift + v * V::LANES);
  }
}

// The gradients of one (sample, input) row: d phi[row, k] += <c, panel row k>, grad row k += phi[row, k] c.
template <typename T, bool PHI_GRAD, bool WEIGHT_GRAD>
inline void apply_one(const Problem<T>& p, const T* panel, T* grad, int64_t row, int64_t offset,
                      const typename Tile<T>::vec* c, T* gphi) {
  using V = Tile<T>;
  using vec = typename V::vec;
  for (int64_t k = 0; k < p.n; ++k) {
    const int64_t at = offset + k * V::SIZE;
    if constexpr (PHI_GRAD) {
      vec dot0{}, dot1{};
      for (int64_t v = 0; v < NV; v += 2) {
        dot0 += c[v] * V::load(panel + at + v * V::LANES);
        dot1 += c[v + 1] * V::load(panel + at + (v + 1) * V::LANES);
      }
      gphi[row * p.n + k] += V::sum(dot0 + dot1);
    }
    if constexpr (WEIGHT_GRAD) {
      const T q = p.phi[row * p.n + k];
      for (int64_t v = 0; v < NV; ++v) {
        T* gr = grad + at + v * V::LANES;
        V::store(gr, V::load(gr) + q * c[v]);
      }
    }
  }
}

// The same for two samples whose rows share the segment: each panel row is loaded once, each gradient row
// read and written once.
template <typename T, bool PHI_GRAD, bool WEIGHT_GRAD>
inline void apply_two(const Problem<T>& p, const T* panel, T* grad, int64_t row_a, int64_t row_b, int64_t offset,
                      const typename Tile<T>::vec* c_a, const typename Tile<T>::vec* c_b, T* gphi) {
  using V = Tile<T>;
  using vec = typename V::vec;
  for (int64_t k = 0; k < p.n; ++k) {
    const int64_t at = offset + k * V::SIZE;
    if constexpr (PHI_GRAD) {
      vec dot_a{}, dot_b{};
      for (int64_t v = 0; v < NV; ++v) {
        const vec w = V::load(panel + at + v * V::LANES);
        dot_a += c_a[v] * w;
        dot_b += c_b[v] * w;
      }
      gphi[row_a * p.n + k] += V::sum(dot_a);
      gphi[row_b * p.n + k] += V::sum(dot_b);
    }
    if constexpr (WEIGHT_GRAD) {
      const T q_a = p.phi[row_a * p.n + k], q_b = p.phi[row_b * p.n + k];
      for (int64_t v = 0; v < NV; ++v) {
        T* gr = grad + at + v * V::LANES;
        V::store(gr, V::load(gr) + q_a * c_a[v] + q_b * c_b[v]);
      }
    }
  }
}

// One sample over inputs [i0, i0 + ni) of a panel and one output tile. PHI_GRAD: accumulate d phi;
// WEIGHT_GRAD: accumulate d w into ``grad`` (a panel like ``panel``). ``state``: the sample's scaled, shift and
// zero tiles (BackwardState).
template <typename T, bool PHI_GRAD, bool WEIGHT_GRAD>
void backward_one(const Problem<T>& p, const T* panel, T* grad, int64_t b, int64_t i0, int64_t ni,
                  const T* scaled, const T* shift, const T* zero, bool has_zero, T* gphi) {
  typename Tile<T>::vec f[NV], c[NV];
  for (int64_t i = 0; i < ni; ++i) {
    const int64_t row = p.row(b, i0 + i);
    const int64_t offset = (i * p.K + p.base[row]) * Tile<T>::SIZE;
    link_values(p.phi + row * p.n, panel + offset, p.n, f);
    if (has_zero) zero_coefficients<T>(f, scaled, shift, zero, i0 + i, c);
    else plain_coefficients<T>(f, scaled, shift, c);
    apply_one<T, PHI_GRAD, WEIGHT_GRAD>(p, panel, grad, row, offset, c, gphi);
  }
}

// Samples a and b, neither with a zero factor in this tile: where their inputs share a segment (always for links
// without segments), the two share every load and store of the panels.
template <typename T, bool PHI_GRAD, bool WEIGHT_GRAD>
void backward_two(const Problem<T>& p, const T* panel, T* grad, int64_t a, int64_t b, int64_t i0, int64_t ni,
                  const T* scaled_a, const T* shift_a, const T* scaled_b, const T* shift_b, T* gphi) {
  typename Tile<T>::vec f_a[NV], f_b[NV], c_a[NV], c_b[NV];
  for (int64_t i = 0; i < ni; ++i) {
    const int64_t row_a = p.row(a, i0 + i), row_b = p.row(b, i0 + i);
    const int64_t offset_a = (i * p.K + p.base[row_a]) * Tile<T>::SIZE;
    const int64_t offset_b = (i * p.K + p.base[row_b]) * Tile<T>::SIZE;
    link_values(p.phi + row_a * p.n, panel + offset_a, p.n, f_a);
    link_values(p.phi + row_b * p.n, panel + offset_b, p.n, f_b);
    plain_coefficients<T>(f_a, scaled_a, shift_a, c_a);
    plain_coefficients<T>(f_b, scaled_b, shift_b, c_b);
    if (offset_a == offset_b) {
      apply_two<T, PHI_GRAD, WEIGHT_GRAD>(p, panel, grad, row_a, row_b, offset_a, c_a, c_b, gphi);
    } else {
      apply_one<T, PHI_GRAD, WEIGHT_GRAD>(p, panel, grad, row_a, offset_a, c_a, gphi);
      apply_one<T, PHI_GRAD, WEIGHT_GRAD>(p, panel, grad, row_b, offset_b, c_b, gphi);
    }
  }
}

// Inputs per block of the backward (two panels: weights and their gradient); at least one block per thread.
template <typename T>
int64_t inputs_per_block(int64_t I, int64_t K) {
  const int64_t ib = inputs_per_panel<T>(I, K, PANEL_BYTES);
  return std::min(ib, ceil_div(I, at::get_num_threads()));
}

template <typename T, bool PHI_GRAD, bool WEIGHT_GRAD>
void backward_kernel(const Problem<T>& p, const BackwardState<T>& state, T* gphi, T* gw) {
  constexpr int64_t TILE = Tile<T>::SIZE;
  const int64_t tiles = ceil_div(p.O, TILE);
  const int64_t ib = inputs_per_block<T>(p.I, p.K);
  at::parallel_for(0, ceil_div(p.I, ib), 1, [&](int64_t q0, int64_t q1) {
    std::vector<T> panel(ib * p.K * TILE), grad(WEIGHT_GRAD ? ib * p.K * TILE : 0);
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i0 = q * ib, ni = std::min(ib, p.I - i0);
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t o0 = t * TILE, width = std::min(TILE, p.O - o0);
        hol::pack_panel<Tile<T>::SIZE>(p.w, p.I, p.K, o0, width, i0, ni, panel.data());
        if constexpr (WEIGHT_GRAD) std::fill(grad.begin(), grad.end(), T(0));
        for (int64_t b = 0; b < p.B;) {
          const int64_t at = (t * p.B + b) * TILE;
          const T *scaled = state.scaled.data() + at, *shift = state.shift.data() + at;
          const bool has_zero = state.has_zero[t * p.B + b];
          if (b + 1 < p.B && !has_zero && !state.has_zero[t * p.B + b + 1]) {
            backward_two<T, PHI_GRAD, WEIGHT_GRAD>(p, panel.data(), grad.data(), b, b + 1, i0, ni, scaled, shift,
                                                   scaled + TILE, shift + TILE, gphi);
            b += 2;
          } else {
            backward_one<T, PHI_GRAD, WEIGHT_GRAD>(p, panel.data(), grad.data(), b, i0, ni, scaled, shift,
                                                   state.zero.data() + at, has_zero, gphi);
            b += 1;
          }
        }
        if constexpr (WEIGHT_GRAD) hol::unpack_panel<Tile<T>::SIZE>(grad.data(), p.I, p.K, o0, width, i0, ni, gw);
      }
    }
  });
}

void check_inputs(const at::Tensor& phi, const at::Tensor& base, const at::Tensor& w) {
  TORCH_CHECK(phi.device().is_cpu() && base.device().is_cpu() && w.device().is_cpu(), "CPU tensors expected");
  TORCH_CHECK(phi.dim() == 3 && base.dim() == 2 && w.dim() == 3, "phi [B, I, n], base [B, I], weight [O, I, K]");
  TORCH_CHECK(phi.is_contiguous() && base.is_contiguous() && w.is_contiguous(), "contiguous tensors expected");
  TORCH_CHECK(base.scalar_type() == at::kLong, "base must be int64");
  TORCH_CHECK(phi.scalar_type() == w.scalar_type(), "phi and weight must share a dtype");
  TORCH_CHECK(phi.size(0) == base.size(0) && phi.size(1) == base.size(1) && phi.size(1) == w.size(1),
              "shapes of phi, base and weight disagree");
  TORCH_CHECK(phi.size(1) < (int64_t(1) << 24), "at most 2^24 inputs (input indices are tracked in float lanes)");
  const int64_t n = phi.size(2), K = w.size(2);
  TORCH_CHECK(n >= 1 && K >= n, "need 1 <= n <= K, got n=", n, ", K=", K);
  const int64_t* b = base.data_ptr<int64_t>();
  for (int64_t j = 0, count = base.numel(); j < count; ++j) {
    TORCH_CHECK(b[j] >= 0 && b[j] + n <= K, "segment offset ", b[j], " out of range for K=", K, " and n=", n);
  }
}

// phi [B, I, n] and base [B, I] as given, or their input-major copies ([I, B, n], [I, B]) when a block holds
// fewer than INPUT_MAJOR_BELOW inputs.
struct Rows {
  at::Tensor phi, base;
  bool input_major;
};

Rows arrange_rows(const at::Tensor& phi, const at::Tensor& base, int64_t inputs_per_block) {
  if (inputs_per_block >= INPUT_MAJOR_BELOW) return {phi, base, false};
  return {phi.transpose(0, 1).contiguous(), base.t().contiguous(), true};
}

template <typename T>
Problem<T> problem(const Rows& rows, const at::Tensor& w, int64_t B) {
  const int64_t I = w.size(1);
  return {rows.phi.data_ptr<T>(), rows.base.data_ptr<int64_t>(), w.data_ptr<T>(), B, I, rows.phi.size(2),
          w.size(2), w.size(0), rows.input_major ? 1 : I, rows.input_major ? B : 1};
}

// (y, prod, zero_at): y [B, O]; prod [B, O], the product of the nonzero factors; zero_at [B, O] int32.
// (y, prod, zero_at): y [B, O]; prod [B, O], the product of the nonzero factors; zero_at [B, O] int32.
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& phi, const at::Tensor& base,
                                                       const at::Tensor& w, double alpha) {
  check_inputs(phi, base, w);
  const int64_t B = phi.size(0), O = w.size(0);
  auto y = at::empty({B, O}, phi.options()), prod = at::empty({B, O}, phi.options());
  auto zero = at::empty({B, O}, phi.options().dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(phi.scalar_type(), "product_units_forward", [&] {
    using T = scalar_t;
    const Rows rows = arrange_rows(phi, base, inputs_per_panel<T>(w.size(1), w.size(2), FORWARD_PANEL_BYTES));
    const auto p = problem<T>(rows, w, B);
    T *y_data = y.data_ptr<T>(), *prod_data = prod.data_ptr<T>();
    if (alpha == 1.0) forward_kernel<T, false>(p, T(alpha), y_data, prod_data, zero.data_ptr<int32_t>());
    else forward_kernel<T, true>(p, T(alpha), y_data, prod_data, zero.data_ptr<int32_t>());
  });
  return {y, prod, zero};
}

// (grad_phi, grad_weight); each only when asked for (else an empty tensor).
std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& gy, const at::Tensor& phi, const at::Tensor& base,
                                            const at::Tensor& w, const at::Tensor& prod, const at::Tensor& zero,
                                            double alpha, bool phi_grad, bool weight_grad) {
  check_inputs(phi, base, w);
  const int64_t B = phi.size(0), O = w.size(0);
  for (const auto* t : {&gy, &prod, &zero})
    TORCH_CHECK(t->is_contiguous() && t->dim() == 2 && t->size(0) == B && t->size(1) == O,
                "grad_output, prod and zero_at must be contiguous [B, O]");
  TORCH_CHECK(gy.scalar_type() == phi.scalar_type() && prod.scalar_type() == phi.scalar_type() &&
              zero.scalar_type() == at::kInt, "grad_output and prod share phi's dtype; zero_at is int32");
  at::Tensor gphi = at::empty({0}, phi.options()), gw = at::empty({0}, w.options());
  if (weight_grad) {
    gw = hol::empty_gradient(w);  // every entry is written exactly once by unpack_panel
  }
  if (!phi_grad && !weight_grad) return {gphi, gw};
  bool input_major = false;
  AT_DISPATCH_FLOATING_TYPES(phi.scalar_type(), "product_units_backward", [&] {
    using T = scalar_t;
    const Rows rows = arrange_rows(phi, base, inputs_per_block<T>(w.size(1), w.size(2)));
    input_major = rows.input_major;
    if (phi_grad) gphi = at::zeros_like(rows.phi);  // in the layout of rows.phi
    const auto p = problem<T>(rows, w, B);
    const auto state = backward_state<T>(gy.data_ptr<T>(), prod.data_ptr<T>(), zero.data_ptr<int32_t>(), T(alpha),
                                         B, O);
    T* gphi_data = phi_grad ? gphi.data_ptr<T>() : nullptr;
    T* gw_data = weight_grad ? gw.data_ptr<T>() : nullptr;
    if (phi_grad && weight_grad) backward_kernel<T, true, true>(p, state, gphi_data, gw_data);
    else if (phi_grad) backward_kernel<T, true, false>(p, state, gphi_data, gw_data);
    else backward_kernel<T, false, true>(p, state, gphi_data, gw_data);
  });
  if (phi_grad && input_major) gphi = gphi.transpose(0, 1).contiguous();  // back to [B, I, n]
  return {gphi, gw};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(hol_cpu, m) {
  m.def("product_units_forward(Tensor phi, Tensor base, Tensor weight, float alpha) -> (Tensor, Tensor, Tensor)",
        &forward);
  m.def("product_units_backward(Tensor grad_y, Tensor phi, Tensor base, Tensor weight, Tensor prod, Tensor zero_at, "
        "float alpha, bool phi_grad, bool weight_grad) -> (Tensor, Tensor)", &backward);
}
