#include "koto/generate.h"

#include <gtest/gtest.h>

#include <memory>

#include "base/utf8.h"
#include "fake_tokenizer.h"
#include "koto/error.h"
#include "koto/model.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

namespace koto {
namespace {

using testing::FakeTokenizer;

// A session whose next token is scripted: after n evaluated tokens it makes
// script[n - prompt_size] the clear favourite. Records what it was asked to evaluate.
class ScriptedSession : public Session {
 public:
  ScriptedSession(int32_t vocab, std::vector<TokenId> script, int32_t n_ctx = 64)
      : vocab_(vocab), script_(std::move(script)), n_ctx_(n_ctx) {}

  std::span<const float> eval_hidden(std::span<const TokenId>) override {
    throw Error(ErrorCode::kUnsupported, "no hidden states in a scripted session");
  }
  std::span<const float> eval(std::span<const TokenId> tokens, bool all_logits) override {
    if (n_past_ + static_cast<int32_t>(tokens.size()) > n_ctx_) throw Error(ErrorCode::kInvalidArgument, "full");
    if (prompt_size_ < 0) prompt_size_ = static_cast<int32_t>(tokens.size());
    evaluated_.insert(evaluated_.end(), tokens.begin(), tokens.end());
    n_past_ += static_cast<int32_t>(tokens.size());
    ++eval_calls_;
    logits_.assign(static_cast<size_t>(vocab_), 0.0f);
    const size_t step = evaluated_.size() - static_cast<size_t>(first_prompt_size());
    const TokenId next = step < script_.size() ? script_[step] : 0;
    logits_[static_cast<size_t>(next)] = 10.0f;
    return logits_;
  }
  int32_t n_past() const override { return n_past_; }
  int32_t n_ctx() const override { return n_ctx_; }
  int32_t exact_rows() const override { return 8; }
  void truncate(int32_t n) override { n_past_ = std::min(n_past_, n); }
  // No KV cache to export: generate() never asks for it.
  TensorType kv_type() const override { return TensorType::kF32; }
  size_t kv_bytes_per_position() const override { return 0; }
  void read_kv(int32_t, int32_t, std::span<uint8_t>) const override {}
  void append_kv(std::span<const uint8_t>) override {}

  void set_prompt_size(int32_t n) { prompt_size_ = n; }
  int32_t first_prompt_size() const { return prompt_size_; }
  const std::vector<TokenId>& evaluated() const { return evaluated_; }
  int eval_calls() const { return eval_calls_; }

