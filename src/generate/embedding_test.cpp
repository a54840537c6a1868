// Sentence embeddings against the fixtures' float64 references (fixtures README §8):
// last_hidden, last-token and mean pooling of the tiny llama, qwen2 and qwen3 models.
#include "koto/embedding.h"
#include "koto/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace koto {
namespace {

const std::string kFixtures = KOTO_FIXTURES_DIR;

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double{a[i]} * b[i];
    na += double{a[i]} * a[i];
    nb += double{b[i]} * b[i];
  }
  return dot / std::sqrt(na * nb);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double{a[i]} - b[i]));
  return m;
}

class EmbeddingFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(EmbeddingFixture, PooledVectorsMatchTheReference) {
  const std::string name = GetParam();
  std::ifstream in(kFixtures + "/embed/" + name + ".embed.json");
  ASSERT_TRUE(in) << "missing fixture " << kFixtures << "/embed/" << name << ".embed.json";
  const nlohmann::json ref = nlohmann::json::parse(in);
  const auto model = Model::load(kFixtures + "/" + ref.at("model").get<std::string>());
  const int32_t n_embd = model->params().n_embd;
  ASSERT_EQ(n_embd, ref.at("n_embd").get<int32_t>());
  const double max_abs = ref.at("tolerance_advice").at("float32_engine_F32_kv").at("max_abs").get<double>();
  const double min_cos = ref.at("tolerance_advice").at("float32_engine_F32_kv").at("min_cosine").get<double>();

  SessionOptions options;
  options.kv_type = TensorType::kF32;
  for (const auto& c : ref.at("cases")) {
    const std::vector<TokenId> tokens = c.at("tokens").get<std::vector<TokenId>>();
    SCOPED_TRACE(name + ", " + std::to_string(tokens.size()) + " tokens");
    const auto session = model->new_session(options);
    const std::span<const float> hidden = session->eval_hidden(tokens);
    ASSERT_EQ(hidden.size(), tokens.size() * static_cast<size_t>(n_embd));
    const std::vector<float> last(hidden.end() - n_embd, hidden.end());
    const std::vector<float> want_last = c.at("last_hidden").get<std::vector<float>>();
    EXPECT_LE(max_abs_diff(last, want_last), max_abs);

    const std::vector<float> last_pooled = pool_hidden_states(hidden, n_embd, Pooling::kLast);
    const std::vector<float> want_last_pooled = c.at("last_pooled_l2").get<std::vector<float>>();
    EXPECT_LE(max_abs_diff(last_pooled, want_last_pooled), max_abs);
    EXPECT_GE(cosine(last_pooled, want_last_pooled), min_cos);

    const std::vector<float> mean_pooled = pool_hidden_states(hidden, n_embd, Pooling::kMean);
    const std::vector<float> want_mean = c.at("mean_pooled_l2").get<std::vector<float>>();
    EXPECT_LE(max_abs_diff(mean_pooled, want_mean), max_abs);
    EXPECT_GE(cosine(mean_pooled, want_mean), min_cos);

    // The Embedder gives the same vector for the same ids (mean pooling: no metadata).
    Embedder embedder(*model);
    EXPECT_EQ(embedder.pooling(), Pooling::kMean);
    EXPECT_LE(max_abs_diff(embedder.embed_tokens(tokens), want_mean), max_abs);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, EmbeddingFixture, ::testing::Values("llama-gqa-F32", "qwen2-F32", "qwen3-F32"));

TEST(Embedding, EvalHiddenFillsTheKvCacheAsEvalDoes) {
  // eval_hidden runs the same layers as eval: what follows it sees the same cache.
  const auto model = Model::load(kFixtures + "/arch/qwen3-F32.gguf");
  SessionOptions options;
  options.kv_type = TensorType::kF32;
  const std::vector<TokenId> tokens = {1, 400, 20, 7};
  const auto a = model->new_session(options);
  const std::span<const float> hidden = a->eval_hidden(tokens);
  EXPECT_EQ(a->n_past(), 4);
  const auto b = model->new_session(options);
  ASSERT_EQ(hidden.size(), 4u * static_cast<size_t>(model->params().n_embd));
  b->eval(tokens);
  // Continuing after eval_hidden gives the same next logits as continuing after eval:
  // the KV cache was filled the same way.
  const std::vector<TokenId> next = {9};
  const std::vector<float> la_copy = [&] {
    const std::span<const float> la = a->eval(next);
    return std::vector<float>(la.begin(), la.end());
  }();
  const std::vector<float>& la = la_copy;
  const std::span<const float> lb = b->eval(next);
  ASSERT_EQ(la.size(), lb.size());
  double m = 0;
  for (size_t i = 0; i < la.size(); ++i) m = std::max(m, std::fabs(double{la[i]} - lb[i]));
  EXPECT_LE(m, 1e-4);
}

TEST(Embedding, PoolingNormalisesAndChecksShapes) {
  const std::vector<float> h = {3, 0, 0, 4};  // two rows of 2
  EXPECT_EQ(pool_hidden_states(h, 2, Pooling::kLast), (std::vector<float>{0, 1}));
  const std::vector<float> mean = pool_hidden_states(h, 2, Pooling::kMean);  // (1.5, 2) / 2.5
  EXPECT_FLOAT_EQ(mean[0], 0.6f);
  EXPECT_FLOAT_EQ(mean[1], 0.8f);
  EXPECT_THROW(pool_hidden_states(std::vector<float>{1, 2, 3}, 2, Pooling::kMean), Error);
}

}  // namespace
}  // namespace koto
