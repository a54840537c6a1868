// Decoding integer matvec for Q4_K, Q5_K and Q6_K on AVX-512 VNNI: one activation
// vector, or a few (sequences that decode together in a server's step, short prompt
// tails). add_q8_avx512_k_decode_kernels wraps the matmul_q8 entries already in the
// table: 1 to kMaxFused vectors run the kernels here, more the saved entry (the tiles).
//
// Several vectors: each super-block's codes and scales are unpacked once and then meet
// up to kMaxChunk vectors (their dot products, scales and accumulators are per vector);
// more vectors take further passes over the row while its blocks are still in L1. A
// step of 4 sequences then costs far less than 4 steps of one: MatmulQ8Decode/<type>/
// avx512/2t/<n> (14336 x 4096, us), the tiles before -> here, one vector Q4_K 571, Q6_K 839:
//   Q4_K  2 vectors 1080 -> 757, 4 vectors 2017 -> 1112, 8 vectors 3403 -> 2233
//   Q6_K  2 vectors 1150 -> 1085, 4 vectors 2758 -> 2030, 8 vectors 5364 -> 5475
// From 16 vectors the tiles are faster (Q4_K 16: 5426 against 6977), hence kMaxFused.
//
// Per super-block of 256 weights:
//   1. codes: one 64-byte load of weight bytes gives 128 codes as unsigned bytes (its
//      low and its high nibbles); Q5_K's fifth bit comes from qh by table lookups
//      (vpshufb on a nibble of qh), Q6_K's two high bits by shifts;
//   2. vpdpbusd against the activation: 16 int32 lanes of 4 products each, at most
//      4 * 63 * 127 < 2^15 in magnitude, so two such vectors pack (vpackssdw) into one of
//      int16 without loss, and one vpdpwssd applies the per-sub-block scales (as int16,
//      arranged to match the pack) to 128 values: no per-32 float work, one int-to-float
//      convert and one FMA per super-block;
//   3. Q4_K/Q5_K: one row at a time, four super-blocks per step: the 6-bit scales and
//      mins of the four are unpacked together, one per 128-bit lane, with byte shuffles
//      (no scalar code); their d/dmin convert in one vcvtph2ps, the mins meet the
//      activation's per-32 sums in one vpmaddwd. Q6_K: the -32 offset of the codes is
//      the accumulator each vpdpbusd starts from (-32 times the activation's sums per 4).
// The activation is prepared once per call into 64-byte aligned scratch: for Q4_K/Q5_K
// reordered to match their nibble layout (so qs[0..63] meets values 0-31 and 64-95 with
// its low nibbles, 32-63 and 96-127 with its high ones) plus per-32 sums; for Q6_K a
// copy plus the per-4 offsets. Rows go one by one (one weight stream with software
// prefetch): tiles of four rows computed faster from L2 but streamed the 33-48 MB of
// weights slower (Q6_K 1t 2.2 ms against 1.8 ms).
//
// MatvecQ8/<type>/avx512 (14336 x 4096), µs per call, min of 3 x 5 reps alternated with
// the tile kernel on a shared 2-core machine; the "2t" runs mostly had the other core
// busy, so 1t is the reliable figure. Compute alone (64 rows, in L2): ns per super-block.
//             1t before -> after      2t (other core busy)    L2-resident
//   Q4_K      1760 -> 1189 (-32%)     1767 -> 1296            4.8 ns
//   Q5_K      2289 -> 1610 (-30%)     2309 -> 1710            6.6 ns
//   Q6_K      2231 -> 1749 (-22%)     2309 -> 1857            6.2 ns
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/quant_blocks.h"

#define KOTO_KERNEL_INLINE [[gnu::always_inline]] inline

