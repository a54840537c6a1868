// Q5_0R (tensor/repack.h): the repacking is lossless, and every ISA's kernels give,
// bit for bit, what they give for the Q5_0 rows it came from: decoding (1-4 vectors,
// the AVX-512 kernel reading Q5_0R directly), prefill tiles (more vectors) and the
// float entries. Row lengths: 480 (tail only), 512 (one group), 1280 (groups and a
// tail) and 4096.
#include "tensor/repack.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "koto/tensor_type.h"
#include "tensor/kernel_table.h"
#include "tensor/kernels.h"
#include "tensor/quant_blocks.h"
#include "tools/random_blocks.h"

namespace koto::kernels {
namespace {

constexpr int64_t kRows = 5;

std::vector<uint8_t> random_q5_0_rows(int64_t n, int64_t rows) {
  static tools::RandomBlockPools pools(0.02f, 17);
  const int64_t row_bytes = tensor_row_bytes(TensorType::kQ5_0, n);
  std::vector<uint8_t> w(static_cast<size_t>(row_bytes * rows));
  uint64_t state = 0x9E3779B97F4A7C15u + static_cast<uint64_t>(n);
  for (int64_t r = 0; r < rows; ++r) pools.get(TensorType::kQ5_0).fill_row(w.data() + r * row_bytes, n, state);
  return w;
}

std::vector<uint8_t> repacked(const std::vector<uint8_t>& q5_0, int64_t n, int64_t rows) {
  const int64_t row_bytes = tensor_row_bytes(TensorType::kQ5_0R, n);
  std::vector<uint8_t> out(q5_0.size());
  for (int64_t r = 0; r < rows; ++r) repack_q5_0_row(q5_0.data() + r * row_bytes, out.data() + r * row_bytes, n);
  return out;
}

TEST(RepackQ5_0, TypeIsKotosOwn) {
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ5_0R, 4096), tensor_row_bytes(TensorType::kQ5_0, 4096));
  EXPECT_EQ(tensor_type_name(TensorType::kQ5_0R), "Q5_0R");
  // Never accepted from a file's type id or a user's type name.
  EXPECT_FALSE(tensor_type_info(static_cast<uint32_t>(TensorType::kQ5_0R)).has_value());
  EXPECT_FALSE(tensor_type_from_name("q5_0r").has_value());
  EXPECT_EQ(q8_layout(TensorType::kQ5_0R), Q8Layout::kBlocks32);
}

TEST(RepackQ5_0, LayoutOfAGroup) {
  // Block 5, value 4 * 2 + 1 = 9 (low nibble of qs byte 9) and value 16 + 9 = 25 (high).
  std::vector<uint8_t> src = random_q5_0_rows(512, 1);
  auto& block = *reinterpret_cast<BlockQ5_0*>(src.data() + 5 * sizeof(BlockQ5_0));
  block.qs[9] = 0xA3;
  const uint32_t qh = (1u << 9) | (1u << 25);
  std::memcpy(block.qh, &qh, sizeof(qh));
  std::vector<uint8_t> dst(src.size());
  repack_q5_0_row(src.data(), dst.data(), 512);
  EXPECT_EQ(dst[kRepackCodesAt + 64 * 2 + 4 * 5 + 1], 0xA3);  // code run 2, lane 5, byte 1
  uint64_t mask2, mask6;
  std::memcpy(&mask2, dst.data() + kRepackMasksAt + 8 * 2, 8);
  std::memcpy(&mask6, dst.data() + kRepackMasksAt + 8 * 6, 8);
  EXPECT_EQ((mask2 >> (4 * 5)) & 15, 2u);  // value 9 = 4 * 2 + 1
  EXPECT_EQ((mask6 >> (4 * 5)) & 15, 2u);  // value 25 = 4 * 6 + 1
  EXPECT_EQ(std::memcmp(dst.data() + 2 * 5, block.d, 2), 0);
}

class RepackQ5_0Test : public testing::TestWithParam<int64_t> {};

TEST_P(RepackQ5_0Test, RoundTripIsLossless) {
  const int64_t n = GetParam();
  const std::vector<uint8_t> src = random_q5_0_rows(n, kRows);
  const std::vector<uint8_t> packed = repacked(src, n, kRows);
  if (n >= 512) {
    EXPECT_NE(packed, src);
  }
  std::vector<uint8_t> back(src.size());
  const int64_t row_bytes = tensor_row_bytes(TensorType::kQ5_0, n);
  for (int64_t r = 0; r < kRows; ++r) unpack_q5_0r_row(packed.data() + r * row_bytes, back.data() + r * row_bytes, n);
  EXPECT_EQ(back, src);
}

TEST_P(RepackQ5_0Test, EveryKernelGivesTheBitsOfQ5_0) {
  const int64_t n = GetParam();
  const int64_t row_bytes = tensor_row_bytes(TensorType::kQ5_0, n);
  const std::vector<uint8_t> plain = random_q5_0_rows(n, kRows);
  const std::vector<uint8_t> packed = repacked(plain, n, kRows);

  std::mt19937 rng(static_cast<uint32_t>(n));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int64_t kMaxVectors = 17;
  std::vector<float> x(static_cast<size_t>(n * kMaxVectors));
  for (float& v : x) v = normal(rng);
  Q8Activations a;
  quantize_activations(x.data(), kMaxVectors, n, a, Q8Layout::kBlocks32);
  const Q8Vectors q8{a.q.data(), a.d.data(), a.dsum.data(), a.sums.data(), n};

  for (Isa isa : supported_isas()) {
    const TypeKernels& want_k = kernel_table(isa).types[static_cast<uint32_t>(TensorType::kQ5_0)];
    const TypeKernels& got_k = kernel_table(isa).types[static_cast<uint32_t>(TensorType::kQ5_0R)];
    SCOPED_TRACE(isa_name(isa));
    // 1-4 vectors: decoding; 5, 8, 17: the prefill paths.
    for (int64_t n_vectors : {1, 2, 3, 4, 5, 8, 17}) {
      std::vector<float> want(static_cast<size_t>(kRows * n_vectors));
      std::vector<float> got(want.size() + 1, -1.0f);
      want_k.matmul_q8(plain.data(), row_bytes, q8, n_vectors, want.data(), kRows, kRows);
      got_k.matmul_q8(packed.data(), row_bytes, q8, n_vectors, got.data(), kRows, kRows);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
          << n_vectors << " vectors: first " << got[0] << " want " << want[0];
      EXPECT_EQ(got.back(), -1.0f) << "written past the end";
    }
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    for (int64_t r = 0; r < kRows; ++r) {
      want_k.dequantize(plain.data() + r * row_bytes, want.data(), n);
      got_k.dequantize(packed.data() + r * row_bytes, got.data(), n);
      EXPECT_EQ(got, want) << "row " << r;
      const float dot_want = want_k.dot(plain.data() + r * row_bytes, x.data(), n);
      const float dot_got = got_k.dot(packed.data() + r * row_bytes, x.data(), n);
      EXPECT_NEAR(dot_got, dot_want, 1e-4f * (1.0f + std::fabs(dot_want))) << "row " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, RepackQ5_0Test, testing::Values(480, 512, 1280, 4096),
                         [](const testing::TestParamInfo<int64_t>& info) { return std::to_string(info.param); });

}  // namespace
}  // namespace koto::kernels
