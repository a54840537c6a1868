// Decoding (one activation vector, or up to kMaxFused) for the 32-value block types on
// AVX-512 VNNI: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL and IQ4_XS (whose 256-value
// super-blocks are eight 32-value sub-blocks with their own scales, against the
// kBlocks32 activations). More vectors (prefill) go to the entry this file replaces.
// With several vectors (sequences decoding together in a server's step), a group's
// codes are decoded once and meet each vector in turn.
//
// The general kernel (matmul_q8_x86.inc) turns every block into float right away:
// about 20 vector instructions per block. Here blocks go in groups of 16 and stay
// integer per block:
//   - vpdpbusd multiplies unsigned codes by the signed activations: Q8_0 and IQ4 codes
//     are made unsigned by +128 (xor 0x80, a code book + 128), Q4_0 codes are 0..15 for
//     value - 8, Q5_0 0..31 for value - 16. A zmm holds two blocks (Q8_0) or the first
//     or last 16 values of four blocks (the 4-bit types), against activations
//     reordered once per call to match (prepare());
//   - a vpermt2d/add tree folds the int32 lanes of a group into one zmm of 16
//     per-block sums;
//   - per group, one cvt and two multiply-adds with vectors of 16 scales apply the
//     weight scales (gathered), the activation scales and the offset term
//     offset * d_w * (d_x * sum of q), from the activation's per-16 sums.
// Blocks past the last whole group take a simpler per-block path. Four rows per pass
// share the activation loads and give independent chains.
//
// 14336 x 4096, us per call, min over repeated runs on a shared, noisy machine (1t CPU
// time | 2t real time), before -> after: Q4_0 2740 -> 1309 | 1480 -> 762, Q5_0 3504 ->
// 1946 | 1862 -> 1057, Q8_0 2495 -> 2095 | 1280 -> 1154, IQ4_XS 3778 -> 1317 | 1936 ->
// 775, IQ4_NL 3311 -> 1444 | 1761 -> 854, Q4_1 3707 -> 1388 | 3686 -> 816, Q5_1 4780 ->
// 2038 | 2360 -> 1140. Q8_0 (62 MB) is limited by one core's L3 bandwidth (fewer
// instructions did not help), the others by instructions.
//
// Compiled with -mavx512*: by the ODR rule in kernel_table.h everything but
// add_q8_avx512_block_decode_kernels is in an anonymous namespace.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/quant_blocks.h"
#include "tensor/repack.h"

#define KOTO_KERNEL_INLINE [[gnu::always_inline]] inline

namespace koto::kernels {
namespace {

constexpr int kGroup = 16;  // 32-value blocks per group: one zmm of per-block sums
// Longest rows taken (values): the activations are reordered into a stack buffer
// sized for this; longer rows go to the general kernel.
constexpr int64_t kMaxSplit = 32768;
// Software prefetch distance along a weight row streamed alone (several vectors, one
// row per pass; the weights stream through once). Four rows per pass prefetch the same
// place in the next pass instead (rows_pass).
constexpr int64_t kPrefetchBytes = 6144;

#include "tensor/simd_helpers.inc"

KOTO_KERNEL_INLINE __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
KOTO_KERNEL_INLINE __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
KOTO_KERNEL_INLINE __m128i load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

KOTO_KERNEL_INLINE int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Two vectors of partial sums, G lanes per block (blocks in lane order, a's first),
// into one with G / 2 lanes per block: lane j = partial j % (G/2) plus partial
// j % (G/2) + G/2 of block j / (G/2).
template <int G>
KOTO_KERNEL_INLINE __m512i fold(__m512i a, __m512i b) {
  static constexpr auto kFirst = [] {
    std::array<int32_t, 16> index{};
    for (int j = 0; j < 16; ++j) index[j] = (j / (G / 2)) * G + j % (G / 2);
    return index;
  }();
  const __m512i first = _mm512_loadu_si512(kFirst.data());
  const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(G / 2));
  return _mm512_add_epi32(_mm512_permutex2var_epi32(a, first, b),
                          _mm512_permutex2var_epi32(a, second, b));
}

// 0, step, 2 * step, ... as int32 lanes.
KOTO_KERNEL_INLINE __m512i lane_offsets(int step) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(step));
}

// The 16 f16 words at p, p + stride, ..., as floats.
KOTO_KERNEL_INLINE __m512 gather_f16(const uint8_t* p, __m512i offsets) {
  const __m512i words = _mm512_i32gather_epi32(offsets, p, 1);
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words));
}

