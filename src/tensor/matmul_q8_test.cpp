// The integer kernels (matmul_q8) against their scalar reference and against the float
// dot product of the fixtures' dequantized rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "tensor/kernel_table.h"
#include "tools/random_blocks.h"
#include "tensor/kernels.h"
#include "test_support.h"

namespace koto::kernels {
namespace {

const char* const kQuantizedFixtures[] = {
    "IQ4_NL", "IQ4_XS", "Q2_K", "Q3_K", "Q4_0", "Q4_1",      "Q4_K",
    "Q4_K_4096", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0", "Q8_0_4096",
};

std::vector<float> random_vectors(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(count));
  for (float& v : x) v = normal(rng);
  return x;
}

Q8Vectors view(const Q8Activations& a) {
  return {a.q.data(), a.d.data(), a.dsum.data(), a.sums.data(), a.n};
}

int64_t block_of(Q8Layout layout) { return layout == Q8Layout::kBlocks256 ? 256 : 32; }

TEST(QuantizeActivationsTest, RoundsEachBlockToItsOwnScale) {
  std::vector<float> x = random_vectors(96, 3);
  for (int j = 32; j < 64; ++j) x[j] = 0.0f;  // an all-zero block
  x[70] = -1000.0f;                            // one block dominated by one value
  Q8Activations a;
  quantize_activations(x.data(), 1, 96, a);
  ASSERT_EQ(a.q.size(), 96u);
  ASSERT_EQ(a.d.size(), 3u);
  ASSERT_EQ(a.dsum.size(), 6u);
  EXPECT_EQ(a.d[1], 0.0f);
  EXPECT_EQ(a.q[70], -127);
  for (int64_t b = 0; b < 3; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[32 * b + j]));
    EXPECT_FLOAT_EQ(a.d[b], amax / 127.0f);
    for (int h = 0; h < 2; ++h) {
      int sum = 0;
      for (int j = 16 * h; j < 16 * h + 16; ++j) {
        const int64_t i = 32 * b + j;
        EXPECT_LE(std::fabs(a.d[b] * a.q[i] - x[i]), a.d[b] * 0.5f * 1.0001f) << i;
        EXPECT_LE(std::abs(a.q[i]), 127);
        sum += a.q[i];
      }
      EXPECT_FLOAT_EQ(a.dsum[2 * b + h], a.d[b] * static_cast<float>(sum));
    }
  }
  EXPECT_THROW(quantize_activations(x.data(), 1, 48, a), Error);
}

TEST(QuantizeActivationsTest, Blocks256HaveOneScaleAndIntegerSums) {
  std::vector<float> x = random_vectors(512, 4);
  for (int j = 256; j < 512; ++j) x[j] = 0.0f;  // an all-zero block
  x[17] = 300.0f;
  Q8Activations a;
  quantize_activations(x.data(), 1, 512, a, Q8Layout::kBlocks256);
  ASSERT_EQ(a.layout, Q8Layout::kBlocks256);
  ASSERT_EQ(a.q.size(), 512u);
  ASSERT_EQ(a.d.size(), 2u);
  ASSERT_EQ(a.sums.size(), 32u);
  EXPECT_FLOAT_EQ(a.d[0], 300.0f / 127.0f);
  EXPECT_EQ(a.d[1], 0.0f);
  EXPECT_EQ(a.q[17], 127);
  for (int64_t k = 0; k < 32; ++k) {
    int sum = 0;
    for (int64_t i = 16 * k; i < 16 * k + 16; ++i) {
      EXPECT_LE(std::fabs(a.d[i / 256] * a.q[i] - x[i]), a.d[i / 256] * 0.5f * 1.0001f) << i;
      sum += a.q[i];
    }
    EXPECT_EQ(a.sums[k], sum) << k;
  }
  EXPECT_THROW(quantize_activations(x.data(), 1, 288, a, Q8Layout::kBlocks256), Error);
}

