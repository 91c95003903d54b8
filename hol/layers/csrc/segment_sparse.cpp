// Segment-sparse product of piecewise Lagrange layers (CPU kernels for hol.layers.sparse).
//
//   y[b, o] = sum_i sum_k phi[b, i, k] * w[o, i, base[b, i] + k]
//
// Each input touches only the n consecutive values of its segment. The kernels pack blocks of the weight
// [O, I, K] into panels panel[i][m][j] = w[o0 + j, i0 + i, m] of TILE output columns (like a GEMM packs its
// operands), so the n active rows of one input are contiguous TILE-vectors that stay in cache while the whole
// batch uses them: every (sample, input, node) costs one AXPY (forward, weight gradient) and one dot product
// (basis gradient) of length TILE held in registers.
//
// Threads: the forward splits output tiles (and batch chunks when there are more threads than tiles); the
// backward splits input blocks, so every thread owns its rows of the weight gradient and of the basis gradient
// and repeated indices accumulate sequentially (no atomics, nothing dropped).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace {

constexpr int64_t TILE = 128;            // output columns per register tile
constexpr int64_t PANEL_BYTES = 256 * 1024;  // cache budget of one packed weight panel

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A fresh weight-sized buffer (the weight gradient) is first touched by the kernel: with 4 KiB pages that costs
// one page fault per 4 KiB, as much time as the writes themselves. Asking for transparent huge pages on the
// 2 MiB-aligned part of the buffer (before it is touched) cuts the faults 512-fold; a no-op where unsupported.
constexpr uintptr_t HUGE_PAGE = uintptr_t(1) << 21;

