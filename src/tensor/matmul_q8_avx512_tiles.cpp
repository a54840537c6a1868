// Prefill integer matmul (many vectors at once) on AVX-512 VNNI from decoded row tiles.
//
// The general kernels (matmul_q8_x86.inc) decode every weight block again for each
// chunk of 8 vectors and pay a convert and scale FMAs per 32 values per vector. Here a
// tile of rows is decoded once per call, and the vectors relaid once per call, into
// the same lane-interleaved layout: a group of 16 blocks of 32 values is 8 zmm
// registers, int32 lane lane_of(i) of register k holding bytes 4k..4k+3 of block i.
// Eight vpdpbusd then leave one whole block's dot product in each lane, so the float
// work per group and (row, vector) pair is one convert, one multiply of the two scale
// vectors and one FMA, plus one FMA of min * d * sum(q) for the types with a min:
//
//   sum_j w_j x_j = scale * d * sum_j code_j q_j + min * d * sum_j q_j   (per block)
//
// vpdpbusd multiplies unsigned by signed bytes (see WeightGroup for who is which).
// The micro-kernel computes 3 rows x 4 vectors (12 int and 12 float accumulators);
// a tile of rows (~384 KB decoded) stays in L2 while each block of 4 vectors, in L1,
// meets all of its rows; long rows go in slices so the 4 vectors still fit L1.
//
// Measured with MatmulQ8/<type>/avx512/2t (14336 x 4096 x 512 vectors, GFLOP/s, best
// of alternating runs on two cores shared with other jobs; before -> after):
//   quiet moments:       Q5_0 111 -> 706, Q8_0 118 -> 675, Q4_0 112 -> 706, Q4_K 227 -> 547
//   busy (~one core):    Q5_0 63 -> 362, Q8_0 58 -> 350, Q4_K 119 -> 278, Q5_K 107 -> 278,
//                        IQ4_XS 64 -> 355, Q4_1 56 -> 281, Q5_1 58 -> 280
// Single-threaded on 1792 rows x 4096 (a model's task), Q5_0: 2 vectors 46 -> 64,
// 8 vectors 57 -> 188, 64 vectors 56 -> 355; Q4_K: 8 vectors 131 -> 160, 64 vectors
// 129 -> 290. Decoding the rows is what limits small batches, hence kMinVectors.
//
// Compiled with -mavx512*; by the ODR rule in kernel_table.h everything but
// add_q8_avx512_tile_kernels is in an anonymous namespace.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/quant_blocks.h"
#include "tensor/repack.h"

#define KOTO_KERNEL_INLINE [[gnu::always_inline]] inline

namespace koto::kernels {
namespace {

constexpr int kGroupBlocks = 16;  // blocks of 32 values per group: one int32 lane each
constexpr int kRowsPerKernel = 3;
constexpr int kVectorsPerKernel = 4;
// Decoded bytes per row tile: it stays in L2 while all the vectors pass.
constexpr int64_t kTileBytes = 384 * 1024;
// Relaid bytes of the C vectors of a block per slice of groups: they stay in L1.
constexpr int64_t kSliceBytes = 24 * 1024;

#include "tensor/simd_helpers.inc"

// Block b of a group lands in int32 lane lane_of(b): the order transpose_group yields.
constexpr int lane_of(int b) { return (b >> 1) | ((b & 1) << 3); }

// One row's group of 16 blocks: weight = scale * code + min per block. vpdpbusd takes
// one unsigned and one signed operand: the types with a min have unsigned codes and
// meet the signed q as they are; the others have signed codes and meet q + 128, whose
// excess the bias takes off again (the min term would cost an FMA, the bias a move).
struct alignas(64) WeightGroup {
  __m512i codes[8];  // lane-interleaved
  __m512 scale;
  __m512i bias;  // -128 * sum of the block's codes (types without a min)
  __m512 min;    // types with a min
  // Types with a scale per 16 values (Q6_K, kTwoScales): scale and bias above cover
  // values 0-15 of each block (registers 0-3), these values 16-31 (registers 4-7).
  __m512 scale_hi;
  __m512i bias_hi;
};

// One vector's group of 16 blocks (x ~= d * q per block).
struct alignas(64) VectorGroup {
  __m512i codes[8];  // q, or q + 128 as unsigned bytes for the types without a min
  __m512 d;
  __m512 dsum;  // d * sum of q over the block
};

// The float accumulators of one R x C block between slices of the groups.
struct alignas(64) Accumulators {
  __m512 sums[kRowsPerKernel * kVectorsPerKernel];
};

// A buffer per thread that only grows: each call relays its vectors and tiles here.
template <typename T>
struct ScratchBuffer {
  std::unique_ptr<T[]> data;
  int64_t size = 0;
  T* get(int64_t n) {
    if (n > size) {
      data = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(n));
      size = n;
    }
    return data.get();
  }
};

thread_local ScratchBuffer<WeightGroup> t_weights;
thread_local ScratchBuffer<VectorGroup> t_vectors;
thread_local ScratchBuffer<Accumulators> t_carry;

// ---- the 16 x 8 dword transpose ----

// A shuffle stage over registers of 16 int32 lanes: exchanges bit p of the register
// index with bit q of the lane index, then lane bits t and u (t == u: no exchange).
// Two permutex2var per pair of registers; idx bit 4 picks the pair's second register.
template <int p, int q, int t, int u>
struct SwapTables {
  static constexpr int swap_lane_bits(int l) {
    const int bt = (l >> t) & 1;
    const int bu = (l >> u) & 1;
    return (l & ~((1 << t) | (1 << u))) | (bt << u) | (bu << t);
  }
  static constexpr std::array<int32_t, 16> make(int half) {
    std::array<int32_t, 16> table{};
    for (int l = 0; l < 16; ++l) {
      const int before = swap_lane_bits(l);  // the lane before the exchange of t and u
      const int source_half = (before >> q) & 1;
      const int source_lane = (before & ~(1 << q)) | (half << q);
      table[l] = source_lane | (source_half << 4);
    }
    return table;
  }
  alignas(64) static constexpr std::array<int32_t, 16> lo = make(0);
  alignas(64) static constexpr std::array<int32_t, 16> hi = make(1);
};

template <int p, int q, int t, int u, int N>
KOTO_KERNEL_INLINE void swap_bits(__m512i v[N]) {
  using Tables = SwapTables<p, q, t, u>;
  const __m512i idx_lo = _mm512_load_si512(Tables::lo.data());
  const __m512i idx_hi = _mm512_load_si512(Tables::hi.data());
  unrolled<N>([&](auto i) {
    if constexpr ((i & (1 << p)) == 0) {
      const __m512i a = v[i];
      const __m512i b = v[i | (1 << p)];
      v[i] = _mm512_permutex2var_epi32(a, idx_lo, b);
      v[i | (1 << p)] = _mm512_permutex2var_epi32(a, idx_hi, b);
    }
  });
}

// In: register j = blocks 2j and 2j+1 in value order (register bits b3 b2 b1, lane
// bits b0 d2 d1 d0). Out: register k = dword k of every block (lane b0 b3 b2 b1).
KOTO_KERNEL_INLINE void transpose_group(__m512i v[8]) {
  swap_bits<2, 2, 0, 0, 8>(v);
  swap_bits<1, 1, 0, 0, 8>(v);
  swap_bits<0, 0, 0, 0, 8>(v);
}

// ---- weight decoders: 32 codes of one 32-value block in value order, scale, min ----

// 16 bytes: low nibbles (values 0-15), then high nibbles (values 16-31).
KOTO_KERNEL_INLINE __m256i load_nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(15));
}

