// The forward pass against the fixtures' reference logits (fixtures/README.md §3-5).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "koto/error.h"
#include "koto/model.h"
#include "test_support.h"

namespace koto {
namespace {

using nlohmann::json;

json read_json(const std::string& path) { return json::parse(read_file_bytes(path)); }

std::vector<float> read_floats(const std::string& path) {
  const std::string bytes = read_file_bytes(path);
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

size_t argmax(const float* v, size_t n) { return static_cast<size_t>(std::max_element(v, v + n) - v); }

struct Comparison {
  double max_abs = 0;
  double mean_kl = 0;
  double max_kl = 0;
  double top1 = 0;
  std::vector<size_t> argmax_mismatches;  // positions
};

// KL(softmax(reference) || softmax(ours)) per position, as the fixtures define it.
Comparison compare(const std::vector<float>& reference, std::span<const float> ours, size_t n_vocab) {
  Comparison c;
  const size_t n_rows = reference.size() / n_vocab;
  size_t agree = 0;
  for (size_t t = 0; t < n_rows; ++t) {
    const float* r = &reference[t * n_vocab];
    const float* o = &ours[t * n_vocab];
    const double r_max = *std::max_element(r, r + n_vocab);
    const double o_max = *std::max_element(o, o + n_vocab);
    double r_sum = 0, o_sum = 0;
    for (size_t v = 0; v < n_vocab; ++v) {
      r_sum += std::exp(r[v] - r_max);
      o_sum += std::exp(o[v] - o_max);
      c.max_abs = std::max(c.max_abs, static_cast<double>(std::fabs(r[v] - o[v])));
    }
    double kl = 0;
    for (size_t v = 0; v < n_vocab; ++v) {
      const double log_p = r[v] - r_max - std::log(r_sum);
      const double log_q = o[v] - o_max - std::log(o_sum);
      kl += std::exp(log_p) * (log_p - log_q);
    }
    c.mean_kl += kl / static_cast<double>(n_rows);
    c.max_kl = std::max(c.max_kl, kl);
    if (argmax(r, n_vocab) == argmax(o, n_vocab)) {
      ++agree;
    } else {
      c.argmax_mismatches.push_back(t);
    }
  }
  c.top1 = static_cast<double>(agree) / static_cast<double>(n_rows);
  return c;
}

// ---- stories260K: a real trained model ----

class TransformerStoriesTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(TransformerStoriesTest, LogitsMatchReference) {
  const json meta = read_json(fixture_path("models/stories260K.meta.json"));
  const std::vector<float> reference = read_floats(fixture_path("models/stories260K.logits.bin"));
  const std::vector<TokenId> tokens = meta["tokens"].get<std::vector<TokenId>>();
  auto model = Model::load(fixture_path("models/stories260K.gguf"));
  ASSERT_EQ(model->params().n_vocab, 512);
  SessionOptions options;
  options.kv_type = GetParam();
  auto session = model->new_session(options);
  const std::span<const float> logits = session->eval(tokens, /*all_logits=*/true);
  ASSERT_EQ(logits.size(), reference.size());
  const Comparison c = compare(reference, logits, 512);
  const double tolerance = GetParam() == TensorType::kF32 ? 1e-3 : 0.05;
  EXPECT_LE(c.max_abs, tolerance);
  EXPECT_EQ(c.top1, 1.0);
  std::printf("stories260K %s KV: max_abs %.3g mean_kl %.3g\n", std::string(tensor_type_name(GetParam())).c_str(),
              c.max_abs, c.mean_kl);
}

TEST_P(TransformerStoriesTest, Greedy200TokensFromBos) {
  const json meta = read_json(fixture_path("models/stories260K.meta.json"));
  const std::vector<TokenId> expected = meta["greedy"]["token_ids"].get<std::vector<TokenId>>();
  ASSERT_EQ(expected.size(), 201u);
  auto model = Model::load(fixture_path("models/stories260K.gguf"));
  SessionOptions options;
  options.kv_type = GetParam();
  auto session = model->new_session(options);
  std::vector<TokenId> generated = {expected[0]};
  TokenId next = expected[0];
  for (int step = 0; step < 200; ++step) {
    const std::span<const float> logits = session->eval(std::span<const TokenId>(&next, 1));
    next = static_cast<TokenId>(argmax(logits.data(), logits.size()));
    generated.push_back(next);
  }
  EXPECT_EQ(generated, expected);
  EXPECT_EQ(session->n_past(), 200);
}

INSTANTIATE_TEST_SUITE_P(Transformer, TransformerStoriesTest, ::testing::Values(TensorType::kF32, TensorType::kF16),
                         [](const auto& info) { return std::string(tensor_type_name(info.param)); });

// ---- arch/: random-weight llama, qwen2 and qwen3 files in every type ----

const char* const kArchFixtures[] = {
    "llama-gqa-F32", "llama-gqa-F16",  "llama-gqa-Q8_0", "llama-gqa-Q4_0", "llama-gqa-Q5_0", "llama-gqa-Q4_K",
    "llama-gqa-Q5_K", "llama-gqa-Q6_K", "llama-gqa-Q4_K_mix", "qwen2-F32", "qwen2-Q8_0", "qwen2-Q4_K",
    "qwen3-F32",      "qwen3-Q8_0",     "qwen3-Q4_K",
};

struct ArchCase {
  json meta;
  std::vector<float> reference;
  std::vector<TokenId> tokens;
  std::unique_ptr<Model> model;
};

ArchCase load_arch_case(const std::string& name) {
  ArchCase c;
  c.meta = read_json(fixture_path("arch/" + name + ".meta.json"));
  c.reference = read_floats(fixture_path("arch/" + name + ".logits.bin"));
  c.tokens = c.meta["tokens"].get<std::vector<TokenId>>();
  c.model = Model::load(fixture_path("arch/" + name + ".gguf"));
  return c;
}

// Checks the meta's machine-readable tolerance, plus the argmax wherever the
// reference's top-2 gap is large enough that no rounding can flip it.
void expect_within_tolerance(const ArchCase& c, std::span<const float> logits, const std::string& what,
                             const json* tolerance_override = nullptr) {
  SCOPED_TRACE(what);
  const size_t n_vocab = static_cast<size_t>(c.model->params().n_vocab);
  ASSERT_EQ(logits.size(), c.reference.size());
  const Comparison cmp = compare(c.reference, logits, n_vocab);
  const json& tolerance = tolerance_override != nullptr ? *tolerance_override : c.meta["tolerance"];
  EXPECT_LE(cmp.max_abs, tolerance["max_abs"].get<double>());
  EXPECT_LE(cmp.mean_kl, tolerance["mean_kl"].get<double>());
  EXPECT_GE(cmp.top1, tolerance["top1"].get<double>());
  const double min_gap = tolerance.value("top1_must_match_where_reference_gap_at_least", 0.5);
  const std::vector<double> gaps = c.meta["reference_top1_top2_gap"].get<std::vector<double>>();
  for (size_t t : cmp.argmax_mismatches) {
    EXPECT_LT(gaps[t], min_gap) << "argmax differs at position " << t << " where the reference gap is " << gaps[t];
  }
  std::printf("%-20s %-12s max_abs %.3g mean_kl %.3g top1 %.3f\n", c.meta["model"].get<std::string>().c_str(),
              what.c_str(), cmp.max_abs, cmp.mean_kl, cmp.top1);
}

class TransformerArchTest : public ::testing::TestWithParam<const char*> {};

TEST_P(TransformerArchTest, BatchMatchesReference) {
  const ArchCase c = load_arch_case(GetParam());
  EXPECT_EQ(c.model->params().architecture, c.meta["architecture"].get<std::string>());
  EXPECT_EQ(c.model->params().head_dim, c.meta["head_dim"].get<int>());
  auto session = c.model->new_session();
  expect_within_tolerance(c, session->eval(c.tokens, true), "batch");
}

// With a float32 KV cache the engine computes in float32 on dequantized weights, the
// fixtures' strictest tier (README §5: max_abs <= 1e-3 for every file).
TEST_P(TransformerArchTest, Float32KvCacheReachesTheFloat32Tier) {
  const ArchCase c = load_arch_case(GetParam());
  SessionOptions options;
  options.kv_type = TensorType::kF32;
  auto session = c.model->new_session(options);
  const std::span<const float> logits = session->eval(c.tokens, true);
  const Comparison cmp = compare(c.reference, logits, static_cast<size_t>(c.model->params().n_vocab));
  EXPECT_LE(cmp.max_abs, 1e-3);
  EXPECT_EQ(cmp.top1, 1.0);
  std::printf("%-20s %-12s max_abs %.3g mean_kl %.3g top1 %.3f\n", c.meta["model"].get<std::string>().c_str(),
              "f32-kv", cmp.max_abs, cmp.mean_kl, cmp.top1);
}

// An 8-bit KV cache: half the memory of F16 (34 bytes per 32 values against 64), the
// logits still within the fixtures' quantized tolerance (the architecture's Q8_0 file's
// thresholds; quantized files keep their own), whole prompts and token by token, and its
// bytes move between sessions like F16's.
TEST_P(TransformerArchTest, Q8_0KvCacheStaysWithinTheQuantizedTolerance) {
  const ArchCase c = load_arch_case(GetParam());
  const std::string name = GetParam();
  const json quantized = read_json(fixture_path("arch/" + name.substr(0, name.rfind('-')) + "-Q8_0.meta.json"))["tolerance"];
  const json& own = c.meta["tolerance"];
  const json& tolerance = own["top1"].get<double>() < quantized["top1"].get<double>() ? own : quantized;
  SessionOptions options;
  options.kv_type = TensorType::kQ8_0;
  auto batch = c.model->new_session(options);
  expect_within_tolerance(c, batch->eval(c.tokens, true), "q8_0-kv batch", &tolerance);
  auto incremental = c.model->new_session(options);
  std::vector<float> logits;
  for (TokenId token : c.tokens) {
    const std::span<const float> row = incremental->eval(std::span<const TokenId>(&token, 1));
    logits.insert(logits.end(), row.begin(), row.end());
  }
  expect_within_tolerance(c, logits, "q8_0-kv incremental", &tolerance);
  auto f16 = c.model->new_session();
  EXPECT_EQ(batch->kv_bytes_per_position() * 64, f16->kv_bytes_per_position() * 34);

  // The cached positions, copied into a fresh session, give the same next logits.
  const size_t half = c.tokens.size() / 2;
  auto first = c.model->new_session(options);
  first->eval(std::span<const TokenId>(c.tokens).first(half));
  std::vector<uint8_t> bytes(half * first->kv_bytes_per_position());
  first->read_kv(0, static_cast<int32_t>(half), bytes);
  auto second = c.model->new_session(options);
  second->append_kv(bytes);
  const TokenId next = c.tokens[half];
  const std::span<const float> a = first->eval(std::span<const TokenId>(&next, 1));
  const std::vector<float> want(a.begin(), a.end());
  const std::span<const float> b = second->eval(std::span<const TokenId>(&next, 1));
  ASSERT_EQ(b.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(b[i], want[i]) << i;
}

TEST_P(TransformerArchTest, TokenByTokenMatchesReference) {
  const ArchCase c = load_arch_case(GetParam());
  auto session = c.model->new_session();
  std::vector<float> logits;
  for (TokenId token : c.tokens) {
    const std::span<const float> row = session->eval(std::span<const TokenId>(&token, 1));
    logits.insert(logits.end(), row.begin(), row.end());
  }
  expect_within_tolerance(c, logits, "incremental");
}

// A long context (65536 positions: 4 MB per head's F16 keys, 2.2 MB of Q8_0 tiles) gives
// bit for bit the logits of a short one, whole prompt and token by token, and the cache's
// bytes copy between the two: nothing in the cache's layout depends on the context's size
// but the distance from one head to the next.
TEST(TransformerKv, ALongContextGivesTheLogitsOfAShortOne) {
  const ArchCase c = load_arch_case("llama-gqa-Q8_0");
  for (TensorType kv_type : {TensorType::kF16, TensorType::kQ8_0}) {
    SCOPED_TRACE(tensor_type_name(kv_type));
    SessionOptions short_context;
    short_context.kv_type = kv_type;
    short_context.n_ctx = 64;
    SessionOptions long_context = short_context;
    long_context.n_ctx = 65536;
    auto a = c.model->new_session(short_context);
    auto b = c.model->new_session(long_context);
    const std::span<const float> want_span = a->eval(c.tokens, true);
    const std::vector<float> want(want_span.begin(), want_span.end());
    const std::span<const float> got = b->eval(c.tokens, true);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;

    // Token by token runs decoding's kernels, so it is compared with the short context token by token.
    auto short_steps = c.model->new_session(short_context);
    auto long_steps = c.model->new_session(long_context);
    for (size_t t = 0; t < c.tokens.size(); ++t) {
      const std::span<const float> row = short_steps->eval(std::span<const TokenId>(&c.tokens[t], 1));
      const std::vector<float> want_row(row.begin(), row.end());
      const std::span<const float> got_row = long_steps->eval(std::span<const TokenId>(&c.tokens[t], 1));
      ASSERT_EQ(got_row.size(), want_row.size());
      for (size_t i = 0; i < want_row.size(); ++i) ASSERT_EQ(got_row[i], want_row[i]) << t << " " << i;
    }

    const auto n = static_cast<int32_t>(c.tokens.size());
    std::vector<uint8_t> long_bytes(static_cast<size_t>(n) * b->kv_bytes_per_position());
    std::vector<uint8_t> short_bytes(long_bytes.size());
    b->read_kv(0, n, long_bytes);
    a->read_kv(0, n, short_bytes);
    EXPECT_EQ(long_bytes, short_bytes);
    auto copy = c.model->new_session(long_context);
    copy->append_kv(short_bytes);
    std::vector<uint8_t> copied(long_bytes.size());
    copy->read_kv(0, n, copied);
    EXPECT_EQ(copied, short_bytes);
  }
}

TEST_P(TransformerArchTest, TruncateThenEvalAgainGivesTheSameLogits) {
  const ArchCase c = load_arch_case(GetParam());
  const size_t n_vocab = static_cast<size_t>(c.model->params().n_vocab);
  auto session = c.model->new_session();
  const std::span<const float> all = session->eval(c.tokens, true);
  const std::vector<float> first(all.begin(), all.end());
  ASSERT_EQ(session->n_past(), 32);

  // Keep a prefix of 20 positions, run the rest again.
  session->truncate(20);
  EXPECT_EQ(session->n_past(), 20);
  const std::span<const TokenId> rest(c.tokens.data() + 20, c.tokens.size() - 20);
  const std::span<const float> again = session->eval(rest, true);
  ASSERT_EQ(again.size(), 12 * n_vocab);
  for (size_t i = 0; i < again.size(); ++i) {
    ASSERT_NEAR(again[i], first[20 * n_vocab + i], 1e-5) << "row " << 20 + i / n_vocab;
  }

  // From scratch, last row only.
  session->truncate(0);
  const std::span<const float> last = session->eval(c.tokens, false);
  ASSERT_EQ(last.size(), n_vocab);
  for (size_t v = 0; v < n_vocab; ++v) ASSERT_NEAR(last[v], first[31 * n_vocab + v], 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Transformer, TransformerArchTest, ::testing::ValuesIn(kArchFixtures),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(TransformerArchFixtures, EveryFileIsCovered) {
  size_t n_files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(fixture_path("arch"))) {
    if (entry.path().extension() != ".gguf") continue;
    ++n_files;
    const std::string stem = entry.path().stem().string();
    EXPECT_TRUE(std::find_if(std::begin(kArchFixtures), std::end(kArchFixtures),
                             [&](const char* name) { return stem == name; }) != std::end(kArchFixtures))
        << stem << " is not in kArchFixtures";
  }
  EXPECT_EQ(n_files, std::size(kArchFixtures));
}

// A prompt longer than one forward slice (kMaxBatch) gives the greedy sequence's
// argmax at every position.
TEST(TransformerStories, Q8_0KvCacheNeedsHeadsOfWholeBlocks) {
  auto model = Model::load(fixture_path("models/stories260K.gguf"));  // head size 8
  SessionOptions options;
  options.kv_type = TensorType::kQ8_0;
  try {
    model->new_session(options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("multiple of 32"), std::string::npos) << e.what();
  }
}

TEST(TransformerStories, LongBatchSpansSeveralSlices) {
  const json meta = read_json(fixture_path("models/stories260K.meta.json"));
  const std::vector<TokenId> expected = meta["greedy"]["token_ids"].get<std::vector<TokenId>>();
  auto model = Model::load(fixture_path("models/stories260K.gguf"));
  SessionOptions options;
  options.kv_type = TensorType::kF32;
  auto session = model->new_session(options);
  const std::span<const TokenId> prompt(expected.data(), 200);
  const std::span<const float> logits = session->eval(prompt, true);
  ASSERT_EQ(logits.size(), 200u * 512);
  for (size_t t = 0; t < 200; ++t) {
    EXPECT_EQ(argmax(&logits[t * 512], 512), static_cast<size_t>(expected[t + 1])) << "position " << t;
  }
}


// ---- Several sessions in one forward pass (Model::eval_batch) ----

// Logits of `tokens` evaluated after `prefix` in a fresh session of its own.
std::vector<float> alone(const Model& model, TensorType kv_type, const std::vector<TokenId>& prefix,
                         const std::vector<TokenId>& tokens, bool all_logits) {
  SessionOptions options;
  options.kv_type = kv_type;
  auto session = model.new_session(options);
  if (!prefix.empty()) session->eval(prefix);
  const std::span<const float> logits = session->eval(tokens, all_logits);
  return {logits.begin(), logits.end()};
}

double max_abs_difference(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  return worst;
}

class TransformerBatchTest : public ::testing::TestWithParam<const char*> {};

// Three sequences at different positions — one decoding a token, one prefilling a
// prompt, one continuing a prompt — in one call give what each gives alone. The
// tolerance covers only the kernels' float rounding (a pass of one row and a pass of
// many rows use different matrix kernels); with a float32 KV cache the computation is
// float32 throughout.
TEST_P(TransformerBatchTest, SessionsInOnePassMatchEachAlone) {
  const ArchCase c = load_arch_case(GetParam());
  const std::vector<TokenId>& t = c.tokens;
  const std::vector<TokenId> a_prefix(t.begin(), t.begin() + 10), a_next{t[10]};
  const std::vector<TokenId> b_prompt(t.begin() + 3, t.begin() + 20);
  const std::vector<TokenId> c_prefix(t.begin(), t.begin() + 5), c_next(t.begin() + 5, t.begin() + 12);
  for (TensorType kv_type : {TensorType::kF32, TensorType::kF16}) {
    SCOPED_TRACE(tensor_type_name(kv_type));
    const double tolerance = kv_type == TensorType::kF32 ? 1e-5 : 1e-4;  // seen: 0 and 9e-7
    SessionOptions options;
    options.kv_type = kv_type;
    auto a = c.model->new_session(options);
    auto b = c.model->new_session(options);
    auto d = c.model->new_session(options);
    a->eval(a_prefix);
    d->eval(c_prefix);
    std::vector<BatchEntry> entries{{a.get(), a_next, false, {}}, {b.get(), b_prompt, true, {}}, {d.get(), c_next, false, {}}};
    c.model->eval_batch(entries);
    EXPECT_EQ(a->n_past(), 11);
    EXPECT_EQ(b->n_past(), 17);
    EXPECT_EQ(d->n_past(), 12);
    EXPECT_LE(max_abs_difference(entries[0].logits, alone(*c.model, kv_type, a_prefix, a_next, false)), tolerance);
    EXPECT_LE(max_abs_difference(entries[1].logits, alone(*c.model, kv_type, {}, b_prompt, true)), tolerance);
    EXPECT_LE(max_abs_difference(entries[2].logits, alone(*c.model, kv_type, c_prefix, c_next, false)), tolerance);
    // The sessions go on from there as if they had been run alone.
    const std::span<const float> next = a->eval(std::vector<TokenId>{t[11]});
    std::vector<TokenId> a_all(t.begin(), t.begin() + 11);
    EXPECT_LE(max_abs_difference(next, alone(*c.model, kv_type, a_all, {t[11]}, false)), tolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Transformer, TransformerBatchTest,
                         ::testing::Values("llama-gqa-F32", "llama-gqa-Q4_K", "qwen2-Q8_0", "qwen3-Q4_K"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// More rows than one pass takes: the batch runs in several passes and each session
// still ends where it would alone, with the greedy sequence at every position.
TEST(TransformerBatch, RowsBeyondOnePassContinueInTheNext) {
  const json meta = read_json(fixture_path("models/stories260K.meta.json"));
  const std::vector<TokenId> expected = meta["greedy"]["token_ids"].get<std::vector<TokenId>>();
  auto model = Model::load(fixture_path("models/stories260K.gguf"));
  SessionOptions options;
  options.kv_type = TensorType::kF32;
  auto first = model->new_session(options);
  auto second = model->new_session(options);
  const std::span<const TokenId> long_prompt(expected.data(), 90);
  const std::span<const TokenId> short_prompt(expected.data(), 50);
  std::vector<BatchEntry> entries{{first.get(), long_prompt, true, {}}, {second.get(), short_prompt, true, {}}};
  model->eval_batch(entries);
  ASSERT_EQ(entries[0].logits.size(), 90u * 512);
  ASSERT_EQ(entries[1].logits.size(), 50u * 512);
  for (size_t t = 0; t < 90; ++t) EXPECT_EQ(argmax(&entries[0].logits[t * 512], 512), size_t(expected[t + 1])) << t;
  for (size_t t = 0; t < 50; ++t) EXPECT_EQ(argmax(&entries[1].logits[t * 512], 512), size_t(expected[t + 1])) << t;
  EXPECT_EQ(first->n_past(), 90);
  EXPECT_EQ(second->n_past(), 50);
}

ErrorCode batch_error(const Model& model, std::vector<BatchEntry> entries) {
  try {
    model.eval_batch(entries);
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

TEST(TransformerBatch, RefusedBatchesChangeNothing) {
  auto model = Model::load(fixture_path("models/stories260K.gguf"));
  auto other_model = Model::load(fixture_path("models/stories260K.gguf"));
  auto a = model->new_session();
  auto b = model->new_session();
  auto foreign = other_model->new_session();
  SessionOptions f32;
  f32.kv_type = TensorType::kF32;
  auto float_kv = model->new_session(f32);
  const std::vector<TokenId> ok{1, 403};
  const std::vector<TokenId> bad{1, 9999};
  EXPECT_EQ(batch_error(*model, {{a.get(), ok, false, {}}, {a.get(), ok, false, {}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(batch_error(*model, {{a.get(), ok, false, {}}, {foreign.get(), ok, false, {}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(batch_error(*model, {{a.get(), ok, false, {}}, {float_kv.get(), ok, false, {}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(batch_error(*model, {{a.get(), ok, false, {}}, {b.get(), bad, false, {}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(batch_error(*model, {{a.get(), ok, false, {}}, {b.get(), {}, false, {}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(a->n_past(), 0);
  EXPECT_EQ(b->n_past(), 0);
}

// ---- The KV cache as bytes (Session::read_kv / append_kv) ----

// A prefix's KV copied into another session continues exactly as the original: the same
// logits, bit for bit, for the same next tokens.
TEST_P(TransformerBatchTest, CopiedKvContinuesLikeTheOriginal) {
  const ArchCase c = load_arch_case(GetParam());
  const std::vector<TokenId>& t = c.tokens;
  auto original = c.model->new_session();
  original->eval(std::span<const TokenId>(t.data(), 20));
  const size_t per_position = original->kv_bytes_per_position();
  const ModelParams& p = c.model->params();
  EXPECT_EQ(per_position, size_t(2) * p.n_layer * p.n_head_kv * p.head_dim * 2);  // F16 keys and values

  std::vector<uint8_t> first(12 * per_position), second(8 * per_position);
  original->read_kv(0, 12, first);
  original->read_kv(12, 20, second);
  auto copy = c.model->new_session();
  copy->append_kv(first);
  copy->append_kv(second);
  EXPECT_EQ(copy->n_past(), 20);

  const std::span<const TokenId> rest(t.data() + 20, 5);
  const std::span<const float> expected = original->eval(rest, true);
  const std::vector<float> from_original(expected.begin(), expected.end());
  const std::span<const float> from_copy = copy->eval(rest, true);
  ASSERT_EQ(from_copy.size(), from_original.size());
  EXPECT_EQ(std::memcmp(from_copy.data(), from_original.data(), from_original.size() * sizeof(float)), 0);

  // The bytes of a position do not depend on which session holds them.
  std::vector<uint8_t> again(12 * per_position);
  copy->read_kv(0, 12, again);
  EXPECT_EQ(again, first);
}

TEST(TransformerKv, BadRangesAndSizesAreRefused) {
  auto model = Model::load(fixture_path("models/stories260K.gguf"));
  auto session = model->new_session();
  session->eval(std::vector<TokenId>{1, 403, 407});
  const size_t per_position = session->kv_bytes_per_position();
  std::vector<uint8_t> two(2 * per_position);
  EXPECT_THROW(session->read_kv(2, 4, two), Error);   // past n_past
  EXPECT_THROW(session->read_kv(-1, 1, two), Error);
  EXPECT_THROW(session->read_kv(0, 1, two), Error);   // wrong size
  EXPECT_NO_THROW(session->read_kv(1, 3, two));
  SessionOptions small;
  small.n_ctx = 4;
  auto target = model->new_session(small);
  EXPECT_THROW(target->append_kv(std::span<const uint8_t>(two.data(), per_position + 1)), Error);
  target->append_kv(two);
  EXPECT_THROW(target->append_kv(std::vector<uint8_t>(3 * per_position)), Error);  // past n_ctx
  EXPECT_EQ(target->n_past(), 2);
}

}  // namespace
}  // namespace koto
