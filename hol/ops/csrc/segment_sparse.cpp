// Segment-sparse product of piecewise Lagrange layers and its two derivative products: the CPU kernels of the
// operators in hol/layers/sparse_ops.py.
//
//   product      y[b, o]        = sum_i sum_k phi[b, i, k] * w[o, i, base[b, i] + k]
//   weight_grad  gw[o, i, m]    = sum over (b, k) with base[b, i] + k = m of phi[b, i, k] * gy[b, o]
//   phi_grad     gphi[b, i, k]  = sum_o gy[b, o] * w[o, i, base[b, i] + k]
//
// Each input touches only the n consecutive values of its segment. The kernels pack blocks of the weight
// [O, I, K] into panels panel[i][m][j] = w[o0 + j, i0 + i, m] of TILE output columns (like a GEMM packs its
// operands), so the n active rows of one input are contiguous TILE-vectors that stay in cache while the whole
// batch uses them: every (sample, input, node) costs one AXPY (product, weight gradient) or one dot product
// (phi gradient) of length TILE held in registers.
//
// Threads: the product splits output tiles (and batch chunks when there are more threads than tiles); the
// gradients split input blocks, so every thread owns its rows of the weight gradient and of the phi gradient
// and repeated indices accumulate sequentially (no atomics, nothing dropped).
//
// Operands arrive contiguous, float32 or float64, base int64 (the Python side converts and validates).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "gradient_memory.h"
#include "instruction_sets.h"
#include "panels.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace {

constexpr int64_t TILE = 128;            // output columns per register tile
constexpr int64_t PANEL_BYTES = 256 * 1024;  // cache budget of one packed weight panel

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Below this many multiply-adds a call runs on the calling thread: waking the pool costs more than it saves.
constexpr int64_t SERIAL_WORK = int64_t(1) << 18;

// The grain of at::parallel_for over ``tasks`` tasks: all of them (one thread) for a small problem, else 1.
int64_t grain(int64_t tasks, int64_t work) { return work < SERIAL_WORK ? std::max<int64_t>(tasks, 1) : 1; }

// A tile of TILE values as NV native vectors of 64 bytes, so accumulators live in registers.
template <typename T>
struct Tile : hol::Vec64<T> {
  static constexpr int64_t NV = TILE * int64_t(sizeof(T)) / 64;
};

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

// Samples b0 <= b < b1 of each input of a block grouped by segment offset (a stable counting sort): for input i
// of the block and offset m, samples(i, m) lists them, count(i, m) says how many.
struct OffsetGroups {
  std::vector<int64_t> starts, order, next;
  int64_t offsets = 0, samples_per_input = 0;

  void build(const int64_t* base, RowLayout rows_at, int64_t i0, int64_t ni, int64_t b0, int64_t b1,
             int64_t offset_count) {
    offsets = offset_count;
    samples_per_input = b1 - b0;
    starts.assign(ni * (offsets + 1), 0);
    order.resize(ni * samples_per_input);
    for (int64_t i = 0; i < ni; ++i) {
      int64_t* s = starts.data() + i * (offsets + 1);
      for (int64_t b = b0; b < b1; ++b) ++s[base[rows_at(b, i0 + i)] + 1];
      for (int64_t m = 0; m < offsets; ++m) s[m + 1] += s[m];
      next.assign(s, s + offsets);
      int64_t* o = order.data() + i * samples_per_input;
      for (int64_t b = b0; b < b1; ++b) o[next[base[rows_at(b, i0 + i)]]++] = b;
    }
  }
  const int64_t* samples(int64_t i, int64_t m) const {
    return order.data() + i * samples_per_input + starts[i * (offsets + 1) + m];
  }
  int64_t count(int64_t i, int64_t m) const {
    const int64_t* s = starts.data() + i * (offsets + 1);
    return s[m + 1] - s[m];
  }
};

constexpr int64_t GROUP = 4;   // vectors of one column group, held in registers KC times
constexpr int64_t MAX_KC = 6;  // nodes per pass: KC * GROUP vectors + GROUP more fit the 32 vector registers

// Rows gy[b, o0 : o0 + TILE] of every sample: gy itself (stride O) for a full tile, else a zero-padded copy
// (stride TILE), so that every vector load stays inside.
template <typename T>
const T* gradient_rows(const T* gy, int64_t B, int64_t O, int64_t o0, int64_t width, std::vector<T>& padded,
                       int64_t& stride) {
  stride = O;
  if (width == TILE) return gy + o0;
  padded.assign(B * TILE, T(0));
  for (int64_t b = 0; b < B; ++b) std::copy(gy + b * O + o0, gy + b * O + o0 + width, padded.data() + b * TILE);
  stride = TILE;
  return padded.data();
}