namespace koto::kernels {
namespace {

// Software prefetch distance in super-blocks along a row (the weights stream once from
// L3 or memory): MatvecQ8 1t, 14336 x 4096, none / 1 KB / 2 KB / ~20 blocks: Q4_K 1567 /
// 1411 / 1329 / 1313 µs, Q6_K 2658 / 2173 / 1986 / 1876 µs.
constexpr int64_t kPrefetchBlocks = 20;

#include "tensor/simd_helpers.inc"

KOTO_KERNEL_INLINE float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

template <int kBytes>
KOTO_KERNEL_INLINE void prefetch_block(const uint8_t* p) {
  for (int l = 0; l < kBytes; l += 64) _mm_prefetch(reinterpret_cast<const char*>(p + l), _MM_HINT_T0);
}

// 16 x 4 products summed per int32 lane; |w| < 64 and |q| <= 128 keep each lane in int16.
KOTO_KERNEL_INLINE __m512i dot_bytes(__m512i w, __m512i q) {
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, q);
}

// ---- the activation, prepared once per call ----

// Per-call scratch of one thread, 64-byte aligned so that no activation load splits a
// cache line.
struct Prepared {
  struct alignas(64) Line {
    int8_t bytes[64];
  };
  std::vector<Line> storage;  // backs the arrays below
  int8_t* q;                  // [n]: the codes, in the order the weight type reads them
  int16_t* s32;               // [n / 32]: sum of q over each 32 values (Q4_K, Q5_K)
  int32_t* offset4;           // [n / 4]: -32 * sum of q over each 4 values (Q6_K)
};

// Vectors per pass over a row's blocks, and the most vectors these kernels take.
constexpr int kMaxChunk = 4;
constexpr int64_t kMaxFused = 8;

// Scratch `slot` (one per vector of a call).
Prepared& scratch(int64_t n, int slot) {
  thread_local Prepared prepared[kMaxFused];
  Prepared& p = prepared[slot];
  const auto vectors = static_cast<size_t>(2 * (n / 64) + (n / 16 + 63) / 64);
  if (p.storage.size() < vectors) p.storage.resize(vectors);
  p.q = reinterpret_cast<int8_t*>(p.storage.data());
  p.offset4 = reinterpret_cast<int32_t*>(p.q + n);
  p.s32 = reinterpret_cast<int16_t*>(p.q + 2 * n);
  return p;
}

// Q4_K/Q5_K order: per super-block, the 64 bytes that meet the low nibbles of qs[0..63]
// (values 0-31 and 64-95), then their high nibbles (32-63, 96-127), then the same for
// qs[64..127] (128-159 with 192-223, 160-191 with 224-255).
const Prepared& prepare_k4(const Q8Vectors& x, int v) {
  const int64_t n = x.n;
  Prepared& p = scratch(n, v);
  const int8_t* q = x.q + v * n;
  const int16_t* sums = x.sums + v * (n / 16);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const int8_t* src = q + i * kQKK;
    int8_t* dst = p.q + i * kQKK;
    for (int h = 0; h < 2; ++h) {
      for (int part = 0; part < 4; ++part) {
        // part 0: values +0, 1: +64, 2: +32, 3: +96 (of this half of 128)
        static constexpr int kFrom[4] = {0, 64, 32, 96};
        std::memcpy(dst + 128 * h + 32 * part, src + 128 * h + kFrom[part], 32);
      }
    }
  }
  for (int64_t k = 0; k < n / 32; ++k) {
    p.s32[k] = static_cast<int16_t>(sums[2 * k] + sums[2 * k + 1]);
  }
  return p;
}

// Q6_K: the codes in value order, plus -32 times their sums over 4 values, in the int32
// lane order of vpdpbusd: starting each dot there takes the weights' offset of 32 off
// for free (|sum of 4 (w - 32) q| <= 4 * 32 * 127 still fits in int16).
const Prepared& prepare_q6(const Q8Vectors& x, int v) {
  const int64_t n = x.n;
  Prepared& p = scratch(n, v);
  const int8_t* src = x.q + v * n;
  std::memcpy(p.q, src, static_cast<size_t>(n));
  for (int64_t j = 0; j < n / 4; ++j) {
    const int8_t* q = src + 4 * j;
    p.offset4[j] = -32 * (q[0] + q[1] + q[2] + q[3]);
  }
  return p;
}

