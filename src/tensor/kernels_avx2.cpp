// AVX2 kernels (with FMA and F16C): dot products and matvec for every supported type,
// decoding blocks in registers. Compiled with -mavx2 -mfma -mf16c; by the ODR rule in
// kernel_table.h everything but add_avx2_kernels is in an anonymous namespace.
#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <vector>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <cstring>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/quant_blocks.h"

// Helpers are forced inline into the row loops: accumulators must stay in registers,
// and GCC 12 miscompiled Q2_K (result 0) when a step helper was left out of line.
#define KOTO_KERNEL_INLINE [[gnu::always_inline]] inline

namespace koto::kernels {
namespace {

// 32 weights as four 8-float vectors, each with its own running sum.
struct Acc {
  __m256 v[4];
};

KOTO_KERNEL_INLINE Acc acc_zero() {
  return {{_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}};
}

KOTO_KERNEL_INLINE void widen_q8(__m256i q, __m256* out) {
  const __m128i lo = _mm256_castsi256_si128(q);
  const __m128i hi = _mm256_extracti128_si256(q, 1);
  out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
  out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
  out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
  out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

KOTO_KERNEL_INLINE void acc_scaled(Acc& acc, __m256i q, const float* x, float s0, float s1) {
  __m256 w[4];
  widen_q8(q, w);
  const __m256 scale0 = _mm256_set1_ps(s0);
  const __m256 scale1 = _mm256_set1_ps(s1);
  acc.v[0] = _mm256_fmadd_ps(_mm256_mul_ps(w[0], scale0), _mm256_loadu_ps(x), acc.v[0]);
  acc.v[1] = _mm256_fmadd_ps(_mm256_mul_ps(w[1], scale0), _mm256_loadu_ps(x + 8), acc.v[1]);
  acc.v[2] = _mm256_fmadd_ps(_mm256_mul_ps(w[2], scale1), _mm256_loadu_ps(x + 16), acc.v[2]);
  acc.v[3] = _mm256_fmadd_ps(_mm256_mul_ps(w[3], scale1), _mm256_loadu_ps(x + 24), acc.v[3]);
}

KOTO_KERNEL_INLINE void acc_scaled_offset(Acc& acc, __m256i q, const float* x, float s0, float s1,
                                          float o0, float o1) {
  __m256 w[4];
  widen_q8(q, w);
  const __m256 scale0 = _mm256_set1_ps(s0);
  const __m256 scale1 = _mm256_set1_ps(s1);
  const __m256 offset0 = _mm256_set1_ps(o0);
  const __m256 offset1 = _mm256_set1_ps(o1);
  acc.v[0] = _mm256_fmadd_ps(_mm256_fmadd_ps(w[0], scale0, offset0), _mm256_loadu_ps(x), acc.v[0]);
  acc.v[1] =
      _mm256_fmadd_ps(_mm256_fmadd_ps(w[1], scale0, offset0), _mm256_loadu_ps(x + 8), acc.v[1]);
  acc.v[2] =
      _mm256_fmadd_ps(_mm256_fmadd_ps(w[2], scale1, offset1), _mm256_loadu_ps(x + 16), acc.v[2]);
  acc.v[3] =
      _mm256_fmadd_ps(_mm256_fmadd_ps(w[3], scale1, offset1), _mm256_loadu_ps(x + 24), acc.v[3]);
}

KOTO_KERNEL_INLINE float horizontal_sum(__m256 v) {
  const __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
  return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

KOTO_KERNEL_INLINE float acc_sum(const Acc& a, const Acc& b) {
  const __m256 s0 = _mm256_add_ps(_mm256_add_ps(a.v[0], b.v[0]), _mm256_add_ps(a.v[1], b.v[1]));
  const __m256 s1 = _mm256_add_ps(_mm256_add_ps(a.v[2], b.v[2]), _mm256_add_ps(a.v[3], b.v[3]));
  return horizontal_sum(_mm256_add_ps(s0, s1));
}

#include "tensor/kernels_x86_blocks.inc"

// ---- plain float rows: 32 values per step in four sums, scalar tail ----

__m256 load8_f32(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
__m256 load8_f16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
__m256 load8_bf16(const uint8_t* p) {
  const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
}

float load1_f32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, sizeof(f));
  return f;
}
float load1_bf16(const uint8_t* p) {
  uint16_t b;
  std::memcpy(&b, p, sizeof(b));
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

template <__m256 (*load8)(const uint8_t*), float (*load1)(const uint8_t*), int kElementBytes>
float dot_plain(const void* row, const float* x, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(row);
  __m256 sum[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      sum[k] = _mm256_fmadd_ps(load8(bytes + (i + 8 * k) * kElementBytes),
                               _mm256_loadu_ps(x + i + 8 * k), sum[k]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    sum[0] = _mm256_fmadd_ps(load8(bytes + i * kElementBytes), _mm256_loadu_ps(x + i), sum[0]);
  }
  float total =
      horizontal_sum(_mm256_add_ps(_mm256_add_ps(sum[0], sum[1]), _mm256_add_ps(sum[2], sum[3])));
  for (; i < n; ++i) total += load1(bytes + i * kElementBytes) * x[i];
  return total;
}

}  // namespace

namespace {

void halves_to_floats(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}
void exp_in_place(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}
#include "tensor/attention_tiles_plain.inc"
#include "tensor/attention_kernel.inc"

}  // namespace

void add_avx2_kernels(KernelTable& table) {
  table.attention_f16 = &attention_f16_impl;
  add_block_kernels(table);
  add<&dot_plain<&load8_f32, &load1_f32, 4>>(table, TensorType::kF32);
  add<&dot_plain<&load8_f16, &load_f16, 2>>(table, TensorType::kF16);
  add<&dot_plain<&load8_bf16, &load1_bf16, 2>>(table, TensorType::kBF16);
}

}  // namespace koto::kernels

#undef KOTO_KERNEL_INLINE