// y[b][c] += sum_k phi[row(b), k0 + k] rows[k][c] over k < KC for the samples of one segment: the KC x GROUP
// panel vectors of a column group stay in registers while each sample's GROUP output vectors are read and
// written once. y points at the row of sample b0.
template <typename T, int KC>
void product_group(const T* rows, const int64_t* samples, int64_t count, const T* phi, RowLayout rows_at,
                   int64_t i, int64_t n, int64_t k0, T* y, int64_t y_stride, int64_t b0) {
  using V = Tile<T>;
  for (int64_t c = 0; c < V::NV; c += GROUP) {
    typename V::vec w[KC][GROUP];
    for (int k = 0; k < KC; ++k)
      for (int v = 0; v < GROUP; ++v) w[k][v] = V::load(rows + k * TILE + (c + v) * V::LANES);
    for (int64_t j = 0; j < count; ++j) {
      const int64_t b = samples[j];
      T* yb = y + (b - b0) * y_stride + c * V::LANES;
      const T* p = phi + rows_at(b, i) * n + k0;
      typename V::vec acc[GROUP];
      for (int v = 0; v < GROUP; ++v) acc[v] = V::load(yb + v * V::LANES);
      for (int k = 0; k < KC; ++k) {
        const T pk = p[k];
        for (int v = 0; v < GROUP; ++v) acc[v] += pk * w[k][v];
      }
      for (int v = 0; v < GROUP; ++v) V::store(yb + v * V::LANES, acc[v]);
    }
  }
}

template <typename T>
void product_nodes(const T* rows, const int64_t* samples, int64_t count, const T* phi, RowLayout rows_at,
                   int64_t i, int64_t n, T* y, int64_t y_stride, int64_t b0) {
  for (int64_t k0 = 0; k0 < n; k0 += MAX_KC) {
    const T* r = rows + k0 * TILE;
    switch (std::min(MAX_KC, n - k0)) {
      case 1: product_group<T, 1>(r, samples, count, phi, rows_at, i, n, k0, y, y_stride, b0); break;
      case 2: product_group<T, 2>(r, samples, count, phi, rows_at, i, n, k0, y, y_stride, b0); break;
      case 3: product_group<T, 3>(r, samples, count, phi, rows_at, i, n, k0, y, y_stride, b0); break;
      case 4: product_group<T, 4>(r, samples, count, phi, rows_at, i, n, k0, y, y_stride, b0); break;
      case 5: product_group<T, 5>(r, samples, count, phi, rows_at, i, n, k0, y, y_stride, b0); break;
      default: product_group<T, 6>(r, samples, count, phi, rows_at, i, n, k0, y, y_stride, b0); break;
    }
  }
}

// y[b, o] += sum_{i,k} phi[b, i, k] w[o, i, base[b, i] + k]. Threads split output tiles (and batch chunks when
// there are more threads than tiles); within a task, per packed panel, the samples of each segment of each input
// run together (product_group).
template <typename T>
void forward_kernel(const T* phi, const int64_t* base, RowLayout rows_at, const T* w, T* y,
                    int64_t B, int64_t I, int64_t n, int64_t K, int64_t O) {
  const int64_t tiles = ceil_div(O, TILE);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(B, ceil_div(at::get_num_threads(), tiles)));
  const int64_t chunk = ceil_div(B, chunks);
  const int64_t ib = inputs_per_panel(I, K, sizeof(T));
  at::parallel_for(0, tiles * chunks, grain(tiles * chunks, B * I * n * O), [&](int64_t task0, int64_t task1) {
    std::vector<T> panel(ib * K * TILE), padded;
    OffsetGroups groups;
    for (int64_t task = task0; task < task1; ++task) {
      const int64_t o0 = (task % tiles) * TILE, width = std::min(TILE, O - o0);
      const int64_t b0 = (task / tiles) * chunk, b1 = std::min(B, b0 + chunk);
      if (b0 >= b1) continue;
      T* out = y + b0 * O + o0;
      int64_t stride = O;
      if (width < TILE) {  // a partial tile: accumulate in zero-padded rows, added to y at the end
        padded.assign((b1 - b0) * TILE, T(0));
        out = padded.data();
        stride = TILE;
      }
      for (int64_t i0 = 0; i0 < I; i0 += ib) {
        const int64_t ni = std::min(ib, I - i0);
        hol::pack_panel<TILE>(w, I, K, o0, width, i0, ni, panel.data());
        groups.build(base, rows_at, i0, ni, b0, b1, K - n + 1);
        for (int64_t i = 0; i < ni; ++i)
          for (int64_t m = 0; m <= K - n; ++m)
            if (groups.count(i, m))
              product_nodes(panel.data() + (i * K + m) * TILE, groups.samples(i, m), groups.count(i, m), phi,
                            rows_at, i0 + i, n, out, stride, b0);
      }
      if (width < TILE)
        for (int64_t b = b0; b < b1; ++b)
          for (int64_t j = 0; j < width; ++j) y[b * O + o0 + j] += padded[(b - b0) * TILE + j];
    }
  });
}

