// Scalar reference of the integer matmul (matmul_q8) and the activation quantizer.
//
// The algorithm the SIMD files implement too: every weight block is split into groups
// of 32 values; a group gives 32 integer codes w (unsigned, or signed for the types
// whose codes are signed), a float scale S and offset M per 16 values, such that
// weight j = S * w_j + M. Against an activation block (x_j ~= d * q_j):
//
//   sum_j weight_j * x_j ~= sum_halves (S * d * sum_j w_j q_j  +  M * dsum)
//
// with dsum = d * sum_j q_j. The sums w_j q_j are exact integers, so SIMD and scalar
// differ only in the order of the float additions.
#include <cmath>
#include <cstring>

#include "koto/tensor_type.h"
#include "tensor/float16.h"
#include "tensor/kernel_table.h"
#include "tensor/kernels.h"
#include "tensor/quant_blocks.h"

namespace koto::kernels {
namespace {

float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return fp16_to_fp32(h);
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// One group of 32 weights: weight j = s[j / 16] * w[j] + m[j / 16].
struct Group {
  int w[32];
  float s[2];
  float m[2];
};

void set_scale(Group& g, float s, float m) {
  g.s[0] = g.s[1] = s;
  g.m[0] = g.m[1] = m;
}

// ---- group decoders: group `gi` of a block ----

void decode_group(const BlockQ4_0& b, int, Group& g) {
  for (int j = 0; j < 16; ++j) {
    g.w[j] = (b.qs[j] & 15) - 8;
    g.w[j + 16] = (b.qs[j] >> 4) - 8;
  }
  set_scale(g, load_f16(b.d), 0.0f);
}

void decode_group(const BlockQ4_1& b, int, Group& g) {
  for (int j = 0; j < 16; ++j) {
    g.w[j] = b.qs[j] & 15;
    g.w[j + 16] = b.qs[j] >> 4;
  }
  set_scale(g, load_f16(b.d), load_f16(b.m));
}

void decode_q5(const uint8_t* qs, const uint8_t* qh, int offset, Group& g) {
  const uint32_t h = load_u32(qh);
  for (int j = 0; j < 16; ++j) {
    g.w[j] = ((qs[j] & 15) | static_cast<int>(((h >> j) & 1) << 4)) - offset;
    g.w[j + 16] = ((qs[j] >> 4) | static_cast<int>(((h >> (j + 16)) & 1) << 4)) - offset;
  }
}

void decode_group(const BlockQ5_0& b, int, Group& g) {
  decode_q5(b.qs, b.qh, 16, g);
  set_scale(g, load_f16(b.d), 0.0f);
}

void decode_group(const BlockQ5_1& b, int, Group& g) {
  decode_q5(b.qs, b.qh, 0, g);
  set_scale(g, load_f16(b.d), load_f16(b.m));
}

void decode_group(const BlockQ8_0& b, int, Group& g) {
  for (int j = 0; j < 32; ++j) g.w[j] = b.qs[j];
  set_scale(g, load_f16(b.d), 0.0f);
}

void decode_group(const BlockIQ4_NL& b, int, Group& g) {
  for (int j = 0; j < 16; ++j) {
    g.w[j] = kIq4nlValues[b.qs[j] & 15];
    g.w[j + 16] = kIq4nlValues[b.qs[j] >> 4];
  }
  set_scale(g, load_f16(b.d), 0.0f);
}

// Group gi = 4 n + j of a K-quant with 2 bits per value: bits 2j of qs[32 n ..].
void decode_group(const BlockQ2_K& b, int gi, Group& g) {
  const int n = gi / 4;
  const int j = gi % 4;
  for (int l = 0; l < 32; ++l) g.w[l] = (b.qs[32 * n + l] >> (2 * j)) & 3;
  const float d = load_f16(b.d);
  const float dmin = load_f16(b.dmin);
  for (int h = 0; h < 2; ++h) {
    const uint8_t sc = b.scales[2 * gi + h];
    g.s[h] = d * static_cast<float>(sc & 15);
    g.m[h] = -(dmin * static_cast<float>(sc >> 4));
  }
}

// Codes 0..7 (the signed value plus 4), so the offset is -4 * scale.
void decode_group(const BlockQ3_K& b, int gi, Group& g) {
  const int n = gi / 4;
  const int j = gi % 4;
  const uint8_t mask = static_cast<uint8_t>(1u << gi);
  for (int l = 0; l < 32; ++l) {
    g.w[l] = ((b.qs[32 * n + l] >> (2 * j)) & 3) + ((b.hmask[l] & mask) ? 4 : 0);
  }
  const float d = load_f16(b.d);
  for (int h = 0; h < 2; ++h) {
    const int k = 2 * gi + h;
    const int lo = k < 8 ? (b.scales[k] & 15) : (b.scales[k - 8] >> 4);
    const int hi = (b.scales[8 + k % 4] >> (2 * (k / 4))) & 3;
    g.s[h] = d * static_cast<float>((lo | hi << 4) - 32);
    g.m[h] = -4.0f * g.s[h];
  }
}

void unpack_k_scale(const uint8_t* packed, int k, int& sc, int& m) {
  if (k < 4) {
    sc = packed[k] & 63;
    m = packed[k + 4] & 63;
  } else {
    sc = (packed[k + 4] & 15) | ((packed[k - 4] >> 6) << 4);
    m = (packed[k + 4] >> 4) | ((packed[k] >> 6) << 4);
  }
}

// Codes 0..63 (the signed value plus 32), so the offset is -32 * scale. Group
// gi = 4 n + t: nibble t / 2 of ql[64 n + 32 (t % 2) ..], bits 2t of qh[32 n ..].
void decode_group(const BlockQ6_K& b, int gi, Group& g) {
  const int n = gi / 4;
  const int t = gi % 4;
  const uint8_t* ql = b.ql + 64 * n + 32 * (t % 2);
  const uint8_t* qh = b.qh + 32 * n;
  for (int l = 0; l < 32; ++l) {
    const int low = t < 2 ? ql[l] & 15 : ql[l] >> 4;
    g.w[l] = low | (((qh[l] >> (2 * t)) & 3) << 4);
  }
  const float d = load_f16(b.d);
  for (int h = 0; h < 2; ++h) {
    g.s[h] = d * static_cast<float>(b.scales[2 * gi + h]);
    g.m[h] = -32.0f * g.s[h];
  }
}

void decode_group(const BlockIQ4_XS& b, int gi, Group& g) {
  for (int j = 0; j < 16; ++j) {
    g.w[j] = kIq4nlValues[b.qs[16 * gi + j] & 15];
    g.w[j + 16] = kIq4nlValues[b.qs[16 * gi + j] >> 4];
  }
  uint16_t scales_h;
  std::memcpy(&scales_h, b.scales_h, sizeof(scales_h));
  const int ls = ((b.scales_l[gi / 2] >> (4 * (gi % 2))) & 15) | (((scales_h >> (2 * gi)) & 3) << 4);
  set_scale(g, load_f16(b.d) * static_cast<float>(ls - 32), 0.0f);
}

// ---- rows ----

template <typename Block, int kBlockSize>
double dot_q8(const Block* blocks, const int8_t* q, const float* d, const float* dsum, int64_t n) {
  constexpr int kGroups = kBlockSize / 32;
  double sum = 0;
  Group g;
  for (int64_t i = 0; i < n / kBlockSize; ++i) {
    for (int gi = 0; gi < kGroups; ++gi) {
      decode_group(blocks[i], gi, g);
      const int64_t block = i * kGroups + gi;  // activation block of 32
      for (int h = 0; h < 2; ++h) {
        int32_t isum = 0;
        for (int j = 16 * h; j < 16 * h + 16; ++j) isum += g.w[j] * q[32 * block + j];
        sum += static_cast<double>(g.s[h]) * d[block] * isum +
               static_cast<double>(g.m[h]) * dsum[2 * block + h];
      }
    }
  }
  return sum;
}

template <typename Block, int kBlockSize>
void matmul_q8_blocks(const void* w, int64_t row_bytes, const Q8Vectors& x, int64_t n_vectors,
                      float* y, int64_t y_stride, int64_t n_rows) {
  const int64_t n = x.n;
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks =
        reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * row_bytes);
    for (int64_t v = 0; v < n_vectors; ++v) {
      y[v * y_stride + r] = static_cast<float>(dot_q8<Block, kBlockSize>(
          blocks, x.q + v * n, x.d + v * (n / 32), x.dsum + v * (n / 16), n));
    }
  }
}

