// Integer matmul with 8-bit activations on AVX-512 VNNI (matmul_q8_x86.inc): vpdpbusd
// sums four u8 x s8 products into each int32 lane in one instruction, without the
// int16 saturation of the AVX2 path. The EVEX encoding gives 32 vector registers, so
// eight vectors share each decoded weight group. Compiled with -mavx512*; by the ODR
// rule in kernel_table.h everything but add_q8_avx512_kernels is in an anonymous namespace.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/quant_blocks.h"

#define KOTO_KERNEL_INLINE [[gnu::always_inline]] inline

namespace koto::kernels {
namespace {

constexpr int kMaxColumns = 8;

KOTO_KERNEL_INLINE __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

KOTO_KERNEL_INLINE __m256i madd_add(__m256i acc, __m256i a, __m256i b) {
  return _mm256_dpwssd_epi32(acc, a, b);
}

constexpr bool kFullRangeU8 = true;

#include "tensor/matmul_q8_x86.inc"

}  // namespace

void add_q8_avx512_kernels(KernelTable& table) {
  add_q8_block_kernels(table);
  add_q8_avx512_tile_kernels(table);
  add_q8_avx512_block_decode_kernels(table);
  add_q8_avx512_k_decode_kernels(table);
}

}  // namespace koto::kernels

#undef KOTO_KERNEL_INLINE