KOTO_KERNEL_INLINE __m256i iq4nl_lookup(__m256i nibbles) {
  const __m256i table = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
  return _mm256_shuffle_epi8(table, nibbles);
}

// Each decoder: Block, kType, kSubBlocks (blocks of 32 per Block), kHasMin (unsigned
// codes plus a min, else signed codes), whether the vectors come in the kBlocks256
// layout, kMinVectors (below it the general kernels are faster: decoding a row costs
// about as much as a few vectors; measured single-threaded on 1792 x 4096), and
// decode(block, codes, scale, min) filling kSubBlocks blocks of 32 codes in value
// order with their scales and mins.
struct DecodeQ4_0 {
  using Block = BlockQ4_0;
  static constexpr TensorType kType = TensorType::kQ4_0;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kHasMin = false;
  static constexpr bool kLayout256 = false;
  static constexpr int64_t kMinVectors = 2;
  KOTO_KERNEL_INLINE static __m256i codes(const Block& b) {
    return _mm256_sub_epi8(load_nibbles(b.qs), _mm256_set1_epi8(8));
  }
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* out, float* scale, float* min) {
    scale[0] = load_f16(b.d);
    min[0] = 0.0f;
    out[0] = codes(b);
  }
};

struct DecodeQ4_1 {
  using Block = BlockQ4_1;
  static constexpr TensorType kType = TensorType::kQ4_1;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kHasMin = true;
  static constexpr bool kLayout256 = false;
  static constexpr int64_t kMinVectors = 2;
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* codes, float* scale, float* min) {
    scale[0] = load_f16(b.d);
    min[0] = load_f16(b.m);
    codes[0] = load_nibbles(b.qs);
  }
};

struct DecodeQ5_0 {
  using Block = BlockQ5_0;
  static constexpr TensorType kType = TensorType::kQ5_0;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kHasMin = false;
  static constexpr bool kLayout256 = false;
  static constexpr int64_t kMinVectors = 2;
  KOTO_KERNEL_INLINE static __m256i codes(const Block& b) {
    const __m256i low = load_nibbles(b.qs);
    // code - 16 where the fifth bit is clear, the low bits as they are where it is set.
    return _mm256_mask_sub_epi8(low, static_cast<__mmask32>(~load_u32(b.qh)), low,
                                _mm256_set1_epi8(16));
  }
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* out, float* scale, float* min) {
    scale[0] = load_f16(b.d);
    min[0] = 0.0f;
    out[0] = codes(b);
  }
};

// Q5_0R (tensor/repack.h): whole groups are read straight from the repacked layout
// (decode_q5_0r_group); the plain blocks after the last group decode as Q5_0.
struct DecodeQ5_0R : DecodeQ5_0 {
  static constexpr TensorType kType = TensorType::kQ5_0R;
};

struct DecodeQ5_1 {
  using Block = BlockQ5_1;
  static constexpr TensorType kType = TensorType::kQ5_1;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kHasMin = true;
  static constexpr bool kLayout256 = false;
  static constexpr int64_t kMinVectors = 2;
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* codes, float* scale, float* min) {
    scale[0] = load_f16(b.d);
    min[0] = load_f16(b.m);
    const __m256i low = load_nibbles(b.qs);
    codes[0] = _mm256_mask_add_epi8(low, static_cast<__mmask32>(load_u32(b.qh)), low,
                                    _mm256_set1_epi8(16));
  }
};

