#include "tokenizer/spm_tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <random>

#include "koto/error.h"
#include "koto/gguf.h"
#include "test_support.h"
#include "tokenizer_cases.h"

namespace koto {
namespace {

using testing::TokenizerCase;

const Tokenizer& llama2() { return testing::fixture_tokenizer("tokenizer/llama2-spm.gguf"); }

TEST(SpmTokenizer, DescribesTheLlama2Vocabulary) {
  const Tokenizer& t = llama2();
  EXPECT_EQ(t.model_name(), "llama");
  EXPECT_EQ(t.pre_tokenizer(), "");
  EXPECT_EQ(t.vocab_size(), 32000);
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  EXPECT_TRUE(t.add_bos_by_default());
  EXPECT_TRUE(t.strips_leading_space());
  EXPECT_TRUE(t.is_control(1));
  EXPECT_FALSE(t.is_control(15043));
  EXPECT_TRUE(t.is_end_of_generation(2));
  EXPECT_FALSE(t.is_end_of_generation(1));
  EXPECT_EQ(t.piece(15043), "\xE2\x96\x81Hello");
  EXPECT_EQ(t.find_piece("\xE2\x96\x81Hello"), 15043);
  EXPECT_EQ(t.find_piece("no such piece"), std::nullopt);
}

TEST(SpmTokenizer, EncodesEveryReferenceCase) {
  const std::vector<TokenizerCase> cases = testing::read_tokenizer_cases("tokenizer/llama2-spm.cases.jsonl");
  ASSERT_EQ(cases.size(), 60u);
  int passed = 0;
  for (const TokenizerCase& c : cases) {
    const std::vector<TokenId> ids = llama2().encode(c.text, /*add_bos=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, c.ids) << "text: " << c.text;
    if (ids == c.ids) ++passed;
  }
  EXPECT_EQ(passed, 60);
}

TEST(SpmTokenizer, DecodesEveryReferenceCase) {
  for (const TokenizerCase& c : testing::read_tokenizer_cases("tokenizer/llama2-spm.cases.jsonl")) {
    EXPECT_EQ(llama2().decode(c.ids), c.text) << "text: " << c.text;
  }
}

TEST(SpmTokenizer, AddsBosOnRequest) {
  const Tokenizer& t = llama2();
  EXPECT_EQ(t.encode("Hello world", true, false), (std::vector<TokenId>{1, 15043, 3186}));
  EXPECT_EQ(t.encode("", true, false), (std::vector<TokenId>{1}));
  EXPECT_EQ(t.encode("", false, false), (std::vector<TokenId>{}));
  // BOS is a control token: decoding skips it and still drops the dummy-prefix space.
  const std::vector<TokenId> ids = {1, 15043, 3186};
  EXPECT_EQ(t.decode(ids), "Hello world");
  EXPECT_EQ(t.decode(ids, /*show_special=*/true), "<s> Hello world");
}

TEST(SpmTokenizer, FallsBackToBytesForRareKanji) {
  const Tokenizer& t = llama2();
  // 龘 (U+9F98) is not a piece: its three UTF-8 bytes E9 BE 98 become <0xE9> <0xBE> <0x98>.
  ASSERT_EQ(t.find_piece("龘"), std::nullopt);
  const std::vector<TokenId> ids = t.encode("龘", false, false);
  EXPECT_EQ(ids, (std::vector<TokenId>{29871, 3 + 0xE9, 3 + 0xBE, 3 + 0x98}));
  EXPECT_EQ(t.token_bytes(3 + 0xE9), "\xE9");
  EXPECT_EQ(t.decode(ids), "龘");
  // Outside the BMP: four byte tokens.
  const std::vector<TokenId> ids2 = t.encode("𠮷野家", false, false);
  EXPECT_EQ(t.decode(ids2), "𠮷野家");
}

TEST(SpmTokenizer, ParsesSpecialTokenTextOnlyWhenAsked) {
  const Tokenizer& t = llama2();
  const std::vector<TokenId> parsed = t.encode("<s>こんにちは</s>", false, true);
  ASSERT_GE(parsed.size(), 3u);
  EXPECT_EQ(parsed.front(), 1);
  EXPECT_EQ(parsed.back(), 2);
  // The text between is encoded as if it stood alone (with its dummy prefix).
  const std::vector<TokenId> alone = t.encode("こんにちは", false, false);
  EXPECT_EQ(std::vector<TokenId>(parsed.begin() + 1, parsed.end() - 1), alone);

  const std::vector<TokenId> plain = t.encode("<s>こんにちは</s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(t.decode(plain), "<s>こんにちは</s>");
}

TEST(SpmTokenizer, RejectsOutOfRangeIds) {
  const Tokenizer& t = llama2();
  const std::vector<TokenId> bad = {15043, 32000};
  try {
    t.decode(bad);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("32000"), std::string::npos);
  }
  EXPECT_THROW(t.token_bytes(-1), Error);
  EXPECT_THROW(t.piece(-5), Error);
  EXPECT_FALSE(t.is_control(-1));
  EXPECT_FALSE(t.is_end_of_generation(1 << 30));
}

// Any bytes at all, valid UTF-8 or not, come back unchanged; except U+2581 itself,
// which SentencePiece cannot tell from a space (it decodes as one).
TEST(SpmTokenizer, RoundTripsRandomBytes) {
  const Tokenizer& t = llama2();
  const std::string_view alphabet[] = {"a", " ", "  ", "\n", "\r\n", "\t", "日本", "語", "ｶﾀｶﾅ", "１２", "3", "'s",
                                       "\xFF", "\xC3", "\xE6\x97", "\x00", "<|im_end|>", "🇯🇵", "é"};
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
// lines after the first tokenize alike, so the ids are the first line's, then one
// repeating period, and they decode back to the text.
TEST(SpmTokenizer, EncodesLongJapaneseTextLineByLine) {
  const Tokenizer& t = llama2();
  const std::string line =
      "本日は晴天なり。吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
      "東京都千代田区の会議室で、第３四半期の売上報告を行います。\n";
  std::string text;
  size_t n_lines = 0;
  for (; text.size() < 100 * 1024; ++n_lines) text += line;
  const std::vector<TokenId> first = t.encode(line, false, false);
  const std::vector<TokenId> two = t.encode(line + line, false, false);
  ASSERT_GT(two.size(), first.size());
  ASSERT_TRUE(std::equal(first.begin(), first.end(), two.begin()));
  const std::vector<TokenId> period(two.begin() + static_cast<ptrdiff_t>(first.size()), two.end());
  std::vector<TokenId> expected = first;
  for (size_t i = 1; i < n_lines; ++i) expected.insert(expected.end(), period.begin(), period.end());

  const std::vector<TokenId> ids = t.encode(text, false, false);
  EXPECT_EQ(ids.size(), expected.size());
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(t.decode(ids), text);
}

// stories260K.gguf carries a 512-piece SentencePiece vocabulary; its greedy output ids
// must decode to the text llama2.c prints (and that text encodes to them).
TEST(SpmTokenizer, DecodesStories260KGreedyText) {
  const GgufFile file = GgufFile::open(fixture_path("models/stories260K.gguf"));
  const std::unique_ptr<Tokenizer> t = Tokenizer::from_gguf(file);
  EXPECT_EQ(t->vocab_size(), 512);
  std::ifstream meta_in(fixture_path("models/stories260K.meta.json"));
  const nlohmann::json meta = nlohmann::json::parse(meta_in);
  const std::vector<TokenId> ids = meta.at("greedy").at("token_ids").get<std::vector<TokenId>>();
  ASSERT_EQ(ids.size(), 201u);
  ASSERT_EQ(ids.front(), *t->bos());
  const std::string expected = read_file_bytes(fixture_path("models/stories260K.greedy.txt"));
  ASSERT_EQ(expected.size(), 464u);
  EXPECT_EQ(t->decode(std::span<const TokenId>(ids).subspan(1)), expected);
  EXPECT_EQ(t->decode(ids), expected);  // BOS is a control token and decodes to nothing
  // The greedy sequence happens to be the canonical tokenization of its text.
  EXPECT_EQ(t->encode(expected, /*add_bos=*/true, /*parse_special=*/false), ids);
}

}  // namespace
}  // namespace koto