// Activations for the 4-bit types: per four blocks of 32 (128 bytes), the first 16
// values of each block, then the last 16 of each, so that 16 packed bytes of a block
// (low nibbles = first 16 values, high = last 16) line up with them. Only whole
// groups are reordered; the tail reads the activations as they are.
void split_activations(const int8_t* q, int64_t n_groups, int8_t* out) {
  const __m512i first = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
  const __m512i second = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
  for (int64_t i = 0; i < n_groups * kGroup * kQK; i += 128) {
    const __m512i a = load512(q + i);
    const __m512i b = load512(q + i + 64);
    _mm512_storeu_si512(out + i, _mm512_permutex2var_epi64(a, first, b));
    _mm512_storeu_si512(out + i + 64, _mm512_permutex2var_epi64(a, second, b));
  }
}

// Base of the 4-bit types: they read the split activations.
struct SplitActivations {
  static constexpr int kPreparedBytes = kGroup * kQK;  // activation bytes per group
  static constexpr bool kHasMin = false;
  static constexpr float kOffset = 0.0f;
  static void prepare(const int8_t* q, int64_t n_groups, int8_t* out) {
    split_activations(q, n_groups, out);
  }
};

// The result of one group of 16 blocks of one row against NV vectors.
template <int NV>
struct GroupSums {
  __m512i isum[NV];  // per block and vector: sum of unsigned code * q
  __m512 scale;      // per block: the weight scale
  __m512 min;        // per block: the weight minimum (kHasMin types)
};

// ---- per type: a group of 16 blocks, and one block (the tail) ----
//
// weight = scale * (code + kOffset), or scale * code + min (kHasMin). prepare() lays
// out the activations of whole groups, kPreparedBytes per group; group(p, xs) takes the
// group at p of a row with its prepared activations; block(b, scale, min) gives the
// unsigned codes of the block at b in value order, with its scale (and min).

KOTO_KERNEL_INLINE __m256i nibbles256(const uint8_t* qs) {
  const __m128i packed = load128(qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
                          _mm256_set1_epi8(15));
}

// 16 packed bytes of four blocks of 32, one per 128-bit lane: decoded once, then two
// dot products against each vector's split activations (xs[v] + offset), giving 4
// lanes per block in out[v]. `to_codes` maps the nibbles (bytes 0..15) to codes.
template <int NV, typename ToCodes>
KOTO_KERNEL_INLINE void nibble_dots(__m512i packed, const int8_t* const* xs, int64_t offset, ToCodes&& to_codes,
                                    __m512i* out) {
  const __m512i mask = _mm512_set1_epi8(15);
  const __m512i lo = to_codes(_mm512_and_si512(packed, mask), 0);
  const __m512i hi = to_codes(_mm512_and_si512(_mm512_srli_epi16(packed, 4), mask), 1);
  unrolled<NV>([&](auto v) __attribute__((always_inline)) {
    out[v] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, load512(xs[v] + offset)), hi,
                                 load512(xs[v] + offset + 64));
  });
}

// The 16 qs bytes of four blocks `stride` apart starting at p, one per 128-bit lane.
KOTO_KERNEL_INLINE __m512i four_blocks(const uint8_t* p, int64_t stride) {
  __m512i v = _mm512_castsi128_si512(load128(p));
  v = _mm512_inserti32x4(v, load128(p + stride), 1);
  v = _mm512_inserti32x4(v, load128(p + 2 * stride), 2);
  return _mm512_inserti32x4(v, load128(p + 3 * stride), 3);
}

// Four vectors of 4 lanes per block into one of 16 per-block sums.
KOTO_KERNEL_INLINE __m512i fold4(const __m512i* u) {
  return fold<2>(fold<4>(u[0], u[1]), fold<4>(u[2], u[3]));
}

// The four chunks of a group (u[c][v]: chunk c against vector v), folded per vector.
template <int NV>
KOTO_KERNEL_INLINE void fold_chunks(__m512i (*u)[NV], __m512i* isum) {
  unrolled<NV>([&](auto v) __attribute__((always_inline)) {
    const __m512i chunks[4] = {u[0][v], u[1][v], u[2][v], u[3][v]};
    isum[v] = fold4(chunks);
  });
}

// Q8_0 activations: per pair of blocks A, B, 64 bytes lined up with a 64-byte load
// of the weights at A's codes (A's 32 codes, B's scale, B's first 30 codes): xA, two
// zeros, xB 0..27, two zeros. After 8 pairs, one int32 per block with its values
// 28..31 (zero for the A blocks, whose loads covered them), matched by a gather.
constexpr int kQ8PreparedBytes = 8 * 64 + 64;

