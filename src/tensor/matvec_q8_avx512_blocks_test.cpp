// The AVX-512 decode kernels of the 32-value block types (matvec_q8_avx512_blocks.cpp)
// against the scalar reference on the row lengths that pick their paths: whole groups
// of 16 blocks only, the per-block tail only, and rows longer than their stack buffer
// (handed to the general kernel). matmul_q8_shapes_test.cpp covers the usual shapes.
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

struct DecodeShape {
  TensorType type;
  int64_t n;
};

std::vector<DecodeShape> decode_shapes() {
  std::vector<DecodeShape> all;
  for (TensorType type : {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0,
                          TensorType::kQ5_1, TensorType::kQ8_0, TensorType::kIQ4_NL}) {
    // 480: 15 blocks, all tail; 512: one group, no tail; 33280: past the stack buffer.
    for (int64_t n : {480, 512, 33280}) all.push_back({type, n});
  }
  // IQ4_XS groups are two super-blocks: 512 is one group, 256 only tail.
  for (int64_t n : {256, 512, 33280}) all.push_back({TensorType::kIQ4_XS, n});
  return all;
}

std::string decode_shape_name(const testing::TestParamInfo<DecodeShape>& info) {
  return std::string(tensor_type_name(info.param.type)) + "_" + std::to_string(info.param.n);
}

class MatvecQ8Avx512BlocksTest : public testing::TestWithParam<DecodeShape> {};

TEST_P(MatvecQ8Avx512BlocksTest, OneVectorMatchesScalar) {
  if (!isa_supported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  const auto [type, n] = GetParam();
  constexpr int64_t kRows = 7;  // a pass of four rows and three single rows
  const int64_t row_bytes = tensor_row_bytes(type, n);
  static tools::RandomBlockPools pools(0.02f, 91);
  // One byte of offset: rows need not be aligned.
  std::vector<uint8_t> storage(static_cast<size_t>(row_bytes * kRows + 1));
  uint8_t* w = storage.data() + 1;
  uint64_t state = 0x243F6A8885A308D3u;
  for (int64_t r = 0; r < kRows; ++r) pools.get(type).fill_row(w + r * row_bytes, n, state);

  std::mt19937 rng(static_cast<uint32_t>(n) + 7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng);
  Q8Activations a;
  quantize_activations(x.data(), 1, n, a, q8_layout(type));
  const Q8Vectors q8{a.q.data(), a.d.data(), a.dsum.data(), a.sums.data(), n};

  std::vector<float> deq(static_cast<size_t>(n));
  const auto slot = static_cast<uint32_t>(type);
  std::vector<float> want(kRows, NAN);
  kernel_table(Isa::kGeneric).types[slot].matmul_q8(w, row_bytes, q8, 1, want.data(), 0, kRows);
  std::vector<float> got(kRows + 1, NAN);
  kernel_table(Isa::kAvx512).types[slot].matmul_q8(w, row_bytes, q8, 1, got.data(), 0, kRows);

  for (int64_t r = 0; r < kRows; ++r) {
    // The accuracy contract: 1e-5 of sum |w x| over the quantized x.
    dequantize_row(type, w + r * row_bytes, deq.data(), n);
    double magnitude = 0;
    for (int64_t i = 0; i < n; ++i) {
      magnitude += std::fabs(static_cast<double>(deq[i]) * a.d[i / 32] * a.q[i]);
    }
    EXPECT_NEAR(got[r], want[r], 1e-5 * magnitude + 1e-30) << "row " << r;
  }
  EXPECT_TRUE(std::isnan(got[kRows])) << "written past the last row";
}

INSTANTIATE_TEST_SUITE_P(Decode, MatvecQ8Avx512BlocksTest, testing::ValuesIn(decode_shapes()),
                         decode_shape_name);

}  // namespace
}  // namespace koto::kernels
