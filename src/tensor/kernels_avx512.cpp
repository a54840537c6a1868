// AVX-512 kernels (F, BW, VL, DQ, VNNI): dot products and matvec for every supported
// type, decoding blocks in registers. The block decoders are the AVX2 ones
// (kernels_x86_blocks.inc); the 32 decoded weights then feed two 16-float FMAs.
// Compiled with -mavx512*; by the ODR rule in kernel_table.h everything but
// add_avx512_kernels is in an anonymous namespace.
#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <vector>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <cstring>
#include <utility>

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

// ---- plain float rows, matvec: four rows at a time sharing the loads of x ----
//
// 32 values per step and two sums per row, so four rows keep eight multiply-add chains
// in flight. BF16 loads 32 weights in one 512-bit load: the even-index values are the
// low halves of the 32-bit lanes (shifted up), the odd ones the high halves (masked),
// so x is split into its even and odd values once per step for all four rows. The
// products stay exact float multiply-adds; only the order of the sum changes.

template <int N, typename F>
KOTO_KERNEL_INLINE void unrolled(F&& f) {
  [&]<int... i>(std::integer_sequence<int, i...>) __attribute__((always_inline)) {
    (f(std::integral_constant<int, i>{}), ...);
  }(std::make_integer_sequence<int, N>{});
}

struct PlainF32 {
  static constexpr int kBytes = 4;
  KOTO_KERNEL_INLINE static void load_x(const float* x, __mmask32 m, __m512& a, __m512& b) {
    a = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), x);
    b = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), x + 16);
  }
  KOTO_KERNEL_INLINE static void load_w(const uint8_t* p, __mmask32 m, __m512& a, __m512& b) {
    load_x(reinterpret_cast<const float*>(p), m, a, b);
  }
};

struct PlainF16 {
  static constexpr int kBytes = 2;
  KOTO_KERNEL_INLINE static void load_x(const float* x, __mmask32 m, __m512& a, __m512& b) {
    PlainF32::load_x(x, m, a, b);
  }
  KOTO_KERNEL_INLINE static void load_w(const uint8_t* p, __mmask32 m, __m512& a, __m512& b) {
    a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(static_cast<__mmask16>(m), p));
    b = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(static_cast<__mmask16>(m >> 16), p + 32));
  }
};

struct PlainBF16 {
  static constexpr int kBytes = 2;
  // a: x[0], x[2], ..., x[30]; b: x[1], x[3], ..., x[31].
  KOTO_KERNEL_INLINE static void load_x(const float* x, __mmask32 m, __m512& a, __m512& b) {
    __m512 lo;
    __m512 hi;
    PlainF32::load_x(x, m, lo, hi);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    a = _mm512_permutex2var_ps(lo, even, hi);
    b = _mm512_permutex2var_ps(lo, odd, hi);
  }
  KOTO_KERNEL_INLINE static void load_w(const uint8_t* p, __mmask32 m, __m512& a, __m512& b) {
    const __m512i w = _mm512_maskz_loadu_epi16(m, p);
    a = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    b = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
};

// Software prefetch this far ahead in each row: measured 1t 8.7 -> 6.0 ms (F16 and
// BF16, 4096 x 14336, weights in L3), better than 512 or 4096; 1280 ties 1024-1536.
// Near the end of a row the prefetch runs on into the same row of the next group of R
// rows, so a group starts with its first bytes already on the way (MatvecQ8 1t CPU time,
// busy machine: F16 4.86 -> 4.40 ms, BF16 4.76 -> 4.55 ms). A standalone test put both
// kernels within 3% of a bare read of the same bytes (~29 GB/s per core): one core's
// L3 bandwidth is the limit, not the arithmetic.
constexpr int64_t kPrefetchBytes = 1280;

template <typename F, int R>
KOTO_KERNEL_INLINE void plain_rows(const uint8_t* rows, int64_t row_bytes, int64_t n,
                                   const float* x, float* y) {
  __m512 acc[4][R];
  unrolled<R>([&](auto r) __attribute__((always_inline)) {
    unrolled<4>([&](auto k) __attribute__((always_inline)) { acc[k][r] = _mm512_setzero_ps(); });
  });
  const auto step = [&](int64_t i, __mmask32 m, __m512* a, __m512* b) __attribute__((always_inline)) {
    __m512 xa;
    __m512 xb;
    F::load_x(x + i, m, xa, xb);
    unrolled<R>([&](auto r) __attribute__((always_inline)) {
      __m512 wa;
      __m512 wb;
      F::load_w(rows + r * row_bytes + i * F::kBytes, m, wa, wb);
      a[r] = _mm512_fmadd_ps(wa, xa, a[r]);
      b[r] = _mm512_fmadd_ps(wb, xb, b[r]);
    });
  };
  const __mmask32 all = ~__mmask32{0};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    // Past the end of the matrix this names unmapped memory at worst: prefetches never fault.
    int64_t ahead = i * F::kBytes + kPrefetchBytes;
    if (ahead >= row_bytes) ahead += (R - 1) * row_bytes;
    const char* p = reinterpret_cast<const char*>(rows) + ahead;
    unrolled<R>([&](auto r) __attribute__((always_inline)) {
      _mm_prefetch(p + r * row_bytes, _MM_HINT_T0);
      if constexpr (F::kBytes * 64 > 64) _mm_prefetch(p + r * row_bytes + 64, _MM_HINT_T0);
    });
    step(i, all, acc[0], acc[1]);
    step(i + 32, all, acc[2], acc[3]);
  }
  for (; i < n; i += 32) {
    step(i, n - i >= 32 ? all : static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1), acc[0], acc[1]);
  }
  unrolled<R>([&](auto r) __attribute__((always_inline)) {
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0][r], acc[1][r]),
                                              _mm512_add_ps(acc[2][r], acc[3][r])));
  });
}