// Inputs per block of the gradient kernels: at most half a panel's budget (the gradient kernels stream the batch
// through it, with gy and phi rows beside it in cache), and a number of blocks that the threads share evenly.
int64_t inputs_per_block(int64_t I, int64_t K, int64_t elem_size) {
  const int64_t threads = at::get_num_threads();
  const int64_t most = std::max<int64_t>(1, inputs_per_panel(I, K, elem_size) / 2);
  const int64_t blocks = ceil_div(ceil_div(I, most), threads) * threads;
  return ceil_div(I, std::min(blocks, I));
}

// gphi[b, i, k] = sum_o gy[b, o] w[o, i, base[b, i] + k]: one dot product of TILE outputs per (sample, input,
// node) against the packed weight panel, the samples in order (each one's TILE gradient values stay in registers
// for all inputs of the panel). Threads split input blocks, so every thread owns its rows of gphi.
template <typename T>
void phi_grad_kernel(const T* gy, const int64_t* base, RowLayout rows_at, const T* w, T* gphi,
                     int64_t B, int64_t I, int64_t n, int64_t K, int64_t O) {
  using V = Tile<T>;
  const int64_t tiles = ceil_div(O, TILE);
  const int64_t ib = inputs_per_block(I, K, sizeof(T));
  at::parallel_for(0, ceil_div(I, ib), grain(ceil_div(I, ib), B * I * n * O), [&](int64_t q0, int64_t q1) {
    std::vector<T> panel(ib * K * TILE), padded;
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i0 = q * ib, ni = std::min(ib, I - i0);
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t o0 = t * TILE, width = std::min(TILE, O - o0);
        hol::pack_panel<TILE>(w, I, K, o0, width, i0, ni, panel.data());
        int64_t stride;
        const T* g = gradient_rows(gy, B, O, o0, width, padded, stride);
        for (int64_t b = 0; b < B; ++b) {
          typename V::vec gv[V::NV];
          for (int64_t v = 0; v < V::NV; ++v) gv[v] = V::load(g + b * stride + v * V::LANES);
          for (int64_t i = 0; i < ni; ++i) {
            const int64_t row = rows_at(b, i0 + i);
            const T* rows = panel.data() + (i * K + base[row]) * TILE;
            for (int64_t k = 0; k < n; ++k) {
              typename V::vec dot{};
              for (int64_t v = 0; v < V::NV; ++v) dot += gv[v] * V::load(rows + k * TILE + v * V::LANES);
              gphi[row * n + k] += V::sum(dot);
            }
          }
        }
      }
    }
  });
}

// out[k][c] += sum over the samples s of phi[row(s), k0 + k] * g[s][c] for k < KC and the GROUP vectors of column
// group c, for every column group of the tile: the accumulators stay in registers over all the samples.
template <typename T, int KC>
void accumulate_group(const T* g, int64_t g_stride, const int64_t* samples, int64_t count, const T* phi,
                      RowLayout rows_at, int64_t i, int64_t n, int64_t k0, T* out) {
  using V = Tile<T>;
  for (int64_t c = 0; c < V::NV; c += GROUP) {
    typename V::vec acc[KC][GROUP];
    for (int k = 0; k < KC; ++k)
      for (int v = 0; v < GROUP; ++v) acc[k][v] = typename V::vec{};
    for (int64_t j = 0; j < count; ++j) {
      const int64_t b = samples[j];
      const T* gb = g + b * g_stride + c * V::LANES;
      typename V::vec gv[GROUP];
      for (int v = 0; v < GROUP; ++v) gv[v] = V::load(gb + v * V::LANES);
      const T* p = phi + rows_at(b, i) * n + k0;
      for (int k = 0; k < KC; ++k) {
        const T pk = p[k];
        for (int v = 0; v < GROUP; ++v) acc[k][v] += pk * gv[v];
      }
    }
    for (int k = 0; k < KC; ++k)
      for (int v = 0; v < GROUP; ++v) {
        T* r = out + k * TILE + (c + v) * V::LANES;
        V::store(r, V::load(r) + acc[k][v]);
      }
  }
}

