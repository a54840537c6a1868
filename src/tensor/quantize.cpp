#include "tensor/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "koto/error.h"
#include "koto/i18n.h"
#include "tensor/float16.h"
#include "tensor/quant_blocks.h"

namespace koto {
namespace {

using namespace kernels;

constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

void store_f16(uint8_t* dst, float value) {
  const uint16_t h = fp32_to_fp16(value);
  std::memcpy(dst, &h, 2);
}

float f16_rounded(float value) { return fp16_to_fp32(fp32_to_fp16(value)); }

int nearest_int(float v) { return static_cast<int>(std::lrintf(v)); }

// ---- scale searches for one (sub-)block ----

// x ≈ scale * q - min with q in [0, levels], min >= 0 (the block's offset is never
// above zero, as the stored min is unsigned). Returns the squared error; q is filled.
float fit_scale_min(const float* x, int n, int levels, float& scale, float& min, uint8_t* q) {
  float lo = 0.0f, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (hi <= lo) {  // all equal (and <= 0): one level reproduces them exactly
    scale = 0.0f;
    min = -lo;
    std::memset(q, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  float best_error = INFINITY;
  uint8_t trial[32];
  for (int step = -8; step <= 8; ++step) {
    const float iscale = (static_cast<float>(levels) + 0.1f * static_cast<float>(step)) / (hi - lo);
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const int v = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, levels);
      trial[i] = static_cast<uint8_t>(v);
      sq += v;
      sqq += static_cast<double>(v) * v;
      sx += x[i];
      sqx += static_cast<double>(v) * x[i];
    }
    // Least squares for x ≈ a q + b, then keep b <= 0.
    const double det = n * sqq - sq * sq;
    double a = det > 0 ? (n * sqx - sq * sx) / det : 0.0;
    double b = (sx - a * sq) / n;
    if (b > 0) {
      b = 0;
      a = sqq > 0 ? sqx / sqq : 0.0;
    }
    if (a <= 0) continue;
    double error = 0;
    for (int i = 0; i < n; ++i) {
      const double d = a * trial[i] + b - x[i];
      error += d * d;
    }
    if (error < best_error) {
      best_error = static_cast<float>(error);
      scale = static_cast<float>(a);
      min = static_cast<float>(-b);
      std::memcpy(q, trial, static_cast<size_t>(n));
    }
  }
  if (!std::isfinite(best_error)) {  // degenerate: fall back to the plain range split
    scale = (hi - lo) / static_cast<float>(levels);
    min = -lo;
    for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(std::clamp(nearest_int((x[i] - lo) / scale), 0, levels));
    best_error = 0;
  }
  return best_error;
}

// The element of largest magnitude, with its sign (0 for an all-zero block). Symmetric
// scales map it to the end of the range that has more levels.
float largest_magnitude(const float* x, int n) {
  float max = 0.0f, amax = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

// x ≈ scale * q with q in [-negative_levels, positive_levels] (symmetric types).
// Returns the signed scale (0 for an all-zero block).
float fit_scale_symmetric(const float* x, int n, int negative_levels, int positive_levels) {
  const float max = largest_magnitude(x, n);
  if (max == 0.0f) return 0.0f;
  float best_scale = max / static_cast<float>(-negative_levels);
  double best_error = INFINITY;
  for (int step = -6; step <= 6; ++step) {
    // The largest magnitude maps near the end with more levels (-negative_levels).
    const float iscale = -(static_cast<float>(negative_levels) + 0.1f * static_cast<float>(step)) / max;
    double sqq = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const int v = std::clamp(nearest_int(iscale * x[i]), -negative_levels, positive_levels);
      sqq += static_cast<double>(v) * v;
      sqx += static_cast<double>(v) * x[i];
    }
    if (sqq <= 0) continue;
    const double s = sqx / sqq;
    double error = 0;
    for (int i = 0; i < n; ++i) {
      const int v = std::clamp(nearest_int(static_cast<float>(x[i] / s)), -negative_levels, positive_levels);
      const double d = s * v - x[i];
      error += d * d;
    }
    if (error < best_error) {
      best_error = error;
      best_scale = static_cast<float>(s);
    }
  }
  return best_scale;
}

int nearest_iq4(float v) {
  int best = 0;
  float best_d = std::fabs(v - kIq4Values[0]);
  for (int k = 1; k < 16; ++k) {
    const float d = std::fabs(v - kIq4Values[k]);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best;
}

// x ≈ scale * K[q] for the IQ4 table; returns the scale.
float fit_scale_iq4(const float* x, int n) {
  const float max = largest_magnitude(x, n);
  if (max == 0.0f) return 0.0f;
  float best_scale = max / -127.0f;
  double best_error = INFINITY;
  for (int step = -8; step <= 8; ++step) {
    const float trial = max / (-127.0f + 1.5f * static_cast<float>(step));
    double skk = 0, skx = 0;
    for (int i = 0; i < n; ++i) {
      const int k = kIq4Values[nearest_iq4(x[i] / trial)];
      skk += static_cast<double>(k) * k;
      skx += static_cast<double>(k) * x[i];
    }
    if (skk <= 0) continue;
    const double s = skx / skk;
    double error = 0;
    for (int i = 0; i < n; ++i) {
      const double d = s * kIq4Values[nearest_iq4(static_cast<float>(x[i] / s))] - x[i];
      error += d * d;
    }
    if (error < best_error) {
      best_error = error;
      best_scale = static_cast<float>(s);
    }
  }
  return best_scale;
}

// ---- 32-value types ----

void quantize_q8_0(const float* x, BlockQ8_0* b) {
  float amax = 0.0f;
  for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = f16_rounded(amax / 127.0f);
  store_f16(b->d, amax / 127.0f);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < kQK; ++i) b->qs[i] = static_cast<int8_t>(std::clamp(nearest_int(x[i] * id), -127, 127));
}

template <int kBits>
void quantize_symmetric_32(const float* x, uint8_t* d_out, uint8_t* qs, uint32_t* high_bits) {
  constexpr int kOffset = 1 << (kBits - 1);  // 8 for Q4_0, 16 for Q5_0
  const float d = f16_rounded(fit_scale_symmetric(x, kQK, kOffset, kOffset - 1));
  store_f16(d_out, d);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = std::clamp(nearest_int(x[j] * id) + kOffset, 0, 2 * kOffset - 1);
    const int q1 = std::clamp(nearest_int(x[j + 16] * id) + kOffset, 0, 2 * kOffset - 1);
    qs[j] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
    qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  if (high_bits != nullptr) *high_bits = qh;
}

template <int kBits>
void quantize_min_32(const float* x, uint8_t* d_out, uint8_t* m_out, uint8_t* qs, uint32_t* high_bits) {
  constexpr int kLevels = (1 << kBits) - 1;
  float lo = x[0], hi = x[0];
  for (int i = 1; i < kQK; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  const float d = f16_rounded((hi - lo) / kLevels);
  const float m = f16_rounded(lo);
  store_f16(d_out, d);
  store_f16(m_out, m);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = std::clamp(nearest_int((x[j] - m) * id), 0, kLevels);
    const int q1 = std::clamp(nearest_int((x[j + 16] - m) * id), 0, kLevels);
    qs[j] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
    qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  if (high_bits != nullptr) *high_bits = qh;
}

void quantize_iq4_nl(const float* x, BlockIQ4_NL* b) {
  const float d = f16_rounded(fit_scale_iq4(x, kQK));
  store_f16(b->d, d);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 16; ++j) {
    b->qs[j] = static_cast<uint8_t>(nearest_iq4(x[j] * id) | (nearest_iq4(x[j + 16] * id) << 4));
  }
}

// ---- K-quants (super-blocks of 256) ----

// Shared by Q4_K and Q5_K: 8 sub-blocks of 32, 6-bit scales and mins relative to the
// super-block's d and dmin. Fills the quantized levels q[256] (0..levels).
void quantize_k_scales_mins(const float* x, int levels, uint8_t* d_out, uint8_t* dmin_out, uint8_t* scales,
                            uint8_t* q) {
  float sub_scale[8], sub_min[8];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int b = 0; b < 8; ++b) {
    fit_scale_min(x + 32 * b, 32, levels, sub_scale[b], sub_min[b], q + 32 * b);
    max_scale = std::max(max_scale, sub_scale[b]);
    max_min = std::max(max_min, sub_min[b]);
  }
  const float d = f16_rounded(max_scale / 63.0f);
  const float dmin = f16_rounded(max_min / 63.0f);
  store_f16(d_out, d);
  store_f16(dmin_out, dmin);
  uint8_t sc[8], mn[8];
  for (int b = 0; b < 8; ++b) {
    sc[b] = static_cast<uint8_t>(d > 0 ? std::clamp(nearest_int(sub_scale[b] / d), 0, 63) : 0);
    mn[b] = static_cast<uint8_t>(dmin > 0 ? std::clamp(nearest_int(sub_min[b] / dmin), 0, 63) : 0);
  }
  for (int i = 0; i < 4; ++i) {
    scales[i] = static_cast<uint8_t>(sc[i] | ((sc[i + 4] >> 4) << 6));
    scales[i + 4] = static_cast<uint8_t>(mn[i] | ((mn[i + 4] >> 4) << 6));
    scales[i + 8] = static_cast<uint8_t>((sc[i + 4] & 15) | ((mn[i + 4] & 15) << 4));
  }
  // Re-quantize with the scales as they will be decoded.
  for (int b = 0; b < 8; ++b) {
    const float scale = d * sc[b];
    const float min = dmin * mn[b];
    for (int i = 0; i < 32; ++i) {
      q[32 * b + i] = static_cast<uint8_t>(
          scale > 0 ? std::clamp(nearest_int((x[32 * b + i] + min) / scale), 0, levels) : 0);
    }
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* b) {
  uint8_t q[256];
  quantize_k_scales_mins(x, 15, b->d, b->dmin, b->scales, q);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) b->qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* b) {
  uint8_t q[256];
  quantize_k_scales_mins(x, 31, b->d, b->dmin, b->scales, q);
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
      b->qs[32 * c + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
      b->qh[l] = static_cast<uint8_t>(b->qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
    }
  }
}

void quantize_q2_k(const float* x, BlockQ2_K* b) {
  uint8_t q[256];
  float sub_scale[16], sub_min[16];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int i = 0; i < 16; ++i) {
    fit_scale_min(x + 16 * i, 16, 3, sub_scale[i], sub_min[i], q + 16 * i);
    max_scale = std::max(max_scale, sub_scale[i]);
    max_min = std::max(max_min, sub_min[i]);
  }
  const float d = f16_rounded(max_scale / 15.0f);
  const float dmin = f16_rounded(max_min / 15.0f);
  store_f16(b->d, d);
  store_f16(b->dmin, dmin);
  // With only 4 bits per scale and min, rounding each on its own loses much; try the
  // neighbouring pairs and keep the one that reproduces the sub-block best.
  for (int i = 0; i < 16; ++i) {
    const float* xs = x + 16 * i;
    const int sc0 = d > 0 ? nearest_int(sub_scale[i] / d) : 0;
    const int mn0 = dmin > 0 ? nearest_int(sub_min[i] / dmin) : 0;
    int best_sc = 0, best_mn = 0;
    double best_error = INFINITY;
    for (int sc = std::max(0, sc0 - 2); sc <= std::min(15, sc0 + 2); ++sc) {
      for (int mn = std::max(0, mn0 - 2); mn <= std::min(15, mn0 + 2); ++mn) {
        const float scale = d * sc, min = dmin * mn;
        double error = 0;
        for (int l = 0; l < 16; ++l) {
          const int v = scale > 0 ? std::clamp(nearest_int((xs[l] + min) / scale), 0, 3) : 0;
          const double diff = scale * v - min - xs[l];
          error += diff * diff;
        }
        if (error < best_error) {
          best_error = error;
          best_sc = sc;
          best_mn = mn;
        }
      }
    }
    b->scales[i] = static_cast<uint8_t>(best_sc | (best_mn << 4));
    const float scale = d * best_sc, min = dmin * best_mn;
    for (int l = 0; l < 16; ++l) {
      q[16 * i + l] = static_cast<uint8_t>(scale > 0 ? std::clamp(nearest_int((xs[l] + min) / scale), 0, 3) : 0);
    }
  }
  // Element 16 * (8n + 2j + s) + l sits in qs[32n + 16s + l] at bit 2j.
  std::memset(b->qs, 0, sizeof(b->qs));
  for (int i = 0; i < 16; ++i) {
    const int n = i / 8, j = (i % 8) / 2, s = i % 2;
    for (int l = 0; l < 16; ++l) b->qs[32 * n + 16 * s + l] |= static_cast<uint8_t>(q[16 * i + l] << (2 * j));
  }
}