template <typename F>
void matvec_plain(const void* w, int64_t row_bytes, int64_t n, const float* x, float* y,
                  int64_t n_rows) {
  const auto* rows = static_cast<const uint8_t*>(w);
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) plain_rows<F, 4>(rows + r * row_bytes, row_bytes, n, x, y + r);
  for (; r < n_rows; ++r) plain_rows<F, 1>(rows + r * row_bytes, row_bytes, n, x, y + r);
}

// ---- activations to 8 bits: the scalar reference's arithmetic, 16 lanes at a time ----
//
// The same float operations in the same order as quantize_activations_row (max of |x|,
// one multiply by 127 / amax, round to nearest even by the default MXCSR mode), so the
// bytes and scales are identical; max_ps returns its second operand when the first is a
// NaN, which skips NaNs like fmax.

KOTO_KERNEL_INLINE __m512 abs_ps(__m512 v) {
  return _mm512_castsi512_ps(
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7FFFFFFF)));
}

KOTO_KERNEL_INLINE float inverse_of(float amax) { return amax > 0.0f ? 127.0f / amax : 0.0f; }

// 16 values times `inverse`, rounded, stored as bytes; returns their integer sum.
KOTO_KERNEL_INLINE int quantize16(const float* x, __m512 inverse, int8_t* q) {
  const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), inverse));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(v));
  return _mm512_reduce_add_epi32(v);
}

void quantize_row_q8(const float* x, int64_t n, int8_t* q, float* d, float* dsum) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(
        abs_ps(_mm512_loadu_ps(xb + 16)), _mm512_max_ps(abs_ps(_mm512_loadu_ps(xb)), _mm512_setzero_ps())));
    const float scale = amax / 127.0f;
    const __m512 inverse = _mm512_set1_ps(inverse_of(amax));
    const int sum0 = quantize16(xb, inverse, q + 32 * b);
    const int sum1 = quantize16(xb + 16, inverse, q + 32 * b + 16);
    d[b] = scale;
    dsum[2 * b] = scale * static_cast<float>(sum0);
    dsum[2 * b + 1] = scale * static_cast<float>(sum1);
  }
}

void quantize_row_q8_256(const float* x, int64_t n, int8_t* q, float* d, int16_t* sums) {
  for (int64_t b = 0; b < n / 256; ++b) {
    const float* xb = x + 256 * b;
    __m512 m = _mm512_setzero_ps();
    for (int k = 0; k < 16; ++k) m = _mm512_max_ps(abs_ps(_mm512_loadu_ps(xb + 16 * k)), m);
    const float amax = _mm512_reduce_max_ps(m);
    const __m512 inverse = _mm512_set1_ps(inverse_of(amax));
    for (int k = 0; k < 16; ++k) {
      sums[16 * b + k] = static_cast<int16_t>(quantize16(xb + 16 * k, inverse, q + 256 * b + 16 * k));
    }
    d[b] = amax / 127.0f;
  }
}

}  // namespace

