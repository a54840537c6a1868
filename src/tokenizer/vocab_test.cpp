// Small hand-made vocabularies: the merge order of both tokenizer kinds on data whose
// answer is known, and the one-line errors for damaged tokenizer keys.
#include "tokenizer/vocab.h"

#include <gtest/gtest.h>


#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_writer.h"

namespace koto {
namespace {

// A metadata-only GGUF file built with koto::GgufWriter, chainable so a test can damage
// one key of a good vocabulary (setting a key again replaces its value in place).
class TinyGguf {
 public:
  TinyGguf& str(std::string_view key, std::string_view value) { return set(key, GgufMetaValue::string(std::string(value))); }
  TinyGguf& u32(std::string_view key, uint32_t value) { return set(key, GgufMetaValue::u32(value)); }
  TinyGguf& boolean(std::string_view key, bool value) { return set(key, GgufMetaValue::boolean(value)); }
  TinyGguf& strings(std::string_view key, std::vector<std::string> values) {
    return set(key, GgufMetaValue::string_array(std::move(values)));
  }
  TinyGguf& f32s(std::string_view key, const std::vector<float>& values) {
    return set(key, GgufMetaValue::array<float>(values));
  }
  TinyGguf& i32s(std::string_view key, const std::vector<int32_t>& values) {
    return set(key, GgufMetaValue::array<int32_t>(values));
  }
  std::string bytes() const { return writer_.write_to_string(); }

