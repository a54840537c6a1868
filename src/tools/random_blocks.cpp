#include "tools/random_blocks.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "koto/error.h"
#include "koto/i18n.h"
#include "tensor/quantize.h"

namespace koto::tools {
namespace {

constexpr int64_t kChunkBytes = 8 << 20;

inline uint64_t next_random(uint64_t& state) {
  // xorshift64*: plenty for picking blocks, a few cycles per call.
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 2685821657736338717ull;
}

uint64_t mix_seed(uint64_t seed) {
  // splitmix64 finalizer, so nearby seeds give unrelated streams; never 0.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z == 0 ? 1 : z;
}

}  // namespace

RandomBlockPool::RandomBlockPool(TensorType type, float sigma, uint64_t seed) : type_(type) {
  const TensorTypeInfo& info = tensor_type_info(type);
  unit_values_ = std::max<int64_t>(info.block_size, 32);
  unit_bytes_ = tensor_row_bytes(type, unit_values_);
  std::mt19937_64 rng(mix_seed(seed ^ static_cast<uint64_t>(type)));
  std::normal_distribution<float> normal(0.0f, sigma);
  std::uniform_real_distribution<float> outlier(4.0f, 10.0f);
  std::uniform_int_distribution<int> one_in_1000(0, 999);
  std::vector<float> values(static_cast<size_t>(unit_values_));
  units_.resize(static_cast<size_t>(kPoolUnits * unit_bytes_));
  for (int64_t u = 0; u < kPoolUnits; ++u) {
    for (float& v : values) {
      v = normal(rng);
      if (one_in_1000(rng) == 0) v = (v < 0 ? -sigma : sigma) * outlier(rng);
    }
    quantize_row(type, values.data(), units_.data() + u * unit_bytes_, unit_values_);
  }
}

void RandomBlockPool::fill_row(uint8_t* dst, int64_t n, uint64_t& state) const {
  if (n % unit_values_ != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("rows of {0} values cannot be made of {1} units of {2} values",
                   "{0} 個の値の行は {1} の {2} 個単位では作れません", n, tensor_type_name(type_), unit_values_));
  }
  const int64_t units = n / unit_values_;
  const size_t bytes = static_cast<size_t>(unit_bytes_);
  for (int64_t u = 0; u < units; ++u) {
    const uint64_t pick = (next_random(state) >> 32) % static_cast<uint64_t>(kPoolUnits);
    std::memcpy(dst + u * unit_bytes_, units_.data() + pick * bytes, bytes);
  }
}

void RandomBlockPool::write_rows(GgufDataSink& sink, int64_t n, int64_t n_rows, uint64_t seed,
                                 const std::function<void(uint64_t)>& progress) const {
  const int64_t row_bytes = tensor_row_bytes(type_, n);
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkBytes / row_bytes);
  std::vector<uint8_t> chunk(static_cast<size_t>(std::min(rows_per_chunk, n_rows) * row_bytes));
  uint64_t state = mix_seed(seed);
  for (int64_t row = 0; row < n_rows; row += rows_per_chunk) {
    const int64_t rows = std::min(rows_per_chunk, n_rows - row);
    for (int64_t r = 0; r < rows; ++r) fill_row(chunk.data() + r * row_bytes, n, state);
    sink.write(chunk.data(), static_cast<size_t>(rows * row_bytes));
    if (progress) progress(static_cast<uint64_t>(rows * row_bytes));
  }
}

const RandomBlockPool& RandomBlockPools::get(TensorType type) {
  std::unique_ptr<RandomBlockPool>& pool = pools_[type];
  if (!pool) pool = std::make_unique<RandomBlockPool>(type, sigma_, seed_);
  return *pool;
}

}  // namespace koto::tools