// Every ISA's activation quantizer gives the scalar reference's bytes and floats exactly,
// including values that round half-way (ties go to even), all-zero blocks and huge
// values.
TEST(QuantizeActivationsTest, SimdQuantizersAreBitExact) {
  constexpr int64_t kN = 1024;
  std::vector<float> x = random_vectors(kN, 9);
  for (int j = 256; j < 288; ++j) x[j] = 0.0f;
  // A block with max 127 so x * (127 / amax) is x: halves are exact ties.
  for (int j = 0; j < 32; ++j) x[512 + j] = static_cast<float>(j) - 15.5f;
  x[512 + 31] = 127.0f;
  x[900] = 3e38f;
  for (Isa isa : supported_isas()) {
    const KernelTable& table = kernel_table(isa);
    std::vector<int8_t> q(kN);
    std::vector<int8_t> q_ref(kN);
    std::vector<float> d(kN / 32), d_ref(kN / 32), dsum(kN / 16), dsum_ref(kN / 16);
    quantize_activations_row(x.data(), kN, q_ref.data(), d_ref.data(), dsum_ref.data());
    table.quantize_q8_row(x.data(), kN, q.data(), d.data(), dsum.data());
    EXPECT_EQ(q, q_ref) << isa_name(isa);
    EXPECT_EQ(d, d_ref) << isa_name(isa);
    EXPECT_EQ(dsum, dsum_ref) << isa_name(isa);
    EXPECT_EQ(q[512 + 0], -16) << "-15.5 rounds to even";
    EXPECT_EQ(q[512 + 1], -14) << "-14.5 rounds to even";

    std::vector<float> d256(kN / 256), d256_ref(kN / 256);
    std::vector<int16_t> sums(kN / 16), sums_ref(kN / 16);
    quantize_activations_row_256(x.data(), kN, q_ref.data(), d256_ref.data(), sums_ref.data());
    table.quantize_q8_row_256(x.data(), kN, q.data(), d256.data(), sums.data());
    EXPECT_EQ(q, q_ref) << isa_name(isa);
    EXPECT_EQ(d256, d256_ref) << isa_name(isa);
    EXPECT_EQ(sums, sums_ref) << isa_name(isa);
  }
}

struct Fixture {
  GgufFile file;
  const GgufTensor* q;
  const GgufTensor* deq;
};

class MatmulQ8FixtureTest : public testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    fixture_ = std::make_unique<Fixture>(Fixture{
        GgufFile::open(fixture_path(std::string("quant/") + GetParam() + ".gguf")), nullptr,
        nullptr});
    fixture_->q = fixture_->file.find_tensor("q");
    fixture_->deq = fixture_->file.find_tensor("deq");
    ASSERT_TRUE(fixture_->q && fixture_->deq);
    n_ = fixture_->q->row_length();
    row_bytes_ = tensor_row_bytes(fixture_->q->type, n_);
    deq_.resize(static_cast<size_t>(n_ * 8));
    std::memcpy(deq_.data(), fixture_->deq->data, deq_.size() * sizeof(float));
  }
  Q8Layout layout() const { return q8_layout(fixture_->q->type); }
  MatmulQ8Fn kernel(Isa isa) const {
    return kernel_table(isa).types[static_cast<uint32_t>(fixture_->q->type)].matmul_q8;
  }

  std::unique_ptr<Fixture> fixture_;
  int64_t n_ = 0;
  int64_t row_bytes_ = 0;
  std::vector<float> deq_;  // [8][n], ggml's to_float of q
};

// The contract: the exact dot of the dequantized weights with the dequantized 8-bit
// activations, to 1e-5 of sum |w x|; and against float activations, within the error
// 8-bit rounding explains (errors up to d/2, roughly uniform and independent, so the
// sum has sigma^2 = sum w^2 d^2 / 12; we allow 6 sigma).
TEST_P(MatmulQ8FixtureTest, MatchesFloatDotOfQuantizedActivations) {
  constexpr int64_t kVectors = 3;
  const std::vector<float> x = random_vectors(kVectors * n_, 11);
  Q8Activations a;
  quantize_activations(x.data(), kVectors, n_, a, layout());
  const int64_t block = block_of(layout());
  for (Isa isa : supported_isas()) {
    std::vector<float> y(kVectors * 8, NAN);
    kernel(isa)(fixture_->q->data, row_bytes_, view(a), kVectors, y.data(), 8, 8);
    for (int64_t v = 0; v < kVectors; ++v) {
      for (int64_t r = 0; r < 8; ++r) {
        double exact_q8 = 0, exact = 0, magnitude = 0, variance = 0;
        for (int64_t i = 0; i < n_; ++i) {
          const double w = deq_[r * n_ + i];
          const double d = a.d[v * (n_ / block) + i / block];
          exact_q8 += w * d * a.q[v * n_ + i];
          exact += w * x[v * n_ + i];
          magnitude += std::fabs(w * x[v * n_ + i]);
          variance += w * w * d * d / 12;
        }
        const double got = y[v * 8 + r];
        const std::string what = std::string(isa_name(isa)) + " vector " + std::to_string(v) +
                                 " row " + std::to_string(r);
        EXPECT_NEAR(got, exact_q8, 1e-5 * magnitude) << what;
        EXPECT_NEAR(got, exact, 6 * std::sqrt(variance) + 1e-5 * magnitude) << what;
      }
    }
  }
}