struct DecodeQ8_0 {
  using Block = BlockQ8_0;
  static constexpr TensorType kType = TensorType::kQ8_0;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kHasMin = false;
  static constexpr bool kLayout256 = false;
  static constexpr int64_t kMinVectors = 2;
  // The f16 scales of a full group convert 16 at a time (decode_rows).
  static constexpr bool kF16Scale = true;
  KOTO_KERNEL_INLINE static uint16_t scale_bits(const Block& b) {
    uint16_t h;
    std::memcpy(&h, b.d, sizeof(h));
    return h;
  }
  KOTO_KERNEL_INLINE static __m256i codes(const Block& b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
  }
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* out, float* scale, float* min) {
    scale[0] = load_f16(b.d);
    min[0] = 0.0f;
    out[0] = codes(b);
  }
};

struct DecodeIQ4_NL {
  using Block = BlockIQ4_NL;
  static constexpr TensorType kType = TensorType::kIQ4_NL;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kHasMin = false;
  static constexpr bool kLayout256 = false;
  static constexpr int64_t kMinVectors = 2;
  KOTO_KERNEL_INLINE static __m256i codes(const Block& b) {
    return iq4nl_lookup(load_nibbles(b.qs));
  }
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* out, float* scale, float* min) {
    scale[0] = load_f16(b.d);
    min[0] = 0.0f;
    out[0] = codes(b);
  }
};

struct DecodeIQ4_XS {
  using Block = BlockIQ4_XS;
  static constexpr TensorType kType = TensorType::kIQ4_XS;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = false;
  static constexpr bool kLayout256 = false;
  static constexpr int64_t kMinVectors = 3;
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* codes, float* scale, float* min) {
    uint16_t scales_h;
    std::memcpy(&scales_h, b.scales_h, sizeof(scales_h));
    const float d = load_f16(b.d);
    for (int sub = 0; sub < 8; ++sub) {
      const int ls =
          ((b.scales_l[sub / 2] >> (4 * (sub % 2))) & 15) | (((scales_h >> (2 * sub)) & 3) << 4);
      scale[sub] = d * static_cast<float>(ls - 32);
      min[sub] = 0.0f;
      codes[sub] = iq4nl_lookup(load_nibbles(b.qs + 16 * sub));
    }
  }
};

// Q4_K and Q5_K: sub-blocks 2c and 2c + 1 are the low and high nibbles of qs[32 c ..],
// with 6-bit scales and mins; Q5_K's fifth bit of value l of sub-block s is bit s of qh[l].
template <typename Block>
KOTO_KERNEL_INLINE void k_scales(const Block& b, float* scale, float* min) {
  // The 12 packed bytes hold eight 6-bit scales and mins: the low 6 bits of bytes 0-3
  // (scales 0-3) and 4-7 (mins 0-3); scales and mins 4-7 are the nibbles of bytes
  // 8-11 below the top 2 bits of bytes 0-3 and 4-7.
  uint32_t packed[3];
  std::memcpy(packed, b.scales, sizeof(packed));
  const uint32_t scales_lo = packed[0] & 0x3f3f3f3fu;
  const uint32_t mins_lo = packed[1] & 0x3f3f3f3fu;
  const uint32_t scales_hi = (packed[2] & 0x0f0f0f0fu) | ((packed[0] >> 2) & 0x30303030u);
  const uint32_t mins_hi = ((packed[2] >> 4) & 0x0f0f0f0fu) | ((packed[1] >> 2) & 0x30303030u);
  const __m256 scales = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
      _mm_set_epi32(0, 0, static_cast<int>(scales_hi), static_cast<int>(scales_lo))));
  const __m256 mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
      _mm_set_epi32(0, 0, static_cast<int>(mins_hi), static_cast<int>(mins_lo))));
  _mm256_storeu_ps(scale, _mm256_mul_ps(scales, _mm256_set1_ps(load_f16(b.d))));
  _mm256_storeu_ps(min, _mm256_mul_ps(mins, _mm256_set1_ps(-load_f16(b.dmin))));
}

template <typename Block, bool kFifthBit>
KOTO_KERNEL_INLINE void decode_k(const Block& b, __m256i* codes, float* scale, float* min) {
  k_scales(b, scale, min);
  const __m256i low4 = _mm256_set1_epi8(15);
  for (int c = 0; c < 4; ++c) {
    const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c));
    codes[2 * c] = _mm256_and_si256(packed, low4);
    codes[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
  }
  if constexpr (kFifthBit) {
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int s = 0; s < 8; ++s) {
      const __mmask32 high = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << s)));
      codes[s] = _mm256_mask_add_epi8(codes[s], high, codes[s], sixteen);
    }
  }
}

struct DecodeQ4_K {
  using Block = BlockQ4_K;
  static constexpr TensorType kType = TensorType::kQ4_K;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = true;
  static constexpr bool kLayout256 = true;
  static constexpr int64_t kMinVectors = 5;
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* codes, float* scale, float* min) {
    decode_k<Block, false>(b, codes, scale, min);
  }
};

struct DecodeQ5_K {
  using Block = BlockQ5_K;
  static constexpr TensorType kType = TensorType::kQ5_K;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = true;
  static constexpr bool kLayout256 = true;
  static constexpr int64_t kMinVectors = 5;
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* codes, float* scale, float* min) {
    decode_k<Block, true>(b, codes, scale, min);
  }
};

