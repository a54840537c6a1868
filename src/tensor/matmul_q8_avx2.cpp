// Integer matmul with 8-bit activations on AVX2 (matmul_q8_x86.inc): byte products
// with maddubs (u8 x s8 -> pairs of int16) and madd (pairs -> int32). The codes fed to
// maddubs are at most 128 and the activations at most 127 in magnitude, so the int16
// pair sums (<= 32512) never saturate. Compiled with -mavx2 -mfma -mf16c; by the ODR
// rule in kernel_table.h everything but add_q8_avx2_kernels is in an anonymous namespace.
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

// Four vectors share each decoded weight group: 8 accumulators of the 16 ymm registers.
constexpr int kMaxColumns = 4;

KOTO_KERNEL_INLINE __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

KOTO_KERNEL_INLINE __m256i madd_add(__m256i acc, __m256i a, __m256i b) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

constexpr bool kFullRangeU8 = false;

#include "tensor/matmul_q8_x86.inc"

}  // namespace

void add_q8_avx2_kernels(KernelTable& table) { add_q8_block_kernels(table); }

}  // namespace koto::kernels

#undef KOTO_KERNEL_INLINE