// SIMD against the scalar reference of the same integer algorithm, on unaligned
// weights, odd row ranges, batches that exercise every column-chunk tail, and a y
// stride wider than the rows; batch results equal one-vector results within rounding.
TEST_P(MatmulQ8FixtureTest, SimdMatchesScalarForAnyBatchAndRows) {
  constexpr int64_t kVectors = 13;  // 8 + 4 + 1 on AVX-512, 4 + 4 + 4 + 1 on AVX2
  const std::vector<float> x = random_vectors(kVectors * n_, 5);
  Q8Activations a;
  quantize_activations(x.data(), kVectors, n_, a, layout());
  std::vector<uint8_t> shifted(fixture_->q->n_bytes + 1);
  std::memcpy(shifted.data() + 1, fixture_->q->data, fixture_->q->n_bytes);
  const uint8_t* w = shifted.data() + 1;
  constexpr int64_t kStride = 11;

  std::vector<double> magnitude(kVectors * 8);
  for (int64_t v = 0; v < kVectors; ++v) {
    for (int64_t r = 0; r < 8; ++r) {
      for (int64_t i = 0; i < n_; ++i) {
        magnitude[v * 8 + r] += std::fabs(static_cast<double>(deq_[r * n_ + i]) * x[v * n_ + i]);
      }
    }
  }
  std::vector<float> want(kVectors * kStride, NAN);
  kernel(Isa::kGeneric)(w, row_bytes_, view(a), kVectors, want.data(), kStride, 8);

  for (Isa isa : supported_isas()) {
    for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 8}, {1, 6}, {3, 4}}) {
      for (int64_t batch : {int64_t{1}, int64_t{2}, int64_t{5}, kVectors}) {
        std::vector<float> y(kVectors * kStride, NAN);
        kernel(isa)(w + begin * row_bytes_, row_bytes_, view(a), batch, y.data(), kStride,
                    end - begin);
        for (int64_t v = 0; v < kVectors; ++v) {
          for (int64_t r = 0; r < kStride; ++r) {
            const float got = y[v * kStride + r];
            const std::string what = std::string(isa_name(isa)) + " batch " +
                                     std::to_string(batch) + " vector " + std::to_string(v) +
                                     " row " + std::to_string(begin + r);
            if (v >= batch || r >= end - begin) {
              EXPECT_TRUE(std::isnan(got)) << what << ": written outside the output";
            } else {
              EXPECT_NEAR(got, want[v * kStride + begin + r], 1e-5 * magnitude[v * 8 + begin + r])
                  << what;
            }
          }
        }
        if (batch == kVectors) {
          // Each vector alone (the decoding kernels, which may sum in another order)
          // gives the same results within the contract's rounding.
          for (int64_t v = 0; v < kVectors; ++v) {
            Q8Vectors one = view(a);
            one.q += v * n_;
            one.d += v * (n_ / block_of(layout()));
            if (one.dsum != nullptr) one.dsum += v * (n_ / 16);
            if (one.sums != nullptr) one.sums += v * (n_ / 16);
            std::vector<float> y1(end - begin);
            kernel(isa)(w + begin * row_bytes_, row_bytes_, one, 1, y1.data(), 0, end - begin);
            for (int64_t r = 0; r < end - begin; ++r) {
              EXPECT_NEAR(y1[r], y[v * kStride + r], 2e-5 * magnitude[v * 8 + begin + r])
                  << isa_name(isa) << " vector " << v;
            }
          }
        }
      }
    }
  }
}

