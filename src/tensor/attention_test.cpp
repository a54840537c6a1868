// The tiled F16 attention kernel (attention_kernel.inc) on every ISA: against a
// double-precision softmax(q K^T / sqrt(D)) V over the visible positions, and a row's
// result bit for bit the same alone as inside a block of rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "tensor/float16.h"
#include "tensor/kernel_table.h"
#include "tensor/kernels.h"

namespace koto::kernels {
namespace {

struct Cache {
  int32_t n_ctx;
  int32_t head_dim;
  std::vector<uint16_t> keys;    // [n_ctx][D]
  std::vector<uint16_t> values;  // [n_ctx][D]
};

Cache random_cache(int32_t n_ctx, int32_t head_dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Cache c{n_ctx, head_dim, std::vector<uint16_t>(static_cast<size_t>(n_ctx) * head_dim),
          std::vector<uint16_t>(static_cast<size_t>(n_ctx) * head_dim)};
  for (uint16_t& k : c.keys) k = fp32_to_fp16(normal(rng));
  for (uint16_t& v : c.values) v = fp32_to_fp16(normal(rng));
  return c;
}

// out for query q at `position`, in double.
std::vector<double> reference(const Cache& c, const float* q, int32_t position, float scale) {
  const int32_t d = c.head_dim;
  std::vector<double> scores(static_cast<size_t>(position) + 1);
  double max_score = -INFINITY;
  for (int32_t t = 0; t <= position; ++t) {
    double s = 0;
    for (int32_t i = 0; i < d; ++i) s += static_cast<double>(q[i]) * fp16_to_fp32(c.keys[static_cast<size_t>(t) * d + i]);
    scores[static_cast<size_t>(t)] = s * scale;
    max_score = std::max(max_score, scores[static_cast<size_t>(t)]);
  }
  double sum = 0;
  for (double& s : scores) sum += (s = std::exp(s - max_score));
  std::vector<double> out(static_cast<size_t>(d), 0.0);
  for (int32_t t = 0; t <= position; ++t) {
    for (int32_t i = 0; i < d; ++i) {
      out[static_cast<size_t>(i)] += scores[static_cast<size_t>(t)] / sum * fp16_to_fp32(c.values[static_cast<size_t>(t) * d + i]);
    }
  }
  return out;
}

AttentionBlock block_of(const Cache& c, const float* q, float* out, int64_t stride, int32_t rows, int32_t heads,
                        int32_t first_position) {
  AttentionBlock b{};
  b.q = q;
  b.q_row_stride = stride;
  b.out = out;
  b.out_row_stride = stride;
  b.n_rows = rows;
  b.n_heads = heads;
  b.head_dim = c.head_dim;
  b.first_position = first_position;
  b.keys = reinterpret_cast<const uint8_t*>(c.keys.data());
  b.values = reinterpret_cast<const uint8_t*>(c.values.data());
  b.n_ctx = c.n_ctx;
  b.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return b;
}

// Row r of `block` evaluated as a block of its own (same cache and settings).
std::vector<float> row_alone(const AttentionBlock& block, Isa isa, int32_t r) {
  std::vector<float> out(static_cast<size_t>(block.q_row_stride));
  AttentionBlock one = block;
  one.q = block.q + r * block.q_row_stride;
  one.out = out.data();
  one.n_rows = 1;
  one.first_position = block.first_position + r;
  kernel_table(isa).attention_f16(one);
  return out;
}

TEST(AttentionF16, MatchesDoublePrecisionSoftmax) {
  for (int32_t head_dim : {64, 128}) {
    const Cache c = random_cache(800, head_dim, 5);
    for (int32_t heads : {1, 2, 6}) {
      for (int32_t first : {0, 5, 63, 64, 130, 700}) {
        const int32_t rows = 20;
        const int64_t stride = int64_t{heads} * head_dim;
        std::mt19937 rng(static_cast<uint32_t>(first + heads));
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::vector<float> q(static_cast<size_t>(rows * stride));
        for (float& v : q) v = normal(rng);
        for (Isa isa : supported_isas()) {
          std::vector<float> out(q.size(), NAN);
          kernel_table(isa).attention_f16(block_of(c, q.data(), out.data(), stride, rows, heads, first));
          for (int32_t r = 0; r < rows; ++r) {
            for (int32_t j = 0; j < heads; ++j) {
              const std::vector<double> want = reference(c, &q[static_cast<size_t>(r * stride + j * head_dim)], first + r, 1.0f / std::sqrt(static_cast<float>(head_dim)));
              for (int32_t i = 0; i < head_dim; ++i) {
                ASSERT_NEAR(out[static_cast<size_t>(r * stride + j * head_dim + i)], want[static_cast<size_t>(i)], 2e-5)
                    << isa_name(isa) << " D=" << head_dim << " heads=" << heads << " position=" << first + r;
              }
            }
          }
        }
      }
    }
  }
}

TEST(AttentionF16, ARowAloneIsBitIdenticalToTheRowInABlock) {
  const Cache c = random_cache(300, 128, 9);
  const int32_t heads = 6;
  const int32_t rows = 16;
  const int32_t first = 60;
  const int64_t stride = int64_t{heads} * 128;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(rows * stride));
  for (float& v : q) v = normal(rng);
  for (Isa isa : supported_isas()) {
    std::vector<float> together(q.size());
    const AttentionBlock block = block_of(c, q.data(), together.data(), stride, rows, heads, first);
    kernel_table(isa).attention_f16(block);
    for (int32_t r = 0; r < rows; ++r) {
      const std::vector<float> alone = row_alone(block, isa, r);
      EXPECT_EQ(std::memcmp(alone.data(), &together[static_cast<size_t>(r * stride)], alone.size() * sizeof(float)), 0)
          << isa_name(isa) << " row " << r;
    }
  }
}

// F16 keys stored a tile at a time ([tile][D][64], as the session keeps them) give the
// very bits the row layout gives, whatever the unused end of the last tile holds.
TEST(AttentionF16, TiledKeysGiveTheSameBitsAsKeyRows) {
  const Cache c = random_cache(150, 64, 21);
  const int32_t tiles = (c.n_ctx + 63) / 64;
  std::vector<uint16_t> tiled(static_cast<size_t>(tiles) * 64 * c.head_dim, fp32_to_fp16(NAN));
  for (int32_t p = 0; p < c.n_ctx; ++p) {
    for (int32_t d = 0; d < c.head_dim; ++d) {
      tiled[(static_cast<size_t>(p / 64) * c.head_dim + d) * 64 + p % 64] = c.keys[static_cast<size_t>(p) * c.head_dim + d];
    }
  }
  // Every size of GQA group a row reads in place (1-8 heads), and 11 (two groups).
  for (int32_t heads : {1, 3, 6, 7, 8, 11}) {
    const int32_t rows = 10;
    const int64_t stride = int64_t{heads} * c.head_dim;
    std::mt19937 rng(2);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(rows * stride));
    for (float& v : q) v = normal(rng);
    for (Isa isa : supported_isas()) {
      for (int32_t first : {0, 60, 139}) {
        std::vector<float> from_rows(q.size());
        std::vector<float> from_tiles(q.size());
        kernel_table(isa).attention_f16(block_of(c, q.data(), from_rows.data(), stride, rows, heads, first));
        AttentionBlock b = block_of(c, q.data(), from_tiles.data(), stride, rows, heads, first);
        b.keys = reinterpret_cast<const uint8_t*>(tiled.data());
        b.keys_tiled = true;
        kernel_table(isa).attention_f16(b);
        EXPECT_EQ(std::memcmp(from_rows.data(), from_tiles.data(), q.size() * sizeof(float)), 0)
            << isa_name(isa) << " heads " << heads << " first " << first;
        // One row at a time (few queries: the F16 tile is read in place) gives the same bits.
        for (int32_t r = 0; r < rows; ++r) {
          const std::vector<float> alone = row_alone(b, isa, r);
          EXPECT_EQ(std::memcmp(alone.data(), &from_tiles[static_cast<size_t>(r * stride)], alone.size() * sizeof(float)), 0)
              << isa_name(isa) << " heads " << heads << " row " << r;
        }
      }
    }
  }
}

