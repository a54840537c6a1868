// Small hand-made vocabularies: the merge order of both tokenizer kinds on data whose
// answer is known, and the one-line errors for damaged tokenizer keys.
#include "tokenizer/vocab.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "koto/error.h"
#include "koto/gguf.h"

namespace koto {
namespace {

// Writes GGUF v3 bytes with metadata only (no tensors).
class GgufBytes {
 public:
  GgufBytes& str(std::string_view key, std::string_view value) {
    return add(key, 8, [=](std::string& out) { put_string(out, value); });
  }
  GgufBytes& u32(std::string_view key, uint32_t value) {
    return add(key, 4, [=](std::string& out) { put(out, value); });
  }
  GgufBytes& boolean(std::string_view key, bool value) {
    return add(key, 7, [=](std::string& out) { put(out, static_cast<uint8_t>(value)); });
  }
  GgufBytes& strings(std::string_view key, std::vector<std::string> values) {
    return add(key, 9, [=](std::string& out) {
      put(out, uint32_t{8});
      put(out, static_cast<uint64_t>(values.size()));
      for (const std::string& v : values) put_string(out, v);
    });
  }
  GgufBytes& f32s(std::string_view key, std::vector<float> values) { return numbers(key, 6, values); }
  GgufBytes& i32s(std::string_view key, std::vector<int32_t> values) { return numbers(key, 5, values); }

  std::string bytes() const {
    std::string out = "GGUF";
    put(out, uint32_t{3});
    put(out, uint64_t{0});
    put(out, static_cast<uint64_t>(entries_.size()));
    for (const auto& [key, write] : entries_) write(out);
    while (out.size() % 32 != 0) out += '\0';
    return out;
  }

 private:
  template <typename T>
  static void put(std::string& out, T value) {
    char raw[sizeof(T)];
    std::memcpy(raw, &value, sizeof(T));
    out.append(raw, sizeof(T));
  }
  static void put_string(std::string& out, std::string_view s) {
    put(out, static_cast<uint64_t>(s.size()));
    out.append(s);
  }
  template <typename T>
  GgufBytes& numbers(std::string_view key, uint32_t type, std::vector<T> values) {
    return add(key, 9, [=](std::string& out) {
      put(out, type);
      put(out, static_cast<uint64_t>(values.size()));
      for (T v : values) put(out, v);
    });
  }
  // A key given again replaces its earlier value (tests damage one key of a good file).
  GgufBytes& add(std::string_view key, uint32_t type, std::function<void(std::string&)> value) {
    auto write = [key = std::string(key), type, value](std::string& out) {
      put_string(out, key);
      put(out, type);
      value(out);
    };
    for (auto& entry : entries_) {
      if (entry.first == key) {
        entry.second = write;
        return *this;
      }
    }
    entries_.emplace_back(std::string(key), write);
    return *this;
  }
  std::vector<std::pair<std::string, std::function<void(std::string&)>>> entries_;
};

const std::string kMark = "\xE2\x96\x81";  // U+2581

// <unk> <s> </s> <0x0A> ▁ a b c ab bc ▁a
GgufBytes tiny_spm() {
  GgufBytes g;
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
GgufBytes tiny_bpe(std::string_view pre = "qwen2") {
  GgufBytes g;
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
  GgufBytes no_scores;
  no_scores.str("tokenizer.ggml.model", "llama").strings("tokenizer.ggml.tokens", {"a"});
  expect_error(no_scores.bytes(), ErrorCode::kCorruptFile, {"tokenizer.ggml.scores"});
  GgufBytes no_tokens;
  no_tokens.str("tokenizer.ggml.model", "gpt2");
  expect_error(no_tokens.bytes(), ErrorCode::kCorruptFile, {"tokenizer.ggml.tokens"});
  GgufBytes bad_byte_piece = tiny_spm();
  bad_byte_piece.i32s("tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 6});
  expect_error(bad_byte_piece.bytes(), ErrorCode::kCorruptFile, {"tokenizer.ggml.tokens[10]"});
}

TEST(TinyVocabTokenizer, NamesWhatIsUnsupported) {
  expect_error(tiny_spm().str("tokenizer.ggml.model", "bert").bytes(), ErrorCode::kUnsupported,
               {"tiny.gguf", "bert", "llama", "gpt2"});
  expect_error(tiny_bpe("deepseek-llm").bytes(), ErrorCode::kUnsupported, {"tiny.gguf", "deepseek-llm", "qwen2"});
  GgufBytes none;
  none.str("general.architecture", "llama");
  expect_error(none.bytes(), ErrorCode::kNotFound, {"tiny.gguf", "tokenizer.ggml.model"});
}

}  // namespace
}  // namespace koto