 private:
  int32_t vocab_;
  std::vector<TokenId> script_;
  int32_t n_ctx_;
  int32_t n_past_ = 0;
  int32_t prompt_size_ = -1;
  int eval_calls_ = 0;
  std::vector<TokenId> evaluated_;
  std::vector<float> logits_;
};

constexpr TokenId kWord = FakeTokenizer::kFirstWord;

GenerateOptions greedy(int32_t max_tokens) {
  GenerateOptions options;
  options.max_tokens = max_tokens;
  options.sampling.temperature = 0.0f;
  return options;
}

TEST(Generator, StreamsUntilEndOfGenerationWithoutPrintingIt) {
  FakeTokenizer tokenizer({"今日は", "、", "晴れ", "です。"});
  ScriptedSession session(tokenizer.vocab_size(), {kWord, kWord + 1, kWord + 2, kWord + 3, FakeTokenizer::kEos});
  const std::vector<TokenId> prompt = {FakeTokenizer::kBos, 'Q'};
  session.set_prompt_size(2);
  std::vector<std::string> chunks;
  const GenerateResult result =
      generate(session, tokenizer, prompt, greedy(100), [&](std::string_view c) { chunks.emplace_back(c); });
  EXPECT_EQ(result.text, "今日は、晴れです。");
  EXPECT_EQ(chunks, (std::vector<std::string>{"今日は", "、", "晴れ", "です。"}));
  EXPECT_EQ(result.stop_reason, StopReason::kEndOfGeneration);
  EXPECT_EQ(result.tokens.size(), 5u);
  EXPECT_EQ(result.stats.generated_tokens, 5);
  EXPECT_EQ(result.stats.prompt_tokens, 2);
  EXPECT_EQ(result.stats.output_chars, 9u);
  EXPECT_EQ(result.stats.output_bytes, result.text.size());
  EXPECT_EQ(result.stats.stop_reason, "eos");
  EXPECT_GT(result.stats.time_to_first_token_seconds, 0.0);
  EXPECT_GE(result.stats.time_to_first_text_seconds, result.stats.time_to_first_token_seconds);
  // The prompt and every generated token but the EOS were evaluated.
  EXPECT_EQ(session.evaluated(), (std::vector<TokenId>{FakeTokenizer::kBos, 'Q', kWord, kWord + 1, kWord + 2, kWord + 3}));
}

TEST(Generator, StopsAfterMaxTokensWithoutEvaluatingTheLast) {
  FakeTokenizer tokenizer({"あ"});
  ScriptedSession session(tokenizer.vocab_size(), std::vector<TokenId>(10, kWord));
  session.set_prompt_size(1);
  const std::vector<TokenId> prompt = {FakeTokenizer::kBos};
  const GenerateResult result = generate(session, tokenizer, prompt, greedy(3));
  EXPECT_EQ(result.text, "あああ");
  EXPECT_EQ(result.stop_reason, StopReason::kMaxTokens);
  EXPECT_EQ(session.n_past(), 3);  // BOS + 2 of the 3 tokens
}

TEST(Generator, StopStringAcrossTokensEndsTheAnswer) {
  FakeTokenizer tokenizer({"答え", "は4", "\nUs", "er:", "次"});
  ScriptedSession session(tokenizer.vocab_size(), {kWord, kWord + 1, kWord + 2, kWord + 3, kWord + 4});
  session.set_prompt_size(1);
  GenerateOptions options = greedy(100);
  options.stop_strings = {"\nUser:"};
  std::string streamed;
  const std::vector<TokenId> prompt = {FakeTokenizer::kBos};
  const GenerateResult result =
      generate(session, tokenizer, prompt, options, [&](std::string_view c) { streamed += c; });
  EXPECT_EQ(streamed, "答えは4");
  EXPECT_EQ(result.text, "答えは4");
  EXPECT_EQ(result.stop_reason, StopReason::kStopString);
}

TEST(Generator, ByteTokensAreJoinedIntoCharacters) {
  FakeTokenizer tokenizer;
  const std::string text = "日本語";
  std::vector<TokenId> script;
  for (unsigned char c : text) script.push_back(c);
  script.push_back(FakeTokenizer::kEos);
  ScriptedSession session(tokenizer.vocab_size(), script);
  session.set_prompt_size(1);
  std::vector<std::string> chunks;
  const std::vector<TokenId> prompt = {FakeTokenizer::kBos};
  generate(session, tokenizer, prompt, greedy(100), [&](std::string_view c) { chunks.emplace_back(c); });
  EXPECT_EQ(chunks, (std::vector<std::string>{"日", "本", "語"}));
}

TEST(Generator, CancelFlagStopsBetweenTokens) {
  FakeTokenizer tokenizer({"x"});
  ScriptedSession session(tokenizer.vocab_size(), std::vector<TokenId>(50, kWord));
  session.set_prompt_size(1);
  std::atomic<bool> cancel{false};
  GenerateOptions options = greedy(-1);
  options.cancel = &cancel;
  int chunks = 0;
  const std::vector<TokenId> prompt = {FakeTokenizer::kBos};
  const GenerateResult result = generate(session, tokenizer, prompt, options, [&](std::string_view) {
    if (++chunks == 4) cancel.store(true);
  });
  EXPECT_EQ(result.stop_reason, StopReason::kCancelled);
  EXPECT_EQ(result.text, "xxxx");
  EXPECT_EQ(result.stats.stop_reason, "cancelled");
}

TEST(Generator, CancelDuringPrefillEvaluatesNothingMore) {
  FakeTokenizer tokenizer;
  ScriptedSession session(tokenizer.vocab_size(), {});
  std::atomic<bool> cancel{true};
  GenerateOptions options = greedy(10);
  options.cancel = &cancel;
  const std::vector<TokenId> prompt(20, 'a');
  const GenerateResult result = generate(session, tokenizer, prompt, options);
  EXPECT_EQ(result.stop_reason, StopReason::kCancelled);
  EXPECT_EQ(session.n_past(), 0);
  EXPECT_TRUE(result.tokens.empty());
}

TEST(Generator, PrefillRunsInBatches) {
  FakeTokenizer tokenizer;
  ScriptedSession session(tokenizer.vocab_size(), {FakeTokenizer::kEos}, 128);
  session.set_prompt_size(10);
  GenerateOptions options = greedy(10);
  options.prefill_batch = 4;
  const std::vector<TokenId> prompt(10, 'a');
  generate(session, tokenizer, prompt, options);
  EXPECT_EQ(session.eval_calls(), 3);  // 4 + 4 + 2, and the EOS is not evaluated
}

TEST(Generator, StopsWhenTheContextIsFull) {
  FakeTokenizer tokenizer({"z"});
  ScriptedSession session(tokenizer.vocab_size(), std::vector<TokenId>(100, kWord), /*n_ctx=*/8);
  session.set_prompt_size(3);
  const std::vector<TokenId> prompt = {FakeTokenizer::kBos, 'a', 'b'};
  const GenerateResult result = generate(session, tokenizer, prompt, greedy(-1));
  EXPECT_EQ(result.stop_reason, StopReason::kContextFull);
  EXPECT_EQ(session.n_past(), 8);
  EXPECT_EQ(result.tokens.size(), 6u);  // 5 evaluated + the last chosen one
}

TEST(Generator, RefusesAPromptThatLeavesNoRoom) {
  FakeTokenizer tokenizer;
  ScriptedSession session(tokenizer.vocab_size(), {}, /*n_ctx=*/8);
  const std::vector<TokenId> prompt(8, 'a');
  try {
    generate(session, tokenizer, prompt, greedy(10));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find('8'), std::string::npos) << e.what();
  }
  EXPECT_THROW(generate(session, tokenizer, std::vector<TokenId>{}, greedy(10)), Error);
}

TEST(Generator, KeepsTheLeadingSpaceWhenContinuingText) {
  FakeTokenizer tokenizer({" girl", " named"}, /*strips_leading_space=*/true);
  const std::vector<TokenId> script = {kWord, kWord + 1};
  {  // a raw prompt with text: the answer continues it
    ScriptedSession session(tokenizer.vocab_size(), script);
    session.set_prompt_size(3);
    const std::vector<TokenId> prompt = {FakeTokenizer::kBos, 'a', ' '};
    EXPECT_EQ(generate(session, tokenizer, prompt, greedy(2)).text, " girl named");
  }
  {  // BOS only: the answer starts the text, as decode() would print it
    ScriptedSession session(tokenizer.vocab_size(), script);
    session.set_prompt_size(1);
    const std::vector<TokenId> prompt = {FakeTokenizer::kBos};
    EXPECT_EQ(generate(session, tokenizer, prompt, greedy(2)).text, "girl named");
  }
  {  // chat: stripped on request even after text
    ScriptedSession session(tokenizer.vocab_size(), script);
    session.set_prompt_size(3);
    const std::vector<TokenId> prompt = {FakeTokenizer::kBos, 'a', ' '};
    GenerateOptions options = greedy(2);
    options.leading_space = LeadingSpace::kStrip;
    EXPECT_EQ(generate(session, tokenizer, prompt, options).text, "girl named");
  }
}

// The real tiny model: greedy decoding from BOS must give the published story.
class GeneratorOnStories : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = Model::load(fixture_path("models/stories260K.gguf")); }
  static void TearDownTestSuite() { model_.reset(); }
  GenerateResult run(const GenerateOptions& options) {
    const std::unique_ptr<Session> session = model_->new_session();
    const std::vector<TokenId> prompt = {*model_->tokenizer().bos()};
    return generate(*session, model_->tokenizer(), prompt, options);
  }
  static std::unique_ptr<Model> model_;
};
std::unique_ptr<Model> GeneratorOnStories::model_;