template <typename T>
void accumulate_nodes(const T* g, int64_t g_stride, const int64_t* samples, int64_t count, const T* phi,
                      RowLayout rows_at, int64_t i, int64_t n, T* out) {
  for (int64_t k0 = 0; k0 < n; k0 += MAX_KC) {
    T* o = out + k0 * TILE;
    switch (std::min(MAX_KC, n - k0)) {
      case 1: accumulate_group<T, 1>(g, g_stride, samples, count, phi, rows_at, i, n, k0, o); break;
      case 2: accumulate_group<T, 2>(g, g_stride, samples, count, phi, rows_at, i, n, k0, o); break;
      case 3: accumulate_group<T, 3>(g, g_stride, samples, count, phi, rows_at, i, n, k0, o); break;
      case 4: accumulate_group<T, 4>(g, g_stride, samples, count, phi, rows_at, i, n, k0, o); break;
      case 5: accumulate_group<T, 5>(g, g_stride, samples, count, phi, rows_at, i, n, k0, o); break;
      default: accumulate_group<T, 6>(g, g_stride, samples, count, phi, rows_at, i, n, k0, o); break;
    }
  }
}

// gw[o, i, m] = sum over (b, k) with base[b, i] + k = m of phi[b, i, k] gy[b, o]. Per input and segment offset,
// the samples in that segment accumulate into n x TILE register accumulators (a small GEMM), added to a zeroed
// gradient panel once per segment and unpacked into gw once per panel. Threads split input blocks, so repeated
// indices accumulate sequentially (no atomics, nothing dropped).
template <typename T>
void weight_grad_kernel(const T* gy, const T* phi, const int64_t* base, RowLayout rows_at, T* gw,
                        int64_t B, int64_t I, int64_t n, int64_t K, int64_t O) {
  const int64_t tiles = ceil_div(O, TILE);
  const int64_t ib = inputs_per_block(I, K, sizeof(T));
  at::parallel_for(0, ceil_div(I, ib), grain(ceil_div(I, ib), B * I * n * O), [&](int64_t q0, int64_t q1) {
    std::vector<T> grad(ib * K * TILE), padded;
    OffsetGroups groups;
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i0 = q * ib, ni = std::min(ib, I - i0);
      groups.build(base, rows_at, i0, ni, 0, B, K - n + 1);
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t o0 = t * TILE, width = std::min(TILE, O - o0);
        int64_t g_stride;
        const T* g = gradient_rows(gy, B, O, o0, width, padded, g_stride);
        std::fill(grad.begin(), grad.end(), T(0));
        for (int64_t i = 0; i < ni; ++i)
          for (int64_t m = 0; m <= K - n; ++m)
            if (groups.count(i, m))
              accumulate_nodes(g, g_stride, groups.samples(i, m), groups.count(i, m), phi, rows_at, i0 + i, n,
                               grad.data() + (i * K + m) * TILE);
        hol::unpack_panel<TILE>(grad.data(), I, K, o0, width, i0, ni, gw);
      }
    }
  });
}

void check_base(const torch::Tensor& base, int64_t B, int64_t I, int64_t n, int64_t K) {
  TORCH_CHECK(base.device().is_cpu() && base.is_contiguous() && base.scalar_type() == torch::kLong,
              "base must be a contiguous int64 CPU tensor");
  TORCH_CHECK(base.dim() == 2 && base.size(0) == B && base.size(1) == I, "base must be [B, I]");
  const int64_t* b = base.data_ptr<int64_t>();
  for (int64_t j = 0, count = base.numel(); j < count; ++j) {
    TORCH_CHECK(b[j] >= 0 && b[j] + n <= K, "segment offset ", b[j], " out of range for K=", K, " and n=", n);
  }
}

void check_values(const torch::Tensor& t, int64_t dim, const char* what, const torch::Tensor& like) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.dim() == dim, what, " must be a contiguous CPU tensor");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), what, " must share the dtype of the other operands");
}

// Rows of base [B, I] and, when given, phi [B, I, n] as given (sample-major) or copied input-major ([I, B],
// [I, B, n]); ``input_major`` says which, so that results computed in that layout are transposed back.
struct Rows {
  torch::Tensor base, phi;
  RowLayout layout;
  bool input_major;
};

Rows arrange_rows(const torch::Tensor& base, int64_t inputs_per_panel, const torch::Tensor& phi = {}) {
  const int64_t B = base.size(0), I = base.size(1);
  if (inputs_per_panel >= INPUT_MAJOR_BELOW) return {base, phi, RowLayout{I, 1}, false};
  return {base.t().contiguous(), phi.defined() ? phi.transpose(0, 1).contiguous() : phi, RowLayout{1, B}, true};
}