 private:
  TinyGguf& set(std::string_view key, GgufMetaValue value) {
    writer_.set(key, std::move(value));
    return *this;
  }
  GgufWriter writer_;
};

const std::string kMark = "\xE2\x96\x81";  // U+2581

// <unk> <s> </s> <0x0A> ▁ a b c ab bc ▁a
TinyGguf tiny_spm() {
  TinyGguf g;
  g.str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "<0x0A>", kMark, "a", "b", "c", "ab", "bc", kMark + "a"})
      .f32s("tokenizer.ggml.scores", {0, 0, 0, 0, -10, -10, -10, -10, -1, -0.5f, -3})
      .i32s("tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1})
      .u32("tokenizer.ggml.bos_token_id", 1)
      .u32("tokenizer.ggml.eos_token_id", 2)
      .u32("tokenizer.ggml.unknown_token_id", 0);
  return g;
}

// Byte characters a b c Ġ (space) and merges a+b, ab+c, Ġ+a.
TinyGguf tiny_bpe(std::string_view pre = "qwen2") {
  TinyGguf g;
  g.str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", pre)
      .strings("tokenizer.ggml.tokens", {"a", "b", "c", "\xC4\xA0", "ab", "abc", "\xC4\xA0" "a", "<|end|>"})
      .i32s("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 1, 1, 3})
      .strings("tokenizer.ggml.merges", {"a b", "ab c", "\xC4\xA0 a"})
      .u32("tokenizer.ggml.eos_token_id", 7);
  return g;
}

// The error from_gguf throws for `bytes`.
Error load_error(const std::string& bytes) {
  const GgufFile file = GgufFile::parse(bytes, "tiny.gguf");
  try {
    Tokenizer::from_gguf(file);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an error";
  return Error(ErrorCode::kInternal, "");
}

void expect_error(const std::string& bytes, ErrorCode code, std::vector<std::string> parts) {
  const Error e = load_error(bytes);
  EXPECT_EQ(e.code(), code) << e.what();
  const std::string message = e.what();
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
}

TEST(TinyVocabTokenizer, SpmMergesHighestScoreFirst) {
  const std::string bytes = tiny_spm().bytes();
  GgufFile file = GgufFile::parse(bytes, "tiny.gguf");
  const std::unique_ptr<Tokenizer> t = Tokenizer::from_gguf(file);
  // ▁ a b c: bc (-0.5) beats ab (-1) and ▁a (-3), so "ab" never forms.
  EXPECT_EQ(t->encode("abc", false, false), (std::vector<TokenId>{10, 9}));
  // Ties go to the leftmost pair: ▁ a b a b -> ab first at the left, then the right one.
  EXPECT_EQ(t->encode("abab", false, false), (std::vector<TokenId>{4, 8, 8}));
  // No piece for "d" and no byte token: the unknown token. "\n" falls back to <0x0A>.
  EXPECT_EQ(t->encode("d\n", false, false), (std::vector<TokenId>{4, 0, 3}));
  EXPECT_EQ(t->encode("<s>a", true, true), (std::vector<TokenId>{1, 1, 10}));
  EXPECT_EQ(t->decode(std::vector<TokenId>{10, 9, 3}), "abc\n");
}

TEST(TinyVocabTokenizer, SpmWithoutSpacePrefix) {
  const std::string bytes = tiny_spm().boolean("tokenizer.ggml.add_space_prefix", false).bytes();
  GgufFile file = GgufFile::parse(bytes, "tiny.gguf");
  const std::unique_ptr<Tokenizer> t = Tokenizer::from_gguf(file);
  EXPECT_FALSE(t->strips_leading_space());
  EXPECT_EQ(t->encode("abc", false, false), (std::vector<TokenId>{5, 9}));
  EXPECT_EQ(t->decode(std::vector<TokenId>{4, 5}), " a");
}

TEST(TinyVocabTokenizer, BpeMergesLowestRankFirst) {
  const std::string bytes = tiny_bpe().bytes();
  GgufFile file = GgufFile::parse(bytes, "tiny.gguf");
  const std::unique_ptr<Tokenizer> t = Tokenizer::from_gguf(file);
  EXPECT_EQ(t->encode("abc", false, false), (std::vector<TokenId>{5}));
  EXPECT_EQ(t->encode("cab a", false, false), (std::vector<TokenId>{2, 4, 6}));
  EXPECT_EQ(t->decode(std::vector<TokenId>{2, 4, 6}), "cab a");
  EXPECT_TRUE(t->is_end_of_generation(7));
  EXPECT_EQ(t->bos(), std::nullopt);
  EXPECT_EQ(t->encode("ab", true, false), (std::vector<TokenId>{4}));  // no BOS to add
  // "d" has no byte token and the vocabulary has no unknown token.
  EXPECT_THROW(t->encode("d", false, false), Error);
}

TEST(TinyVocabTokenizer, RejectsInconsistentVocabularies) {
  expect_error(tiny_spm().f32s("tokenizer.ggml.scores", {0, 0}).bytes(), ErrorCode::kCorruptFile,
               {"tiny.gguf", "tokenizer.ggml.scores", "2", "11"});
  expect_error(tiny_spm().i32s("tokenizer.ggml.token_type", {1}).bytes(), ErrorCode::kCorruptFile,
               {"tiny.gguf", "tokenizer.ggml.token_type"});
  expect_error(tiny_spm().i32s("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 42}).bytes(),
               ErrorCode::kCorruptFile, {"tokenizer.ggml.token_type[10]", "42"});
  expect_error(tiny_spm().u32("tokenizer.ggml.bos_token_id", 11).bytes(), ErrorCode::kCorruptFile,
               {"tiny.gguf", "tokenizer.ggml.bos_token_id", "11"});
  expect_error(tiny_spm().str("tokenizer.ggml.eos_token_id", "2").bytes(), ErrorCode::kCorruptFile,
               {"tokenizer.ggml.eos_token_id"});
  expect_error(tiny_spm().f32s("tokenizer.ggml.tokens", {1.0f}).bytes(), ErrorCode::kCorruptFile,
               {"tokenizer.ggml.tokens"});
  expect_error(tiny_bpe().strings("tokenizer.ggml.merges", {"a b", "abc"}).bytes(), ErrorCode::kCorruptFile,
               {"tokenizer.ggml.merges[1]", "abc"});
  expect_error(tiny_bpe().str("tokenizer.ggml.merges", "a b").bytes(), ErrorCode::kCorruptFile,
               {"tokenizer.ggml.merges"});
  TinyGguf no_scores;
  no_scores.str("tokenizer.ggml.model", "llama").strings("tokenizer.ggml.tokens", {"a"});
  expect_error(no_scores.bytes(), ErrorCode::kCorruptFile, {"tokenizer.ggml.scores"});
  TinyGguf no_tokens;
  no_tokens.str("tokenizer.ggml.model", "gpt2");
  expect_error(no_tokens.bytes(), ErrorCode::kCorruptFile, {"tokenizer.ggml.tokens"});
  TinyGguf bad_byte_piece = tiny_spm();
  bad_byte_piece.i32s("tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 6});
  expect_error(bad_byte_piece.bytes(), ErrorCode::kCorruptFile, {"tokenizer.ggml.tokens[10]"});
}

TEST(TinyVocabTokenizer, NamesWhatIsUnsupported) {
  expect_error(tiny_spm().str("tokenizer.ggml.model", "bert").bytes(), ErrorCode::kUnsupported,
               {"tiny.gguf", "bert", "llama", "gpt2"});
  expect_error(tiny_bpe("deepseek-llm").bytes(), ErrorCode::kUnsupported, {"tiny.gguf", "deepseek-llm", "qwen2"});
  TinyGguf none;
  none.str("general.architecture", "llama");
  expect_error(none.bytes(), ErrorCode::kNotFound, {"tiny.gguf", "tokenizer.ggml.model"});
}

}  // namespace
}  // namespace koto