TEST_F(GeneratorOnStories, Greedy200TokensAreTheKnownStory) {
  std::string streamed;
  const std::unique_ptr<Session> session = model_->new_session();
  const std::vector<TokenId> prompt = {*model_->tokenizer().bos()};
  const GenerateResult result =
      generate(*session, model_->tokenizer(), prompt, greedy(200), [&](std::string_view c) { streamed += c; });
  EXPECT_EQ(result.text, read_file_bytes(fixture_path("models/stories260K.greedy.txt")));
  EXPECT_EQ(streamed, result.text);
  const nlohmann::json meta = nlohmann::json::parse(read_file_bytes(fixture_path("models/stories260K.meta.json")));
  std::vector<TokenId> expected = meta["greedy"]["token_ids"].get<std::vector<TokenId>>();
  expected.erase(expected.begin());  // BOS
  EXPECT_EQ(result.tokens, expected);
  EXPECT_EQ(result.stop_reason, StopReason::kMaxTokens);
  EXPECT_EQ(result.stats.generated_tokens, 200);
  EXPECT_EQ(result.stats.output_chars, 464u);
}

// A raw continuation keeps the space SentencePiece puts before the next word: the
// story goes on "there was a little" + " girl named Lily.", as in the greedy story.
TEST_F(GeneratorOnStories, RawContinuationKeepsTheSpaceBeforeTheFirstWord) {
  const Tokenizer& tokenizer = model_->tokenizer();
  const std::unique_ptr<Session> session = model_->new_session();
  const std::vector<TokenId> prompt =
      tokenizer.encode("Once upon a time there was a little", /*add_bos=*/true, /*parse_special=*/false);
  const GenerateResult result = generate(*session, tokenizer, prompt, greedy(6));
  EXPECT_EQ(result.text, " girl named Lily.");
}