// ---- Q4_K and Q5_K ----

// 128-bit lane j of the result: sc0..sc7 (bytes 0-7) and m0..m7 (bytes 8-15) of the
// block whose first 16 bytes (d, dmin, scales[12]: packed 6-bit scales s) are lane j of
// head:
//   k < 4:  sc = s[k] & 63,                          m = s[k + 4] & 63
//   k >= 4: sc = (s[k + 4] & 15) | (s[k - 4] >> 6) << 4, m = (s[k + 4] >> 4) | (s[k] >> 6) << 4
KOTO_KERNEL_INLINE __m512i unpack_k_scales(__m512i head) {
  const __m512i low_bytes = _mm512_shuffle_epi8(
      head, _mm512_broadcast_i32x4(_mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15)));
  const __m512i high_bytes = _mm512_shuffle_epi8(
      head, _mm512_broadcast_i32x4(_mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11)));
  const __m512i keep = _mm512_broadcast_i32x4(
      _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
  const __m512i high_nibble_mask =
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
  constexpr int kOrAnd = 0xF8;  // a | (b & c)
  const __m512i low = _mm512_ternarylogic_epi32(_mm512_and_si512(low_bytes, keep),
                                                _mm512_srli_epi16(low_bytes, 4), high_nibble_mask,
                                                kOrAnd);
  return _mm512_ternarylogic_epi32(low, _mm512_srli_epi16(high_bytes, 2), _mm512_set1_epi8(0x30),
                                   kOrAnd);
}

// Word pattern of the scales for half h (128 values) after vpackssdw of the low-nibble
// and high-nibble dots: 128-bit lanes 0-1 hold sub-blocks 4h (words 0-3) and 4h + 1
// (words 4-7), lanes 2-3 sub-blocks 4h + 2 and 4h + 3. Index bytes pick sc as the low
// byte of each word and zero (-1) as its high byte.
KOTO_KERNEL_INLINE __m512i k4_scale_pick(int h) {
  const char a = static_cast<char>(4 * h);
  const char b = static_cast<char>(4 * h + 1);
  const char c = static_cast<char>(4 * h + 2);
  const char d = static_cast<char>(4 * h + 3);
  const __m128i first = _mm_setr_epi8(a, -1, a, -1, a, -1, a, -1, b, -1, b, -1, b, -1, b, -1);
  const __m128i second = _mm_setr_epi8(c, -1, c, -1, c, -1, c, -1, d, -1, d, -1, d, -1, d, -1);
  const __m256i half = _mm256_set_m128i(first, first);
  const __m256i other = _mm256_set_m128i(second, second);
  return _mm512_inserti64x4(_mm512_castsi256_si512(half), other, 1);
}