void prepare_q8_0(const int8_t* q, int64_t n_groups, int8_t* out) {
  std::memset(out, 0, static_cast<size_t>(n_groups * kQ8PreparedBytes));
  for (int64_t g = 0; g < n_groups; ++g, q += kGroup * kQK, out += kQ8PreparedBytes) {
    for (int k = 0; k < 8; ++k) {
      std::memcpy(out + 64 * k, q + 64 * k, 32);
      std::memcpy(out + 64 * k + 34, q + 64 * k + 32, 28);
      std::memcpy(out + 512 + 4 * (2 * k + 1), q + 64 * k + 60, 4);
    }
  }
}

struct DecodeQ8_0 {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  static constexpr float kOffset = -128.0f;
  static constexpr int kPreparedBytes = kQ8PreparedBytes;
  static constexpr bool kHasMin = false;
  static void prepare(const int8_t* q, int64_t n_groups, int8_t* out) {
    prepare_q8_0(q, n_groups, out);
  }
  // Q8_0 needs eight accumulators per vector: the vectors take turns, the group's 576
  // bytes stay in L1 between them.
  template <int NV>
  KOTO_KERNEL_INLINE static GroupSums<NV> group(const uint8_t* p, const int8_t* const* xs, int64_t offset) {
    // Two blocks in one load, no insert: 64 bytes from A's codes stay inside B.
    const __m512i flip = _mm512_set1_epi8(-128);
    const __m512i offsets = lane_offsets(kBytes);
    GroupSums<NV> out;
    const __m512i last = _mm512_xor_si512(_mm512_i32gather_epi32(offsets, p + 30, 1), flip);
    unrolled<NV>([&](auto v) __attribute__((always_inline)) {
      const int8_t* x = xs[v] + offset;
      __m512i s[8];
      unrolled<8>([&](auto k) __attribute__((always_inline)) {
        const __m512i w = _mm512_xor_si512(load512(p + 2 * k * kBytes + 2), flip);
        s[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, load512(x + 64 * k));
      });
      const __m512i folded = fold<2>(fold<4>(fold<8>(s[0], s[1]), fold<8>(s[2], s[3])),
                                     fold<4>(fold<8>(s[4], s[5]), fold<8>(s[6], s[7])));
      out.isum[v] = _mm512_dpbusd_epi32(folded, last, load512(x + 512));
    });
    out.scale = gather_f16(p, offsets);
    out.min = _mm512_setzero_ps();
    return out;
  }
  KOTO_KERNEL_INLINE static __m256i block(const uint8_t* b, float& scale, float&) {
    scale = load_f16(b);
    return _mm256_xor_si256(load256(b + 2), _mm256_set1_epi8(-128));
  }
};

struct DecodeQ4_0 : SplitActivations {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  static constexpr float kOffset = -8.0f;
  template <int NV>
  KOTO_KERNEL_INLINE static GroupSums<NV> group(const uint8_t* p, const int8_t* const* xs, int64_t offset) {
    __m512i u[4][NV];
    unrolled<4>([&](auto c) __attribute__((always_inline)) {
      nibble_dots<NV>(four_blocks(p + 4 * c * kBytes + 2, kBytes), xs, offset + 128 * c,
                      [](__m512i v, int) __attribute__((always_inline)) { return v; }, u[c]);
    });
    GroupSums<NV> out;
    fold_chunks<NV>(u, out.isum);
    out.scale = gather_f16(p, lane_offsets(kBytes));
    out.min = _mm512_setzero_ps();
    return out;
  }
  KOTO_KERNEL_INLINE static __m256i block(const uint8_t* b, float& scale, float&) {
    scale = load_f16(b);
    return nibbles256(b + 2);
  }
};

// f16 word kWord of the 8-byte heads (first bytes: d, m, qh) of 16 blocks, as floats;
// block j's head is qword j % 8 of heads_lo (j < 8) or heads_hi.
template <int kWord>
KOTO_KERNEL_INLINE __m512 head_f16(__m512i heads_lo, __m512i heads_hi) {
  static constexpr auto kIndex = [] {
    std::array<int16_t, 32> index{};
    for (int e = 0; e < 16; ++e) index[e] = static_cast<int16_t>(4 * e + kWord);
    return index;
  }();
  return _mm512_cvtph_ps(_mm512_castsi512_si256(
      _mm512_permutex2var_epi16(heads_lo, _mm512_loadu_si512(kIndex.data()), heads_hi)));
}

// The fifth bits of 16 blocks (qh at word kWord of the heads) as byte masks for the
// split layout: masks[2c + h] covers half h (bits 16h..16h+15) of blocks 4c..4c+3.
// Stored and reloaded through general registers: GCC's kmovq from a register costs a
// shuffle-port op, but a kmovq straight from memory after the store measured 35%
// slower (no store forwarding into mask registers).
template <int kWord>
KOTO_KERNEL_INLINE void fifth_bit_masks(__m512i heads_lo, __m512i heads_hi, __mmask64* masks) {
  static constexpr auto kOrder = [] {
    std::array<int16_t, 32> index{};
    for (int e = 0; e < 32; ++e) {
      index[e] = static_cast<int16_t>(4 * (4 * (e / 8) + e % 4) + kWord + (e % 8) / 4);
    }
    return index;
  }();
  _mm512_store_si512(masks, _mm512_permutex2var_epi16(heads_lo, _mm512_loadu_si512(kOrder.data()),
                                                      heads_hi));
}