// Q6_K: 256 values in two halves of 128; in half n, value l (0-31) of each of its four
// blocks of 32 takes the low (blocks 0, 1) or high (blocks 2, 3) nibble of ql[64 n + l]
// or ql[64 n + 32 + l] and two bits of qh[32 n + l] as its top bits; code - 32 is the
// value. Each block of 32 has two int8 scales (values 0-15 and 16-31), so the tiles
// carry a second scale and bias per block (kTwoScales): decode() fills `min` with the
// second halves' scales.
struct DecodeQ6_K {
  using Block = BlockQ6_K;
  static constexpr TensorType kType = TensorType::kQ6_K;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = false;
  static constexpr bool kTwoScales = true;
  static constexpr bool kLayout256 = true;
  static constexpr int64_t kMinVectors = 5;
  KOTO_KERNEL_INLINE static void decode(const Block& b, __m256i* codes, float* scale, float* second) {
    const __m256i low4 = _mm256_set1_epi8(15);
    const __m256i two = _mm256_set1_epi8(3);
    const __m256i offset = _mm256_set1_epi8(32);
    for (int n = 0; n < 2; ++n) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * n));
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * n + 32));
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * n));
      const auto top = [&](int shift) {  // bits shift, shift + 1 of qh as bits 4, 5
        return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, shift), two), 4);
      };
      codes[4 * n + 0] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(a, low4), top(0)), offset);
      codes[4 * n + 1] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(c, low4), top(2)), offset);
      codes[4 * n + 2] =
          _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), top(4)), offset);
      codes[4 * n + 3] =
          _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low4), top(6)), offset);
    }
    const float d = load_f16(b.d);
    for (int j = 0; j < 8; ++j) {
      scale[j] = d * static_cast<float>(b.scales[2 * j]);
      second[j] = d * static_cast<float>(b.scales[2 * j + 1]);
    }
  }
};

template <typename D>
constexpr bool two_scales() {
  if constexpr (requires { D::kTwoScales; }) {
    return D::kTwoScales;
  } else {
    return false;
  }
}

// ---- relayout ----

// Per-block values in block order into lane order (lane_of).
KOTO_KERNEL_INLINE __m512 to_lane_order(__m512 by_block) {
  // Lane L holds block 2 (L % 8) + L / 8.
  const __m512i index = _mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_permutexvar_ps(index, by_block);
}

// decode_nibble_group puts block kNibbleSlotBlock[4 j + s] in 128-bit slot s of
// register j: after its transpose the block sits in lane 4 s + j, which must be its
// lane_of.
constexpr std::array<int, kGroupBlocks> kNibbleSlotBlock = [] {
  std::array<int, kGroupBlocks> t{};
  for (int b = 0; b < kGroupBlocks; ++b) t[4 * (lane_of(b) % 4) + lane_of(b) / 4] = b;
  return t;
}();

// Transposed codes (register k = dword k of every block) into dst, with their bias
// for the types without a min.
// For kTwoScales types `min` is the second halves' scale, and each half gets its bias.
template <typename D>
KOTO_KERNEL_INLINE void store_group(const __m512i v[8], __m512 scale, __m512 min, WeightGroup& dst) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum = _mm512_setzero_si512();
  __m512i sum_hi = _mm512_setzero_si512();
  unrolled<8>([&](auto k) {
    _mm512_store_si512(&dst.codes[k], v[k]);
    if constexpr (two_scales<D>()) {
      if constexpr (k < 4) {
        sum = _mm512_dpbusd_epi32(sum, ones, v[k]);
      } else {
        sum_hi = _mm512_dpbusd_epi32(sum_hi, ones, v[k]);
      }
    } else if constexpr (!D::kHasMin) {
      sum = _mm512_dpbusd_epi32(sum, ones, v[k]);
    }
  });
  dst.bias = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7));
  dst.scale = scale;
  if constexpr (two_scales<D>()) {
    dst.scale_hi = min;
    dst.bias_hi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum_hi, 7));
    dst.min = _mm512_setzero_ps();
  } else {
    dst.min = min;
  }
}

// 16 blocks of codes in value order into dst; scale and min in lane order.
template <typename D>
KOTO_KERNEL_INLINE void finish_group(const __m256i codes[kGroupBlocks], __m512 scale, __m512 min,
                                   WeightGroup& dst) {
  __m512i v[8];
  unrolled<8>([&](auto j) {
    v[j] = _mm512_inserti64x4(_mm512_castsi256_si512(codes[2 * j]), codes[2 * j + 1], 1);
  });
  transpose_group(v);
  store_group<D>(v, scale, min, dst);
}

