// Model::load's checks and Session's argument checks, on fixtures rewritten with one
// thing broken (GgufWriter).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_writer.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "test_support.h"

namespace koto {
namespace {

using TensorFilter = std::function<bool(const GgufTensor&)>;
using WriterEdit = std::function<void(GgufWriter&)>;

// Copies fixture `source` to a temporary file, leaving out the tensors `keep` rejects
// and applying `edit` last; returns the new file's path.
std::string rewrite_fixture(const std::string& source, const std::string& name, const TensorFilter& keep,
                            const WriterEdit& edit) {
  const GgufFile file = GgufFile::open(fixture_path(source));
  GgufWriter writer;
  for (const GgufKeyValue& kv : file.metadata()) writer.set(kv.key, GgufMetaValue::copy_of(kv.value));
  for (const GgufTensor& tensor : file.tensors()) {
    if (!keep(tensor)) continue;
    writer.add_tensor(tensor.name, tensor.shape, tensor.type,
                      std::string_view(reinterpret_cast<const char*>(tensor.data), tensor.n_bytes));
  }
  edit(writer);
  const std::string path = ::testing::TempDir() + "koto_model_test_" + name + ".gguf";
  writer.write_file(path);
  return path;
}

const TensorFilter kKeepAll = [](const GgufTensor&) { return true; };
const WriterEdit kNoEdit = [](GgufWriter&) {};

TensorFilter all_but(std::string name) {
  return [name](const GgufTensor& t) { return t.name != name; };
}

// Loads `path` expecting koto::Error with `code`; returns the message.
std::string load_error(const std::string& path, ErrorCode code) {
  try {
    Model::load(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << error_code_name(e.code()) << ": " << e.what();
    return e.what();
  }
  ADD_FAILURE() << path << " loaded, but an error was expected";
  return {};
}

class ModelLoadTest : public ::testing::Test {
 protected:
  void SetUp() override { set_language(Language::kEnglish); }
  void TearDown() override { detect_language_from_environment(); }
};

TEST_F(ModelLoadTest, ReadsStoriesHyperparameters) {
  auto model = Model::load(fixture_path("models/stories260K.gguf"));
  const ModelParams& p = model->params();
  EXPECT_EQ(p.architecture, "llama");
  EXPECT_EQ(p.n_vocab, 512);
  EXPECT_EQ(p.n_ctx_train, 2048);
  EXPECT_EQ(p.n_embd, 64);
  EXPECT_EQ(p.n_layer, 5);
  EXPECT_EQ(p.n_head, 8);
  EXPECT_EQ(p.n_head_kv, 4);
  EXPECT_EQ(p.head_dim, 8);
  EXPECT_EQ(p.n_ff, 172);
  EXPECT_FLOAT_EQ(p.rms_eps, 1e-5f);
  EXPECT_EQ(p.rope_freq_base, 10000.0f);  // key absent: the default
  EXPECT_FALSE(p.rope_neox);
  EXPECT_EQ(p.n_params, 292800);
  EXPECT_EQ(model->tokenizer().vocab_size(), 512);
  EXPECT_GE(model->n_threads(), 1);
}

TEST_F(ModelLoadTest, ReadsQwen3HeadDimFromKeyLength) {
  auto model = Model::load(fixture_path("arch/qwen3-Q8_0.gguf"));
  const ModelParams& p = model->params();
  EXPECT_EQ(p.architecture, "qwen3");
  EXPECT_EQ(p.head_dim, 128);  // while n_embd / n_head = 64
  EXPECT_EQ(p.n_embd / p.n_head, 64);
  EXPECT_TRUE(p.rope_neox);
  EXPECT_FLOAT_EQ(p.rope_freq_base, 1e6f);
  EXPECT_FLOAT_EQ(p.rms_eps, 1e-6f);
}

TEST_F(ModelLoadTest, UnknownArchitectureIsUnsupported) {
  const std::string path = rewrite_fixture("models/stories260K.gguf", "mamba", kKeepAll,
                                           [](GgufWriter& w) { w.set_string("general.architecture", "mamba"); });
  const std::string message = load_error(path, ErrorCode::kUnsupported);
  EXPECT_NE(message.find("\"mamba\""), std::string::npos) << message;
  EXPECT_NE(message.find("llama, qwen2, qwen3"), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

TEST_F(ModelLoadTest, MissingTensorIsNamed) {
  const std::string path =
      rewrite_fixture("models/stories260K.gguf", "no_ffn_up", all_but("blk.3.ffn_up.weight"), kNoEdit);
  const std::string message = load_error(path, ErrorCode::kCorruptFile);
  EXPECT_NE(message.find("blk.3.ffn_up.weight"), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

TEST_F(ModelLoadTest, MissingQwen2BiasIsNamed) {
  const std::string path = rewrite_fixture("arch/qwen2-Q8_0.gguf", "no_bias", all_but("blk.1.attn_v.bias"), kNoEdit);
  const std::string message = load_error(path, ErrorCode::kCorruptFile);
  EXPECT_NE(message.find("blk.1.attn_v.bias"), std::string::npos) << message;
}

TEST_F(ModelLoadTest, OutputIsRequiredUnlessTied) {
  // llama may tie output to token_embd; loading without output.weight still works.
  const std::string path = rewrite_fixture("models/stories260K.gguf", "tied", all_but("output.weight"), kNoEdit);
  auto model = Model::load(path);
  auto session = model->new_session();
  const TokenId bos = 1;
  const std::span<const float> logits = session->eval(std::span<const TokenId>(&bos, 1));
  EXPECT_EQ(logits.size(), 512u);
}

TEST_F(ModelLoadTest, WrongShapeSaysExpectedAndFound) {
  const std::string path = rewrite_fixture("models/stories260K.gguf", "bad_shape", all_but("blk.0.attn_k.weight"),
                                           [](GgufWriter& w) {
                                             w.add_tensor_owned("blk.0.attn_k.weight", {64, 64}, TensorType::kF32,
                                                                std::string(64 * 64 * 4, '\0'));
                                           });
  const std::string message = load_error(path, ErrorCode::kCorruptFile);
  EXPECT_NE(message.find("blk.0.attn_k.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("[64, 64]"), std::string::npos) << message;  // found
  EXPECT_NE(message.find("[64, 32]"), std::string::npos) << message;  // expected: 4 kv heads of 8
}

TEST_F(ModelLoadTest, UnsupportedTensorTypeListsSupportedTypes) {
  const std::string path = rewrite_fixture(
      "arch/llama-gqa-F32.gguf", "iq2_xxs", all_but("blk.0.attn_q.weight"), [](GgufWriter& w) {
        const int64_t bytes = tensor_row_bytes(TensorType::kIQ2_XXS, 256) * 256;
        w.add_tensor_owned("blk.0.attn_q.weight", {256, 256}, TensorType::kIQ2_XXS,
                           std::string(static_cast<size_t>(bytes), '\0'));
      });
  const std::string message = load_error(path, ErrorCode::kUnsupported);
  EXPECT_NE(message.find("blk.0.attn_q.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("IQ2_XXS"), std::string::npos) << message;
  EXPECT_NE(message.find(std::string(supported_tensor_type_names())), std::string::npos) << message;
}

TEST_F(ModelLoadTest, InconsistentHeadCountsAreRefused) {
  const std::string path = rewrite_fixture("models/stories260K.gguf", "bad_heads", kKeepAll, [](GgufWriter& w) {
    w.set_u32("llama.attention.head_count_kv", 3);
  });
  const std::string message = load_error(path, ErrorCode::kCorruptFile);
  EXPECT_NE(message.find("llama.attention.head_count_kv = 3"), std::string::npos) << message;
  EXPECT_NE(message.find("llama.attention.head_count = 8"), std::string::npos) << message;
}

TEST_F(ModelLoadTest, MissingHyperparameterIsNamed) {
  const std::string path = rewrite_fixture("models/stories260K.gguf", "no_embd", kKeepAll,
                                           [](GgufWriter& w) { w.remove("llama.embedding_length"); });
  const std::string message = load_error(path, ErrorCode::kCorruptFile);
  EXPECT_NE(message.find("llama.embedding_length"), std::string::npos) << message;
}

TEST_F(ModelLoadTest, UnknownRopeScalingIsRefusedNotIgnored) {
  const std::string path = rewrite_fixture("models/stories260K.gguf", "yarn", kKeepAll, [](GgufWriter& w) {
    w.set_string("llama.rope.scaling.type", "yarn");
    w.set_f32("llama.rope.scaling.factor", 4.0f);
  });
  const std::string message = load_error(path, ErrorCode::kUnsupported);
  EXPECT_NE(message.find("yarn"), std::string::npos) << message;
}

TEST_F(ModelLoadTest, MessagesComeInJapaneseToo) {
  const std::string path = rewrite_fixture("models/stories260K.gguf", "mamba_ja", kKeepAll,
                                           [](GgufWriter& w) { w.set_string("general.architecture", "mamba"); });
  set_language(Language::kJapanese);
  const std::string message = load_error(path, ErrorCode::kUnsupported);
  EXPECT_NE(message.find("対応していません"), std::string::npos) << message;
}

// rope_freqs.weight (Llama 3.1) divides the rotation speeds: factors of 1 change
// nothing, other factors change the logits.
TEST_F(ModelLoadTest, RopeFreqsTensorIsApplied) {
  auto logits_of = [](const std::string& path) {
    auto model = Model::load(path);
    auto session = model->new_session();
    const std::vector<TokenId> tokens = {1, 403, 407, 261, 378};
    const std::span<const float> logits = session->eval(tokens);
    return std::vector<float>(logits.begin(), logits.end());
  };
  auto with_factors = [](float factor) {
    return [factor](GgufWriter& w) {
      std::string bytes;
      for (int i = 0; i < 4; ++i) bytes.append(reinterpret_cast<const char*>(&factor), sizeof(float));
      w.add_tensor_owned("rope_freqs.weight", {4}, TensorType::kF32, bytes);
    };
  };
  const std::vector<float> plain = logits_of(fixture_path("models/stories260K.gguf"));
  const std::vector<float> ones = logits_of(rewrite_fixture("models/stories260K.gguf", "freqs1", kKeepAll, with_factors(1.0f)));
  const std::vector<float> eights =
      logits_of(rewrite_fixture("models/stories260K.gguf", "freqs8", kKeepAll, with_factors(8.0f)));
  EXPECT_EQ(plain, ones);
  double max_diff = 0;
  for (size_t i = 0; i < plain.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(plain[i] - eights[i])));
  EXPECT_GT(max_diff, 1e-3);
}

// ---- Session ----

class ModelSessionTest : public ModelLoadTest {
 protected:
  std::unique_ptr<Model> model_ = Model::load(fixture_path("models/stories260K.gguf"));
};

// touch_weights reads the pages of every 2-D weight matrix (norms are decoded copies):
// at least their bytes, at most the file (pages rounded), with progress to the total,
// and the model answers the same afterwards.
TEST_F(ModelSessionTest, TouchWeightsReadsEveryMatrixOnce) {
  uint64_t matrices = 0;
  for (const GgufTensor& t : model_->file().tensors()) {
    if (t.shape.size() == 2) matrices += t.n_bytes;
  }
  const std::vector<TokenId> tokens = model_->tokenizer().encode("昔々、ある村に", true, false);
  const std::unique_ptr<Session> first = model_->new_session();
  const std::span<const float> first_logits = first->eval(tokens);
  const std::vector<float> before(first_logits.begin(), first_logits.end());
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  const uint64_t bytes = model_->touch_weights([&calls](uint64_t done, uint64_t total) {
    calls.emplace_back(done, total);
    return true;
  });
  EXPECT_GE(bytes, matrices);
  EXPECT_LE(bytes, model_->file().file_size() + 2 * 4096);
  ASSERT_GE(calls.size(), 16u);
  EXPECT_EQ(calls.back(), std::make_pair(bytes, bytes));
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_GT(calls[i].first, calls[i - 1].first);
  const std::unique_ptr<Session> session = model_->new_session();
  const std::span<const float> after = session->eval(tokens);
  EXPECT_EQ(std::vector<float>(after.begin(), after.end()), before);
  // Everything touched is resident in this process's mapping of the file; the file is
  // under 2 MB, so none of it is in 2 MB pages.
  const Model::MappedMemory pages = model_->mapped_memory();
  EXPECT_GE(pages.resident_bytes, static_cast<int64_t>(bytes));
  EXPECT_LE(pages.resident_bytes, static_cast<int64_t>(model_->file().file_size() + 4096));
  EXPECT_EQ(pages.huge_bytes, 0);
}

// A false from the progress callback stops the reading after that chunk.
TEST_F(ModelSessionTest, TouchWeightsStopsWhenTold) {
  uint64_t first_done = 0;
  uint64_t total = 0;
  int calls = 0;
  const uint64_t bytes = model_->touch_weights([&](uint64_t done, uint64_t all) {
    ++calls;
    first_done = done;
    total = all;
    return false;
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(bytes, first_done);
  EXPECT_LT(bytes, total);
  EXPECT_GT(bytes, 0u);
}

ErrorCode eval_error(Session& session, std::vector<TokenId> tokens) {
  try {
    session.eval(tokens);
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;  // no error: the caller's EXPECT fails
}

TEST_F(ModelSessionTest, DefaultContextIsTrainingContextUpTo4096) {
  EXPECT_EQ(model_->new_session()->n_ctx(), 2048);
  SessionOptions options;
  options.n_ctx = 100;
  EXPECT_EQ(model_->new_session(options)->n_ctx(), 100);
}

TEST_F(ModelSessionTest, EvalPastContextIsRefusedWithNumbers) {
  SessionOptions options;
  options.n_ctx = 8;
  auto session = model_->new_session(options);
  session->eval(std::vector<TokenId>{1, 2, 3, 4, 5});
  try {
    session->eval(std::vector<TokenId>{1, 2, 3, 4});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string message = e.what();
    EXPECT_NE(message.find("4 tokens at position 5"), std::string::npos) << message;
    EXPECT_NE(message.find("8 positions"), std::string::npos) << message;
  }
  EXPECT_EQ(session->n_past(), 5);  // nothing was run
  session->eval(std::vector<TokenId>{1, 2, 3});
  EXPECT_EQ(session->n_past(), 8);
}

TEST_F(ModelSessionTest, TokenIdsOutOfRangeAreRefused) {
  auto session = model_->new_session();
  EXPECT_EQ(eval_error(*session, {1, 512}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(eval_error(*session, {-1}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(eval_error(*session, {}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(session->n_past(), 0);
  EXPECT_EQ(session->eval(std::vector<TokenId>{511}).size(), 512u);
}

TEST_F(ModelSessionTest, KvTypeMustBeF16OrF32) {
  SessionOptions options;
  options.kv_type = TensorType::kQ4_0;
  try {
    model_->new_session(options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST_F(ModelSessionTest, SessionBytesCoverTheKvCache) {
  // 5 layers × (k + v) × 4 kv heads × 8 dims × 2 bytes (F16) per position.
  const uint64_t kv_per_position = 5 * 2 * 4 * 8 * 2;
  EXPECT_GE(model_->session_bytes(1000), 1000 * kv_per_position);
  EXPECT_GE(model_->session_bytes(2000) - model_->session_bytes(1000), 1000 * kv_per_position);
  EXPECT_LT(model_->session_bytes(1000), 1000 * kv_per_position + (8u << 20));
}

TEST_F(ModelSessionTest, SessionsAreIndependent) {
  auto a = model_->new_session();
  auto b = model_->new_session();
  a->eval(std::vector<TokenId>{1, 403, 407});
  b->eval(std::vector<TokenId>{1, 9, 9, 9, 9});  // interleaved work on another sequence
  const std::span<const float> from_a = a->eval(std::vector<TokenId>{261});
  const std::vector<float> last_a(from_a.begin(), from_a.end());
  auto c = model_->new_session();
  const std::span<const float> from_c = c->eval(std::vector<TokenId>{1, 403, 407, 261});
  ASSERT_EQ(from_c.size(), last_a.size());
  for (size_t i = 0; i < last_a.size(); ++i) ASSERT_NEAR(from_c[i], last_a[i], 1e-4);
  EXPECT_EQ(b->n_past(), 5);
}

}  // namespace
}  // namespace koto
