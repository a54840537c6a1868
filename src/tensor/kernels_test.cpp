#include "tensor/kernels.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "tensor/kernel_table.h"
#include "test_support.h"

namespace koto::kernels {
namespace {

// Every file in fixtures/quant: tensors x (F32), q (the type) and deq (F32, ggml's
// to_float of q), each 8 rows.
const char* const kQuantFixtures[] = {
    "BF16", "F16",       "IQ4_NL", "IQ4_XS", "Q2_K", "Q3_K", "Q4_0", "Q4_1",
    "Q4_K", "Q4_K_4096", "Q5_0",   "Q5_1",   "Q5_K", "Q6_K", "Q8_0", "Q8_0_4096",
};

struct QuantFixture {
  GgufFile file;
  const GgufTensor* x;
  const GgufTensor* q;
  const GgufTensor* deq;
};

QuantFixture open_fixture(const std::string& name) {
  GgufFile file = GgufFile::open(fixture_path("quant/" + name + ".gguf"));
  const GgufTensor* x = file.find_tensor("x");
  const GgufTensor* q = file.find_tensor("q");
  const GgufTensor* deq = file.find_tensor("deq");
  EXPECT_TRUE(x && q && deq) << name;
  return {std::move(file), x, q, deq};
}

std::vector<float> floats_of(const GgufTensor& t) {
  std::vector<float> values(static_cast<size_t>(t.n_elements));
  std::memcpy(values.data(), t.data, values.size() * sizeof(float));
  return values;
}

std::vector<float> random_vector(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng);
  return x;
}

// A computed dot product against the exact one: within 1e-5 of sum |w_i x_i|.
void expect_close(double expected, double actual, double magnitude, const std::string& what) {
  EXPECT_LE(std::fabs(expected - actual), 1e-5 * magnitude + 1e-30)
      << what << ": expected " << expected << ", got " << actual;
}

class KernelFixtureTest : public testing::TestWithParam<const char*> {};

TEST_P(KernelFixtureTest, TensorBytesMatchRowBytes) {
  const QuantFixture f = open_fixture(GetParam());
  const std::string name = GetParam();
  const std::string type_name = name.substr(0, name.find("_4096"));
  ASSERT_EQ(tensor_type_from_name(type_name), f.q->type);
  EXPECT_EQ(f.q->rows(), 8);
  EXPECT_EQ(f.q->row_length(), name.ends_with("_4096") ? 4096 : 512);
  EXPECT_EQ(static_cast<int64_t>(f.q->n_bytes), tensor_row_bytes(f.q->type, f.q->row_length()) * 8);
  // The tensors follow each other, so q's size also fits the data offsets.
  EXPECT_GE(f.deq->offset - f.q->offset, f.q->n_bytes);
  EXPECT_LT(f.deq->offset - f.q->offset, f.q->n_bytes + f.file.alignment());
}

TEST_P(KernelFixtureTest, DequantizeIsBitExact) {
  const QuantFixture f = open_fixture(GetParam());
  const int64_t n = f.q->row_length();
  const int64_t row_bytes = tensor_row_bytes(f.q->type, n);
  const std::vector<float> deq = floats_of(*f.deq);
  std::vector<float> row(static_cast<size_t>(n));
  for (Isa isa : supported_isas()) {
    const TypeKernels& k = kernel_table(isa).types[static_cast<uint32_t>(f.q->type)];
    ASSERT_NE(k.dequantize, nullptr);
    int mismatches = 0;
    for (int64_t r = 0; r < f.q->rows(); ++r) {
      k.dequantize(f.q->data + r * row_bytes, row.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t want = std::bit_cast<uint32_t>(deq[r * n + i]);
        const uint32_t got = std::bit_cast<uint32_t>(row[i]);
        if (want != got && ++mismatches <= 5) {
          ADD_FAILURE() << isa_name(isa) << " row " << r << " value " << i << ": expected "
                        << deq[r * n + i] << " (0x" << std::hex << want << "), got " << row[i]
                        << " (0x" << got << ")";
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << isa_name(isa);
  }
  // The public entry point, whatever ISA is active.
  dequantize_row(f.q->type, f.q->data + 7 * row_bytes, row.data(), n);
  EXPECT_EQ(std::memcmp(row.data(), deq.data() + 7 * n, n * sizeof(float)), 0);
}

TEST_P(KernelFixtureTest, DotMatchesReference) {
  const QuantFixture f = open_fixture(GetParam());
  const int64_t n = f.q->row_length();
  const int64_t row_bytes = tensor_row_bytes(f.q->type, n);
  const std::vector<float> deq = floats_of(*f.deq);
  const std::vector<float> x = random_vector(n, 42);
  // An unaligned copy of the weights: rows sit at odd addresses in some files.
  std::vector<uint8_t> shifted(f.q->n_bytes + 1);
  std::memcpy(shifted.data() + 1, f.q->data, f.q->n_bytes);
  const DotRowFn reference =
      kernel_table(Isa::kGeneric).types[static_cast<uint32_t>(f.q->type)].dot;
  for (int64_t r = 0; r < f.q->rows(); ++r) {
    double exact = 0;
    double magnitude = 0;
    for (int64_t i = 0; i < n; ++i) {
      exact += static_cast<double>(deq[r * n + i]) * x[i];
      magnitude += std::fabs(static_cast<double>(deq[r * n + i]) * x[i]);
    }
    const float generic = reference(f.q->data + r * row_bytes, x.data(), n);
    expect_close(exact, generic, magnitude, "generic row " + std::to_string(r));
    for (Isa isa : supported_isas()) {
      const DotRowFn dot = kernel_table(isa).types[static_cast<uint32_t>(f.q->type)].dot;
      const std::string what = std::string(isa_name(isa)) + " row " + std::to_string(r);
      expect_close(generic, dot(f.q->data + r * row_bytes, x.data(), n), magnitude, what);
      expect_close(generic, dot(shifted.data() + 1 + r * row_bytes, x.data(), n), magnitude,
                   what + " (unaligned)");
    }
  }
}

TEST_P(KernelFixtureTest, MatvecMatchesDot) {
  const QuantFixture f = open_fixture(GetParam());
  const int64_t n = f.q->row_length();
  const int64_t row_bytes = tensor_row_bytes(f.q->type, n);
  const std::vector<float> deq = floats_of(*f.deq);
  const std::vector<float> x = random_vector(n, 7);
  const uint32_t id = static_cast<uint32_t>(f.q->type);
  std::vector<float> want(8);
  std::vector<double> magnitude(8);
  for (int64_t r = 0; r < 8; ++r) {
    want[r] = kernel_table(Isa::kGeneric).types[id].dot(f.q->data + r * row_bytes, x.data(), n);
    for (int64_t i = 0; i < n; ++i)
      magnitude[r] += std::fabs(static_cast<double>(deq[r * n + i]) * x[i]);
  }
  for (Isa isa : supported_isas()) {
    const MatvecFn matvec_fn = kernel_table(isa).types[id].matvec;
    // All rows, then an odd count from an odd start (the 2-row loops' tails).
    for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 8}, {1, 6}, {3, 4}}) {
      std::vector<float> y(9, NAN);
      matvec_fn(f.q->data + begin * row_bytes, row_bytes, n, x.data(), y.data(), end - begin);
      for (int64_t r = begin; r < end; ++r) {
        expect_close(want[r], y[r - begin], magnitude[r],
                     std::string(isa_name(isa)) + " matvec row " + std::to_string(r));
      }
      EXPECT_TRUE(std::isnan(y[end - begin])) << "wrote past the last row";
    }
  }
  // The public entry point.
  std::vector<float> y(8);
  matvec(f.q->type, f.q->data, n, x.data(), y.data(), 2, 8);
  for (int64_t r = 2; r < 8; ++r) expect_close(want[r], y[r - 2], magnitude[r], "matvec");
}

INSTANTIATE_TEST_SUITE_P(Quant, KernelFixtureTest, testing::ValuesIn(kQuantFixtures),
                         [](const testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

// F32 weights (the fixtures' x tensors) and plain-float rows whose length is not a
// multiple of any vector width.
TEST(KernelTest, PlainFloatTypesAnyLength) {
  const std::vector<float> w = random_vector(1000, 1);
  const std::vector<float> x = random_vector(1000, 2);
  std::vector<uint16_t> wbf(w.size());  // w truncated to bfloat16
  std::vector<float> bf16_values(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    wbf[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(w[i]) >> 16);
  }
  dequantize_row(TensorType::kBF16, wbf.data(), bf16_values.data(), 1000);
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(bf16_values[i]), std::bit_cast<uint32_t>(w[i]) & 0xFFFF0000u);
  }
  for (int64_t n : {1, 7, 15, 16, 17, 31, 33, 64, 100, 129, 1000}) {
    double exact = 0;
    double exact_bf16 = 0;
    double magnitude = 0;
    for (int64_t i = 0; i < n; ++i) {
      exact += static_cast<double>(w[i]) * x[i];
      exact_bf16 += static_cast<double>(bf16_values[i]) * x[i];
      magnitude += std::fabs(static_cast<double>(w[i]) * x[i]);
    }
    for (Isa isa : supported_isas()) {
      const KernelTable& table = kernel_table(isa);
      const std::string what = std::string(isa_name(isa)) + " n=" + std::to_string(n);
      expect_close(exact, table.types[0].dot(w.data(), x.data(), n), magnitude, what + " F32");
      expect_close(exact_bf16, table.types[30].dot(wbf.data(), x.data(), n), magnitude,
                   what + " BF16");
      std::vector<float> y(3, NAN);
      // One row: w holds just one row of the longest n.
      table.types[0].matvec(w.data(), n * 4, n, x.data(), y.data(), 1);
      expect_close(exact, y[0], magnitude, what + " F32 matvec");
      EXPECT_TRUE(std::isnan(y[1]));
    }
  }
}

// Matvec of the float types over several rows (the SIMD kernels take rows in groups),
// lengths off any vector width so rows start unaligned, and a row range that is not a
// multiple of the group.
TEST(KernelTest, PlainFloatMatvecManyRows) {
  constexpr int64_t kRows = 7;
  std::mt19937 rng(11);
  for (int64_t n : {1, 17, 33, 63, 64, 65, 100, 129, 300}) {
    const std::vector<float> w = random_vector(kRows * n, 7);
    const std::vector<float> x = random_vector(n, 8);
    std::vector<uint16_t> wbf(w.size());
    std::vector<uint16_t> wh(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      wbf[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(w[i]) >> 16);
      wh[i] = static_cast<uint16_t>(rng() & 0xFBFF);
    }
    struct Case {
      uint32_t id;
      const void* data;
      int64_t bytes;
    };
    for (const Case& c : {Case{0, w.data(), 4}, Case{1, wh.data(), 2}, Case{30, wbf.data(), 2}}) {
      std::vector<float> values(w.size());
      kernel_table(Isa::kGeneric).types[c.id].dequantize(c.data, values.data(), kRows * n);
      for (Isa isa : supported_isas()) {
        for (int64_t begin : {0, 1}) {
          std::vector<float> y(kRows + 1, NAN);
          kernel_table(isa).types[c.id].matvec(
              static_cast<const uint8_t*>(c.data) + begin * n * c.bytes, n * c.bytes, n, x.data(),
              y.data(), kRows - begin);
          for (int64_t r = begin; r < kRows; ++r) {
            double exact = 0;
            double magnitude = 0;
            for (int64_t i = 0; i < n; ++i) {
              exact += static_cast<double>(values[r * n + i]) * x[i];
              magnitude += std::fabs(static_cast<double>(values[r * n + i]) * x[i]);
            }
            expect_close(exact, y[r - begin], magnitude,
                         std::string(isa_name(isa)) + " type " + std::to_string(c.id) + " n=" +
                             std::to_string(n) + " row " + std::to_string(r));
          }
          EXPECT_TRUE(std::isnan(y[kRows - begin]));
        }
      }
    }
  }
}

TEST(KernelTest, F16AnyLength) {
  std::vector<uint16_t> w(300);
  std::vector<float> w_values(300);
  const std::vector<float> x = random_vector(300, 3);
  std::mt19937 rng(5);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = static_cast<uint16_t>(rng() & 0xFBFF);  // any finite half, subnormals included
  }
  dequantize_row(TensorType::kF16, w.data(), w_values.data(), 300);
  for (int64_t n : {1, 9, 16, 23, 64, 300}) {
    double exact = 0;
    double magnitude = 0;
    for (int64_t i = 0; i < n; ++i) {
      exact += static_cast<double>(w_values[i]) * x[i];
      magnitude += std::fabs(static_cast<double>(w_values[i]) * x[i]);
    }
    for (Isa isa : supported_isas()) {
      const float got = kernel_table(isa).types[1].dot(w.data(), x.data(), n);
      expect_close(exact, got, magnitude, std::string(isa_name(isa)) + " n=" + std::to_string(n));
    }
  }
}

