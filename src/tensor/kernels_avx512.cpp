// AVX-512 kernels (F, BW, VL, DQ, VNNI): dot products and matvec for every supported
// type, decoding blocks in registers. The block decoders are the AVX2 ones
// (kernels_x86_blocks.inc); the 32 decoded weights then feed two 16-float FMAs.
// Compiled with -mavx512*; by the ODR rule in kernel_table.h everything but
// add_avx512_kernels is in an anonymous namespace.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/quant_blocks.h"

// Helpers are forced inline into the row loops: accumulators must stay in registers,
// and GCC 12 miscompiled Q2_K (result 0) when a step helper was left out of line.
#define KOTO_KERNEL_INLINE [[gnu::always_inline]] inline

namespace koto::kernels {
namespace {

// 32 weights as two 16-float vectors, each with its own running sum.
struct Acc {
  __m512 v[2];
};

KOTO_KERNEL_INLINE Acc acc_zero() { return {{_mm512_setzero_ps(), _mm512_setzero_ps()}}; }

KOTO_KERNEL_INLINE __m512 widen_low16(__m256i q) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
}
KOTO_KERNEL_INLINE __m512 widen_high16(__m256i q) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
}

KOTO_KERNEL_INLINE void acc_scaled(Acc& acc, __m256i q, const float* x, float s0, float s1) {
  acc.v[0] = _mm512_fmadd_ps(_mm512_mul_ps(widen_low16(q), _mm512_set1_ps(s0)), _mm512_loadu_ps(x),
                             acc.v[0]);
  acc.v[1] = _mm512_fmadd_ps(_mm512_mul_ps(widen_high16(q), _mm512_set1_ps(s1)),
                             _mm512_loadu_ps(x + 16), acc.v[1]);
}

KOTO_KERNEL_INLINE void acc_scaled_offset(Acc& acc, __m256i q, const float* x, float s0, float s1,
                                          float o0, float o1) {
  const __m512 w0 = _mm512_fmadd_ps(widen_low16(q), _mm512_set1_ps(s0), _mm512_set1_ps(o0));
  const __m512 w1 = _mm512_fmadd_ps(widen_high16(q), _mm512_set1_ps(s1), _mm512_set1_ps(o1));
  acc.v[0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), acc.v[0]);
  acc.v[1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), acc.v[1]);
}

KOTO_KERNEL_INLINE float acc_sum(const Acc& a, const Acc& b) {
  return _mm512_reduce_add_ps(
      _mm512_add_ps(_mm512_add_ps(a.v[0], b.v[0]), _mm512_add_ps(a.v[1], b.v[1])));
}

#include "tensor/kernels_x86_blocks.inc"

// ---- plain float rows: 64 values per step in four sums, a masked tail ----

__m512 load16_f32(const uint8_t* p, __mmask16 mask) {
  return _mm512_maskz_loadu_ps(mask, reinterpret_cast<const float*>(p));
}
__m512 load16_f16(const uint8_t* p, __mmask16 mask) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
}
__m512 load16_bf16(const uint8_t* p, __mmask16 mask) {
  const __m256i halves = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}

template <__m512 (*load16)(const uint8_t*, __mmask16), int kElementBytes>
float dot_plain(const void* row, const float* x, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(row);
  const __mmask16 all = 0xFFFF;
  __m512 sum[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      sum[k] = _mm512_fmadd_ps(load16(bytes + (i + 16 * k) * kElementBytes, all),
                               _mm512_loadu_ps(x + i + 16 * k), sum[k]);
    }
  }
  for (; i < n; i += 16) {
    const int64_t left = n - i;
    const __mmask16 mask = left >= 16 ? all : static_cast<__mmask16>((1u << left) - 1);
    sum[0] = _mm512_fmadd_ps(load16(bytes + i * kElementBytes, mask),
                             _mm512_maskz_loadu_ps(mask, x + i), sum[0]);
  }
  return _mm512_reduce_add_ps(
      _mm512_add_ps(_mm512_add_ps(sum[0], sum[1]), _mm512_add_ps(sum[2], sum[3])));
}

}  // namespace

void add_avx512_kernels(KernelTable& table) {
  add_block_kernels(table);
  add<&dot_plain<&load16_f32, 4>>(table, TensorType::kF32);
  add<&dot_plain<&load16_f16, 2>>(table, TensorType::kF16);
  add<&dot_plain<&load16_bf16, 2>>(table, TensorType::kBF16);
}

}  // namespace koto::kernels

#undef KOTO_KERNEL_INLINE
