#include "tokenizer/bpe_tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <random>
#include <thread>

#include "koto/error.h"
#include "koto/gguf.h"
#include "test_support.h"
#include "tokenizer_cases.h"

namespace koto {
namespace {

using testing::TokenizerCase;

const Tokenizer& qwen() { return testing::fixture_tokenizer("tokenizer/qwen2-bpe.gguf"); }

TEST(BpeTokenizer, DescribesTheQwenVocabulary) {
  const Tokenizer& t = qwen();
  EXPECT_EQ(t.model_name(), "gpt2");
  EXPECT_EQ(t.pre_tokenizer(), "qwen2");
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_EQ(t.bos(), 151643);
  EXPECT_EQ(t.eos(), 151645);
  EXPECT_FALSE(t.add_bos_by_default());
  EXPECT_FALSE(t.strips_leading_space());
  EXPECT_EQ(t.piece(151644), "<|im_start|>");
  EXPECT_TRUE(t.is_control(151644));
  EXPECT_FALSE(t.is_control(9707));
  EXPECT_TRUE(t.is_end_of_generation(151645));  // <|im_end|>, the EOS
  EXPECT_TRUE(t.is_end_of_generation(151643));  // <|endoftext|>
  EXPECT_FALSE(t.is_end_of_generation(151644));
}

TEST(BpeTokenizer, EncodesEveryReferenceCase) {
  const std::vector<TokenizerCase> cases = testing::read_tokenizer_cases("tokenizer/qwen2-bpe.cases.jsonl");
  ASSERT_EQ(cases.size(), 60u);
  int passed = 0;
  for (const TokenizerCase& c : cases) {
    const std::vector<TokenId> ids = qwen().encode(c.text, /*add_bos=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, c.ids) << "text: " << c.text;
    if (ids == c.ids) ++passed;
  }
  EXPECT_EQ(passed, 60);
}

TEST(BpeTokenizer, DecodesEveryReferenceCase) {
  for (const TokenizerCase& c : testing::read_tokenizer_cases("tokenizer/qwen2-bpe.cases.jsonl")) {
    EXPECT_EQ(qwen().decode(c.ids), c.text) << "text: " << c.text;
  }
}

TEST(BpeTokenizer, ParsesChatMarkersOnlyWhenAsked) {
  const Tokenizer& t = qwen();
  const std::string text = "<|im_start|>user\nこんにちは<|im_end|>";
  const std::vector<TokenId> parsed = t.encode(text, false, true);
  ASSERT_GE(parsed.size(), 3u);
  EXPECT_EQ(parsed.front(), 151644);
  EXPECT_EQ(parsed.back(), 151645);
  EXPECT_EQ(std::vector<TokenId>(parsed.begin() + 1, parsed.end() - 1), t.encode("user\nこんにちは", false, false));
  EXPECT_EQ(t.decode(parsed), "user\nこんにちは");  // control tokens are hidden
  EXPECT_EQ(t.decode(parsed, /*show_special=*/true), text);

  const std::vector<TokenId> plain = t.encode(text, false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 151645), 0);
  EXPECT_GT(plain.size(), parsed.size());
  EXPECT_EQ(t.decode(plain), text);
}

TEST(BpeTokenizer, UserDefinedTokensAreTextWhenDecoded) {
  const Tokenizer& t = qwen();
  const std::optional<TokenId> think = t.find_piece("<think>");
  ASSERT_TRUE(think.has_value());
  EXPECT_FALSE(t.is_control(*think));
  const std::vector<TokenId> ids = t.encode("<think>考え中</think>", false, true);
  EXPECT_EQ(ids.front(), *think);
  EXPECT_EQ(t.decode(ids), "<think>考え中</think>");
}

TEST(BpeTokenizer, PrefersTheLongestSpecialText) {
  const Tokenizer& t = qwen();
  // <tool_call> and </tool_call> share characters with shorter texts; the whole marker wins.
  const std::optional<TokenId> open = t.find_piece("<tool_call>");
  const std::optional<TokenId> close = t.find_piece("</tool_call>");
  ASSERT_TRUE(open && close);
  EXPECT_EQ(t.encode("<tool_call></tool_call>", false, true), (std::vector<TokenId>{*open, *close}));
}

TEST(BpeTokenizer, AddsBosOnlyOnRequest) {
  const Tokenizer& t = qwen();
  EXPECT_EQ(t.encode("Hello world", true, false), (std::vector<TokenId>{151643, 9707, 1879}));
  EXPECT_EQ(t.encode("Hello world", false, false), (std::vector<TokenId>{9707, 1879}));
}

TEST(BpeTokenizer, KeepsInvalidUtf8AsBytes) {
  const Tokenizer& t = qwen();
  const std::string text = "abc\xFF\xC3 日本\xE6\x97";
  EXPECT_EQ(t.decode(t.encode(text, false, false)), text);
}

TEST(BpeTokenizer, EncodesFromManyThreadsAtOnce) {
  const Tokenizer& t = qwen();
  const std::vector<TokenizerCase> cases = testing::read_tokenizer_cases("tokenizer/qwen2-bpe.cases.jsonl");
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < mismatches.size(); ++k) {
    threads.emplace_back([&, k] {
      for (int round = 0; round < 20; ++round) {
        for (const TokenizerCase& c : cases) mismatches[k] += t.encode(c.text, false, false) != c.ids;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// Any bytes at all, valid UTF-8 or not, come back unchanged.
TEST(BpeTokenizer, RoundTripsRandomBytes) {
  const Tokenizer& t = qwen();
  const std::string_view alphabet[] = {"a", " ", "  ", "\n", "\r\n", "\t", "日本", "語", "ｶﾀｶﾅ", "１２", "3", "'s",
                                       "\xE2\x96\x81", "\xFF", "\xC3", "\xE6\x97", "\x00", "<|im_end|>", "🇯🇵", "é"};
  std::mt19937 random(12345);
  for (int i = 0; i < 300; ++i) {
    std::string text;
    const int n = static_cast<int>(random() % 12);
    for (int k = 0; k < n; ++k) text += alphabet[random() % std::size(alphabet)];
    EXPECT_EQ(t.decode(t.encode(text, false, false)), text);
    EXPECT_EQ(t.decode(t.encode(text, false, true), /*show_special=*/true), text);
  }
}

// 100 KiB of Japanese in one call (speed is koto bench's business, not a test's): the
// pre-tokenizer cuts after each line's "。\n", so the ids are one line's repeated and
// decode back to the text. A 30,000-character run with nothing to split it (a single
// pre-token) merges to far fewer tokens than bytes and decodes back.
TEST(BpeTokenizer, EncodesLongJapaneseTextLineByLine) {
  const Tokenizer& t = qwen();
  const std::string line =
      "本日は晴天なり。吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
      "東京都千代田区の会議室で、第３四半期の売上報告を行います。\n";
  std::string text;
  size_t n_lines = 0;
  for (; text.size() < 100 * 1024; ++n_lines) text += line;
  const std::vector<TokenId> one = t.encode(line, false, false);
  std::vector<TokenId> expected;
  for (size_t i = 0; i < n_lines; ++i) expected.insert(expected.end(), one.begin(), one.end());
  const std::vector<TokenId> ids = t.encode(text, false, false);
  EXPECT_EQ(ids.size(), one.size() * n_lines);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(t.decode(ids), text);

  std::string run;
  for (int i = 0; i < 10000; ++i) run += "あいう";
  const std::vector<TokenId> run_ids = t.encode(run, false, false);
  EXPECT_EQ(t.decode(run_ids), run);
  EXPECT_LT(run_ids.size(), run.size() / 3);  // merged beyond single bytes
}

}  // namespace
}  // namespace koto