// A query as the kernel quantizes it for a Q8_0 cache (the activation quantizer of the
// matrix products: per 32 values d = max |x| / 127, code = round(x * 127 / max)), decoded
// back to floats.
std::vector<float> quantized_query(const float* x, int32_t d) {
  std::vector<int8_t> codes(static_cast<size_t>(d));
  std::vector<float> scales(static_cast<size_t>(d) / 32);
  std::vector<float> half_sums(static_cast<size_t>(d) / 16);
  quantize_activations_row(x, d, codes.data(), scales.data(), half_sums.data());
  std::vector<float> out(static_cast<size_t>(d));
  for (int32_t i = 0; i < d; ++i) out[static_cast<size_t>(i)] = codes[static_cast<size_t>(i)] * scales[static_cast<size_t>(i / 32)];
  return out;
}

// A Q8_0 cache in tiles (keys: codes + 128 as [D/4][64][4], values: codes [32][D][2],
// each then the scales [D/32][64]), against the reference on the values the blocks
// decode to and the quantized queries, within 1e-3 (values reach 7.9 here, and the
// weights of a tile's value block are summed as 15-bit integers, each within 1/65534 of
// the tile's largest: the output within n / 65534 * 7.9 over n positions at worst; the
// F16 tests hold 2e-5); and a row alone is the row in a block. The unused end of the
// last tile holds junk.
TEST(AttentionF16, Q8_0CacheMatchesItsDecodedValues) {
  const int32_t n_ctx = 200;
  const int32_t d = 64;
  const int32_t blocks = d / 32;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> code(-127, 127);
  const float scales[] = {1.0f / 64.0f, 1.0f / 16.0f, 1.0f / 128.0f};
  // The decoded values as an F16 cache, for the reference (these scales and codes keep them exact).
  Cache decoded{n_ctx, d, std::vector<uint16_t>(static_cast<size_t>(n_ctx) * d), std::vector<uint16_t>(static_cast<size_t>(n_ctx) * d)};
  const int32_t tiles = (n_ctx + 63) / 64;
  const size_t tile_bytes = static_cast<size_t>(64) * blocks * 34;
  std::vector<uint8_t> keys(tiles * tile_bytes, 0xAB);
  std::vector<uint8_t> values(keys.size(), 0xAB);
  for (int32_t p = 0; p < n_ctx; ++p) {
    uint8_t* tile = &keys[static_cast<size_t>(p / 64) * tile_bytes];
    const int32_t t = p % 64;
    for (int32_t b = 0; b < blocks; ++b) {
      const float key_scale = scales[(p + b) % 3];
      const uint16_t k16 = fp32_to_fp16(key_scale);
      std::memcpy(tile + static_cast<size_t>(d) * 64 + static_cast<size_t>(b * 64 + t) * 2, &k16, 2);
      const float value_scale = scales[(p + 2 * b + 1) % 3];
      const uint16_t v16 = fp32_to_fp16(value_scale);
      uint8_t* value_tile = &values[static_cast<size_t>(p / 64) * tile_bytes];
      std::memcpy(value_tile + static_cast<size_t>(d) * 64 + static_cast<size_t>(b * 64 + t) * 2, &v16, 2);
      for (int32_t i = 0; i < 32; ++i) {
        const int32_t e = 32 * b + i;
        const int8_t kc = static_cast<int8_t>(code(rng));
        tile[static_cast<size_t>((e / 4 * 64 + t) * 4 + e % 4)] = static_cast<uint8_t>(kc + 128);
        decoded.keys[static_cast<size_t>(p * d + e)] = fp32_to_fp16(kc * key_scale);
        const int8_t vc = static_cast<int8_t>(code(rng));
        value_tile[static_cast<size_t>((t / 2 * d + e) * 2 + t % 2)] = static_cast<uint8_t>(vc);
        decoded.values[static_cast<size_t>(p * d + e)] = fp32_to_fp16(vc * value_scale);
      }
    }
  }
  // One head, a pair, a GQA group of six, and eleven (two groups of the kernels).
  for (int32_t heads : {1, 2, 6, 11}) {
    const int32_t rows = 12;
    for (int32_t first : {0, 100, n_ctx - rows}) {
      const int64_t stride = int64_t{heads} * d;
      std::vector<float> q(static_cast<size_t>(rows * stride));
      for (float& v : q) v = normal(rng);
      for (Isa isa : supported_isas()) {
        AttentionBlock b = block_of(decoded, q.data(), nullptr, stride, rows, heads, first);
        b.keys = keys.data();
        b.values = values.data();
        b.q8_0 = true;
        b.keys_tiled = true;
        std::vector<float> out(q.size());
        b.out = out.data();
        kernel_table(isa).attention_f16(b);
        for (int32_t r = 0; r < rows; ++r) {
          for (int32_t j = 0; j < heads; ++j) {
            const std::vector<float> qq = quantized_query(&q[static_cast<size_t>(r * stride + j * d)], d);
            const std::vector<double> want = reference(decoded, qq.data(), first + r, 1.0f / std::sqrt(static_cast<float>(d)));
            for (int32_t i = 0; i < d; ++i) {
              ASSERT_NEAR(out[static_cast<size_t>(r * stride + j * d + i)], want[static_cast<size_t>(i)], 1e-3)
                  << isa_name(isa) << " heads " << heads << " position " << first + r;
            }
          }
          const std::vector<float> alone = row_alone(b, isa, r);
          EXPECT_EQ(std::memcmp(alone.data(), &out[static_cast<size_t>(r * stride)], alone.size() * sizeof(float)), 0)
              << isa_name(isa) << " heads " << heads << " row " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace koto::kernels