// y [B, O] = sum_{i,k} phi[b, i, k] w[o, i, base[b, i] + k].
torch::Tensor product(torch::Tensor phi, torch::Tensor base, torch::Tensor w) {
  check_values(phi, 3, "phi", w);
  check_values(w, 3, "weight", phi);
  const int64_t B = phi.size(0), I = phi.size(1), n = phi.size(2), O = w.size(0), K = w.size(2);
  TORCH_CHECK(w.size(1) == I, "phi [B, I, n] and weight [O, I, K] disagree on I");
  check_base(base, B, I, n, K);
  auto y = torch::zeros({B, O}, phi.options());
  if (y.numel() == 0 || I == 0) return y;
  const Rows rows = arrange_rows(base, inputs_per_panel(I, K, phi.element_size()), phi);
  AT_DISPATCH_FLOATING_TYPES(phi.scalar_type(), "segment_sparse_product", [&] {
    forward_kernel<scalar_t>(rows.phi.data_ptr<scalar_t>(), rows.base.data_ptr<int64_t>(), rows.layout,
                             w.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), B, I, n, K, O);
  });
  return y;
}

// gw [O, I, K]: the weight gradient of ``product`` for output gradient gy [B, O].
torch::Tensor weight_grad(torch::Tensor phi, torch::Tensor base, torch::Tensor gy, int64_t K) {
  check_values(phi, 3, "phi", gy);
  check_values(gy, 2, "grad", phi);
  const int64_t B = phi.size(0), I = phi.size(1), n = phi.size(2), O = gy.size(1);
  TORCH_CHECK(gy.size(0) == B, "phi [B, I, n] and grad [B, O] disagree on B");
  check_base(base, B, I, n, K);
  const auto shape = std::vector<int64_t>{O, I, K};
  if (B == 0 || O * I * K == 0) return torch::zeros(shape, phi.options());
  torch::Tensor gw = hol::empty_gradient(shape, phi.options());  // every entry is written exactly once by unpack_panel
  const Rows rows = arrange_rows(base, inputs_per_block(I, K, phi.element_size()), phi);
  AT_DISPATCH_FLOATING_TYPES(phi.scalar_type(), "segment_sparse_weight_grad", [&] {
    weight_grad_kernel<scalar_t>(gy.data_ptr<scalar_t>(), rows.phi.data_ptr<scalar_t>(), rows.base.data_ptr<int64_t>(),
                                 rows.layout, gw.data_ptr<scalar_t>(), B, I, n, K, O);
  });
  return gw;
}

// gphi [B, I, n]: the phi gradient of ``product`` for output gradient gy [B, O].
torch::Tensor phi_grad(torch::Tensor gy, torch::Tensor w, torch::Tensor base, int64_t n) {
  check_values(gy, 2, "grad", w);
  check_values(w, 3, "weight", gy);
  const int64_t B = gy.size(0), O = gy.size(1), I = w.size(1), K = w.size(2);
  TORCH_CHECK(w.size(0) == O, "grad [B, O] and weight [O, I, K] disagree on O");
  check_base(base, B, I, n, K);
  if (B * I * n == 0 || O == 0) return torch::zeros({B, I, n}, gy.options());
  const Rows rows = arrange_rows(base, inputs_per_block(I, K, gy.element_size()));
  auto gphi = rows.input_major ? torch::zeros({I, B, n}, gy.options()) : torch::zeros({B, I, n}, gy.options());
  AT_DISPATCH_FLOATING_TYPES(gy.scalar_type(), "segment_sparse_phi_grad", [&] {
    phi_grad_kernel<scalar_t>(gy.data_ptr<scalar_t>(), rows.base.data_ptr<int64_t>(), rows.layout,
                              w.data_ptr<scalar_t>(), gphi.data_ptr<scalar_t>(), B, I, n, K, O);
  });
  return rows.input_major ? gphi.transpose(0, 1).contiguous() : gphi;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("product", &product, "y [B, O] = segment-sparse product of phi [B, I, n], base [B, I], weight [O, I, K]");
  m.def("weight_grad", &weight_grad, "weight gradient [O, I, K] of the product (phi, base, grad [B, O], K)");
  m.def("phi_grad", &phi_grad, "phi gradient [B, I, n] of the product (grad [B, O], weight, base, n)");
  m.def("instruction_sets", &hol::instruction_sets, "instruction-set extensions compiled in");
}