// The 16 blocks of 32 of a full group of Q4_0, Q4_1, Q5_0, Q5_1 or IQ4_NL, whose 16
// bytes qs hold value j in the low nibble of byte j and value j + 16 in the high one.
// The qs go through a 16 x 4 dword transpose (a third of the shuffles of
// transpose_group), then the nibbles split: low nibbles of dword k are values
// 4k..4k+3 (register k), high nibbles values 16+4k.. (register k + 4), the value order
// transpose_group gives.
template <typename D>
KOTO_KERNEL_INLINE void decode_nibble_group(const typename D::Block* blocks, WeightGroup& dst) {
  constexpr bool kFifthBit = D::kType == TensorType::kQ5_0 || D::kType == TensorType::kQ5_1;
  __m512i t[4];
  unrolled<4>([&](auto j) {
    const auto qs = [&](int s) {
      return _mm_loadu_si128(
          reinterpret_cast<const __m128i*>(blocks[kNibbleSlotBlock[4 * j + s]].qs));
    };
    t[j] = _mm512_inserti32x4(
        _mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(qs(0)), qs(1), 1), qs(2), 2),
        qs(3), 3);
  });
  swap_bits<1, 1, 0, 0, 4>(t);
  swap_bits<0, 0, 0, 0, 4>(t);
  const __m512i low4 = _mm512_set1_epi8(15);
  __m512i v[8];
  unrolled<4>([&](auto k) {
    v[k] = _mm512_and_si512(t[k], low4);
    v[k + 4] = _mm512_and_si512(_mm512_srli_epi16(t[k], 4), low4);
  });
  alignas(32) uint16_t scale_bits[kGroupBlocks];
  alignas(32) uint16_t min_bits[kGroupBlocks];
  alignas(64) uint32_t high_bits[kGroupBlocks];
  unrolled<kGroupBlocks>([&](auto b) {
    std::memcpy(&scale_bits[lane_of(b)], blocks[b].d, sizeof(uint16_t));
    if constexpr (D::kHasMin) std::memcpy(&min_bits[lane_of(b)], blocks[b].m, sizeof(uint16_t));
    if constexpr (kFifthBit) std::memcpy(&high_bits[lane_of(b)], blocks[b].qh, sizeof(uint32_t));
  });
  if constexpr (D::kType == TensorType::kQ4_0) {
    unrolled<8>([&](auto k) { v[k] = _mm512_sub_epi8(v[k], _mm512_set1_epi8(8)); });
  } else if constexpr (D::kType == TensorType::kIQ4_NL) {
    const __m512i table = _mm512_broadcast_i32x4(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
    unrolled<8>([&](auto k) { v[k] = _mm512_shuffle_epi8(table, v[k]); });
  } else if constexpr (kFifthBit) {
    // Register k needs bits 4k..4k+3 of each lane's qh (byte k / 2, nibble k % 2) as
    // the fifth bits of its 4 bytes: copy that byte into all 4, test one bit in each.
    const __m512i qh = _mm512_load_si512(high_bits);
    const __m512i sixteen = _mm512_set1_epi8(16);
    unrolled<8>([&](auto k) {
      constexpr int kByte = k / 2;
      const __m512i spread = _mm512_shuffle_epi8(
          qh, _mm512_set4_epi32(0x0c0c0c0c + kByte * 0x01010101, 0x08080808 + kByte * 0x01010101,
                                0x04040404 + kByte * 0x01010101, kByte * 0x01010101));
      const __mmask64 high = _mm512_test_epi8_mask(
          spread, _mm512_set1_epi32(k % 2 == 0 ? 0x08040201 : static_cast<int>(0x80402010u)));
      if constexpr (D::kHasMin) {
        v[k] = _mm512_mask_add_epi8(v[k], high, v[k], sixteen);  // unsigned codes 0..31
      } else {
        v[k] = _mm512_mask_sub_epi8(v[k], _knot_mask64(high), v[k], sixteen);  // -16..15
      }
    });
  }
  const auto f16x16 = [](const uint16_t* bits) {
    return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(bits)));
  };
  store_group<D>(v, f16x16(scale_bits), D::kHasMin ? f16x16(min_bits) : _mm512_setzero_ps(), dst);
}

// A full group of Q5_K: two super-blocks, whose 32-byte chunks c = 0..7 (4 per
// super-block) hold blocks 2c (low nibbles) and 2c + 1 (high nibbles). The chunks go
// through an 8 x 8 dword transpose to P_m: lanes 0-7 dword 2m of chunks 0-7, lanes
// 8-15 dword 2m + 1. Register k = dword k of chunk c in lanes c and c + 8, low nibbles
// in the first, high nibbles in the second: blocks 2c and 2c + 1 in their lane_of.
template <typename D>
KOTO_KERNEL_INLINE void decode_k_group(const typename D::Block* blocks, WeightGroup& dst) {
  __m512i p[4];  // register bits (c2 c1), lane bits (c0 d2 d1 d0)
  unrolled<4>([&](auto j) {
    p[j] = _mm512_loadu_si512(blocks[j / 2].qs + 64 * (j % 2));
  });
  swap_bits<1, 2, 0, 0, 4>(p);  // to (d2 c1 | c0 c2 d1 d0)
  swap_bits<0, 1, 3, 0, 4>(p);  // to (d2 d1 | d0 c2 c1 c0)
  const __m512i shifts = _mm512_set_epi32(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i low4 = _mm512_set1_epi8(15);
  __m512i v[8];
  unrolled<8>([&](auto k) {
    const __m512i both = _mm512_shuffle_i64x2(
        p[k / 2], p[k / 2], k % 2 == 0 ? _MM_SHUFFLE(1, 0, 1, 0) : _MM_SHUFFLE(3, 2, 3, 2));
    v[k] = _mm512_and_si512(_mm512_srlv_epi32(both, shifts), low4);
  });
  if constexpr (D::kType == TensorType::kQ5_K) {
    // The fifth bit of value l of block 2c + h of a super-block is bit 2c + h of its
    // qh[l], c counted within the super-block: lanes 0-3 and 8-11 read super-block 0.
    const __m512i qh = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[0].qh))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[1].qh)), 1);
    // Byte pattern 1 << (2 (lane % 4) + lane / 8) in every byte of the lane.
    const __m512i bit = _mm512_set_epi32(
        0x80808080, 0x20202020, 0x08080808, 0x02020202, 0x80808080, 0x20202020, 0x08080808,
        0x02020202, 0x40404040, 0x10101010, 0x04040404, 0x01010101, 0x40404040, 0x10101010,
        0x04040404, 0x01010101);
    const __m512i sixteen = _mm512_set1_epi8(16);
    unrolled<8>([&](auto k) {
      // Lane l: dword k of super-block (l / 4) % 2.
      const __m512i index = _mm512_set_epi32(8 + k, 8 + k, 8 + k, 8 + k, k, k, k, k, 8 + k, 8 + k,
                                             8 + k, 8 + k, k, k, k, k);
      const __mmask64 high = _mm512_test_epi8_mask(_mm512_permutexvar_epi32(index, qh), bit);
      v[k] = _mm512_mask_add_epi8(v[k], high, v[k], sixteen);
    });
  }
  float block_scale[kGroupBlocks];
  float block_min[kGroupBlocks];
  k_scales(blocks[0], block_scale, block_min);
  k_scales(blocks[1], block_scale + 8, block_min + 8);
  store_group<D>(v, to_lane_order(_mm512_loadu_ps(block_scale)),
              to_lane_order(_mm512_loadu_ps(block_min)), dst);
}