namespace {

// exp(x) for 16 floats: x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor series to
// degree 7 (truncation below 6e-9 relative), times 2^n by vscalefps, which also gives
// inf above the float range, 0 below it and NaN for NaN.
KOTO_KERNEL_INLINE __m512 exp16(__m512 x) {
  // Clamped first (NaN passes: max/min return their second operand for a NaN), so that
  // -inf gives 0 and +inf gives inf by scaling rather than by inf - inf.
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2 split in two so n * ln2_hi is exact.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

void halves_to_floats(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
  }
}
void floats_to_halves_avx512(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(dst + i, m,
                             _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}
void exp_in_place(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}
constexpr int kAttentionTile = 64;
// Decoding (a few queries) reads F16 tiles straight from the cache instead of
// converting them into float tiles first; the arithmetic is the same, hence the bits.
constexpr bool kAttentionInlineF16 = true;
KOTO_KERNEL_INLINE __m512 load16_floats(const float* p) { return _mm512_loadu_ps(p); }
KOTO_KERNEL_INLINE __m512 load16_floats(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// The register block both halves of attention run: for kHeads heads j and kVecs vectors
// of 16 columns, out[j][c] (+)= sum over steps t in order of a[j * a_stride + t] *
// b[t * b_stride + c]. Every b vector is loaded (and converted from F16) once for all
// heads, and kHeads * kVecs independent chains hide the multiply-add latency; each output
// is the same chain whatever the grouping, hence the same bits.
//   scores:     a = queries (t: dimension), b = the key tile [D][64], out zeroed first
//   accumulate: a = probabilities (t: position), b = value rows [T][D], out added to
// With prefetch_ahead, each step also prefetches the lines it reads that many elements
// on: decoding streams the cache from memory, and the multiply-adds between a tile's
// loads kept too few lines in flight (one thread: 14.2 -> 12.1 ms over 56 heads of 8k
// positions with six query heads each; two threads: 9.0 -> 6.6 ms).
template <int kHeads, int kVecs, bool kAddToOut, typename B>
KOTO_KERNEL_INLINE void heads_outer_product(const float* a, int64_t a_stride, const B* b, int64_t b_stride, int steps,
                                            float* out, int64_t out_stride, int64_t prefetch_ahead = 0) {
  __m512 acc[kHeads][kVecs];
  for (int j = 0; j < kHeads; ++j) {
    for (int k = 0; k < kVecs; ++k) {
      acc[j][k] = kAddToOut ? _mm512_loadu_ps(out + j * out_stride + 16 * k) : _mm512_setzero_ps();
    }
  }
  for (int t = 0; t < steps; ++t) {
    __m512 bv[kVecs];
    for (int k = 0; k < kVecs; ++k) bv[k] = load16_floats(b + t * b_stride + 16 * k);
    if (prefetch_ahead != 0) {  // (F16: a cache line per two vectors)
      for (int k = 0; k < kVecs; k += 2) __builtin_prefetch(b + t * b_stride + 16 * k + prefetch_ahead);
    }
    for (int j = 0; j < kHeads; ++j) {
      const __m512 aj = _mm512_set1_ps(a[j * a_stride + t]);
      for (int k = 0; k < kVecs; ++k) acc[j][k] = _mm512_fmadd_ps(aj, bv[k], acc[j][k]);
    }
  }
  for (int j = 0; j < kHeads; ++j) {
    for (int k = 0; k < kVecs; ++k) _mm512_storeu_ps(out + j * out_stride + 16 * k, acc[j][k]);
  }
}
// All 64 positions of kHeads heads: in one pass for up to six heads (24 accumulators,
// every key row read whole and in order, which the hardware prefetchers follow when the
// cache streams from memory), in two halves of 32 positions for seven or eight.
template <int kHeads, typename Key>
KOTO_KERNEL_INLINE void tile_scores_group(const float* q, int64_t q_stride, const Key* keys_t, int d, float* s) {
  if constexpr (kHeads <= 6) {
    // An F16 tile read in place (decoding) prefetches the next tile a line per step.
    heads_outer_product<kHeads, 4, false>(q, q_stride, keys_t, kAttentionTile, d, s, kAttentionTile,
                                          std::is_same_v<Key, uint16_t> ? int64_t{d} * kAttentionTile : 0);
  } else {
    const int64_t ahead = std::is_same_v<Key, uint16_t> ? int64_t{d} * kAttentionTile : 0;
    heads_outer_product<kHeads, 2, false>(q, q_stride, keys_t, kAttentionTile, d, s, kAttentionTile, ahead);
    heads_outer_product<kHeads, 2, false>(q, q_stride, keys_t + 32, kAttentionTile, d, s + 32, kAttentionTile, ahead);
  }
}
// Runs fn.template operator()<kHeads>() for each group of at most eight of n heads (the
// group sizes the kernels are compiled for), with the group's first head.
template <typename Fn>
KOTO_KERNEL_INLINE void for_head_groups(int n, const Fn& fn) {
  for (int j = 0; j < n; j += 8) {
    switch (std::min(n - j, 8)) {
      case 1: fn.template operator()<1>(j); break;
      case 2: fn.template operator()<2>(j); break;
      case 3: fn.template operator()<3>(j); break;
      case 4: fn.template operator()<4>(j); break;
      case 5: fn.template operator()<5>(j); break;
      case 6: fn.template operator()<6>(j); break;
      case 7: fn.template operator()<7>(j); break;
      default: fn.template operator()<8>(j); break;
    }
  }
}
template <typename Key>
void tile_scores(const float* q, int64_t q_stride, int nq, const Key* keys_t, int d, float* s) {
  for_head_groups(nq, [&]<int kHeads>(int j) {
    tile_scores_group<kHeads>(q + j * q_stride, q_stride, keys_t, d, s + j * kAttentionTile);
  });
}
// The Q8_0 kernels below read a tile's codes in place: nothing to prepare.
void prepare_q8_tile(const uint8_t* /*keys*/, const uint8_t* /*values*/, int /*d*/) {}
// Prefetches part `part` of `parts` equal shares of the lines of [p, p + bytes).
KOTO_KERNEL_INLINE void prefetch_share(const uint8_t* p, int64_t bytes, int part, int parts) {
  const int64_t lines = (bytes + 63) / 64;
  for (int64_t l = lines * part / parts; l < lines * (part + 1) / parts; ++l) __builtin_prefetch(p + 64 * l);
}
// Integer scores of kHeads quantized queries over a Q8_0 key tile: 16 positions per
// vector, four dimensions per vpdpbusd (the tile's codes + 128, unsigned, times the
// query's four codes, broadcast); each block's sum starts at its bias, which takes the
// 128s back out, and is scaled into the float score as the scalar loop does.
template <int kHeads>
KOTO_KERNEL_INLINE void tile_scores_q8_group(const int8_t* codes, const float* scales, const int32_t* bias,
                                             const uint8_t* tile, int d, float* s, const uint8_t* next) {
  const int blocks = d / 32;
  const uint16_t* key_scales = reinterpret_cast<const uint16_t*>(tile + int64_t{d} * kAttentionTile);
  const int64_t tile_bytes = int64_t{d} / 32 * 34 * kAttentionTile;
  for (int g = 0; g < kAttentionTile; g += 16) {
    __m512 acc[kHeads];
    for (int j = 0; j < kHeads; ++j) acc[j] = _mm512_setzero_ps();
    for (int b = 0; b < blocks; ++b) {
      // Decoding prefetches the next tile (keys and scales) in equal shares as it goes.
      if (next != nullptr) prefetch_share(next, tile_bytes, g / 16 * blocks + b, kAttentionTile / 16 * blocks);
      __m512i dot[kHeads];
      for (int j = 0; j < kHeads; ++j) dot[j] = _mm512_set1_epi32(bias[j * blocks + b]);
      for (int k = 0; k < 8; ++k) {
        const __m512i keys = _mm512_loadu_si512(tile + ((8 * b + k) * kAttentionTile + g) * 4);
        for (int j = 0; j < kHeads; ++j) {
          int32_t four;
          std::memcpy(&four, codes + j * d + 32 * b + 4 * k, sizeof(four));
          dot[j] = _mm512_dpbusd_epi32(dot[j], keys, _mm512_set1_epi32(four));
        }
      }
      const __m512 key_scale =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(key_scales + b * kAttentionTile + g)));
      for (int j = 0; j < kHeads; ++j) {
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[j]),
                                 _mm512_mul_ps(key_scale, _mm512_set1_ps(scales[j * blocks + b])), acc[j]);
      }
    }
    for (int j = 0; j < kHeads; ++j) _mm512_storeu_ps(s + j * kAttentionTile + g, acc[j]);
  }
}
void tile_scores_q8(const int8_t* codes, const float* scales, const int32_t* bias, int nq, const uint8_t* tile, int d,
                    float* s, const uint8_t* next) {
  const int blocks = d / 32;
  for_head_groups(nq, [&]<int kHeads>(int j) {
    tile_scores_q8_group<kHeads>(codes + j * d, scales + j * blocks, bias + j * blocks, tile, d, s + j * kAttentionTile,
                                 j == 0 ? next : nullptr);
  });
}
// 16 x 16 floats: out[m] = column m of the rows r[0..15] (unpack pairs, then quads, then
// 128-bit lanes twice).
KOTO_KERNEL_INLINE void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int k = 0; k < 16; k += 2) {
    t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
  }
  auto pd = [](__m512 x) { return _mm512_castps_pd(x); };
  for (int k = 0; k < 16; k += 4) {
    r[k] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[k]), pd(t[k + 2])));
    r[k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[k]), pd(t[k + 2])));
    r[k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[k + 1]), pd(t[k + 3])));
    r[k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[k + 1]), pd(t[k + 3])));
  }
  // r[4q + e]: rows 4q..4q+3, element 4L + e in 128-bit lane L.
  for (int e = 0; e < 4; ++e) {
    t[e] = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88);
    t[4 + e] = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xdd);
    t[8 + e] = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88);
    t[12 + e] = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xdd);
  }
  for (int e = 0; e < 4; ++e) {
    r[e] = _mm512_shuffle_f32x4(t[e], t[8 + e], 0x88);
    r[4 + e] = _mm512_shuffle_f32x4(t[4 + e], t[12 + e], 0x88);
    r[8 + e] = _mm512_shuffle_f32x4(t[e], t[8 + e], 0xdd);
    r[12 + e] = _mm512_shuffle_f32x4(t[4 + e], t[12 + e], 0xdd);
  }
}
void rows_to_tile(const float* rows, int n, int d, float* keys_t) {
  int i0 = 0;
  for (; i0 + 16 <= d; i0 += 16) {
    for (int t0 = 0; t0 < kAttentionTile; t0 += 16) {
      __m512 r[16];
      for (int k = 0; k < 16; ++k) r[k] = t0 + k < n ? _mm512_loadu_ps(rows + (t0 + k) * d + i0) : _mm512_setzero_ps();
      transpose16(r);
      for (int m = 0; m < 16; ++m) _mm512_storeu_ps(keys_t + (i0 + m) * kAttentionTile + t0, r[m]);
    }
  }
  for (int i = i0; i < d; ++i) {
    for (int t = 0; t < kAttentionTile; ++t) keys_t[i * kAttentionTile + t] = t < n ? rows[t * d + i] : 0.0f;
  }
}