// ---- super-block types (the kBlocks256 activation layout) ----
//
// One super-block of 256 weights as integers: weight j = d * scale[j / 16] * w[j]
// - dmin * min[j / 16]. Against an activation super-block (x_j ~= dx * q_j, sums_k =
// sum of q over the 16 values of sub-block k):
//
//   sum_j weight_j * x_j ~= dx * (d * sum_k scale_k * sum_j w_j q_j - dmin * sum_k min_k * sums_k)
//
// Both inner sums are exact int32 (at most 2^28 in magnitude), so one float step per
// super-block remains.
struct Super {
  int w[256];
  int scale[16];
  int min[16];
  float d;
  float dmin;
};

template <typename Block>
void decode_k4_scales(const Block& b, Super& s) {
  for (int k = 0; k < 8; ++k) {
    int sc;
    int m;
    unpack_k_scale(b.scales, k, sc, m);
    s.scale[2 * k] = s.scale[2 * k + 1] = sc;
    s.min[2 * k] = s.min[2 * k + 1] = m;
  }
  s.d = load_f16(b.d);
  s.dmin = load_f16(b.dmin);
}

void decode_super(const BlockQ4_K& b, Super& s) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      s.w[64 * c + l] = b.qs[32 * c + l] & 15;
      s.w[64 * c + 32 + l] = b.qs[32 * c + l] >> 4;
    }
  }
  decode_k4_scales(b, s);
}

void decode_super(const BlockQ5_K& b, Super& s) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      s.w[64 * c + l] = (b.qs[32 * c + l] & 15) + 16 * ((b.qh[l] >> (2 * c)) & 1);
      s.w[64 * c + 32 + l] = (b.qs[32 * c + l] >> 4) + 16 * ((b.qh[l] >> (2 * c + 1)) & 1);
    }
  }
  decode_k4_scales(b, s);
}