TEST(KernelTest, RejectsUnsupportedTypesAndBadLengths) {
  const std::vector<uint8_t> bytes(1024);
  const std::vector<float> x(1024);
  try {
    dot_row(TensorType::kQ8_K, bytes.data(), x.data(), 256);
    FAIL() << "Q8_K has no kernels";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("Q8_K"), std::string::npos);
  }
  try {
    dot_row(TensorType::kQ4_K, bytes.data(), x.data(), 100);
    FAIL() << "100 is not a multiple of 256";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(KernelTest, ActiveIsaIsTheBestSupported) {
  const std::string_view isa = active_isa();
  EXPECT_TRUE(isa == "generic" || isa == "avx2" || isa == "avx512") << isa;
  if (std::getenv("KOTO_ISA") == nullptr) {
    const Isa best = isa_supported(Isa::kAvx512) ? Isa::kAvx512
                     : isa_supported(Isa::kAvx2) ? Isa::kAvx2
                                                 : Isa::kGeneric;
    EXPECT_EQ(isa, isa_name(best));
  }
}

}  // namespace
}  // namespace koto::kernels

namespace koto::kernels {
namespace {

// SwiGLU's activation against the scalar std::exp reference: values across the whole
// float range (including where exp overflows and underflows), every tail length.
TEST(KernelTest, SiluMulMatchesReference) {
  std::vector<float> gate;
  for (float g = -120.0f; g <= 120.0f; g += 0.37f) gate.push_back(g);
  for (float g : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.7f, -88.7f, 103.0f, -103.0f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), 1e30f, -1e30f}) {
    gate.push_back(g);
  }
  std::vector<float> up(gate.size());
  for (size_t i = 0; i < up.size(); ++i) up[i] = 0.5f + static_cast<float>(i % 7) * 0.25f;
  std::vector<float> want = gate;
  kernel_table(Isa::kGeneric).silu_mul(want.data(), up.data(), static_cast<int64_t>(want.size()));
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, static_cast<int64_t>(gate.size())}) {
      std::vector<float> got(gate.begin(), gate.begin() + n);
      kernel_table(isa).silu_mul(got.data(), up.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float w = want[static_cast<size_t>(i)];
        const float g = got[static_cast<size_t>(i)];
        if (!std::isfinite(w)) {  // silu(inf) = inf; silu(-inf) = -inf / inf, NaN
          EXPECT_TRUE(std::isnan(w) ? std::isnan(g) : g == w) << isa_name(isa) << " g=" << gate[static_cast<size_t>(i)];
          continue;
        }
        EXPECT_NEAR(g, w, 4e-7f * std::fabs(w) + 1e-37f) << isa_name(isa) << " g=" << gate[static_cast<size_t>(i)];
      }
    }
  }
  // A NaN stays NaN.
  float nan_gate = std::nanf("");
  const float one = 1.0f;
  kernel_table(active_kernel_table().isa).silu_mul(&nan_gate, &one, 1);
  EXPECT_TRUE(std::isnan(nan_gate));
}