void advise_huge_pages(void* data, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + uintptr_t(bytes)) & ~(HUGE_PAGE - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

// Even on huge pages the kernel zeroes every fresh page, and the weight gradient is fresh at every step (training
// loops set it to None), which for large K costs about as much as the backward's own writes. Large gradient
// buffers therefore come from a small cache: a gradient tensor's memory, once freed, waits here for the next
// backward of the same size. At most CACHE_BYTES stay idle (beyond that, buffers are freed); buffers under
// CACHED_FROM bytes come from torch as usual.
class GradientCache {
 public:
  static constexpr size_t CACHED_FROM = size_t(8) << 20;
  static constexpr size_t CACHE_BYTES = size_t(512) << 20;

  static GradientCache& instance() {
    static GradientCache* cache = new GradientCache();  // never destroyed: tensors may outlive static teardown
    return *cache;
  }

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = idle_.find(bytes);
      if (found != idle_.end()) {
        void* data = found->second;
        idle_.erase(found);
        idle_bytes_ -= bytes;
        return data;
      }
    }
    void* data = std::aligned_alloc(HUGE_PAGE, (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    TORCH_CHECK(data != nullptr, "out of memory for a weight gradient of ", bytes, " bytes");
    advise_huge_pages(data, int64_t(bytes));
    return data;
  }

  void give_back(void* data, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (idle_bytes_ + bytes <= CACHE_BYTES) {
        idle_.emplace(bytes, data);
        idle_bytes_ += bytes;
        return;
      }
    }
    std::free(data);
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, void*> idle_;
  size_t idle_bytes_ = 0;
};

// An uninitialized tensor shaped like ``w`` for its gradient (cached memory when large, see GradientCache).
torch::Tensor empty_gradient(const torch::Tensor& w) {
  const size_t bytes = w.nbytes();
  if (bytes < GradientCache::CACHED_FROM) {
    auto gradient = torch::empty_like(w);
    advise_huge_pages(gradient.data_ptr(), int64_t(bytes));
    return gradient;
  }
  void* data = GradientCache::instance().take(bytes);
  return torch::from_blob(data, w.sizes(), [bytes](void* p) { GradientCache::instance().give_back(p, bytes); },
                          w.options());
}

// A tile of TILE values as NV native vectors of 64 bytes, so accumulators live in registers.
template <typename T>
struct Tile {
  typedef T vec __attribute__((vector_size(64)));
  static constexpr int64_t NV = TILE * int64_t(sizeof(T)) / 64;
  static constexpr int64_t LANES = 64 / int64_t(sizeof(T));
  static vec load(const T* p) {
    vec v;
    __builtin_memcpy(&v, p, 64);
    return v;
  }
  static void store(T* p, const vec& v) { __builtin_memcpy(p, &v, 64); }
  static T sum(const vec& v) {
    T total = T(0);
    for (int64_t l = 0; l < LANES; ++l) total += v[l];
    return total;
  }
};

#ifdef __AVX512F__
template <>
inline float Tile<float>::sum(const vec& v) { return _mm512_reduce_add_ps(v); }
template <>
inline double Tile<double>::sum(const vec& v) { return _mm512_reduce_add_pd(v); }
#endif

// Inputs per panel so that a panel of ``K x TILE`` values per input fits the budget.
int64_t inputs_per_panel(int64_t I, int64_t K, int64_t elem_size) {
  return std::max<int64_t>(1, std::min<int64_t>(I, PANEL_BYTES / (K * TILE * elem_size)));
}

// Where the row (sample b, input i) of phi, its gradient and the segment offsets lies: row b * sample + i * input.
// Sample-major ([B, I], as given) suits panels of many inputs; with one or a few inputs per panel (large K) the
// kernels walk the samples of one input, and input-major rows ([I, B]) keep those reads sequential.
struct RowLayout {
  int64_t sample, input;
  int64_t operator()(int64_t b, int64_t i) const { return b * sample + i * input; }
};

constexpr int64_t INPUT_MAJOR_BELOW = 4;  // inputs per panel under which the kernels use input-major rows

// Transposes go through square blocks of one cache line of values (MB) so that reads and writes both stay in L1.
template <typename T>
constexpr int64_t line_values() { return 64 / int64_t(sizeof(T)); }

#ifdef __AVX512F__
// A full 16 x 16 float block in registers: 16 loads, 64 shuffles, 16 stores instead of 256 scalar moves.
void transpose_16x16(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  __m512 a[16], b[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_loadu_ps(src + i * src_stride);
  for (int i = 0; i < 16; i += 2) {  // interleave pairs of rows
    b[i] = _mm512_unpacklo_ps(a[i], a[i + 1]);
    b[i + 1] = _mm512_unpackhi_ps(a[i], a[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // then pairs of pairs
    a[i] = _mm512_shuffle_ps(b[i], b[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    a[i + 1] = _mm512_shuffle_ps(b[i], b[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    a[i + 2] = _mm512_shuffle_ps(b[i + 1], b[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    a[i + 3] = _mm512_shuffle_ps(b[i + 1], b[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 16; i += 8) {  // then 128-bit lanes
    for (int k = 0; k < 4; ++k) {
      b[i + k] = _mm512_shuffle_f32x4(a[i + k], a[i + k + 4], 0x88);
      b[i + k + 4] = _mm512_shuffle_f32x4(a[i + k], a[i + k + 4], 0xdd);
    }
  }
  for (int k = 0; k < 8; ++k) {
    a[k] = _mm512_shuffle_f32x4(b[k], b[k + 8], 0x88);
    a[k + 8] = _mm512_shuffle_f32x4(b[k], b[k + 8], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * dst_stride, a[i]);
}
#endif

// dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols (rows, cols <= line_values<T>()).
template <typename T>
void transpose_block(const T* src, int64_t src_stride, T* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    if (rows == 16 && cols == 16) return transpose_16x16(src, src_stride, dst, dst_stride);
  }
#endif
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}

// panel[i][m][j] = w[o0 + j, i0 + i, m] for j < width, zero for width <= j < TILE. Blocks of MB outputs are
// read along m, so MB rows of w stream at a time.
template <typename T>
void pack_panel(const T* w, int64_t I, int64_t K, int64_t o0, int64_t width, int64_t i0, int64_t ni, T* panel) {
  constexpr int64_t MB = line_values<T>();
  if (width < TILE) std::fill(panel, panel + ni * K * TILE, T(0));
  for (int64_t i = 0; i < ni; ++i) {
    T* p = panel + i * K * TILE;
    for (int64_t j0 = 0; j0 < width; j0 += MB) {
      const T* src = w + ((o0 + j0) * I + i0 + i) * K;
      for (int64_t m0 = 0; m0 < K; m0 += MB)
        transpose_block(src + m0, I * K, p + m0 * TILE + j0, TILE, std::min(MB, width - j0), std::min(MB, K - m0));
    }
  }
}

// w[o0 + j, i0 + i, m] = panel[i][m][j] for j < width.
template <typename T>
void unpack_panel(const T* panel, int64_t I, int64_t K, int64_t o0, int64_t width, int64_t i0, int64_t ni, T* w) {
  constexpr int64_t MB = line_values<T>();
  for (int64_t i = 0; i < ni; ++i) {
    const T* p = panel + i * K * TILE;
    for (int64_t j0 = 0; j0 < width; j0 += MB) {
      T* dst = w + ((o0 + j0) * I + i0 + i) * K;
      for (int64_t m0 = 0; m0 < K; m0 += MB)
        transpose_block(p + m0 * TILE + j0, TILE, dst + m0, I * K, std::min(MB, K - m0), std::min(MB, width - j0));
    }
  }
}

template <typename T>
void forward_kernel(const T* phi, const int64_t* base, RowLayout rows_at, const T* w, T* y,
                    int64_t B, int64_t I, int64_t n, int64_t K, int64_t O) {
  using V = Tile<T>;
  const int64_t tiles = ceil_div(O, TILE);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(B, ceil_div(at::get_num_threads(), tiles)));
  const int64_t chunk = ceil_div(B, chunks);
  const int64_t ib = inputs_per_panel(I, K, sizeof(T));
  at::parallel_for(0, tiles * chunks, 1, [&](int64_t task0, int64_t task1) {
    std::vector<T> panel(ib * K * TILE);
    for (int64_t task = task0; task < task1; ++task) {
      const int64_t o0 = (task % tiles) * TILE, width = std::min(TILE, O - o0);
      const int64_t b0 = (task / tiles) * chunk, b1 = std::min(B, b0 + chunk);
      for (int64_t i0 = 0; i0 < I; i0 += ib) {
        const int64_t ni = std::min(ib, I - i0);
        pack_panel(w, I, K, o0, width, i0, ni, panel.data());
        for (int64_t b = b0; b < b1; ++b) {
          typename V::vec acc[V::NV];
          for (int64_t v = 0; v < V::NV; ++v) acc[v] = typename V::vec{} ;
          for (int64_t i = 0; i < ni; ++i) {
            const int64_t row = rows_at(b, i0 + i);
            const T* ph = phi + row * n;
            const T* rows = panel.data() + (i * K + base[row]) * TILE;
            for (int64_t k = 0; k < n; ++k) {
              const T p = ph[k];
              const T* r = rows + k * TILE;
              for (int64_t v = 0; v < V::NV; ++v) acc[v] += p * V::load(r + v * V::LANES);
            }
          }
          T* yb = y + b * O + o0;
          if (width == TILE) {  // vector read-modify-write: with one input per panel (large K) it runs per input
            for (int64_t v = 0; v < V::NV; ++v) V::store(yb + v * V::LANES, V::load(yb + v * V::LANES) + acc[v]);
          } else {
            T out[TILE];
            for (int64_t v = 0; v < V::NV; ++v) V::store(out + v * V::LANES, acc[v]);
            for (int64_t j = 0; j < width; ++j) yb[j] += out[j];
          }
        }
      }
    }
  });
}

// Inputs per block of the backward: two panels (weights and their gradient) share the budget; at least one
// block per thread.
int64_t inputs_per_block(int64_t I, int64_t K, int64_t elem_size) {
  const int64_t ib = std::max<int64_t>(1, inputs_per_panel(I, K, elem_size) / 2);
  return std::min(ib, ceil_div(I, at::get_num_threads()));
}

// PHI_GRAD: compute gphi (needs the weight panels); WEIGHT_GRAD: compute gw (needs the gradient panels).
template <typename T, bool PHI_GRAD, bool WEIGHT_GRAD>
void backward_kernel(const T* gy, const T* phi, const int64_t* base, RowLayout rows_at, const T* w, T* gphi,
                     T* gw, int64_t B, int64_t I, int64_t n, int64_t K, int64_t O) {
  using V = Tile<T>;
  const int64_t tiles = ceil_div(O, TILE);
  const int64_t ib = inputs_per_block(I, K, sizeof(T));
  const int64_t blocks = ceil_div(I, ib);
  at::parallel_for(0, blocks, 1, [&](int64_t q0, int64_t q1) {
    std::vector<T> panel(PHI_GRAD ? ib * K * TILE : 0), grad(WEIGHT_GRAD ? ib * K * TILE : 0);
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i0 = q * ib, ni = std::min(ib, I - i0);
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t o0 = t * TILE, width = std::min(TILE, O - o0);
        if constexpr (PHI_GRAD) pack_panel(w, I, K, o0, width, i0, ni, panel.data());
        if constexpr (WEIGHT_GRAD) std::fill(grad.begin(), grad.end(), T(0));
        for (int64_t b = 0; b < B; ++b) {
          const T* gyb = gy + b * O + o0;
          typename V::vec g[V::NV];
          if (width == TILE) {  // straight vector loads: with one input per panel (large K) this runs per input
            for (int64_t v = 0; v < V::NV; ++v) g[v] = V::load(gyb + v * V::LANES);
          } else {
            T padded[TILE];
            for (int64_t j = 0; j < TILE; ++j) padded[j] = j < width ? gyb[j] : T(0);
            for (int64_t v = 0; v < V::NV; ++v) g[v] = V::load(padded + v * V::LANES);
          }
          for (int64_t i = 0; i < ni; ++i) {
            const int64_t row = rows_at(b, i0 + i);
            const int64_t offset = (i * K + base[row]) * TILE;
            for (int64_t k = 0; k < n; ++k) {
              const int64_t at = offset + k * TILE;  // row base + k of input i in the panels
              const T p = phi[row * n + k];
              typename V::vec dot{};
              for (int64_t v = 0; v < V::NV; ++v) {  // one pass: dot product and AXPY share the loads of g
                if constexpr (PHI_GRAD) dot += g[v] * V::load(panel.data() + at + v * V::LANES);
                if constexpr (WEIGHT_GRAD) {
                  T* gr = grad.data() + at + v * V::LANES;
                  V::store(gr, V::load(gr) + p * g[v]);
                }
              }
              if constexpr (PHI_GRAD) gphi[row * n + k] += V::sum(dot);
            }
          }
        }
        if constexpr (WEIGHT_GRAD) unpack_panel(grad.data(), I, K, o0, width, i0, ni, gw);
      }
    }
  });
}

void check_inputs(const torch::Tensor& phi, const torch::Tensor& base, const torch::Tensor& w) {
  TORCH_CHECK(phi.device().is_cpu() && base.device().is_cpu() && w.device().is_cpu(), "CPU tensors expected");
  TORCH_CHECK(phi.dim() == 3 && base.dim() == 2 && w.dim() == 3, "phi [B, I, n], base [B, I], weight [O, I, K]");
  TORCH_CHECK(phi.is_contiguous() && base.is_contiguous() && w.is_contiguous(), "contiguous tensors expected");
  TORCH_CHECK(base.scalar_type() == torch::kLong, "base must be int64");
  TORCH_CHECK(phi.scalar_type() == w.scalar_type(), "phi and weight must share a dtype");
  TORCH_CHECK(phi.size(0) == base.size(0) && phi.size(1) == base.size(1) && phi.size(1) == w.size(1),
              "shapes of phi, base and weight disagree");
  const int64_t n = phi.size(2), K = w.size(2);
  const int64_t* b = base.data_ptr<int64_t>();
  for (int64_t j = 0, count = base.numel(); j < count; ++j) {
    TORCH_CHECK(b[j] >= 0 && b[j] + n <= K, "segment offset ", b[j], " out of range for K=", K, " and n=", n);
  }
}

// phi [B, I, n] and base [B, I] as given (sample-major) or copied input-major ([I, B, n], [I, B]).
struct Rows {
  torch::Tensor phi, base;
  RowLayout layout;
};

Rows arrange_rows(const torch::Tensor& phi, const torch::Tensor& base, int64_t inputs_per_panel) {
  if (inputs_per_panel >= INPUT_MAJOR_BELOW) return {phi, base, RowLayout{phi.size(1), 1}};
  return {phi.transpose(0, 1).contiguous(), base.t().contiguous(), RowLayout{1, phi.size(0)}};
}

torch::Tensor forward(torch::Tensor phi, torch::Tensor base, torch::Tensor w) {
  check_inputs(phi, base, w);
  const int64_t B = phi.size(0), I = phi.size(1), n = phi.size(2), O = w.size(0), K = w.size(2);
  const Rows rows = arrange_rows(phi, base, inputs_per_panel(I, K, phi.element_size()));
  auto y = torch::zeros({B, O}, phi.options());
  AT_DISPATCH_FLOATING_TYPES(phi.scalar_type(), "segment_sparse_forward", [&] {
    forward_kernel<scalar_t>(rows.phi.data_ptr<scalar_t>(), rows.base.data_ptr<int64_t>(), rows.layout,
                             w.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), B, I, n, K, O);
  });
  return y;
}

template <typename T, bool PHI_GRAD, bool WEIGHT_GRAD>
void run_backward(const torch::Tensor& gy, const Rows& rows, const torch::Tensor& w, torch::Tensor& gphi,
                  torch::Tensor& gw) {
  backward_kernel<T, PHI_GRAD, WEIGHT_GRAD>(
      gy.data_ptr<T>(), rows.phi.data_ptr<T>(), rows.base.data_ptr<int64_t>(), rows.layout, w.data_ptr<T>(),
      PHI_GRAD ? gphi.data_ptr<T>() : nullptr, WEIGHT_GRAD ? gw.data_ptr<T>() : nullptr,
      /*B=*/gy.size(0), /*I=*/w.size(1), /*n=*/rows.phi.size(2), /*K=*/w.size(2), /*O=*/w.size(0));
}

// (grad_phi, grad_weight); each only when asked for (else an undefined tensor, None in Python).
std::vector<torch::Tensor> backward(torch::Tensor gy, torch::Tensor phi, torch::Tensor base, torch::Tensor w,
                                    bool phi_grad, bool weight_grad) {
  check_inputs(phi, base, w);
  TORCH_CHECK(gy.is_contiguous() && gy.scalar_type() == phi.scalar_type() && gy.dim() == 2 &&
              gy.size(0) == phi.size(0) && gy.size(1) == w.size(0), "grad_output must be [B, O], contiguous");
  if (!phi_grad && !weight_grad) return {torch::Tensor(), torch::Tensor()};
  const Rows rows = arrange_rows(phi, base, inputs_per_block(phi.size(1), w.size(2), phi.element_size()));
  torch::Tensor gphi, gw;
  if (phi_grad) gphi = torch::zeros_like(rows.phi);  // in the layout of rows.phi
  if (weight_grad) gw = empty_gradient(w);  // every entry is written exactly once by unpack_panel
  AT_DISPATCH_FLOATING_TYPES(phi.scalar_type(), "segment_sparse_backward", [&] {
    if (phi_grad && weight_grad) run_backward<scalar_t, true, true>(gy, rows, w, gphi, gw);
    else if (phi_grad) run_backward<scalar_t, true, false>(gy, rows, w, gphi, gw);
    else run_backward<scalar_t, false, true>(gy, rows, w, gphi, gw);
  });
  if (phi_grad && rows.phi.data_ptr() != phi.data_ptr()) gphi = gphi.transpose(0, 1);  // [B, I, n] (a view)
  return {gphi, gw};
}

// phi_k(t) = sum_j T_j(t_c) C[j, k] and phi_k'(t) = sum_j T_j'(t_c) C[j, k] (Chebyshev recurrences,
// T_j' = j U_{j-1}); with ``linear``, t_c = clamp(t, -1, 1) and phi += (t - t_c) phi' (tangent line), else t_c = t.
template <typename T>
void basis_kernel(const T* t, const T* c, T* phi, T* slope, int64_t count, int64_t n, bool linear) {
  constexpr int64_t CHUNK = 64;  // elements per step; the loops over them vectorize
  at::parallel_for(0, ceil_div(count, CHUNK), 16, [&](int64_t q0, int64_t q1) {
    std::vector<T> cheb(n * CHUNK), deriv(n * CHUNK);
    T x[CHUNK], xc[CHUNK], u_prev[CHUNK], u[CHUNK], p[CHUNK], d[CHUNK];
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t e0 = q * CHUNK, len = std::min(CHUNK, count - e0);
      for (int64_t e = 0; e < CHUNK; ++e) {
        x[e] = e < len ? t[e0 + e] : T(0);
        xc[e] = linear ? std::min(T(1), std::max(T(-1), x[e])) : x[e];
        cheb[e] = T(1);
        deriv[e] = T(0);
        u_prev[e] = T(0);  // U_{j-2}
        u[e] = T(1);       // U_{j-1}
      }
      if (n > 1)
        for (int64_t e = 0; e < CHUNK; ++e) cheb[CHUNK + e] = xc[e];
      for (int64_t j = 2; j < n; ++j)
        for (int64_t e = 0; e < CHUNK; ++e)
          cheb[j * CHUNK + e] = 2 * xc[e] * cheb[(j - 1) * CHUNK + e] - cheb[(j - 2) * CHUNK + e];
      for (int64_t j = 1; j < n; ++j) {
        for (int64_t e = 0; e < CHUNK; ++e) {
          deriv[j * CHUNK + e] = T(j) * u[e];
          const T next = 2 * xc[e] * u[e] - u_prev[e];
          u_prev[e] = u[e];
          u[e] = next;
        }
      }
      for (int64_t k = 0; k < n; ++k) {
        for (int64_t e = 0; e < CHUNK; ++e) p[e] = d[e] = T(0);
        for (int64_t j = 0; j < n; ++j) {
          const T cjk = c[j * n + k];
          for (int64_t e = 0; e < CHUNK; ++e) {
            p[e] += cheb[j * CHUNK + e] * cjk;
            d[e] += deriv[j * CHUNK + e] * cjk;
          }
        }
        if (linear)
          for (int64_t e = 0; e < CHUNK; ++e) p[e] += (x[e] - xc[e]) * d[e];
        for (int64_t e = 0; e < len; ++e) {
          phi[(e0 + e) * n + k] = p[e];
          slope[(e0 + e) * n + k] = d[e];
        }
      }
    }
  });
}

std::vector<torch::Tensor> basis(torch::Tensor t, torch::Tensor transform, bool linear) {
  TORCH_CHECK(t.device().is_cpu() && transform.device().is_cpu(), "CPU tensors expected");
  TORCH_CHECK(t.scalar_type() == transform.scalar_type(), "t and transform must share a dtype");
  TORCH_CHECK(transform.dim() == 2 && transform.size(0) == transform.size(1), "transform must be [n, n]");
  t = t.contiguous();
  transform = transform.contiguous();
  const int64_t n = transform.size(0);
  auto sizes = t.sizes().vec();
  sizes.push_back(n);
  auto phi = torch::empty(sizes, t.options()), slope = torch::empty(sizes, t.options());
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "segment_sparse_basis", [&] {
    basis_kernel<scalar_t>(t.data_ptr<scalar_t>(), transform.data_ptr<scalar_t>(), phi.data_ptr<scalar_t>(),
                           slope.data_ptr<scalar_t>(), t.numel(), n, linear);
  });
  return {phi, slope};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "y = segment-sparse product (phi, base, weight)");
  m.def("basis", &basis, "(phi, dphi/dt) of the Lagrange basis on Chebyshev-Lobatto nodes");
  m.def("backward", &backward, "(grad_phi, grad_weight) of the segment-sparse product, each only if asked for");
}