// Q5_0 and Q5_1: 4-bit codes plus a fifth bit from qh at byte kQh, codes at kQs.
template <int kQh, int kQs, int kStride, int NV>
KOTO_KERNEL_INLINE void q5_group(const uint8_t* p, const int8_t* const* xs, int64_t offset, __m512i& heads_lo,
                                 __m512i& heads_hi, __m512i* isum) {
  // The first 8 bytes of each block by two 8-lane gathers.
  const __m256i offsets = _mm512_castsi512_si256(lane_offsets(kStride));
  heads_lo = _mm512_i32gather_epi64(offsets, p, 1);
  heads_hi = _mm512_i32gather_epi64(offsets, p + 8 * kStride, 1);
  alignas(64) __mmask64 masks[8];
  fifth_bit_masks<kQh / 2>(heads_lo, heads_hi, masks);
  const __m512i sixteen = _mm512_set1_epi8(16);
  __m512i u[4][NV];
  unrolled<4>([&](auto c) __attribute__((always_inline)) {
    nibble_dots<NV>(four_blocks(p + 4 * c * kStride + kQs, kStride), xs, offset + 128 * c,
                    [&](__m512i v, int h) __attribute__((always_inline)) {
                      return _mm512_mask_add_epi8(v, masks[2 * c + h], v, sixteen);
                    },
                    u[c]);
  });
  fold_chunks<NV>(u, isum);
}

KOTO_KERNEL_INLINE __m256i q5_block(const uint8_t* qh, const uint8_t* qs) {
  const __m256i w = nibbles256(qs);
  return _mm256_mask_add_epi8(w, load_u32(qh), w, _mm256_set1_epi8(16));
}

struct DecodeQ5_0 : SplitActivations {
  static constexpr int kBytes = sizeof(BlockQ5_0);
  static constexpr float kOffset = -16.0f;
  template <int NV>
  KOTO_KERNEL_INLINE static GroupSums<NV> group(const uint8_t* p, const int8_t* const* xs, int64_t offset) {
    __m512i lo, hi;
    GroupSums<NV> out;
    q5_group<2, 6, kBytes, NV>(p, xs, offset, lo, hi, out.isum);
    out.scale = head_f16<0>(lo, hi);
    out.min = _mm512_setzero_ps();
    return out;
  }
  KOTO_KERNEL_INLINE static __m256i block(const uint8_t* b, float& scale, float&) {
    scale = load_f16(b);
    return q5_block(b + 2, b + 6);
  }
};

// Q5_0R (tensor/repack.h): Q5_0 repacked so that a 64-byte load holds dword c of the
// codes of all 16 blocks, lane j = block j, with the fifth bits as ready byte masks.
// The activations are laid out to match once per call (register k, lane j = values
// 4k..4k+3 of block j); then a group is four loads, eight masked adds and eight
// vpdpbusd that leave every block's sum whole in its lane: no gathers, inserts or
// folds. Same integer sums and the same float steps per lane as DecodeQ5_0, so the
// same bits.
void prepare_q5_0r(const int8_t* q, int64_t n_groups, int8_t* out) {
  for (int64_t g = 0; g < n_groups; ++g, q += kGroup * kQK, out += kGroup * kQK) {
    for (int j = 0; j < kGroup; ++j) {
      for (int k = 0; k < 8; ++k) std::memcpy(out + 64 * k + 4 * j, q + kQK * j + 4 * k, 4);
    }
  }
}