// A whole Q5_0R group at p: the codes of all 16 blocks come in block order (lane j =
// block j), registers k and k + 4 from the low and high nibbles of code run k; one lane
// permute each puts them in lane_of order. The same codes, scales and bias as
// decode_nibble_group gives for the Q5_0 blocks.
KOTO_KERNEL_INLINE void decode_q5_0r_group(const uint8_t* p, WeightGroup& dst) {
  const __m512i to_lanes = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m512i low4 = _mm512_set1_epi8(15);
  const __m512i sixteen = _mm512_set1_epi8(16);
  const auto mask = [p](int k) {
    uint64_t bits;
    std::memcpy(&bits, p + kRepackMasksAt + 8 * k, sizeof(bits));
    return _cvtu64_mask64(~bits);  // where the fifth bit is clear: code - 16
  };
  __m512i v[8];
  unrolled<4>([&](auto c) {
    const __m512i packed = _mm512_loadu_si512(p + kRepackCodesAt + 64 * c);
    const __m512i low = _mm512_and_si512(packed, low4);
    const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
    v[c] = _mm512_permutexvar_epi32(to_lanes, _mm512_mask_sub_epi8(low, mask(c), low, sixteen));
    v[c + 4] = _mm512_permutexvar_epi32(to_lanes, _mm512_mask_sub_epi8(high, mask(c + 4), high, sixteen));
  });
  const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  store_group<DecodeQ5_0R>(v, _mm512_permutexvar_ps(to_lanes, scale), _mm512_setzero_ps(), dst);
}

// Group g of a row of n_blocks blocks of 32 into dst: the specialised decoders for
// full groups where they exist, else block by block (zero past the end of the row).
template <typename D>
void decode_group(const typename D::Block* blocks, int64_t g, int64_t n_blocks,
                  WeightGroup& dst) {
  const int64_t first = g * kGroupBlocks;
  const int valid = static_cast<int>(std::min<int64_t>(kGroupBlocks, n_blocks - first));
  if (valid == kGroupBlocks) {
    if constexpr (D::kType == TensorType::kQ5_0R) {
      return decode_q5_0r_group(reinterpret_cast<const uint8_t*>(blocks + first), dst);
    } else if constexpr (D::kType == TensorType::kQ4_0 || D::kType == TensorType::kQ4_1 ||
                  D::kType == TensorType::kQ5_0 || D::kType == TensorType::kQ5_1 ||
                  D::kType == TensorType::kIQ4_NL) {
      return decode_nibble_group<D>(blocks + first, dst);
    } else if constexpr (D::kType == TensorType::kQ5_K) {
      // Measured: faster for Q5_K (its fifth bits), slower for Q4_K than the general path.
      return decode_k_group<D>(blocks + first / D::kSubBlocks, dst);
    } else if constexpr (requires { D::kF16Scale; }) {
      __m256i codes[kGroupBlocks];
      alignas(32) uint16_t bits[kGroupBlocks];
      unrolled<kGroupBlocks>([&](auto b) {
        codes[b] = D::codes(blocks[first + b]);
        bits[lane_of(b)] = D::scale_bits(blocks[first + b]);
      });
      return finish_group<D>(
          codes, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(bits))),
          _mm512_setzero_ps(), dst);
    }
  }
  __m256i codes[kGroupBlocks];
  float scale[kGroupBlocks] = {};  // in block order
  float min[kGroupBlocks] = {};
  if (valid == kGroupBlocks) {
    unrolled<kGroupBlocks / D::kSubBlocks>([&](auto i) {
      constexpr int b = i * D::kSubBlocks;
      D::decode(blocks[(first + b) / D::kSubBlocks], &codes[b], &scale[b], &min[b]);
    });
  } else {
    for (int b = 0; b < kGroupBlocks; b += D::kSubBlocks) {
      if (b < valid) {
        D::decode(blocks[(first + b) / D::kSubBlocks], &codes[b], &scale[b], &min[b]);
      } else {
        for (int j = b; j < b + D::kSubBlocks; ++j) codes[j] = _mm256_setzero_si256();
      }
    }
  }
  finish_group<D>(codes, to_lane_order(_mm512_loadu_ps(scale)), to_lane_order(_mm512_loadu_ps(min)),
               dst);
}

