// The integer kernels (matmul_q8) of every SIMD instruction set against the scalar
// reference on the shapes real models have: rows of thousands of values, every batch
// size a prompt can give, row counts that leave remainders, unaligned weights. The
// fixtures (matmul_q8_test.cpp) have short rows; these weights are random blocks of
// each type (the pools `koto synth` uses), so every path of the SIMD kernels that only
// long rows or large batches reach is compared too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/kernels.h"
#include "tools/random_blocks.h"

namespace koto::kernels {
namespace {

struct Shape {
  TensorType type;
  int64_t n;
};

// For readable test logs (ctest prints the parameter).
void PrintTo(const Shape& shape, std::ostream* os) {
  *os << tensor_type_name(shape.type) << " x " << shape.n;
}

std::string shape_name(const testing::TestParamInfo<Shape>& info) {
  return std::string(tensor_type_name(info.param.type)) + "_" + std::to_string(info.param.n);
}

std::vector<Shape> shapes() {
  std::vector<Shape> all;
  for (TensorType type : {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0,
                          TensorType::kQ5_1, TensorType::kQ8_0, TensorType::kIQ4_NL}) {
    for (int64_t n : {32, 96, 256, 544, 4096, 4128}) all.push_back({type, n});
  }
  for (TensorType type : {TensorType::kIQ4_XS, TensorType::kQ2_K, TensorType::kQ3_K,
                          TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    for (int64_t n : {256, 768, 1536, 4096, 4352}) all.push_back({type, n});
  }
  return all;
}

tools::RandomBlockPools& pools() {
  static tools::RandomBlockPools instance(0.02f, 77);
  return instance;
}

class MatmulQ8ShapesTest : public testing::TestWithParam<Shape> {};

TEST_P(MatmulQ8ShapesTest, SimdMatchesScalar) {
  const auto [type, n] = GetParam();
  constexpr int64_t kRows = 11;
  constexpr int64_t kMaxVectors = 70;
  const int64_t row_bytes = tensor_row_bytes(type, n);
  // One byte of offset: the kernels must not assume aligned rows.
  std::vector<uint8_t> storage(static_cast<size_t>(row_bytes * kRows + 1));
  uint8_t* w = storage.data() + 1;
  uint64_t state = 0x9E3779B97F4A7C15u;
  for (int64_t r = 0; r < kRows; ++r) pools().get(type).fill_row(w + r * row_bytes, n, state);

  std::mt19937 rng(static_cast<uint32_t>(n));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(kMaxVectors * n));
  for (float& v : x) v = normal(rng);
  // A few large values, as activations have: blocks with one dominant value.
  for (int64_t i = 0; i < kMaxVectors * n; i += 97) x[i] *= 20.0f;

  const Q8Layout layout = q8_layout(type);
  const int64_t block = layout == Q8Layout::kBlocks256 ? 256 : 32;
  std::vector<float> deq(static_cast<size_t>(kRows * n));
  for (int64_t r = 0; r < kRows; ++r) dequantize_row(type, w + r * row_bytes, &deq[r * n], n);

  const auto slot = static_cast<uint32_t>(type);
  const MatmulQ8Fn reference = kernel_table(Isa::kGeneric).types[slot].matmul_q8;
  ASSERT_NE(reference, nullptr);
  for (int64_t batch : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{8}, int64_t{13}, kMaxVectors}) {
    Q8Activations a;
    quantize_activations(x.data(), batch, n, a, layout);
    const Q8Vectors q8{a.q.data(), a.d.data(), a.dsum.data(), a.sums.data(), n};
    // The tolerance of the accuracy contract: 1e-5 of sum |w x| over the quantized x.
    std::vector<double> magnitude(static_cast<size_t>(batch * kRows));
    for (int64_t v = 0; v < batch; ++v) {
      for (int64_t r = 0; r < kRows; ++r) {
        double m = 0;
        for (int64_t i = 0; i < n; ++i) {
          m += std::fabs(static_cast<double>(deq[r * n + i]) * a.d[(v * n + i) / block] *
                         a.q[v * n + i]);
        }
        magnitude[v * kRows + r] = m;
      }
    }
    constexpr int64_t kStride = kRows + 2;
    std::vector<float> want(static_cast<size_t>(batch * kStride), NAN);
    reference(w, row_bytes, q8, batch, want.data(), kStride, kRows);

    for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
      if (!isa_supported(isa)) continue;
      const MatmulQ8Fn kernel = kernel_table(isa).types[slot].matmul_q8;
      ASSERT_NE(kernel, nullptr) << isa_name(isa);
      for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, kRows}, {1, 10}, {5, 6}, {3, 8}}) {
        std::vector<float> y(static_cast<size_t>(batch * kStride), NAN);
        kernel(w + begin * row_bytes, row_bytes, q8, batch, y.data(), kStride, end - begin);
        for (int64_t v = 0; v < batch; ++v) {
          for (int64_t r = 0; r < kStride; ++r) {
            const float got = y[v * kStride + r];
            const std::string what = std::string(isa_name(isa)) + " batch " +
                                     std::to_string(batch) + " vector " + std::to_string(v) +
                                     " row " + std::to_string(begin + r);
            if (r >= end - begin) {
              ASSERT_TRUE(std::isnan(got)) << what << ": written outside the output";
            } else {
              ASSERT_NEAR(got, want[v * kStride + begin + r],
                          1e-5 * magnitude[v * kRows + begin + r] + 1e-30)
                  << what;
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Random, MatmulQ8ShapesTest, testing::ValuesIn(shapes()), shape_name);

}  // namespace
}  // namespace koto::kernels