// G super-blocks i.. i + G - 1 of one row (G = 4, or 2 or 1 for the tail), against NV
// vectors (their prepared activations p[v], scales xd[v]): 128-bit lane j of the scale
// unpack is super-block i + j, so one unpack serves four super-blocks, and each
// super-block's codes are unpacked once for all the vectors.
template <bool kFifthBit, typename Block, int G, int NV>
KOTO_KERNEL_INLINE void k4_group(const uint8_t* row, int64_t i, const Prepared* const* p, const float* const* xd,
                                 __m512* acc, __m512* acc_min) {
  const __m512i low_mask = _mm512_set1_epi8(15);
  const __m512i head_words = _mm512_zextsi128_si512(_mm_setr_epi16(0, 1, 8, 9, 16, 17, 24, 25));
  const __m512i dmin_index = _mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
  // 16 when nibble v has bit 0 (lower 256 bits) or bit 2 (upper), for the low nibbles;
  // bit 1 or bit 3 for the high nibbles.
  [[maybe_unused]] const __m512i fifth_even = _mm512_inserti64x4(
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16)),
      _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 0, 0, 0, 16, 16, 16, 16, 0, 0, 0, 0, 16, 16, 16, 16)), 1);
  [[maybe_unused]] const __m512i fifth_odd = _mm512_inserti64x4(
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 16, 16, 0, 0, 16, 16, 0, 0, 16, 16, 0, 0, 16, 16)),
      _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 16, 16, 16, 16, 16, 16, 16, 16)), 1);
  constexpr int64_t kBytes = sizeof(Block);
  const uint8_t* first = row + i * kBytes;
  __m512i head;
  if constexpr (G == 1) {
    head = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(first)));
  } else if constexpr (G == 2) {
    head = _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(first)));
    head = _mm512_inserti32x4(head, _mm_loadu_si128(reinterpret_cast<const __m128i*>(first + kBytes)), 1);
  } else {
    head = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(first)));
    head = _mm512_inserti32x4(head, _mm_loadu_si128(reinterpret_cast<const __m128i*>(first + kBytes)), 1);
    head = _mm512_inserti32x4(head, _mm_loadu_si128(reinterpret_cast<const __m128i*>(first + 2 * kBytes)), 2);
    head = _mm512_inserti32x4(head, _mm_loadu_si128(reinterpret_cast<const __m128i*>(first + 3 * kBytes)), 3);
  }
  const __m512i u = unpack_k_scales(head);
  // d, dmin of the G super-blocks: [d0, dmin0, d1, dmin1, ...], then times each vector's d.
  const __m256 d_dmin_w = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi16(head_words, head)));
  const __m512i min_words = _mm512_unpackhi_epi8(u, _mm512_setzero_si512());
  // Through memory on purpose: the broadcasts below then come from the load ports
  // instead of lane shuffles on port 5, which the dot products need.
  alignas(32) float dd[NV][8];
  alignas(64) uint8_t unpacked[64];
  unrolled<NV>([&](auto v) __attribute__((always_inline)) {
    __m256 dx;
    __m512i sums32;
    if constexpr (G == 1) {
      dx = _mm256_set1_ps(xd[v][i]);
      sums32 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[v]->s32 + 8 * i)));
    } else if constexpr (G == 2) {
      // Two scales and two blocks' sums only: the row's activation may end there.
      dx = _mm256_permutexvar_ps(_mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3),
                                 _mm256_castps128_ps256(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(xd[v] + i)))));
      sums32 = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[v]->s32 + 8 * i)));
    } else {
      dx = _mm256_permutexvar_ps(_mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3),
                                 _mm256_castps128_ps256(_mm_loadu_ps(xd[v] + i)));
      sums32 = _mm512_loadu_si512(p[v]->s32 + 8 * i);
    }
    const __m256 d_dmin = _mm256_mul_ps(d_dmin_w, dx);
    // Mins: m0..m7 as words times the activation's per-32 sums, 4 int32 per super-block.
    const __m512i imin = _mm512_madd_epi16(min_words, sums32);
    const __m512 dmin = _mm512_permutexvar_ps(dmin_index, _mm512_castps256_ps512(d_dmin));
    if constexpr (G < 4) {
      constexpr __mmask16 kLanes = G == 1 ? 0x000F : 0x00FF;  // 4 int32 per super-block
      acc_min[v] = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(imin), dmin, acc_min[v], kLanes);
    } else {
      acc_min[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), dmin, acc_min[v]);
    }
    _mm256_store_ps(dd[v], d_dmin);
  });
  _mm512_store_si512(unpacked, u);
  asm("" : "+m"(dd), "+m"(unpacked));
  for (int j = 0; j < G; ++j) {
    const Block& block = *reinterpret_cast<const Block*>(first + j * kBytes);
    prefetch_block<kBytes>(first + (j + kPrefetchBlocks) * kBytes);
    const __m512i u_sb =
        _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(unpacked + 16 * j)));
    __m512i isum[NV];
    unrolled<NV>([&](auto v) __attribute__((always_inline)) { isum[v] = _mm512_setzero_si512(); });
    // Q5_K: qs byte l of chunk c takes bit 2c (low nibble) or 2c + 1 (high nibble) of
    // qh[l]; chunk 2h in the lower half of the vectors of half h, 2h + 1 in the upper.
    // Table lookups on qh's nibbles (port 5) give those bits as 16.
    [[maybe_unused]] __m512i qh_nibble[2];
    if constexpr (kFifthBit) {
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.qh)));
      qh_nibble[0] = _mm512_and_si512(qh, low_mask);
      qh_nibble[1] = _mm512_and_si512(_mm512_srli_epi16(qh, 4), low_mask);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i qs = _mm512_loadu_si512(block.qs + 64 * h);
      __m512i lo;
      __m512i hi;
      if constexpr (kFifthBit) {
        constexpr int kAndOr = 0xEC;  // (a & c) | b
        lo = _mm512_ternarylogic_epi32(qs, _mm512_shuffle_epi8(fifth_even, qh_nibble[h]), low_mask, kAndOr);
        hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(qs, 4),
                                       _mm512_shuffle_epi8(fifth_odd, qh_nibble[h]), low_mask, kAndOr);
      } else {
        lo = _mm512_and_si512(qs, low_mask);
        hi = _mm512_and_si512(_mm512_srli_epi16(qs, 4), low_mask);
      }
      const __m512i scales = _mm512_shuffle_epi8(u_sb, k4_scale_pick(h));
      unrolled<NV>([&](auto v) __attribute__((always_inline)) {
        const int8_t* q = p[v]->q + (i + j) * kQKK;
        const __m512i dlo = dot_bytes(lo, _mm512_loadu_si512(q + 128 * h));
        const __m512i dhi = dot_bytes(hi, _mm512_loadu_si512(q + 128 * h + 64));
        isum[v] = _mm512_dpwssd_epi32(isum[v], _mm512_packs_epi32(dlo, dhi), scales);
      });
    }
    unrolled<NV>([&](auto v) __attribute__((always_inline)) {
      acc[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[v]), _mm512_set1_ps(dd[v][2 * j]), acc[v]);
    });
  }
}