void quantize_q3_k(const float* x, BlockQ3_K* b) {
  float sub_scale[16];
  for (int i = 0; i < 16; ++i) sub_scale[i] = fit_scale_symmetric(x + 16 * i, 16, 4, 3);
  const float max = largest_magnitude(sub_scale, 16);
  const float d = f16_rounded(max / -32.0f);
  store_f16(b->d, d);
  std::memset(b->scales, 0, sizeof(b->scales));
  std::memset(b->hmask, 0, sizeof(b->hmask));
  std::memset(b->qs, 0, sizeof(b->qs));
  for (int i = 0; i < 16; ++i) {
    const int s = d != 0.0f ? std::clamp(nearest_int(sub_scale[i] / d), -32, 31) : 0;
    const int u = s + 32;
    b->scales[i % 8] |= static_cast<uint8_t>((u & 15) << (i < 8 ? 0 : 4));
    b->scales[8 + i % 4] |= static_cast<uint8_t>((u >> 4) << (2 * (i / 4)));
    const float scale = d * s;
    const int n = i / 8, j = (i % 8) / 2, half = i % 2;
    for (int l = 0; l < 16; ++l) {
      const int q = scale != 0.0f ? std::clamp(nearest_int(x[16 * i + l] / scale), -4, 3) : 0;
      const int stored = q + 4;  // 0..7: two low bits in qs, the third in hmask
      b->qs[32 * n + 16 * half + l] |= static_cast<uint8_t>((stored & 3) << (2 * j));
      if (stored & 4) b->hmask[16 * half + l] |= static_cast<uint8_t>(1 << (4 * n + j));
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* b) {
  float sub_scale[16];
  float amax = 0.0f;
  for (int i = 0; i < 16; ++i) {
    sub_scale[i] = fit_scale_symmetric(x + 16 * i, 16, 32, 31);
    amax = std::max(amax, std::fabs(sub_scale[i]));
  }
  const float d = f16_rounded(amax / 127.0f);
  store_f16(b->d, d);
  uint8_t q[256];
  for (int i = 0; i < 16; ++i) {
    const int s = d != 0.0f ? std::clamp(nearest_int(sub_scale[i] / d), -127, 127) : 0;
    b->scales[i] = static_cast<int8_t>(s);
    const float scale = d * s;
    for (int l = 0; l < 16; ++l) {
      q[16 * i + l] = static_cast<uint8_t>(
          (scale != 0.0f ? std::clamp(nearest_int(x[16 * i + l] / scale), -32, 31) : 0) + 32);
    }
  }
  // Element 128n + 32g + l: low nibble in ql[64n + l + 32*(g&1)] (high nibble when g >= 2),
  // two high bits in qh[32n + l] at bit 2g.
  std::memset(b->ql, 0, sizeof(b->ql));
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int n = 0; n < 2; ++n) {
    for (int g = 0; g < 4; ++g) {
      for (int l = 0; l < 32; ++l) {
        const int v = q[128 * n + 32 * g + l];
        b->ql[64 * n + l + 32 * (g & 1)] |= static_cast<uint8_t>((v & 15) << (g >= 2 ? 4 : 0));
        b->qh[32 * n + l] |= static_cast<uint8_t>((v >> 4) << (2 * g));
      }
    }
  }
}

void quantize_iq4_xs(const float* x, BlockIQ4_XS* b) {
  float sub_scale[8];
  for (int i = 0; i < 8; ++i) sub_scale[i] = fit_scale_iq4(x + 32 * i, 32);
  const float max = largest_magnitude(sub_scale, 8);
  const float d = f16_rounded(max / -32.0f);
  store_f16(b->d, d);
  uint16_t scales_h = 0;
  std::memset(b->scales_l, 0, sizeof(b->scales_l));
  for (int i = 0; i < 8; ++i) {
    const int ls = (d != 0.0f ? std::clamp(nearest_int(sub_scale[i] / d), -32, 31) : 0) + 32;
    b->scales_l[i / 2] |= static_cast<uint8_t>((ls & 15) << (4 * (i % 2)));
    scales_h |= static_cast<uint16_t>((ls >> 4) << (2 * i));
    const float scale = d * static_cast<float>(ls - 32);
    const float id = scale != 0.0f ? 1.0f / scale : 0.0f;
    for (int j = 0; j < 16; ++j) {
      b->qs[16 * i + j] = static_cast<uint8_t>(nearest_iq4(x[32 * i + j] * id) | (nearest_iq4(x[32 * i + 16 + j] * id) << 4));
    }
  }
  std::memcpy(b->scales_h, &scales_h, 2);
}

template <typename Block, typename F>
void per_block(const float* src, void* dst, int64_t n, int block_size, F&& quantize_block) {
  auto* blocks = static_cast<Block*>(dst);
  for (int64_t i = 0; i < n / block_size; ++i) quantize_block(src + i * block_size, blocks + i);
}

}  // namespace

void quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  const TensorTypeInfo& info = tensor_type_info(type);
  if (n % info.block_size != 0) {
    throw Error(ErrorCode::kInvalidArgument, tr("cannot quantize a row of {0} values to {1}: not a multiple of {2}",
                                                "{0} 個の値の行は {1} に量子化できません ({2} の倍数ではありません)",
                                                n, info.name, info.block_size));
  }
  switch (type) {
    case TensorType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case TensorType::kF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(src[i]);
      return;
    }
    case TensorType::kBF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_bf16(src[i]);
      return;
    }
    case TensorType::kQ8_0: per_block<BlockQ8_0>(src, dst, n, kQK, quantize_q8_0); return;
    case TensorType::kQ4_0:
      per_block<BlockQ4_0>(src, dst, n, kQK, [](const float* x, BlockQ4_0* b) { quantize_symmetric_32<4>(x, b->d, b->qs, nullptr); });
      return;
    case TensorType::kQ5_0:
      per_block<BlockQ5_0>(src, dst, n, kQK, [](const float* x, BlockQ5_0* b) {
        uint32_t qh;
        quantize_symmetric_32<5>(x, b->d, b->qs, &qh);
        std::memcpy(b->qh, &qh, 4);
      });
      return;
    case TensorType::kQ4_1:
      per_block<BlockQ4_1>(src, dst, n, kQK, [](const float* x, BlockQ4_1* b) { quantize_min_32<4>(x, b->d, b->m, b->qs, nullptr); });
      return;
    case TensorType::kQ5_1:
      per_block<BlockQ5_1>(src, dst, n, kQK, [](const float* x, BlockQ5_1* b) {
        uint32_t qh;
        quantize_min_32<5>(x, b->d, b->m, b->qs, &qh);
        std::memcpy(b->qh, &qh, 4);
      });
      return;
    case TensorType::kIQ4_NL: per_block<BlockIQ4_NL>(src, dst, n, kQK, quantize_iq4_nl); return;
    case TensorType::kQ2_K: per_block<BlockQ2_K>(src, dst, n, kQKK, quantize_q2_k); return;
    case TensorType::kQ3_K: per_block<BlockQ3_K>(src, dst, n, kQKK, quantize_q3_k); return;
    case TensorType::kQ4_K: per_block<BlockQ4_K>(src, dst, n, kQKK, quantize_q4_k); return;
    case TensorType::kQ5_K: per_block<BlockQ5_K>(src, dst, n, kQKK, quantize_q5_k); return;
    case TensorType::kQ6_K: per_block<BlockQ6_K>(src, dst, n, kQKK, quantize_q6_k); return;
    case TensorType::kIQ4_XS: per_block<BlockIQ4_XS>(src, dst, n, kQKK, quantize_iq4_xs); return;
    default: break;
  }
  throw Error(ErrorCode::kUnsupported, tr("koto cannot quantize to {0}; it can write {1}",
                                          "{0} への量子化には対応していません。対応する型: {1}", info.name,
                                          supported_tensor_type_names()));
}

}  // namespace koto
