#include "koto/quantize_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/model.h"
#include "test_support.h"

namespace koto {
namespace {

class QuantizeModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("koto_quantize_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

std::vector<float> read_floats(const std::string& file) {
  const std::string bytes = read_file_bytes(file);
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

struct LogitDistance {
  double mean_kl = 0;
  double max_abs = 0;
  double top1 = 0;
};

// KL(softmax(reference) || softmax(ours)) per position, mean over positions.
LogitDistance compare_logits(const std::vector<float>& ref, std::span<const float> ours, size_t n_vocab) {
  LogitDistance d;
  const size_t n_pos = ref.size() / n_vocab;
  for (size_t t = 0; t < n_pos; ++t) {
    const float* a = ref.data() + t * n_vocab;
    const float* b = ours.data() + t * n_vocab;
    const double ma = *std::max_element(a, a + n_vocab);
    const double mb = *std::max_element(b, b + n_vocab);
    double za = 0, zb = 0;
    for (size_t v = 0; v < n_vocab; ++v) {
      za += std::exp(a[v] - ma);
      zb += std::exp(b[v] - mb);
    }
    double kl = 0;
    for (size_t v = 0; v < n_vocab; ++v) {
      const double la = a[v] - ma - std::log(za);
      const double lb = b[v] - mb - std::log(zb);
      kl += std::exp(la) * (la - lb);
      d.max_abs = std::max(d.max_abs, std::abs(static_cast<double>(a[v]) - b[v]));
    }
    d.mean_kl += kl / static_cast<double>(n_pos);
    d.top1 += (std::max_element(a, a + n_vocab) - a == std::max_element(b, b + n_vocab) - b) ? 1.0 / n_pos : 0.0;
  }
  return d;
}

LogitDistance run_against_f32_reference(const std::string& model_file) {
  const nlohmann::json meta = nlohmann::json::parse(read_file_bytes(fixture_path("arch/llama-gqa-F32.meta.json")));
  const std::vector<TokenId> tokens = meta.at("tokens").get<std::vector<TokenId>>();
  const std::unique_ptr<Model> model = Model::load(model_file);
  const std::unique_ptr<Session> session = model->new_session({});
  const std::span<const float> logits = session->eval(tokens, true);
  return compare_logits(read_floats(fixture_path("arch/llama-gqa-F32.logits.bin")), logits, 512);
}

// The comparison itself: the F32 file against its own reference is at the F32 tier.
TEST_F(QuantizeModelTest, F32SourceMatchesItsReference) {
  const LogitDistance d = run_against_f32_reference(fixture_path("arch/llama-gqa-F32.gguf"));
  EXPECT_LE(d.max_abs, 0.05);
  EXPECT_EQ(d.top1, 1.0);
}

TEST_F(QuantizeModelTest, Q8_0KeepsLogitsWithinTheQuantizedTier) {
  const std::string source = fixture_path("arch/llama-gqa-F32.gguf");
  QuantizeOptions options;
  options.type = "Q8_0";
  options.n_threads = 2;
  const QuantizeReport report = quantize_model(source, path("q8.gguf"), options);
  EXPECT_EQ(report.output_bytes, std::filesystem::file_size(path("q8.gguf")));

  const GgufFile in = GgufFile::open(source);
  const GgufFile out = GgufFile::open(path("q8.gguf"));
  ASSERT_EQ(out.tensors().size(), in.tensors().size());
  EXPECT_EQ(out.get_u64("general.file_type", 0), 7u);
  EXPECT_EQ(out.get_u64("general.quantization_version", 0), 2u);
  EXPECT_EQ(out.get_u64("llama.block_count", 0), 2u);
  EXPECT_EQ(out.find("tokenizer.ggml.tokens")->size(), 512u);
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const GgufTensor& a = in.tensors()[i];
    const GgufTensor& b = out.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(b.type, a.shape.size() == 1 ? TensorType::kF32 : TensorType::kQ8_0) << b.name;
    const QuantizedTensor& r = report.tensors[i];
    if (a.shape.size() > 1) {
      EXPECT_GT(r.relative_rms_error(), 1e-4) << r.name;
      EXPECT_LT(r.relative_rms_error(), 0.01) << r.name;  // Q8_0 on N(0, 0.05²): about 0.5%
    } else {
      EXPECT_TRUE(r.copied);
      EXPECT_EQ(0, std::memcmp(a.data, b.data, a.n_bytes));
    }
  }
  const LogitDistance d = run_against_f32_reference(path("q8.gguf"));
  EXPECT_LE(d.mean_kl, 2e-3) << "max_abs " << d.max_abs;
  EXPECT_LE(d.max_abs, 0.5);
  EXPECT_GE(d.top1, 0.85);
}

// Q4_K on this random model: ggml's own Q4_K file is at mean_kl 0.022 from the F32
// reference (fixture meta); a wrong layout or scale would be orders of magnitude off.
TEST_F(QuantizeModelTest, Q4_KStaysNearTheF32Logits) {
  QuantizeOptions options;
  options.type = "Q4_K";
  const QuantizeReport report = quantize_model(fixture_path("arch/llama-gqa-F32.gguf"), path("q4k.gguf"), options);
  const GgufFile out = GgufFile::open(path("q4k.gguf"));
  EXPECT_EQ(out.find_tensor("blk.0.ffn_up.weight")->type, TensorType::kQ4_K);
  EXPECT_EQ(out.find_tensor("output.weight")->type, TensorType::kQ6_K);
  EXPECT_EQ(out.get_u64("general.file_type", 0), 14u);
  for (const QuantizeTypeTotal& t : report.totals_by_type()) {
    if (t.type == TensorType::kQ4_K) {
      EXPECT_LT(t.relative_rms_error(), 0.10);
    } else if (t.type == TensorType::kQ6_K) {
      EXPECT_LT(t.relative_rms_error(), 0.03);
    }
  }
  const LogitDistance d = run_against_f32_reference(path("q4k.gguf"));
  std::printf("Q4_K vs F32 reference: mean_kl %.5f, max_abs %.3f, top1 %.3f\n", d.mean_kl, d.max_abs, d.top1);
  EXPECT_LE(d.mean_kl, 0.05);
  EXPECT_LE(d.max_abs, 1.5);
}

TEST_F(QuantizeModelTest, RequantizingAndFallbacksAreReported) {
  QuantizeOptions options;
  options.type = "Q4_K_M";
  const QuantizeReport report = quantize_model(fixture_path("arch/qwen2-Q8_0.gguf"), path("q.gguf"), options);
  EXPECT_GT(report.requantized(), 0);
  EXPECT_EQ(report.fallbacks(), 0);
  const GgufFile out = GgufFile::open(path("q.gguf"));
  EXPECT_EQ(out.find_tensor("token_embd.weight")->type, TensorType::kQ6_K);  // tied output
  EXPECT_EQ(out.find_tensor("blk.1.attn_v.weight")->type, TensorType::kQ6_K);
  EXPECT_EQ(out.find_tensor("blk.0.attn_v.weight")->type, TensorType::kQ4_K);
  EXPECT_NO_THROW(Model::load(path("q.gguf")));

  // llama-gqa's matrices have rows of 256 and 768: IQ4_XS fits; rows of 256 also fit
  // Q6_K. A type whose block is larger than a row falls back: none here, so use the
  // rule directly on a row of 96 values.
  EXPECT_EQ(fallback_tensor_type(TensorType::kQ4_K, 96), TensorType::kQ5_0);
}

TEST_F(QuantizeModelTest, RefusesToOverwriteItsInputAndUnknownTypes) {
  QuantizeOptions options;
  options.type = "Q8_0";
  const std::string source = fixture_path("arch/llama-gqa-F32.gguf");
  EXPECT_THROW(quantize_model(source, source, options), Error);
  options.type = "Q7_0";
  try {
    quantize_model(source, path("x.gguf"), options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("Q4_K_M"), std::string::npos);
  }
}

}  // namespace
}  // namespace koto