// One row against NV vectors: out[v] = dot(row, vector v).
template <bool kFifthBit, typename Block, int NV>
void k4_row(const uint8_t* row, const Prepared* const* p, const float* const* xd, int64_t n_blocks, float* out) {
  __m512 acc[NV];
  __m512 acc_min[NV];
  unrolled<NV>([&](auto v) __attribute__((always_inline)) {
    acc[v] = _mm512_setzero_ps();
    acc_min[v] = _mm512_setzero_ps();
  });
  int64_t i = 0;
  for (; i + 4 <= n_blocks; i += 4) k4_group<kFifthBit, Block, 4, NV>(row, i, p, xd, acc, acc_min);
  // Rows of 1536 values (a 1.5B model's) end in two super-blocks after one group: one
  // unpack of the scales for both.
  if (i + 2 <= n_blocks) {
    k4_group<kFifthBit, Block, 2, NV>(row, i, p, xd, acc, acc_min);
    i += 2;
  }
  for (; i < n_blocks; ++i) k4_group<kFifthBit, Block, 1, NV>(row, i, p, xd, acc, acc_min);
  unrolled<NV>([&](auto v) __attribute__((always_inline)) { out[v] = hsum(acc[v]) - hsum(acc_min[v]); });
}

// ---- Q6_K ----