struct DecodeQ5_0R {
  static constexpr int kBytes = sizeof(BlockQ5_0);
  static constexpr float kOffset = -16.0f;
  static constexpr int kPreparedBytes = kGroup * kQK;
  static constexpr bool kHasMin = false;
  static void prepare(const int8_t* q, int64_t n_groups, int8_t* out) { prepare_q5_0r(q, n_groups, out); }
  template <int NV>
  KOTO_KERNEL_INLINE static GroupSums<NV> group(const uint8_t* p, const int8_t* const* xs, int64_t offset) {
    const __m512i low4 = _mm512_set1_epi8(15);
    const __m512i sixteen = _mm512_set1_epi8(16);
    // Two chains per vector (low and high nibbles) keep vpdpbusd's latency hidden.
    __m512i low_sum[NV], high_sum[NV];
    unrolled<NV>([&](auto v) __attribute__((always_inline)) {
      low_sum[v] = _mm512_setzero_si512();
      high_sum[v] = _mm512_setzero_si512();
    });
    unrolled<4>([&](auto c) __attribute__((always_inline)) {
      const __m512i packed = load512(p + kRepackCodesAt + 64 * c);
      __m512i low = _mm512_and_si512(packed, low4);
      __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
      low = _mm512_mask_add_epi8(low, _cvtu64_mask64(load_u64(p + kRepackMasksAt + 8 * c)), low, sixteen);
      high = _mm512_mask_add_epi8(high, _cvtu64_mask64(load_u64(p + kRepackMasksAt + 8 * (c + 4))), high, sixteen);
      unrolled<NV>([&](auto v) __attribute__((always_inline)) {
        low_sum[v] = _mm512_dpbusd_epi32(low_sum[v], low, load512(xs[v] + offset + 64 * c));
        high_sum[v] = _mm512_dpbusd_epi32(high_sum[v], high, load512(xs[v] + offset + 64 * (c + 4)));
      });
    });
    GroupSums<NV> out;
    unrolled<NV>([&](auto v) __attribute__((always_inline)) { out.isum[v] = _mm512_add_epi32(low_sum[v], high_sum[v]); });
    out.scale = _mm512_cvtph_ps(load256(p));
    out.min = _mm512_setzero_ps();
    return out;
  }
  KOTO_KERNEL_INLINE static __m256i block(const uint8_t* b, float& scale, float& min) {
    return DecodeQ5_0::block(b, scale, min);  // the plain blocks after the last group
  }
};

// The types with a per-block minimum: weight = d * code + m.
struct DecodeQ4_1 : SplitActivations {
  static constexpr int kBytes = sizeof(BlockQ4_1);
  static constexpr bool kHasMin = true;
  template <int NV>
  KOTO_KERNEL_INLINE static GroupSums<NV> group(const uint8_t* p, const int8_t* const* xs, int64_t offset) {
    __m512i u[4][NV];
    unrolled<4>([&](auto c) __attribute__((always_inline)) {
      nibble_dots<NV>(four_blocks(p + 4 * c * kBytes + 4, kBytes), xs, offset + 128 * c,
                      [](__m512i v, int) __attribute__((always_inline)) { return v; }, u[c]);
    });
    const __m512i heads = _mm512_i32gather_epi32(lane_offsets(kBytes), p, 1);
    GroupSums<NV> out;
    fold_chunks<NV>(u, out.isum);
    out.scale = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(heads));
    out.min = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(heads, 16)));
    return out;
  }
  KOTO_KERNEL_INLINE static __m256i block(const uint8_t* b, float& scale, float& min) {
    scale = load_f16(b);
    min = load_f16(b + 2);
    return nibbles256(b + 4);
  }
};

struct DecodeQ5_1 : SplitActivations {
  static constexpr int kBytes = sizeof(BlockQ5_1);
  static constexpr bool kHasMin = true;
  template <int NV>
  KOTO_KERNEL_INLINE static GroupSums<NV> group(const uint8_t* p, const int8_t* const* xs, int64_t offset) {
    __m512i lo, hi;
    GroupSums<NV> out;
    q5_group<4, 8, kBytes, NV>(p, xs, offset, lo, hi, out.isum);
    out.scale = head_f16<0>(lo, hi);
    out.min = head_f16<1>(lo, hi);
    return out;
  }
  KOTO_KERNEL_INLINE static __m256i block(const uint8_t* b, float& scale, float& min) {
    scale = load_f16(b);
    min = load_f16(b + 2);
    return q5_block(b + 4, b + 8);
  }
};

// The IQ4 code book + 128 (unsigned), in every 128-bit lane.
KOTO_KERNEL_INLINE __m512i iq4_table() {
  return _mm512_broadcast_i32x4(_mm_xor_si128(load128(kIq4nlValues), _mm_set1_epi8(-128)));
}

struct DecodeIQ4_NL : SplitActivations {
  static constexpr int kBytes = sizeof(BlockIQ4_NL);
  static constexpr float kOffset = -128.0f;
  template <int NV>
  KOTO_KERNEL_INLINE static GroupSums<NV> group(const uint8_t* p, const int8_t* const* xs, int64_t offset) {
    const __m512i table = iq4_table();
    __m512i u[4][NV];
    unrolled<4>([&](auto c) __attribute__((always_inline)) {
      nibble_dots<NV>(four_blocks(p + 4 * c * kBytes + 2, kBytes), xs, offset + 128 * c,
                      [&](__m512i v, int) __attribute__((always_inline)) { return _mm512_shuffle_epi8(table, v); },
                      u[c]);
    });
    GroupSums<NV> out;
    fold_chunks<NV>(u, out.isum);
    out.scale = gather_f16(p, lane_offsets(kBytes));
    out.min = _mm512_setzero_ps();
    return out;
  }
  KOTO_KERNEL_INLINE static __m256i block(const uint8_t* b, float& scale, float&) {
    scale = load_f16(b);
    return _mm256_shuffle_epi8(_mm512_castsi512_si256(iq4_table()), nibbles256(b + 2));
  }
};

