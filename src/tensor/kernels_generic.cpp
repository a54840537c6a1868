// Scalar reference kernels for every supported type. The block decoders follow the
// dequantization formulas of the fixtures README (section 2) literally: float32
// arithmetic, products in the stated order, and this file is compiled with
// -ffp-contract=off so no multiply-add is fused. That makes dequantize_row bit-exact
// with ggml's to_float; the SIMD dot products are tested against these.
#include <cmath>
#include <vector>
#include <limits>
#include <algorithm>
#include <cstring>

#include "koto/tensor_type.h"
#include "tensor/float16.h"
#include "tensor/kernel_table.h"
#include "tensor/quant_blocks.h"

namespace koto::kernels {
namespace {

float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return fp16_to_fp32(h);
}

// ---- block decoders: one block into y[0 .. block size) ----

void decode_block(const BlockQ4_0& b, float* y) {
  const float d = load_f16(b.d);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((b.qs[j] & 15) - 8) * d;
    y[j + 16] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
  }
}

void decode_block(const BlockQ4_1& b, float* y) {
  const float d = load_f16(b.d);
  const float m = load_f16(b.m);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(b.qs[j] & 15) * d + m;
    y[j + 16] = static_cast<float>(b.qs[j] >> 4) * d + m;
  }
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

void decode_block(const BlockQ5_0& b, float* y) {
  const float d = load_f16(b.d);
  const uint32_t h = load_u32(b.qh);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 15) | static_cast<int>(((h >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((h >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

void decode_block(const BlockQ5_1& b, float* y) {
  const float d = load_f16(b.d);
  const float m = load_f16(b.m);
  const uint32_t h = load_u32(b.qh);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 15) | static_cast<int>(((h >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((h >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}

void decode_block(const BlockQ8_0& b, float* y) {
  const float d = load_f16(b.d);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

void decode_block(const BlockQ2_K& b, float* y) {
  const float d = load_f16(b.d);
  const float dmin = load_f16(b.dmin);
  for (int n = 0; n < 2; ++n) {
    for (int j = 0; j < 4; ++j) {
      for (int s = 0; s < 2; ++s) {
        const uint8_t sc = b.scales[8 * n + 2 * j + s];
        const float dl = d * static_cast<float>(sc & 15);
        const float ml = dmin * static_cast<float>(sc >> 4);
        const uint8_t* q = b.qs + 32 * n + 16 * s;
        float* out = y + 128 * n + 32 * j + 16 * s;
        for (int l = 0; l < 16; ++l) {
          out[l] = dl * static_cast<float>((q[l] >> (2 * j)) & 3) - ml;
        }
      }
    }
  }
}

void decode_block(const BlockQ3_K& b, float* y) {
  const float d = load_f16(b.d);
  int scale[16];
  for (int i = 0; i < 16; ++i) {
    const int lo = i < 8 ? (b.scales[i] & 15) : (b.scales[i - 8] >> 4);
    const int hi = (b.scales[8 + i % 4] >> (2 * (i / 4))) & 3;
    scale[i] = (lo | hi << 4) - 32;
  }
  for (int n = 0; n < 2; ++n) {
    for (int j = 0; j < 4; ++j) {
      const uint8_t mask = static_cast<uint8_t>(1u << (4 * n + j));
      for (int s = 0; s < 2; ++s) {
        const float dl = d * static_cast<float>(scale[8 * n + 2 * j + s]);
        const uint8_t* q = b.qs + 32 * n + 16 * s;
        const uint8_t* hm = b.hmask + 16 * s;
        float* out = y + 128 * n + 32 * j + 16 * s;
        for (int l = 0; l < 16; ++l) {
          const int v = ((q[l] >> (2 * j)) & 3) - ((hm[l] & mask) ? 0 : 4);
          out[l] = dl * static_cast<float>(v);
        }
      }
    }
  }
}

// The 6-bit scales and mins of Q4_K and Q5_K, unpacked from scales[12].
void unpack_k_scales(const uint8_t* packed, int* sc, int* m) {
  for (int i = 0; i < 4; ++i) {
    sc[i] = packed[i] & 63;
    m[i] = packed[i + 4] & 63;
  }
  for (int i = 4; i < 8; ++i) {
    sc[i] = (packed[i + 4] & 15) | ((packed[i - 4] >> 6) << 4);
    m[i] = (packed[i + 4] >> 4) | ((packed[i] >> 6) << 4);
  }
}

void decode_block(const BlockQ4_K& b, float* y) {
  const float d = load_f16(b.d);
  const float dmin = load_f16(b.dmin);
  int sc[8];
  int m[8];
  unpack_k_scales(b.scales, sc, m);
  for (int c = 0; c < 4; ++c) {
    const float d_lo = d * static_cast<float>(sc[2 * c]);
    const float m_lo = dmin * static_cast<float>(m[2 * c]);
    const float d_hi = d * static_cast<float>(sc[2 * c + 1]);
    const float m_hi = dmin * static_cast<float>(m[2 * c + 1]);
    for (int l = 0; l < 32; ++l) {
      y[64 * c + l] = d_lo * static_cast<float>(b.qs[32 * c + l] & 15) - m_lo;
      y[64 * c + 32 + l] = d_hi * static_cast<float>(b.qs[32 * c + l] >> 4) - m_hi;
    }
  }
}

void decode_block(const BlockQ5_K& b, float* y) {
  const float d = load_f16(b.d);
  const float dmin = load_f16(b.dmin);
  int sc[8];
  int m[8];
  unpack_k_scales(b.scales, sc, m);
  for (int c = 0; c < 4; ++c) {
    const float d_lo = d * static_cast<float>(sc[2 * c]);
    const float m_lo = dmin * static_cast<float>(m[2 * c]);
    const float d_hi = d * static_cast<float>(sc[2 * c + 1]);
    const float m_hi = dmin * static_cast<float>(m[2 * c + 1]);
    for (int l = 0; l < 32; ++l) {
      const int lo = (b.qs[32 * c + l] & 15) + 16 * ((b.qh[l] >> (2 * c)) & 1);
      const int hi = (b.qs[32 * c + l] >> 4) + 16 * ((b.qh[l] >> (2 * c + 1)) & 1);
      y[64 * c + l] = d_lo * static_cast<float>(lo) - m_lo;
      y[64 * c + 32 + l] = d_hi * static_cast<float>(hi) - m_hi;
    }
  }
}

void decode_block(const BlockQ6_K& b, float* y) {
  const float d = load_f16(b.d);
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b.ql + 64 * n;
    const uint8_t* qh = b.qh + 32 * n;
    const int8_t* sc = b.scales + 8 * n;
    float* out = y + 128 * n;
    for (int l = 0; l < 32; ++l) {
      const int k = l / 16;
      const int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
      const int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
      const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
      const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
      out[l] = (d * static_cast<float>(sc[k])) * static_cast<float>(q1);
      out[l + 32] = (d * static_cast<float>(sc[k + 2])) * static_cast<float>(q2);
      out[l + 64] = (d * static_cast<float>(sc[k + 4])) * static_cast<float>(q3);
      out[l + 96] = (d * static_cast<float>(sc[k + 6])) * static_cast<float>(q4);
    }
  }
}

void decode_block(const BlockIQ4_NL& b, float* y) {
  const float d = load_f16(b.d);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(kIq4nlValues[b.qs[j] & 15]);
    y[j + 16] = d * static_cast<float>(kIq4nlValues[b.qs[j] >> 4]);
  }
}

void decode_block(const BlockIQ4_XS& b, float* y) {
  const float d = load_f16(b.d);
  uint16_t scales_h;
  std::memcpy(&scales_h, b.scales_h, sizeof(scales_h));
  for (int s = 0; s < 8; ++s) {
    const int ls = ((b.scales_l[s / 2] >> (4 * (s % 2))) & 15) | (((scales_h >> (2 * s)) & 3) << 4);
    const float dl = d * static_cast<float>(ls - 32);
    const uint8_t* q = b.qs + 16 * s;
    for (int j = 0; j < 16; ++j) {
      y[32 * s + j] = dl * static_cast<float>(kIq4nlValues[q[j] & 15]);
      y[32 * s + 16 + j] = dl * static_cast<float>(kIq4nlValues[q[j] >> 4]);
    }
  }
}

// ---- the three kernels, for any block type ----

// Eight partial sums so the loop vectorizes without reassociation; the block sums
// are added in double, which keeps this reference well below the SIMD tolerances.
float dot_floats(const float* a, const float* b, int n) {
  float acc[8] = {};
  for (int i = 0; i < n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

template <typename Block, int kBlockSize>
void dequantize_blocks(const void* row, float* dst, int64_t n) {
  const auto* blocks = static_cast<const Block*>(row);
  for (int64_t i = 0; i < n / kBlockSize; ++i) decode_block(blocks[i], dst + i * kBlockSize);
}

template <typename Block, int kBlockSize>
float dot_blocks(const void* row, const float* x, int64_t n) {
  const auto* blocks = static_cast<const Block*>(row);
  float values[kBlockSize];
  double sum = 0;
  for (int64_t i = 0; i < n / kBlockSize; ++i) {
    decode_block(blocks[i], values);
    sum += dot_floats(values, x + i * kBlockSize, kBlockSize);
  }
  return static_cast<float>(sum);
}

// Plain float types: widen 256 values at a time into the same block-sum scheme (n
// need not be a multiple of 256; the tail is summed in double).
template <float (*widen)(const uint8_t*), int kElementBytes>
void dequantize_plain(const void* row, float* dst, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(row);
  for (int64_t i = 0; i < n; ++i) dst[i] = widen(bytes + i * kElementBytes);
}

template <float (*widen)(const uint8_t*), int kElementBytes>
float dot_plain(const void* row, const float* x, int64_t n) {
  constexpr int kChunk = 256;
  const auto* bytes = static_cast<const uint8_t*>(row);
  float values[kChunk];
  double sum = 0;
  int64_t i = 0;
  for (; i + kChunk <= n; i += kChunk) {
    for (int l = 0; l < kChunk; ++l) values[l] = widen(bytes + (i + l) * kElementBytes);
    sum += dot_floats(values, x + i, kChunk);
  }
  for (; i < n; ++i) sum += static_cast<double>(widen(bytes + i * kElementBytes)) * x[i];
  return static_cast<float>(sum);
}

float widen_f32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, sizeof(f));
  return f;
}
float widen_f16(const uint8_t* p) { return load_f16(p); }
float widen_bf16(const uint8_t* p) {
  uint16_t b;
  std::memcpy(&b, p, sizeof(b));
  return bf16_to_fp32(b);
}

template <DotRowFn dot>
void matvec_rows(const void* w, int64_t row_bytes, int64_t n, const float* x, float* y,
                 int64_t n_rows) {
  const auto* rows = static_cast<const uint8_t*>(w);
  for (int64_t r = 0; r < n_rows; ++r) y[r] = dot(rows + r * row_bytes, x, n);
}

template <typename Block, int kBlockSize>
TypeKernels block_kernels() {
  return {&dequantize_blocks<Block, kBlockSize>, &dot_blocks<Block, kBlockSize>,
          &matvec_rows<&dot_blocks<Block, kBlockSize>>, nullptr};
}

template <float (*widen)(const uint8_t*), int kElementBytes>
TypeKernels plain_kernels() {
  return {&dequantize_plain<widen, kElementBytes>, &dot_plain<widen, kElementBytes>,
          &matvec_rows<&dot_plain<widen, kElementBytes>>, nullptr};
}

}  // namespace

namespace {

void halves_to_floats(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_f16(reinterpret_cast<const uint8_t*>(src + i));
}
void floats_to_halves_scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}
void exp_in_place(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}
#include "tensor/attention_tiles_plain.inc"
#include "tensor/attention_kernel.inc"

// The reference: std::exp in float.
void silu_mul_scalar(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

// Eight independent integer multiply-add chains (a scalar core's best).
int64_t int8_peak_scalar(int64_t iterations) {
  int32_t acc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  volatile int8_t a_in = 3;
  volatile int8_t b_in = 5;
  const int32_t a = a_in;
  const int32_t b = b_in;
  for (int64_t i = 0; i < iterations; ++i) {
    for (int32_t& v : acc) v += a * b;
  }
  volatile int32_t sink = acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
  (void)sink;
  return iterations * 8 * 2;
}

}  // namespace

void add_generic_kernels(KernelTable& table) {
  table.silu_mul = &silu_mul_scalar;
  table.attention_f16 = &attention_f16_impl;
  table.floats_to_halves = &floats_to_halves_scalar;
  table.int8_peak = &int8_peak_scalar;
  auto set = [&table](TensorType type, TypeKernels kernels) {
    table.types[static_cast<uint32_t>(type)] = kernels;
  };
  set(TensorType::kF32, plain_kernels<&widen_f32, 4>());
  set(TensorType::kF16, plain_kernels<&widen_f16, 2>());
  set(TensorType::kBF16, plain_kernels<&widen_bf16, 2>());
  set(TensorType::kQ4_0, block_kernels<BlockQ4_0, kQK>());
  set(TensorType::kQ4_1, block_kernels<BlockQ4_1, kQK>());
  set(TensorType::kQ5_0, block_kernels<BlockQ5_0, kQK>());
  set(TensorType::kQ5_1, block_kernels<BlockQ5_1, kQK>());
  set(TensorType::kQ8_0, block_kernels<BlockQ8_0, kQK>());
  set(TensorType::kQ2_K, block_kernels<BlockQ2_K, kQKK>());
  set(TensorType::kQ3_K, block_kernels<BlockQ3_K, kQKK>());
  set(TensorType::kQ4_K, block_kernels<BlockQ4_K, kQKK>());
  set(TensorType::kQ5_K, block_kernels<BlockQ5_K, kQKK>());
  set(TensorType::kQ6_K, block_kernels<BlockQ6_K, kQKK>());
  set(TensorType::kIQ4_NL, block_kernels<BlockIQ4_NL, kQK>());
  set(TensorType::kIQ4_XS, block_kernels<BlockIQ4_XS, kQKK>());
}

}  // namespace koto::kernels
