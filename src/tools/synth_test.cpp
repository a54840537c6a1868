#include "koto/synth.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_writer.h"
#include "koto/model.h"
#include "tensor/kernels.h"

namespace koto {
namespace {

class SynthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("koto_synth_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

TEST(SynthShapes, TableHasTheRealShapes) {
  const ModelShape* llama = find_model_shape("llama2-7b");
  ASSERT_NE(llama, nullptr);
  EXPECT_EQ(llama->n_embd, 4096);
  EXPECT_EQ(llama->n_ff, 11008);
  EXPECT_EQ(llama->n_vocab, 32000);
  const ModelShape* qwen = find_model_shape("qwen2.5-1.5b");
  ASSERT_NE(qwen, nullptr);
  EXPECT_EQ(qwen->n_head_kv, 2);
  EXPECT_TRUE(qwen->tied_embeddings);
  EXPECT_EQ(find_model_shape("qwen3-1.7b")->head_dim, 128);
  EXPECT_EQ(find_model_shape("no-such-shape"), nullptr);
}

// Every tiny shape in every type: the file loads, runs, gives finite logits and its
// tensor types are the documented rule's.
TEST_F(SynthTest, TinyModelsLoadRunAndFollowTheMixRule) {
  for (const char* shape_name : {"tiny", "tiny-qwen2", "tiny-qwen3"}) {
    for (const char* type : {"F16", "Q8_0", "Q4_0", "Q5_0", "Q6_K", "Q4_K_M", "Q5_K_M"}) {
      SCOPED_TRACE(std::string(shape_name) + " " + type);
      SynthOptions options;
      options.shape = shape_name;
      options.type = type;
      options.seed = 7;
      const std::string file = path(std::string(shape_name) + "-" + type + ".gguf");
      const SynthReport report = synth_model(options, file);
      EXPECT_EQ(report.file_bytes, std::filesystem::file_size(file));

      const ModelShape& shape = *find_model_shape(shape_name);
      const QuantMix mix = *find_quant_mix(type);
      {
        const GgufFile gguf = GgufFile::open(file);
        EXPECT_EQ(gguf.get_u64("general.file_type", 999), mix.file_type);
        const std::vector<SynthTensor> plan = synth_tensors(shape, mix);
        ASSERT_EQ(gguf.tensors().size(), plan.size());
        for (size_t i = 0; i < plan.size(); ++i) {
          EXPECT_EQ(gguf.tensors()[i].name, plan[i].name);
          EXPECT_EQ(gguf.tensors()[i].type, plan[i].type) << plan[i].name;
          EXPECT_EQ(gguf.tensors()[i].n_bytes, plan[i].bytes()) << plan[i].name;
        }
        // Rule spelled out for the two-layer shapes: layer 1 is a "more bits" layer.
        if (mix.mixed) {
          EXPECT_EQ(gguf.find_tensor("blk.0.attn_v.weight")->type, mix.base);
          EXPECT_EQ(gguf.find_tensor("blk.1.attn_v.weight")->type, TensorType::kQ6_K);
          EXPECT_EQ(gguf.find_tensor("blk.1.ffn_down.weight")->type, TensorType::kQ6_K);
          EXPECT_EQ(gguf.find_tensor("blk.0.ffn_up.weight")->type, mix.base);
        }
        const GgufTensor* output = gguf.find_tensor(shape.tied_embeddings ? "token_embd.weight" : "output.weight");
        ASSERT_NE(output, nullptr);
        EXPECT_EQ(output->type, mix.output_q6_k ? TensorType::kQ6_K : mix.base);
        EXPECT_EQ(gguf.find_tensor("output.weight") == nullptr, shape.tied_embeddings);
        // Norms are 1 + small noise, in F32.
        const GgufTensor* norm = gguf.find_tensor("blk.0.attn_norm.weight");
        ASSERT_EQ(norm->type, TensorType::kF32);
        const float* w = reinterpret_cast<const float*>(norm->data);
        EXPECT_NEAR(w[0], 1.0f, 0.2f);
        // Matrices decode to finite values of about the intended spread.
        const GgufTensor* q = gguf.find_tensor("blk.0.attn_q.weight");
        std::vector<float> row(static_cast<size_t>(q->row_length()));
        kernels::dequantize_row(q->type, q->data, row.data(), q->row_length());
        double sq = 0;
        for (float v : row) {
          ASSERT_TRUE(std::isfinite(v));
          sq += v * v;
        }
        EXPECT_NEAR(std::sqrt(sq / row.size()), 0.02, 0.01);
      }

      const std::unique_ptr<Model> model = Model::load(file);
      EXPECT_EQ(model->params().n_vocab, shape.n_vocab);
      EXPECT_EQ(model->params().n_layer, shape.n_layer);
      EXPECT_EQ(model->tokenizer().vocab_size(), shape.n_vocab);
      const std::unique_ptr<Session> session = model->new_session({});
      const std::vector<TokenId> tokens = {1, 300, 301, 7};
      const std::span<const float> logits = session->eval(tokens, true);
      ASSERT_EQ(logits.size(), tokens.size() * static_cast<size_t>(shape.n_vocab));
      float lo = logits[0], hi = logits[0];
      for (float v : logits) {
        ASSERT_TRUE(std::isfinite(v));
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      EXPECT_GT(hi - lo, 1e-3f) << "logits are all equal";
      // The synthetic vocabulary encodes text (byte fallback).
      EXPECT_FALSE(model->tokenizer().encode("こんにちは", true, false).empty());
    }
  }
}

TEST_F(SynthTest, SameSeedSameBytesOtherSeedOtherBytes) {
  SynthOptions options;
  options.shape = "tiny";
  options.type = "Q4_K_M";
  synth_model(options, path("a.gguf"));
  synth_model(options, path("b.gguf"));
  options.seed = 2;
  synth_model(options, path("c.gguf"));
  const GgufFile a = GgufFile::open(path("a.gguf"));
  const GgufFile b = GgufFile::open(path("b.gguf"));
  const GgufFile c = GgufFile::open(path("c.gguf"));
  const GgufTensor* ta = a.find_tensor("blk.1.ffn_up.weight");
  const GgufTensor* tb = b.find_tensor("blk.1.ffn_up.weight");
  const GgufTensor* tc = c.find_tensor("blk.1.ffn_up.weight");
  EXPECT_EQ(0, std::memcmp(ta->data, tb->data, ta->n_bytes));
  EXPECT_NE(0, std::memcmp(ta->data, tc->data, ta->n_bytes));
  // Rows differ from each other.
  const int64_t row_bytes = tensor_row_bytes(ta->type, ta->row_length());
  EXPECT_NE(0, std::memcmp(ta->data, ta->data + row_bytes, static_cast<size_t>(row_bytes)));
}

// A vocabulary smaller than the shape's embedding is padded with unused tokens; a
// larger one is refused.
TEST_F(SynthTest, VocabularyFromFileIsCopiedAndPadded) {
  GgufWriter vocab;
  vocab.set_string("general.architecture", "llama");
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    scores.push_back(0);
    types.push_back(6);
  }
  tokens.push_back("\xE2\x96\x81hello");
  scores.push_back(-1);
  types.push_back(1);
  const size_t n_tokens = tokens.size();  // 260
  vocab.set_string("tokenizer.ggml.model", "llama");
  vocab.set("tokenizer.ggml.tokens", GgufMetaValue::string_array(tokens));
  vocab.set("tokenizer.ggml.scores", GgufMetaValue::array<float>(scores));
  vocab.set("tokenizer.ggml.token_type", GgufMetaValue::array<int32_t>(types));
  vocab.set_u32("tokenizer.ggml.bos_token_id", 1);
  vocab.set_u32("tokenizer.ggml.eos_token_id", 2);
  vocab.write_file(path("vocab.gguf"));

  SynthOptions options;
  options.shape = "tiny";
  options.type = "Q8_0";
  options.vocab_path = path("vocab.gguf");
  const SynthReport report = synth_model(options, path("padded.gguf"));
  EXPECT_EQ(report.padded_tokens, 512 - static_cast<int32_t>(n_tokens));
  const std::unique_ptr<Model> model = Model::load(path("padded.gguf"));
  EXPECT_EQ(model->tokenizer().vocab_size(), 512);
  EXPECT_EQ(model->tokenizer().piece(259), "\xE2\x96\x81hello");
  EXPECT_EQ(model->tokenizer().piece(511), "[PAD511]");

  // The Llama-2 vocabulary (32000 tokens) does not fit tiny's 512 rows.
  options.vocab_path = KOTO_FIXTURES_DIR "/tokenizer/llama2-spm.gguf";
  try {
    synth_model(options, path("too-big.gguf"));
    FAIL() << "a vocabulary larger than the embedding was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("32000"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path("too-big.gguf")));
}

TEST_F(SynthTest, UnknownShapeOrTypeListsTheKnownOnes) {
  SynthOptions options;
  options.shape = "llama9-1t";
  try {
    synth_model(options, path("x.gguf"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("qwen2.5-1.5b"), std::string::npos) << e.what();
  }
  options.shape = "tiny";
  options.type = "Q9_9";
  try {
    synth_model(options, path("x.gguf"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_K_M"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace koto