// Byte picks for the scales of half n after vpackssdw: 128-bit lane L holds sub-block
// 8n + L (words 0-3) and 8n + 4 + L (words 4-7). Each word gets its int8 scale as the
// high byte (zero low byte), and an arithmetic shift by 8 then sign-extends it: port 5
// and port 0 one op each, where vpermw on sign-extended words loaded port 5 alone.
KOTO_KERNEL_INLINE __m512i q6_scale_pick(int n) {
  alignas(64) int8_t pick[64];
  for (int lane = 0; lane < 4; ++lane) {
    for (int m = 0; m < 8; ++m) {
      pick[16 * lane + 2 * m] = -1;
      pick[16 * lane + 2 * m + 1] = static_cast<int8_t>(8 * n + lane + (m < 4 ? 0 : 4));
    }
  }
  return _mm512_load_si512(pick);
}

// One row against NV vectors: out[v] = dot(row, vector v). Each super-block's codes
// are unpacked once for all the vectors.
template <int NV>
void q6_row(const uint8_t* row, const Prepared* const* p, const float* const* xd, int64_t n_blocks, float* out) {
  const __m512i low_mask = _mm512_set1_epi8(15);
  const __m512i high_mask = _mm512_set1_epi8(0x30);
  const __m512i qh_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m512i pick0 = q6_scale_pick(0);
  const __m512i pick1 = q6_scale_pick(1);
  constexpr int kOrAnd = 0xF8;  // a | (b & c)
  __m512 acc[NV];
  unrolled<NV>([&](auto v) __attribute__((always_inline)) { acc[v] = _mm512_setzero_ps(); });
  for (int64_t i = 0; i < n_blocks; ++i) {
    const uint8_t* b = row + i * static_cast<int64_t>(sizeof(BlockQ6_K));
    prefetch_block<sizeof(BlockQ6_K)>(b + kPrefetchBlocks * sizeof(BlockQ6_K));
    const BlockQ6_K& block = *reinterpret_cast<const BlockQ6_K*>(b);
    // The 4 bytes ending with d (scales 14-15, d): a load without port 5, d in lane 1.
    const __m128 d_w =
        _mm_movehdup_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(load_u32(b + offsetof(BlockQ6_K, d) - 2)))));
    // Through memory on purpose: the broadcasts then come from a load port, not port 5.
    alignas(16) float dd[NV];
    unrolled<NV>([&](auto v) __attribute__((always_inline)) {
      dd[v] = _mm_cvtss_f32(_mm_mul_ss(d_w, _mm_set_ss(xd[v][i])));
    });
    asm("" : "+m"(dd));
    const __m512i sc =
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block.scales)));
    __m512i isum[NV];
    unrolled<NV>([&](auto v) __attribute__((always_inline)) { isum[v] = _mm512_setzero_si512(); });
#pragma GCC unroll 2
    for (int n = 0; n < 2; ++n) {
      const __m512i ql = _mm512_loadu_si512(block.ql + 64 * n);
      // qh bits 0-1 / 2-3 for the low nibbles of ql's first / second 32 bytes, 4-5 / 6-7
      // for the high nibbles: with the upper half shifted by 2, bits 0-1 and 4-5 serve.
      const __m512i qh = _mm512_srlv_epi16(
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.qh + 32 * n))),
          qh_shift);
      const __m512i lo = _mm512_ternarylogic_epi32(_mm512_and_si512(ql, low_mask),
                                                   _mm512_slli_epi16(qh, 4), high_mask, kOrAnd);
      const __m512i hi = _mm512_ternarylogic_epi32(
          _mm512_and_si512(_mm512_srli_epi16(ql, 4), low_mask), qh, high_mask, kOrAnd);
      const __m512i scales = _mm512_srai_epi16(_mm512_shuffle_epi8(sc, n == 0 ? pick0 : pick1), 8);
      unrolled<NV>([&](auto v) __attribute__((always_inline)) {
        const int8_t* q = p[v]->q + i * kQKK;
        const int32_t* q_offset = p[v]->offset4 + i * (kQKK / 4);
        const __m512i dlo = _mm512_dpbusd_epi32(_mm512_loadu_si512(q_offset + 32 * n), lo,
                                                _mm512_loadu_si512(q + 128 * n));
        const __m512i dhi = _mm512_dpbusd_epi32(_mm512_loadu_si512(q_offset + 32 * n + 16), hi,
                                                _mm512_loadu_si512(q + 128 * n + 64));
        isum[v] = _mm512_dpwssd_epi32(isum[v], _mm512_packs_epi32(dlo, dhi), scales);
      });
    }
    unrolled<NV>([&](auto v) __attribute__((always_inline)) {
      acc[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[v]), _mm512_set1_ps(dd[v]), acc[v]);
    });
  }
  unrolled<NV>([&](auto v) __attribute__((always_inline)) { out[v] = hsum(acc[v]); });
}