// Rows [0, n_rows) of the weights into out (n_groups groups per row).
template <typename D>
void decode_rows(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_blocks,
                 int64_t n_groups, WeightGroup* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const typename D::Block*>(w + r * row_bytes);
    for (int64_t g = 0; g < n_groups; ++g) {
      decode_group<D>(blocks, g, n_blocks, out[r * n_groups + g]);
    }
  }
}

// Vectors [0, n_vectors) of x into out (n_groups groups per vector).
template <bool kLayout256, bool kUnsigned>
void relay_vectors(const Q8Vectors& x, int64_t n_vectors, int64_t n_groups, VectorGroup* out) {
  const int64_t n = x.n;
  const int64_t n_blocks = n / 32;
  const __m512i flip = _mm512_set1_epi8(kUnsigned ? static_cast<char>(0x80) : 0);
  for (int64_t v = 0; v < n_vectors; ++v) {
    const int8_t* q = x.q + v * n;
    for (int64_t g = 0; g < n_groups; ++g) {
      const int64_t first = g * kGroupBlocks;
      const int valid = static_cast<int>(std::min<int64_t>(kGroupBlocks, n_blocks - first));
      __m512i c[8];
      unrolled<8>([&](auto j) {
        const int bytes = std::clamp(32 * (valid - 2 * j), 0, 64);
        const __mmask64 mask = bytes == 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
        // Padding reads as q = 0 against zero weights and scales.
        c[j] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, q + 32 * (first + 2 * j)), flip);
      });
      transpose_group(c);
      VectorGroup& dst = out[v * n_groups + g];
      unrolled<8>([&](auto k) { _mm512_store_si512(&dst.codes[k], c[k]); });
      alignas(64) float d[kGroupBlocks] = {};
      alignas(64) float dsum[kGroupBlocks] = {};
      for (int b = 0; b < valid; ++b) {
        const int64_t block = first + b;
        if constexpr (kLayout256) {
          const float d256 = x.d[v * (n / 256) + block / 8];
          const int16_t* sums = x.sums + v * (n / 16) + 2 * block;
          d[lane_of(b)] = d256;
          dsum[lane_of(b)] = d256 * static_cast<float>(sums[0] + sums[1]);
        } else {
          const float* ds = x.dsum + v * (n / 16) + 2 * block;
          d[lane_of(b)] = x.d[v * n_blocks + block];
          dsum[lane_of(b)] = ds[0] + ds[1];
        }
      }
      dst.d = _mm512_load_ps(d);
      dst.dsum = _mm512_load_ps(dsum);
    }
  }
}

// ---- the micro-kernel ----

// A range of groups; a row's dot product is complete after its last slice.
struct Slice {
  int64_t g_begin;
  int64_t g_end;
  bool first;
  bool last;
};

// R rows (n_groups groups apart in w) against C vectors (n_groups apart in x) over the
// groups of `slice`: the sums carry over in `carry`; out[r][c] = dot(row r, vector c)
// after the last slice.
template <int R, int C, bool kHasMin, bool kTwoScales>
void dot_tile(const WeightGroup* w, const VectorGroup* x, int64_t n_groups, const Slice& slice,
              Accumulators& carry, float out[R][C]) {
  __m512 acc[R][C];
  unrolled<R>([&](auto r) {
    unrolled<C>([&](auto c) {
      acc[r][c] = slice.first ? _mm512_setzero_ps() : carry.sums[r * C + c];
    });
  });
  for (int64_t g = slice.g_begin; g < slice.g_end; ++g) {
    // Two-scale types: dot over registers 0-3, dot_hi over 4-7, each with its bias.
    __m512i dot[R][C];
    __m512i dot_hi[R][C];
    unrolled<R>([&](auto r) {
      const __m512i bias =
          kHasMin ? _mm512_setzero_si512() : _mm512_load_si512(&w[r * n_groups + g].bias);
      unrolled<C>([&](auto c) { dot[r][c] = bias; });
      if constexpr (kTwoScales) {
        const __m512i bias_hi = _mm512_load_si512(&w[r * n_groups + g].bias_hi);
        unrolled<C>([&](auto c) { dot_hi[r][c] = bias_hi; });
      }
    });
    unrolled<8>([&](auto k) {
      __m512i xk[C];
      unrolled<C>([&](auto c) { xk[c] = _mm512_load_si512(&x[c * n_groups + g].codes[k]); });
      unrolled<R>([&](auto r) {
        const __m512i wk = _mm512_load_si512(&w[r * n_groups + g].codes[k]);
        unrolled<C>([&](auto c) {
          // vpdpbusd multiplies unsigned by signed bytes: see WeightGroup.
          if constexpr (kTwoScales && k >= 4) {
            dot_hi[r][c] = _mm512_dpbusd_epi32(dot_hi[r][c], xk[c], wk);
          } else {
            dot[r][c] = kHasMin ? _mm512_dpbusd_epi32(dot[r][c], wk, xk[c])
                                : _mm512_dpbusd_epi32(dot[r][c], xk[c], wk);
          }
        });
      });
    });
    unrolled<R>([&](auto r) {
      const WeightGroup& wg = w[r * n_groups + g];
      unrolled<C>([&](auto c) {
        const VectorGroup& xg = x[c * n_groups + g];
        const __m512 scale = _mm512_mul_ps(wg.scale, xg.d);
        acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r][c]), scale, acc[r][c]);
        if constexpr (kHasMin) acc[r][c] = _mm512_fmadd_ps(wg.min, xg.dsum, acc[r][c]);
        if constexpr (kTwoScales) {
          acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot_hi[r][c]), _mm512_mul_ps(wg.scale_hi, xg.d), acc[r][c]);
        }
      });
    });
  }
  unrolled<R>([&](auto r) {
    unrolled<C>([&](auto c) {
      if (slice.last) {
        out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
      } else {
        carry.sums[r * C + c] = acc[r][c];
      }
    });
  });
}