TEST_F(GeneratorOnStories, SameSeedSameTextAndOtherSeedsDiffer) {
  GenerateOptions options;
  options.max_tokens = 60;
  options.sampling.temperature = 1.0f;
  options.sampling.seed = 1234;
  const GenerateResult first = run(options);
  const GenerateResult again = run(options);
  EXPECT_EQ(first.text, again.text);
  EXPECT_EQ(first.tokens, again.tokens);
  EXPECT_EQ(first.stats.seed, 1234u);
  // Different seeds: with 60 tokens at temperature 1 a collision of all three is
  // practically impossible.
  int differing = 0;
  for (uint64_t seed : {1u, 2u, 3u}) {
    options.sampling.seed = seed;
    differing += run(options).text != first.text;
  }
  EXPECT_GE(differing, 2);
}

// Lookup decoding must not change greedy output by one token, with or without
// penalties, on prompts that repeat themselves (guesses are made and kept) and on one
// that does not; the session ends holding every chosen token but the last.
TEST_F(GeneratorOnStories, LookupDecodingKeepsGreedyOutputTokenForToken) {
  const Tokenizer& tokenizer = model_->tokenizer();
  const std::vector<std::string> prompts = {
      "Once upon a time there was a little girl named Lily. Once upon a time there was a little",
      "The cat sat on the mat. The cat sat on the mat. The cat sat on the mat. The cat",
      "Tom had a red ball and a blue kite",
  };
  int32_t kept_total = 0;
  for (const std::string& text : prompts) {
    const std::vector<TokenId> prompt = tokenizer.encode(text, true, false);
    for (float penalty : {1.0f, 1.3f}) {
      GenerateOptions plain = greedy(120);
      plain.sampling.repeat_penalty = penalty;
      plain.lookup.max_draft = 0;
      GenerateOptions lookup = plain;
      lookup.lookup.max_draft = 6;
      const std::unique_ptr<Session> a = model_->new_session();
      const std::unique_ptr<Session> b = model_->new_session();
      const GenerateResult without = generate(*a, tokenizer, prompt, plain);
      std::string streamed;
      const GenerateResult with = generate(*b, tokenizer, prompt, lookup, [&](std::string_view c) { streamed += c; });
      EXPECT_EQ(with.tokens, without.tokens) << text << " penalty " << penalty;
      EXPECT_EQ(with.text, without.text);
      EXPECT_EQ(streamed, with.text);
      EXPECT_EQ(with.stop_reason, without.stop_reason);
      EXPECT_EQ(without.stats.lookup_drafted, 0);
      EXPECT_LE(with.stats.lookup_accepted, with.stats.lookup_drafted);
      kept_total += with.stats.lookup_accepted;
      EXPECT_EQ(b->n_past(), a->n_past());
      // The sessions agree on what follows, too.
      const TokenId last = with.tokens.back();
      const std::span<const float> la = a->eval(std::span<const TokenId>(&last, 1));
      const std::vector<float> logits_a(la.begin(), la.end());
      const std::span<const float> lb = b->eval(std::span<const TokenId>(&last, 1));
      for (size_t i = 0; i < logits_a.size(); i += 37) EXPECT_NEAR(lb[i], logits_a[i], 1e-4f);
    }
  }
  // The repetitive prompts make the model repeat, so guesses were made and kept.
  EXPECT_GT(kept_total, 20);
}

// A guess past max_tokens or the context is never made: lengths stay exact.
TEST_F(GeneratorOnStories, LookupDecodingStopsAtMaxTokensAndContext) {
  const Tokenizer& tokenizer = model_->tokenizer();
  const std::vector<TokenId> prompt =
      tokenizer.encode("The cat sat on the mat. The cat sat on the mat. The cat", true, false);
  for (int32_t max_tokens : {1, 2, 5, 17}) {
    const std::unique_ptr<Session> session = model_->new_session();
    const GenerateResult r = generate(*session, tokenizer, prompt, greedy(max_tokens));
    EXPECT_EQ(r.stats.generated_tokens, max_tokens);
    EXPECT_EQ(session->n_past(), static_cast<int32_t>(prompt.size()) + max_tokens - 1);
  }
  SessionOptions small;
  small.n_ctx = static_cast<int32_t>(prompt.size()) + 9;
  const std::unique_ptr<Session> session = model_->new_session(small);
  const GenerateResult r = generate(*session, tokenizer, prompt, greedy(-1));
  EXPECT_EQ(r.stop_reason, StopReason::kContextFull);
  EXPECT_EQ(r.stats.generated_tokens, 10);
  EXPECT_EQ(session->n_past(), small.n_ctx);
}

}  // namespace
}  // namespace koto