// Codes 0..63 stand for code - 32: min = 32 * scale, dmin = d.
void decode_super(const BlockQ6_K& b, Super& s) {
  Group g;
  for (int gi = 0; gi < 8; ++gi) {
    decode_group(b, gi, g);
    for (int l = 0; l < 32; ++l) s.w[32 * gi + l] = g.w[l];
  }
  for (int k = 0; k < 16; ++k) {
    s.scale[k] = b.scales[k];
    s.min[k] = 32 * b.scales[k];
  }
  s.d = s.dmin = load_f16(b.d);
}

template <typename Block>
double dot_q8_super(const Block* blocks, const int8_t* q, const float* d, const int16_t* sums,
                    int64_t n) {
  double sum = 0;
  Super s;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    decode_super(blocks[i], s);
    int32_t isum = 0;
    int32_t imin = 0;
    for (int k = 0; k < 16; ++k) {
      int32_t dot = 0;
      for (int j = 16 * k; j < 16 * k + 16; ++j) dot += s.w[j] * q[kQKK * i + j];
      isum += s.scale[k] * dot;
      imin += s.min[k] * sums[16 * i + k];
    }
    // The float products as the SIMD kernels form them.
    sum += static_cast<double>(s.d * d[i]) * isum - static_cast<double>(s.dmin * d[i]) * imin;
  }
  return sum;
}

template <typename Block>
void matmul_q8_super(const void* w, int64_t row_bytes, const Q8Vectors& x, int64_t n_vectors,
                     float* y, int64_t y_stride, int64_t n_rows) {
  const int64_t n = x.n;
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks =
        reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * row_bytes);
    for (int64_t v = 0; v < n_vectors; ++v) {
      y[v * y_stride + r] = static_cast<float>(dot_q8_super<Block>(
          blocks, x.q + v * n, x.d + v * (n / kQKK), x.sums + v * (n / 16), n));
    }
  }
}

template <typename Block, int kBlockSize>
void set(KernelTable& table, TensorType type) {
  table.types[static_cast<uint32_t>(type)].matmul_q8 = &matmul_q8_blocks<Block, kBlockSize>;
}

template <typename Block>
void set_super(KernelTable& table, TensorType type) {
  table.types[static_cast<uint32_t>(type)].matmul_q8 = &matmul_q8_super<Block>;
}

}  // namespace

void quantize_activations_row(const float* x, int64_t n, int8_t* q, float* d, float* dsum) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float scale = amax / 127.0f;
    const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
    int sums[2] = {0, 0};
    for (int j = 0; j < 32; ++j) {
      // Round to nearest even, as the SIMD converts would; |x * inverse| <= 127.
      const int v = static_cast<int>(std::nearbyint(xb[j] * inverse));
      q[32 * b + j] = static_cast<int8_t>(v);
      sums[j / 16] += v;
    }
    d[b] = scale;
    dsum[2 * b] = scale * static_cast<float>(sums[0]);
    dsum[2 * b + 1] = scale * static_cast<float>(sums[1]);
  }
}

void quantize_activations_row_256(const float* x, int64_t n, int8_t* q, float* d, int16_t* sums) {
  for (int64_t b = 0; b < n / 256; ++b) {
    const float* xb = x + 256 * b;
    float amax = 0.0f;
    for (int j = 0; j < 256; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int k = 0; k < 16; ++k) {
      int sum = 0;
      for (int j = 16 * k; j < 16 * k + 16; ++j) {
        const int v = static_cast<int>(std::nearbyint(xb[j] * inverse));
        q[256 * b + j] = static_cast<int8_t>(v);
        sum += v;
      }
      sums[16 * b + k] = static_cast<int16_t>(sum);
    }
    d[b] = amax / 127.0f;
  }
}

void add_q8_generic_kernels(KernelTable& table) {
  table.quantize_q8_row = &quantize_activations_row;
  table.quantize_q8_row_256 = &quantize_activations_row_256;
  set<BlockQ4_0, kQK>(table, TensorType::kQ4_0);
  set<BlockQ4_1, kQK>(table, TensorType::kQ4_1);
  set<BlockQ5_0, kQK>(table, TensorType::kQ5_0);
  set<BlockQ5_1, kQK>(table, TensorType::kQ5_1);
  set<BlockQ8_0, kQK>(table, TensorType::kQ8_0);
  set<BlockQ2_K, kQKK>(table, TensorType::kQ2_K);
  set<BlockQ3_K, kQKK>(table, TensorType::kQ3_K);
  set_super<BlockQ4_K>(table, TensorType::kQ4_K);
  set_super<BlockQ5_K>(table, TensorType::kQ5_K);
  set_super<BlockQ6_K>(table, TensorType::kQ6_K);
  set<BlockIQ4_NL, kQK>(table, TensorType::kIQ4_NL);
  set<BlockIQ4_XS, kQKK>(table, TensorType::kIQ4_XS);
}

}  // namespace koto::kernels