// Four vectors of 16: masked past `visible`, maximum and sum by fixed trees.
float tile_softmax(float* s, int visible, float scale, float running_max, float& sum) {
  __m512 v[4];
  __mmask16 masks[4];
  __m512 mx = _mm512_set1_ps(running_max);
  for (int k = 0; k < 4; ++k) {
    const int left = std::clamp(visible - 16 * k, 0, 16);
    masks[k] = static_cast<__mmask16>((1u << left) - 1);
    v[k] = _mm512_maskz_mul_ps(masks[k], _mm512_loadu_ps(s + 16 * k), _mm512_set1_ps(scale));
    mx = _mm512_mask_max_ps(mx, masks[k], mx, v[k]);
  }
  const float m = _mm512_reduce_max_ps(mx);
  const __m512 mv = _mm512_set1_ps(m);
  __m512 total = _mm512_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    const __m512 e = _mm512_maskz_mov_ps(masks[k], exp16(_mm512_sub_ps(v[k], mv)));
    _mm512_storeu_ps(s + 16 * k, e);
    total = _mm512_add_ps(total, e);
  }
  sum = _mm512_reduce_add_ps(total);
  return m;
}

// Vectors per pass for kHeads heads: at least eight chains, at most 24 accumulators, and
// for up to six heads half a value row (two cache lines) at a time.
template <int kHeads>
constexpr int kAccumulateVecs = kHeads == 1 ? 8 : kHeads <= 6 ? 4 : 2;
template <int kHeads, typename Value>
void tile_accumulate_group(float* o, int64_t o_stride, const float* p, const Value* values_t, int n, int d) {
  constexpr int kVecs = kAccumulateVecs<kHeads>;
  int i = 0;
  // o[j][i] += sum_t p[j][t] v[t][i], kVecs vectors of outputs at a time kept in registers over the tile.
  for (; i + 16 * kVecs <= d; i += 16 * kVecs) {
    heads_outer_product<kHeads, kVecs, true>(p, kAttentionTile, values_t + i, d, n, o + i, o_stride,
                                             std::is_same_v<Value, uint16_t> ? int64_t{d} * kAttentionTile : 0);
  }
  for (; i + 16 <= d; i += 16) heads_outer_product<kHeads, 1, true>(p, kAttentionTile, values_t + i, d, n, o + i, o_stride);
  for (; i < d; ++i) {
    for (int j = 0; j < kHeads; ++j) {
      float acc = o[j * o_stride + i];
      for (int t = 0; t < n; ++t) {
        float v;
        if constexpr (std::is_same_v<Value, float>) {
          v = values_t[t * d + i];
        } else {
          halves_to_floats(values_t + t * d + i, &v, 1);
        }
        acc = std::fma(p[j * kAttentionTile + t], v, acc);
      }
      o[j * o_stride + i] = acc;
    }
  }
}
// The weights of each value block as 15-bit integers of their largest (the plain loop's
// arithmetic, 16 positions per vector).
void tile_weights_q8(const float* p, const float* value_scales, int blocks, int16_t* w, float* w_scales) {
  __m512 pv[4];
  for (int k = 0; k < 4; ++k) pv[k] = _mm512_loadu_ps(p + 16 * k);
  for (int b = 0; b < blocks; ++b) {
    __m512 x[4];
    __m512 largest = _mm512_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      x[k] = _mm512_mul_ps(pv[k], _mm512_loadu_ps(value_scales + b * kAttentionTile + 16 * k));
      largest = _mm512_max_ps(largest, x[k]);
    }
    const float m = _mm512_reduce_max_ps(largest);
    const __m512 inv = _mm512_set1_ps(m > 0.0f ? 32767.0f / m : 0.0f);
    for (int k = 0; k < 4; ++k) {
      const __m512 r = _mm512_min_ps(_mm512_roundscale_ps(_mm512_mul_ps(x[k], inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                     _mm512_set1_ps(32767.0f));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + b * kAttentionTile + 16 * k),
                          _mm512_cvtepi32_epi16(_mm512_cvttps_epi32(r)));
    }
    w_scales[b] = m / 32767.0f;
  }
}
// kVecs vectors of 16 outputs from dimension c for kHeads heads over a Q8_0 value tile,
// two positions per vpdpwssd: their codes of 16 dimensions, widened to 16 bits, times
// the two positions' weights of each head (broadcast); the sums are exact, then scaled.
template <int kHeads, int kVecs>
KOTO_KERNEL_INLINE void accumulate_q8_vectors(float* o, const int16_t* w, const float* w_scales, const uint8_t* tile,
                                              int c, int pairs, int d, const uint8_t* next) {
  const int blocks = d / 32;
  __m512i acc[kHeads][kVecs];
  for (int j = 0; j < kHeads; ++j) {
    for (int k = 0; k < kVecs; ++k) acc[j][k] = _mm512_setzero_si512();
  }
  // Decoding prefetches the next tile as it goes: with each pair, the line(s) of the
  // same pair and dimensions there (32 bytes a vector); the first vectors' passes also
  // take the scales, an eighth per pair.
  const int64_t tile_bytes = int64_t{d} / 32 * 34 * kAttentionTile;
  for (int p = 0; p < pairs; ++p) {
    if (next != nullptr) {
      for (int k = 0; k < kVecs; k += 2) __builtin_prefetch(next + (int64_t{p} * d + c + 16 * k) * 2);
      if (c == 0 && p < 8) prefetch_share(next + int64_t{d} * kAttentionTile, tile_bytes - int64_t{d} * kAttentionTile, p, 8);
    }
    __m512i v[kVecs];
    for (int k = 0; k < kVecs; ++k) {
      v[k] = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + (int64_t{p} * d + c + 16 * k) * 2)));
    }
    for (int j = 0; j < kHeads; ++j) {
      for (int k = 0; k < kVecs; ++k) {
        // In place, the weights broadcast from memory (GCC copied every accumulator
        // around the intrinsic: 12.8% of the kernel's time on one move).
        const int16_t* two = w + (j * blocks + (c + 16 * k) / 32) * kAttentionTile + 2 * p;
        __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(acc[j][k]) : "v"(v[k]), "m"(*reinterpret_cast<const int32_t*>(two)));
      }
    }
  }
  for (int j = 0; j < kHeads; ++j) {
    for (int k = 0; k < kVecs; ++k) {
      float* out = o + j * d + c + 16 * k;
      const __m512 scale = _mm512_set1_ps(w_scales[j * blocks + (c + 16 * k) / 32]);
      _mm512_storeu_ps(out, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[j][k]), scale, _mm512_loadu_ps(out)));
    }
  }
}
void tile_accumulate_q8(float* o, const int16_t* w, const float* w_scales, int nh, const uint8_t* tile, int pairs,
                        int d, const uint8_t* next) {
  const int blocks = d / 32;
  for_head_groups(nh, [&]<int kHeads>(int j) {
    // One block (two vectors) at a time past two heads: four were slower (24 accumulators).
    constexpr int kVecs = kHeads <= 2 ? 4 : 2;
    float* oj = o + int64_t{j} * d;
    const int16_t* wj = w + j * blocks * kAttentionTile;
    const float* sj = w_scales + j * blocks;
    int c = 0;
    const uint8_t* pf = j == 0 ? next : nullptr;
    for (; c + 16 * kVecs <= d; c += 16 * kVecs) accumulate_q8_vectors<kHeads, kVecs>(oj, wj, sj, tile, c, pairs, d, pf);
    for (; c < d; c += 16) accumulate_q8_vectors<kHeads, 1>(oj, wj, sj, tile, c, pairs, d, pf);
  });
}
template <typename Value>
void tile_accumulate(float* o, const float* p, int nh, const Value* values_t, int n, int d) {
  for_head_groups(nh, [&]<int kHeads>(int j) {
    tile_accumulate_group<kHeads>(o + int64_t{j} * d, d, p + j * kAttentionTile, values_t, n, d);
  });
}
#include "tensor/attention_kernel.inc"

