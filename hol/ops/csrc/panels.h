// The 64-byte vectors, transposes and weight panels shared by hol's CPU kernels (header-only).
//
// The kernels pack blocks of a weight [O, I, K] into panels panel[i][m][j] = w[o0 + j, i0 + i, m] of TILE
// output columns (as a GEMM packs its operands), so the rows one (sample, input) touches are contiguous
// TILE-vectors; the weight gradient is computed in panels and unpacked the same way.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace hol {

// One native vector of 64 bytes (an AVX-512 register; the compiler splits it elsewhere): the kernels' output
// tiles are arrays of these, so their accumulators live in registers.
template <typename T>
struct Vec64 {
  typedef T vec __attribute__((vector_size(64)));
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
inline float Vec64<float>::sum(const vec& v) { return _mm512_reduce_add_ps(v); }
template <>
inline double Vec64<double>::sum(const vec& v) { return _mm512_reduce_add_pd(v); }

// A full 16 x 16 float block in registers: 16 loads, 64 shuffles, 16 stores instead of 256 scalar moves.
inline void transpose_16x16(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
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

// A full 8 x 8 double block: pairs of rows interleaved, then 128-bit lanes gathered twice.
inline void transpose_8x8(const double* src, int64_t src_stride, double* dst, int64_t dst_stride) {
  __m512d a[8], b[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm512_loadu_pd(src + i * src_stride);
  for (int i = 0; i < 8; i += 2) {  // b[i]: even columns of rows i, i+1 interleaved; b[i+1]: odd columns
    b[i] = _mm512_unpacklo_pd(a[i], a[i + 1]);
    b[i + 1] = _mm512_unpackhi_pd(a[i], a[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {  // columns {0, 4}, {2, 6}, {1, 5}, {3, 7} of four rows
    a[i] = _mm512_shuffle_f64x2(b[i], b[i + 2], 0x88);
    a[i + 1] = _mm512_shuffle_f64x2(b[i], b[i + 2], 0xdd);
    a[i + 2] = _mm512_shuffle_f64x2(b[i + 1], b[i + 3], 0x88);
    a[i + 3] = _mm512_shuffle_f64x2(b[i + 1], b[i + 3], 0xdd);
  }
  constexpr int column[8] = {0, 4, 2, 6, 1, 5, 3, 7};  // column held by a[k] (rows 0-3) and a[k + 4] (rows 4-7)
  for (int k = 0; k < 4; ++k) {
    b[column[2 * k]] = _mm512_shuffle_f64x2(a[k], a[k + 4], 0x88);
    b[column[2 * k + 1]] = _mm512_shuffle_f64x2(a[k], a[k + 4], 0xdd);
  }
  for (int i = 0; i < 8; ++i) _mm512_storeu_pd(dst + i * dst_stride, b[i]);
}
#endif

// dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols, in blocks of one cache line of values
// that stay in L1 (full blocks in registers with AVX-512).
template <typename T>
void transpose(const T* src, int64_t src_stride, T* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
  constexpr int64_t BLOCK = 64 / int64_t(sizeof(T));
  for (int64_t r0 = 0; r0 < rows; r0 += BLOCK)
    for (int64_t c0 = 0; c0 < cols; c0 += BLOCK) {
      const int64_t r1 = std::min(rows, r0 + BLOCK), c1 = std::min(cols, c0 + BLOCK);
#ifdef __AVX512F__
      if (r1 - r0 == BLOCK && c1 - c0 == BLOCK) {
        if constexpr (std::is_same_v<T, float>) {
          transpose_16x16(src + r0 * src_stride + c0, src_stride, dst + c0 * dst_stride + r0, dst_stride);
          continue;
        } else {
          transpose_8x8(src + r0 * src_stride + c0, src_stride, dst + c0 * dst_stride + r0, dst_stride);
          continue;
        }
      }
#endif
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
    }
}

// As transpose, with the source and destination lines of the block PREFETCH_BLOCKS blocks ahead requested
// early: a weight's rows are I K values apart, so a block reads (packing) or writes (unpacking) one line in each
// of 16 (float; 8 double) distant rows (measured: unpacking the gradient of a 1 MB weight 20% faster; longer
// distances were slower). The blocks are walked along the far side's rows: along a source row when packing
// (RUNS = SOURCE), along a destination row when unpacking (DESTINATION), so that each distant row is read or
// written as one run rather than a line at a time over the whole transpose (measured, unpacking the gradient of
// a 256 x 256 x 257 float weight: 27 ms in the source's order, 16 ms in the destination's).
constexpr int64_t PREFETCH_BLOCKS = 4;
enum RowRuns { SOURCE, DESTINATION };

template <RowRuns RUNS, typename T>
void transpose_ahead(const T* src, int64_t src_stride, T* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
  constexpr int64_t BLOCK = 64 / int64_t(sizeof(T));
  const int64_t row_blocks = (rows + BLOCK - 1) / BLOCK, column_blocks = (cols + BLOCK - 1) / BLOCK;
  const int64_t blocks = row_blocks * column_blocks;
  const auto corner = [&](int64_t q) {  // the first row and column of block q
    return RUNS == SOURCE ? std::pair<int64_t, int64_t>{q / column_blocks * BLOCK, q % column_blocks * BLOCK}
                          : std::pair<int64_t, int64_t>{q % row_blocks * BLOCK, q / row_blocks * BLOCK};
  };
  for (int64_t q = 0; q < blocks; ++q) {
    if (q + PREFETCH_BLOCKS < blocks) {
      const auto [r, c] = corner(q + PREFETCH_BLOCKS);
      for (int64_t j = 0; j < BLOCK; ++j) {
        if (r + j < rows) __builtin_prefetch(src + (r + j) * src_stride + c, 0, 3);
        if (c + j < cols) __builtin_prefetch(dst + (c + j) * dst_stride + r, 1, 3);
      }
    }
    const auto [r0, c0] = corner(q);
    transpose(src + r0 * src_stride + c0, src_stride, dst + c0 * dst_stride + r0, dst_stride,
              std::min(BLOCK, rows - r0), std::min(BLOCK, cols - c0));
  }
}

// panel[i][m][j] = w[o0 + j, i0 + i, m] for i < ni, j < width; zero for width <= j < TILE. The rows
// w[o0 + j, i0 : i0 + ni, :] are contiguous, so this is one transpose of a [width, ni K] matrix.
template <int64_t TILE, typename T>
void pack_panel(const T* w, int64_t I, int64_t K, int64_t o0, int64_t width, int64_t i0, int64_t ni, T* panel) {
  if (width < TILE) std::fill(panel, panel + ni * K * TILE, T(0));
  transpose_ahead<SOURCE>(w + (o0 * I + i0) * K, I * K, panel, TILE, width, ni * K);
}

// w[o0 + j, i0 + i, m] = panel[i][m][j] for i < ni, j < width.
template <int64_t TILE, typename T>
void unpack_panel(const T* panel, int64_t I, int64_t K, int64_t o0, int64_t width, int64_t i0, int64_t ni, T* w) {
  transpose_ahead<DESTINATION>(panel, TILE, w + (o0 * I + i0) * K, I * K, ni * K, width);
}

}  // namespace hol