TEST(KernelTest, FloatsToHalvesMatchTheScalarConversionBitForBit) {
  std::vector<float> x;
  std::mt19937 rng(4);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 20000; ++i) {
    uint32_t b = bits(rng);
    // Mostly around the binary16 range (normals, subnormals, overflow), some anything.
    if (i % 4 != 0) b = (b & 0x807FFFFFu) | ((96u + b % 64u) << 23);
    float f;
    std::memcpy(&f, &b, sizeof(f));
    x.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 65504.0f, 65520.0f, 65519.99f, 5.96e-8f, 2.98e-8f, 2.99e-8f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), std::nanf("")}) {
    x.push_back(f);
  }
  std::vector<uint16_t> want(x.size());
  kernel_table(Isa::kGeneric).floats_to_halves(x.data(), want.data(), static_cast<int64_t>(x.size()));
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    for (int64_t n : {int64_t{5}, static_cast<int64_t>(x.size())}) {
      std::vector<uint16_t> got(static_cast<size_t>(n));
      kernel_table(isa).floats_to_halves(x.data(), got.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[static_cast<size_t>(i)], want[static_cast<size_t>(i)]) << isa_name(isa) << " x=" << x[static_cast<size_t>(i)];
      }
    }
  }
}

TEST(KernelTest, Int8PeakCountsItsOperations) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    const int64_t ops = kernel_table(isa).int8_peak(1000);
    EXPECT_EQ(ops, isa == Isa::kAvx512 ? 1000 * 12 * 64 * 2 : 1000 * 8 * 2);
  }
  EXPECT_GT(int8_peak_ops_per_second(1), 0.0);
}

}  // namespace
}  // namespace koto::kernels