void silu_mul_avx512(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_storeu_ps(gate + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

// Twelve independent vpdpbusd chains (enough to cover its latency on current cores),
// each 64 multiply-adds of unsigned by signed bytes per instruction.
int64_t int8_peak_avx512(int64_t iterations) {
  __m512i acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_epi32(k);
  const __m512i a = _mm512_set1_epi8(3);
  const __m512i b = _mm512_set1_epi8(5);
  for (int64_t i = 0; i < iterations; ++i) {
    for (int k = 0; k < 12; ++k) acc[k] = _mm512_dpbusd_epi32(acc[k], a, b);
    __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]));
  }
  __m512i sum = acc[0];
  for (int k = 1; k < 12; ++k) sum = _mm512_add_epi32(sum, acc[k]);
  volatile int32_t sink = _mm512_reduce_add_epi32(sum);
  (void)sink;
  return iterations * 12 * 64 * 2;
}

}  // namespace

void add_avx512_kernels(KernelTable& table) {
  table.silu_mul = &silu_mul_avx512;
  table.attention_f16 = &attention_f16_impl;
  table.floats_to_halves = &floats_to_halves_avx512;
  table.int8_peak = &int8_peak_avx512;
  table.quantize_q8_row = &quantize_row_q8;
  table.quantize_q8_row_256 = &quantize_row_q8_256;
  add_block_kernels(table);
  add_dot_kernels(table, TensorType::kF32, &dot_plain<&load16_f32, 4>, &matvec_plain<PlainF32>);
  add_dot_kernels(table, TensorType::kF16, &dot_plain<&load16_f16, 2>, &matvec_plain<PlainF16>);
  add_dot_kernels(table, TensorType::kBF16, &dot_plain<&load16_bf16, 2>, &matvec_plain<PlainBF16>);
}

}  // namespace koto::kernels

#undef KOTO_KERNEL_INLINE