// IQ4_XS: a group is two super-blocks, 16 sub-blocks of 32 with scale d * (ls - 32).
struct DecodeIQ4_XS : SplitActivations {
  static constexpr int kBytes = sizeof(BlockIQ4_XS) / 8;  // per 32 values, for prefetching
  static constexpr float kOffset = -128.0f;
  template <int NV>
  KOTO_KERNEL_INLINE static GroupSums<NV> group(const uint8_t* p, const int8_t* const* xs, int64_t offset) {
    const __m512i table = iq4_table();
    const uint8_t* second = p + sizeof(BlockIQ4_XS);
    __m512i u[4][NV];
    unrolled<4>([&](auto c) __attribute__((always_inline)) {
      const uint8_t* qs = (c < 2 ? p : second) + 8 + 64 * (c % 2);
      nibble_dots<NV>(load512(qs), xs, offset + 128 * c,
                      [&](__m512i v, int) __attribute__((always_inline)) { return _mm512_shuffle_epi8(table, v); },
                      u[c]);
    });
    // Lane j: sub-block j % 8 of super-block j / 8; ls = low nibble of scales_l
    // (4 bits each) | 2 bits of scales_h << 4.
    const __mmask16 upper = 0xff00;
    const __m512i sub = _mm512_and_si512(lane_offsets(1), _mm512_set1_epi32(7));
    const __m512i low_bits =
        _mm512_mask_set1_epi32(_mm512_set1_epi32(static_cast<int>(load_u32(p + 4))), upper,
                               static_cast<int>(load_u32(second + 4)));
    const __m512i high_bits = _mm512_mask_set1_epi32(_mm512_set1_epi32(load_u16(p + 2)), upper,
                                                     load_u16(second + 2));
    // Nibble j of scales_l at bits 0-3, bits 2j, 2j + 1 of scales_h at bits 4-5 with
    // zeros above, merged by a bit select (bits 0-3 from low, the rest from high).
    const __m512i low = _mm512_srlv_epi32(low_bits, _mm512_slli_epi32(sub, 2));
    const __m512i to_top = _mm512_sub_epi32(_mm512_set1_epi32(30), _mm512_add_epi32(sub, sub));
    const __m512i high = _mm512_srli_epi32(_mm512_sllv_epi32(high_bits, to_top), 26);
    const __m512i ls = _mm512_sub_epi32(
        _mm512_ternarylogic_epi32(low, high, _mm512_set1_epi32(15), 0xe4), _mm512_set1_epi32(32));
    const __m512 d = _mm512_mask_mov_ps(_mm512_set1_ps(load_f16(p)), upper,
                                        _mm512_set1_ps(load_f16(second)));
    GroupSums<NV> out;
    fold_chunks<NV>(u, out.isum);
    out.scale = _mm512_mul_ps(d, _mm512_cvtepi32_ps(ls));
    out.min = _mm512_setzero_ps();
    return out;
  }
  // Sub-block b % 8 of the super-block at b / 8.
  KOTO_KERNEL_INLINE static __m256i sub_block(const uint8_t* sb, int j, float& scale, float&) {
    const int ls =
        ((sb[4 + j / 2] >> (4 * (j % 2))) & 15) | (((load_u16(sb + 2) >> (2 * j)) & 3) << 4);
    scale = load_f16(sb) * static_cast<float>(ls - 32);
    return _mm256_shuffle_epi8(_mm512_castsi512_si256(iq4_table()), nibbles256(sb + 8 + 16 * j));
  }
};

// Weight block b (of 32 values) of a row: its codes and scale.
template <typename T>
KOTO_KERNEL_INLINE __m256i tail_block(const uint8_t* row, int64_t b, float& scale, float& min) {
  if constexpr (requires { T::sub_block; }) {
    return T::sub_block(row + (b / 8) * sizeof(BlockIQ4_XS), static_cast<int>(b % 8), scale, min);
  } else {
    return T::block(row + b * T::kBytes, scale, min);
  }
}

// ---- rows ----

