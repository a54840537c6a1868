// The AVX-512 prefill kernels (matmul_q8_avx512_tiles.cpp) against the scalar reference
// on shapes that cross their internal boundaries: several row tiles (the last one
// short), a row count that leaves a partial block of rows, a vector count that leaves
// a partial block of vectors, rows long enough to be split in slices, and rows whose
// last group of 16 blocks is partly empty. The shapes test (matmul_q8_shapes_test.cpp)
// has too few rows to reach a second tile and too short rows for a second slice.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/kernels.h"
#include "tools/random_blocks.h"

namespace koto::kernels {
namespace {

tools::RandomBlockPools& pools() {
  static tools::RandomBlockPools instance(0.02f, 91);
  return instance;
}

class MatmulQ8TilesTest : public testing::TestWithParam<TensorType> {};

TEST_P(MatmulQ8TilesTest, ManyRowsAndVectorsMatchScalar) {
  if (!isa_supported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  const TensorType type = GetParam();
  const Q8Layout layout = q8_layout(type);
  const bool super_blocks =
      type == TensorType::kQ4_K || type == TensorType::kQ5_K || type == TensorType::kQ6_K || type == TensorType::kIQ4_XS;
  // 161 or 168 blocks of 32: eleven groups of 16, the last one partly padding, in two
  // slices; 48 decoded rows per tile, so 151 rows make four tiles, the last of 7 rows.
  const int64_t n = super_blocks ? 5376 : 5152;
  constexpr int64_t kRows = 151;
  constexpr int64_t kVectors = 23;
  constexpr int64_t kStride = kRows + 3;

  const int64_t row_bytes = tensor_row_bytes(type, n);
  std::vector<uint8_t> storage(static_cast<size_t>(row_bytes * kRows + 1));
  uint8_t* w = storage.data() + 1;  // unaligned rows
  uint64_t state = 0x2545F4914F6CDD1Du;
  for (int64_t r = 0; r < kRows; ++r) pools().get(type).fill_row(w + r * row_bytes, n, state);

  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(kVectors * n));
  for (float& v : x) v = normal(rng);
  Q8Activations a;
  quantize_activations(x.data(), kVectors, n, a, layout);
  const Q8Vectors q8{a.q.data(), a.d.data(), a.dsum.data(), a.sums.data(), n};

  // The accuracy contract: within 1e-5 of sum |w x| over the quantized x.
  const int64_t block = layout == Q8Layout::kBlocks256 ? 256 : 32;
  std::vector<float> row(static_cast<size_t>(n));
  std::vector<double> magnitude(static_cast<size_t>(kVectors * kRows));
  for (int64_t r = 0; r < kRows; ++r) {
    dequantize_row(type, w + r * row_bytes, row.data(), n);
    for (int64_t v = 0; v < kVectors; ++v) {
      double m = 0;
      for (int64_t i = 0; i < n; ++i) {
        m += std::fabs(static_cast<double>(row[i]) * a.d[(v * n + i) / block] * a.q[v * n + i]);
      }
      magnitude[v * kRows + r] = m;
    }
  }

  const auto slot = static_cast<uint32_t>(type);
  std::vector<float> want(static_cast<size_t>(kVectors * kStride), NAN);
  kernel_table(Isa::kGeneric).types[slot].matmul_q8(w, row_bytes, q8, kVectors, want.data(),
                                                    kStride, kRows);
  std::vector<float> got(static_cast<size_t>(kVectors * kStride), NAN);
  kernel_table(Isa::kAvx512).types[slot].matmul_q8(w, row_bytes, q8, kVectors, got.data(),
                                                   kStride, kRows);
  for (int64_t v = 0; v < kVectors; ++v) {
    for (int64_t r = 0; r < kStride; ++r) {
      const std::string what = "vector " + std::to_string(v) + " row " + std::to_string(r);
      if (r >= kRows) {
        ASSERT_TRUE(std::isnan(got[v * kStride + r])) << what << ": written outside the output";
      } else {
        ASSERT_NEAR(got[v * kStride + r], want[v * kStride + r],
                    1e-5 * magnitude[v * kRows + r] + 1e-30)
            << what;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulQ8TilesTest,
                         testing::Values(TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0,
                                         TensorType::kQ5_1, TensorType::kQ8_0, TensorType::kIQ4_NL,
                                         TensorType::kIQ4_XS, TensorType::kQ4_K,
                                         TensorType::kQ5_K, TensorType::kQ6_K),
                         [](const testing::TestParamInfo<TensorType>& info) {
                           return std::string(tensor_type_name(info.param));
                         });

}  // namespace
}  // namespace koto::kernels