// dot_tile for the last c <= C vectors of the batch; out[r][i] for i < c.
template <int R, int C, bool kHasMin, bool kTwoScales>
void dot_tile_any(int c, const WeightGroup* w, const VectorGroup* x, int64_t n_groups,
                  const Slice& slice, Accumulators& carry, float out[R][kVectorsPerKernel]) {
  if constexpr (C > 1) {
    if (c < C) return dot_tile_any<R, C - 1, kHasMin, kTwoScales>(c, w, x, n_groups, slice, carry, out);
  }
  float part[R][C];
  dot_tile<R, C, kHasMin, kTwoScales>(w, x, n_groups, slice, carry, part);
  if (slice.last) {
    for (int r = 0; r < R; ++r) std::copy(part[r], part[r] + C, out[r]);
  }
}

// ---- the entries ----

MatmulQ8Fn g_fallback[kTypeSlots];  // the entries these replace, for few vectors

template <typename D>
void matmul_q8_tiles(const void* w, int64_t row_bytes, const Q8Vectors& x, int64_t n_vectors,
                     float* y, int64_t y_stride, int64_t n_rows) {
  if (n_vectors < D::kMinVectors || x.n == 0) {
    g_fallback[static_cast<uint32_t>(D::kType)](w, row_bytes, x, n_vectors, y, y_stride, n_rows);
    return;
  }
  constexpr int R = kRowsPerKernel;
  constexpr int C = kVectorsPerKernel;
  const int64_t n_blocks = x.n / 32;
  const int64_t n_groups = (n_blocks + kGroupBlocks - 1) / kGroupBlocks;

  VectorGroup* vectors = t_vectors.get(n_vectors * n_groups);
  relay_vectors<D::kLayout256, !D::kHasMin>(x, n_vectors, n_groups, vectors);

  const int64_t row_size = n_groups * static_cast<int64_t>(sizeof(WeightGroup));
  const int64_t padded_rows = (n_rows + R - 1) / R * R;
  const int64_t tile_rows =
      std::min(padded_rows, std::max<int64_t>(R, kTileBytes / row_size / R * R));
  WeightGroup* tile = t_weights.get(tile_rows * n_groups);
  Accumulators* carry = t_carry.get(tile_rows / R);
  const int64_t slice_groups = std::max<int64_t>(
      1, kSliceBytes / (C * static_cast<int64_t>(sizeof(VectorGroup))));

  const auto* rows = static_cast<const uint8_t*>(w);
  for (int64_t r0 = 0; r0 < n_rows; r0 += tile_rows) {
    const int64_t n_tile = std::min(tile_rows, n_rows - r0);
    const int64_t n_padded = (n_tile + R - 1) / R * R;
    decode_rows<D>(rows + r0 * row_bytes, row_bytes, n_tile, n_blocks, n_groups, tile);
    // Rows past the end: zero codes, scales and bias, so they read as zero.
    std::memset(static_cast<void*>(tile + n_tile * n_groups), 0,
                static_cast<size_t>((n_padded - n_tile) * n_groups) * sizeof(WeightGroup));
    // A slice of the C vectors of a block stays in L1 while the tile's rows stream
    // from L2 (one slice unless the rows are long).
    for (int64_t v = 0; v < n_vectors; v += C) {
      const int c_here = static_cast<int>(std::min<int64_t>(C, n_vectors - v));
      for (int64_t g0 = 0; g0 < n_groups; g0 += slice_groups) {
        const Slice slice{g0, std::min(n_groups, g0 + slice_groups), g0 == 0,
                          g0 + slice_groups >= n_groups};
        for (int64_t r = 0; r < n_padded; r += R) {
          float out[R][C];
          dot_tile_any<R, C, D::kHasMin, two_scales<D>()>(c_here, tile + r * n_groups, vectors + v * n_groups,
                                         n_groups, slice, carry[r / R], out);
          if (!slice.last) continue;
          const int rows_here = static_cast<int>(std::min<int64_t>(R, n_tile - r));
          for (int c = 0; c < c_here; ++c) {
            float* dst = y + (v + c) * y_stride + r0 + r;
            for (int i = 0; i < rows_here; ++i) dst[i] = out[i][c];
          }
        }
      }
    }
  }
}

template <typename D>
void install(KernelTable& table) {
  const auto slot = static_cast<uint32_t>(D::kType);
  if (table.types[slot].matmul_q8 == nullptr) return;
  g_fallback[slot] = table.types[slot].matmul_q8;
  table.types[slot].matmul_q8 = &matmul_q8_tiles<D>;
}

}  // namespace

void add_q8_avx512_tile_kernels(KernelTable& table) {
  install<DecodeQ5_0>(table);
  install<DecodeQ5_0R>(table);
  install<DecodeQ8_0>(table);
  install<DecodeQ4_K>(table);
  install<DecodeQ4_0>(table);
  install<DecodeQ5_K>(table);
  install<DecodeQ6_K>(table);
  install<DecodeQ4_1>(table);
  install<DecodeQ5_1>(table);
  install<DecodeIQ4_NL>(table);
  install<DecodeIQ4_XS>(table);
}

}  // namespace koto::kernels

#undef KOTO_KERNEL_INLINE