// R rows from `rows` (row_bytes apart) against NV vectors (their prepared activations
// xs[v], the rest of x at vector index v0 + v) into y[v * y_stride + r].
//
// MatmulQ8Decode/<type>/avx512/2t/<n> (14336 x 4096, us, 2 threads): the old path for
// 2 and 4 vectors (the tiles, decoding rows for only a few vectors) against this one:
// Q5_0 3079 -> 1531 and 3247 -> 2262 (one vector: 1222), Q4_0 ~ -> 1146 and 1812 (857).
template <typename T, int R, int NV>
KOTO_KERNEL_INLINE void rows_pass(const uint8_t* rows, int64_t row_bytes, const Q8Vectors& x, int64_t v0,
                                  const int8_t* const* xs, float* y, int64_t y_stride) {
  const int64_t n_blocks = x.n / kQK;
  const int64_t n_groups = n_blocks / kGroup;
  constexpr int64_t kGroupBytes = int64_t{kGroup} * T::kBytes;
  const __m512i even = lane_offsets(2);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 offset = _mm512_set1_ps(T::kOffset);
  // Prefetch distance: R rows per pass read R streams a row apart; a fixed distance
  // would land half its prefetches in rows this pass is reading already (llama2-7b's
  // rows are 2816 bytes). The same place R rows on is the next pass: every prefetched
  // line is one the kernel reads next, and the rows' streams together read ahead in
  // order. Q5_0R 4096-value rows streamed from the page cache, 2 threads: 44-47 ->
  // 57-59 GB/s.
  const int64_t ahead = R > 1 ? R * row_bytes : kPrefetchBytes;
  __m512 acc[R][NV];
  unrolled<R>([&](auto r) __attribute__((always_inline)) {
    unrolled<NV>([&](auto v) __attribute__((always_inline)) { acc[r][v] = _mm512_setzero_ps(); });
  });
  for (int64_t g = 0; g < n_groups; ++g) {
    // Per block and vector: d_x and offset * d_x * sum of q (the two per-16 sums added).
    __m512 dx[NV], ds[NV], off[NV];
    unrolled<NV>([&](auto v) __attribute__((always_inline)) {
      const float* d = x.d + (v0 + v) * n_blocks;
      const float* dsum = x.dsum + (v0 + v) * 2 * n_blocks;
      dx[v] = _mm512_loadu_ps(d + kGroup * g);
      const __m512 ds_a = _mm512_loadu_ps(dsum + 2 * kGroup * g);
      const __m512 ds_b = _mm512_loadu_ps(dsum + 2 * kGroup * g + 16);
      ds[v] = _mm512_add_ps(_mm512_permutex2var_ps(ds_a, even, ds_b), _mm512_permutex2var_ps(ds_a, odd, ds_b));
      off[v] = _mm512_mul_ps(offset, ds[v]);
    });
    unrolled<R>([&](auto r) __attribute__((always_inline)) {
      const uint8_t* p = rows + r * row_bytes + g * kGroupBytes;
      unrolled<(kGroupBytes + 63) / 64>([&](auto l) __attribute__((always_inline)) {
        _mm_prefetch(reinterpret_cast<const char*>(p) + ahead + 64 * l, _MM_HINT_T0);
      });
      const GroupSums<NV> s = T::template group<NV>(p, xs, g * T::kPreparedBytes);
      unrolled<NV>([&](auto v) __attribute__((always_inline)) {
        if constexpr (T::kHasMin) {
          acc[r][v] = _mm512_fmadd_ps(ds[v], s.min, acc[r][v]);
          acc[r][v] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s.isum[v]), dx[v]), s.scale, acc[r][v]);
        } else {
          acc[r][v] = _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(s.isum[v]), dx[v], off[v]), s.scale,
                                      acc[r][v]);
        }
      });
    });
  }
  unrolled<R>([&](auto r) __attribute__((always_inline)) {
    const uint8_t* row = rows + r * row_bytes;
    unrolled<NV>([&](auto v) __attribute__((always_inline)) {
      const int8_t* q = x.q + (v0 + v) * x.n;
      const float* d = x.d + (v0 + v) * n_blocks;
      const float* dsum = x.dsum + (v0 + v) * 2 * n_blocks;
      float tail = 0.0f;
      for (int64_t b = n_groups * kGroup; b < n_blocks; ++b) {
        float scale, min = 0.0f;
        const __m256i w = tail_block<T>(row, b, scale, min);
        const int32_t isum = hsum_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), w, load256(q + b * kQK)));
        const float block_ds = dsum[2 * b] + dsum[2 * b + 1];
        tail += scale * (d[b] * static_cast<float>(isum) + T::kOffset * block_ds) + min * block_ds;
      }
      y[v * y_stride + r] = _mm512_reduce_add_ps(acc[r][v]) + tail;
    });
  });
}

// Most vectors taken here, in one pass; more go to the tile kernel this file wraps (at
// 8 vectors it was faster: Q5_0 3838 against 4515 us for two passes of 4).
constexpr int64_t kMaxFused = 4;