// ---- registration ----

MatmulQ8Fn g_fallback[kTypeSlots];

// One row against the NV vectors from `first`: y[v * y_stride] for v in [first, first + NV).
template <TensorType kType, int NV>
void row_chunk(const uint8_t* row, const Prepared* const* p, const float* const* xd, int64_t n_blocks, float* y,
               int64_t y_stride) {
  float out[NV];
  if constexpr (kType == TensorType::kQ4_K) {
    k4_row<false, BlockQ4_K, NV>(row, p, xd, n_blocks, out);
  } else if constexpr (kType == TensorType::kQ5_K) {
    k4_row<true, BlockQ5_K, NV>(row, p, xd, n_blocks, out);
  } else {
    q6_row<NV>(row, p, xd, n_blocks, out);
  }
  for (int v = 0; v < NV; ++v) y[v * y_stride] = out[v];
}

template <TensorType kType>
void matmul_q8_decode(const void* w, int64_t row_bytes, const Q8Vectors& x, int64_t n_vectors,
                      float* y, int64_t y_stride, int64_t n_rows) {
  if (n_vectors < 1 || n_vectors > kMaxFused) {
    g_fallback[static_cast<uint32_t>(kType)](w, row_bytes, x, n_vectors, y, y_stride, n_rows);
    return;
  }
  const auto* rows = static_cast<const uint8_t*>(w);
  const int64_t n_blocks = x.n / kQKK;
  const Prepared* p[kMaxFused];
  const float* xd[kMaxFused];
  for (int v = 0; v < n_vectors; ++v) {
    p[v] = kType == TensorType::kQ6_K ? &prepare_q6(x, v) : &prepare_k4(x, v);
    xd[v] = x.d + v * n_blocks;
  }
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = rows + r * row_bytes;
    // Up to kMaxChunk vectors per pass; further passes find the row's blocks in L1.
    for (int v = 0; v < n_vectors; v += kMaxChunk) {
      float* out = y + v * y_stride + r;
      const int64_t left = n_vectors - v;  // no std::min: see the ODR rule in kernel_table.h
      switch (left < kMaxChunk ? left : kMaxChunk) {
        case 1: row_chunk<kType, 1>(row, p + v, xd + v, n_blocks, out, y_stride); break;
        case 2: row_chunk<kType, 2>(row, p + v, xd + v, n_blocks, out, y_stride); break;
        case 3: row_chunk<kType, 3>(row, p + v, xd + v, n_blocks, out, y_stride); break;
        default: row_chunk<kType, 4>(row, p + v, xd + v, n_blocks, out, y_stride); break;
      }
    }
  }
}

template <TensorType kType>
void install(KernelTable& table) {
  const auto slot = static_cast<uint32_t>(kType);
  g_fallback[slot] = table.types[slot].matmul_q8;
  table.types[slot].matmul_q8 = &matmul_q8_decode<kType>;
}

}  // namespace

void add_q8_avx512_k_decode_kernels(KernelTable& table) {
  install<TensorType::kQ4_K>(table);
  install<TensorType::kQ5_K>(table);
  install<TensorType::kQ6_K>(table);
}

}  // namespace koto::kernels

#undef KOTO_KERNEL_INLINE
