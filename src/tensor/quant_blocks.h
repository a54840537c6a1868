// Byte layouts of the quantized blocks, field by field in file order (see the block
// table in the fixtures README, section 2). Every field is a byte array, so a block has
// alignment 1 and may sit at any address; multi-byte fields (f16 scales, Q5's qh) are
// little-endian and read with memcpy.
//
// Plain data only: this header is shared by the generic and the SIMD translation
// units, so it must not define inline functions (see kernel_table.h).
#pragma once

#include <cstdint>

namespace koto::kernels {

inline constexpr int kQK = 32;    // values per block of the 32-value types
inline constexpr int kQKK = 256;  // values per super-block of the K-quants and IQ4_XS

struct BlockQ4_0 {
  uint8_t d[2];    // f16
  uint8_t qs[16];  // value j in the low nibble of qs[j], value j+16 in the high one
};
struct BlockQ4_1 {
  uint8_t d[2];
  uint8_t m[2];
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint8_t d[2];
  uint8_t qh[4];  // fifth bit of value j is bit j of this little-endian u32
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint8_t d[2];
  uint8_t m[2];
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint8_t d[2];
  int8_t qs[32];
};
struct BlockQ2_K {
  uint8_t scales[16];  // low nibble scale, high nibble min, one per 16 values
  uint8_t qs[64];
  uint8_t d[2];
  uint8_t dmin[2];
};
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];  // 16 signed 6-bit scales, packed
  uint8_t d[2];
};
struct BlockQ4_K {
  uint8_t d[2];
  uint8_t dmin[2];
  uint8_t scales[12];  // 8 six-bit scales and 8 six-bit mins, packed
  uint8_t qs[128];
};
struct BlockQ5_K {
  uint8_t d[2];
  uint8_t dmin[2];
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint8_t d[2];
};
struct BlockIQ4_NL {
  uint8_t d[2];
  uint8_t qs[16];
};
struct BlockIQ4_XS {
  uint8_t d[2];
  uint8_t scales_h[2];  // u16: two high bits per sub-block scale
  uint8_t scales_l[4];  // a nibble per sub-block scale
  uint8_t qs[128];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);

// The non-linear 4-bit code book of IQ4_NL and IQ4_XS.
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace koto::kernels
