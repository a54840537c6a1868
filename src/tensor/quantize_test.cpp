#include "tensor/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "tensor/kernels.h"
#include "test_support.h"

namespace koto {
namespace {

double rms_error(const float* a, const float* b, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::sqrt(sum / static_cast<double>(n));
}

// Our quantizer must be about as accurate as the reference quantizer that made the
// fixtures: per row, the error of dequantize(quantize(x)) against x may exceed the
// fixture's (deq against x) by at most 10%.
class QuantizeAccuracy : public testing::TestWithParam<const char*> {};

TEST_P(QuantizeAccuracy, MatchesTheReferenceErrorPerRow) {
  const GgufFile file = GgufFile::open(fixture_path(std::string("quant/") + GetParam() + ".gguf"));
  const GgufTensor* x = file.find_tensor("x");
  const GgufTensor* q = file.find_tensor("q");
  const GgufTensor* deq = file.find_tensor("deq");
  ASSERT_TRUE(x && q && deq);
  const int64_t n = x->row_length();
  const int64_t row_bytes = tensor_row_bytes(q->type, n);
  std::vector<uint8_t> ours(static_cast<size_t>(row_bytes));
  std::vector<float> back(static_cast<size_t>(n));
  for (int64_t r = 0; r < x->rows(); ++r) {
    const auto* xr = reinterpret_cast<const float*>(x->data) + r * n;
    const auto* ref = reinterpret_cast<const float*>(deq->data) + r * n;
    quantize_row(q->type, xr, ours.data(), n);
    kernels::dequantize_row(q->type, ours.data(), back.data(), n);
    const double reference_error = rms_error(ref, xr, n);
    const double our_error = rms_error(back.data(), xr, n);
    EXPECT_LE(our_error, reference_error * 1.10 + 1e-12) << GetParam() << " row " << r;
    if (q->type == TensorType::kF16 || q->type == TensorType::kBF16) {
      // Plain rounding to nearest even: the bytes must be the reference's.
      EXPECT_EQ(std::memcmp(ours.data(), q->data + r * row_bytes, static_cast<size_t>(row_bytes)), 0) << "row " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantizeAccuracy,
                         testing::Values("F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K",
                                         "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"));

TEST(Quantize, RejectsRowsThatAreNotWholeBlocks) {
  std::vector<float> x(100, 1.0f);
  std::vector<uint8_t> out(1024);
  EXPECT_THROW(quantize_row(TensorType::kQ4_K, x.data(), out.data(), 100), Error);
}

TEST(Quantize, ZeroRowsStayZero) {
  std::vector<float> x(256, 0.0f), back(256, 1.0f);
  std::vector<uint8_t> out(1024);
  for (TensorType t : {TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ6_K, TensorType::kQ3_K, TensorType::kIQ4_XS}) {
    quantize_row(t, x.data(), out.data(), 256);
    kernels::dequantize_row(t, out.data(), back.data(), 256);
    for (float v : back) ASSERT_EQ(v, 0.0f) << tensor_type_name(t);
  }
}

}  // namespace
}  // namespace koto