template <typename T, int NV>
void rows_chunk(const uint8_t* rows, int64_t row_bytes, const Q8Vectors& x, int64_t v0, const int8_t* const* xs,
                float* y, int64_t y_stride, int64_t n_rows) {
  // One vector: four rows per pass share the activation loads and give independent
  // chains and streams. On an L3-resident matrix 3 and 4 rows measured no faster than
  // 2, but the model streams its weights from memory, and there four rows won in
  // alternating runs: tg on qwen2.5-1.5b Q4_0 29.7 -> 36.4 tokens/s, Q8_0 14.3 -> 16.3,
  // llama2-7b Q5_0R 6.48 -> 7.37. Several vectors: one row, its codes decoded once.
  constexpr int kRows = NV == 1 ? 4 : 1;
  int64_t r = 0;
  for (; r + kRows <= n_rows; r += kRows) {
    rows_pass<T, kRows, NV>(rows + r * row_bytes, row_bytes, x, v0, xs, y + r, y_stride);
  }
  for (; r < n_rows; ++r) rows_pass<T, 1, NV>(rows + r * row_bytes, row_bytes, x, v0, xs, y + r, y_stride);
}

template <typename T>
void matvec_rows(const void* w, int64_t row_bytes, const Q8Vectors& x, int64_t n_vectors, float* y,
                 int64_t y_stride, int64_t n_rows) {
  const auto* rows = static_cast<const uint8_t*>(w);
  // The prepared activations on the stack, sized for this call: a std::vector would
  // instantiate library templates with AVX-512 code (see the ODR rule in kernel_table.h).
  const int64_t n_groups = x.n / (kGroup * kQK);
  const int64_t per_vector = (n_groups * T::kPreparedBytes + 63) / 64 * 64;
  auto* base = static_cast<int8_t*>(__builtin_alloca(static_cast<size_t>(n_vectors * per_vector + 64)));
  int8_t* prepared = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(base) + 63) & ~uintptr_t{63});
  const int8_t* xs[kMaxFused];
  for (int64_t v = 0; v < n_vectors; ++v) {
    T::prepare(x.q + v * x.n, n_groups, prepared + v * per_vector);
    xs[v] = prepared + v * per_vector;
  }
  switch (n_vectors) {  // kMaxFused <= kMaxChunk: one pass
    case 1: rows_chunk<T, 1>(rows, row_bytes, x, 0, xs, y, y_stride, n_rows); break;
    case 2: rows_chunk<T, 2>(rows, row_bytes, x, 0, xs, y, y_stride, n_rows); break;
    case 3: rows_chunk<T, 3>(rows, row_bytes, x, 0, xs, y, y_stride, n_rows); break;
    default: rows_chunk<T, 4>(rows, row_bytes, x, 0, xs, y, y_stride, n_rows); break;
  }
}

// The entries these kernels replace, called for several vectors.
MatmulQ8Fn previous[kTypeSlots];

template <typename T, TensorType kType>
void matmul_q8_decode(const void* w, int64_t row_bytes, const Q8Vectors& x, int64_t n_vectors,
                      float* y, int64_t y_stride, int64_t n_rows) {
  if (n_vectors >= 1 && n_vectors <= kMaxFused && x.n <= kMaxSplit) {
    matvec_rows<T>(w, row_bytes, x, n_vectors, y, y_stride, n_rows);
  } else {
    previous[static_cast<uint32_t>(kType)](w, row_bytes, x, n_vectors, y, y_stride, n_rows);
  }
}

template <typename T, TensorType kType>
void install(KernelTable& table) {
  const auto slot = static_cast<uint32_t>(kType);
  if (table.types[slot].matmul_q8 == &matmul_q8_decode<T, kType>) return;  // installed twice
  previous[slot] = table.types[slot].matmul_q8;
  table.types[slot].matmul_q8 = &matmul_q8_decode<T, kType>;
}

}  // namespace

void add_q8_avx512_block_decode_kernels(KernelTable& table) {
  install<DecodeQ4_0, TensorType::kQ4_0>(table);
  install<DecodeQ4_1, TensorType::kQ4_1>(table);
  install<DecodeQ5_0, TensorType::kQ5_0>(table);
  install<DecodeQ5_0R, TensorType::kQ5_0R>(table);
  install<DecodeQ5_1, TensorType::kQ5_1>(table);
  install<DecodeQ8_0, TensorType::kQ8_0>(table);
  install<DecodeIQ4_NL, TensorType::kIQ4_NL>(table);
  install<DecodeIQ4_XS, TensorType::kIQ4_XS>(table);
}

}  // namespace koto::kernels

#undef KOTO_KERNEL_INLINE