TEST_P(MatmulQ8FixtureTest, PublicEntryPointUsesRowRange) {
  const std::vector<float> x = random_vectors(2 * n_, 9);
  Q8Activations a;
  quantize_activations(x.data(), 2, n_, a, layout());
  ASSERT_TRUE(has_q8_kernels(fixture_->q->type));
  std::vector<float> all(16);
  matmul_q8(fixture_->q->type, fixture_->q->data, a, all.data(), 8, 0, 8);
  std::vector<float> part(10, NAN);
  matmul_q8(fixture_->q->type, fixture_->q->data, a, part.data(), 5, 2, 7);
  for (int64_t v = 0; v < 2; ++v) {
    for (int64_t r = 2; r < 7; ++r) EXPECT_EQ(part[v * 5 + r - 2], all[v * 8 + r]);
  }
  // Activations in the other layout are refused, not misread.
  if (n_ % 256 == 0) {
    Q8Activations other;
    quantize_activations(x.data(), 2, n_, other,
                         layout() == Q8Layout::kBlocks32 ? Q8Layout::kBlocks256
                                                         : Q8Layout::kBlocks32);
    EXPECT_THROW(matmul_q8(fixture_->q->type, fixture_->q->data, other, all.data(), 8, 0, 8),
                 Error);
  }
}

INSTANTIATE_TEST_SUITE_P(Quant, MatmulQ8FixtureTest, testing::ValuesIn(kQuantizedFixtures),
                         [](const testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

TEST(KernelMatmulQ8Test, FloatTypesHaveNoIntegerKernels) {
  EXPECT_FALSE(has_q8_kernels(TensorType::kF32));
  EXPECT_FALSE(has_q8_kernels(TensorType::kF16));
  EXPECT_FALSE(has_q8_kernels(TensorType::kBF16));
  Q8Activations a;
  const std::vector<float> x(64);
  quantize_activations(x.data(), 1, 64, a);
  float y = 0;
  EXPECT_THROW(matmul_q8(TensorType::kF16, x.data(), a, &y, 1, 0, 1), Error);
}

}  // namespace
}  // namespace koto::kernels

namespace koto::kernels {
namespace {

// Lookup decoding relies on this: up to exact_vectors(type) vectors in one call give
// every vector the very bits it gets alone (so greedy output cannot change); checked
// on every integer type for 2 .. that many vectors.
TEST(MatmulQ8, VectorsTogetherAreBitIdenticalToAloneUpToExactVectors) {
  static tools::RandomBlockPools pools(0.02f, 91);
  for (TensorType type : {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0, TensorType::kQ5_1, TensorType::kQ8_0,
                          TensorType::kQ2_K, TensorType::kQ3_K, TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K,
                          TensorType::kIQ4_NL, TensorType::kIQ4_XS}) {
    const int64_t n = 4096;
    const int64_t rows = 48;
    const int64_t row_bytes = tensor_row_bytes(type, n);
    std::vector<uint8_t> w(static_cast<size_t>(row_bytes * rows));
    uint64_t state = 17;
    for (int64_t r = 0; r < rows; ++r) pools.get(type).fill_row(w.data() + r * row_bytes, n, state);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t max_vectors = exact_vectors(type);
    EXPECT_GE(max_vectors, 4) << tensor_type_name(type);
    for (int64_t nv = 2; nv <= max_vectors; ++nv) {
      std::vector<float> x(static_cast<size_t>(n * nv));
      for (float& v : x) v = normal(rng);
      Q8Activations together;
      Q8Activations alone;
      quantize_activations(x.data(), nv, n, together, q8_layout(type));
      std::vector<float> y_together(static_cast<size_t>(rows * nv));
      std::vector<float> y_alone(static_cast<size_t>(rows));
      matmul_q8(type, w.data(), together, y_together.data(), rows, 0, rows);
      for (int64_t v = 0; v < nv; ++v) {
        quantize_activations(x.data() + v * n, 1, n, alone, q8_layout(type));
        matmul_q8(type, w.data(), alone, y_alone.data(), rows, 0, rows);
        for (int64_t r = 0; r < rows; ++r) {
          ASSERT_EQ(std::memcmp(&y_alone[static_cast<size_t>(r)], &y_together[static_cast<size_t>(v * rows + r)], 4), 0)
              << tensor_type_name(type) << " vectors " << nv << " vector " << v << " row " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace koto::kernels
