#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include "koto/error.h"

namespace koto {
namespace {

std::vector<std::string> split(std::string_view name, std::string_view text) {
  const PreTokenizer pre(name, "test.gguf");
  std::vector<std::string_view> pieces;
  pre.split(text, pieces);
  return {pieces.begin(), pieces.end()};
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizerForBpeTokenizer, Gpt2Default) {
  EXPECT_EQ(split("default", "Hello world's 12345!!  x"),
            (Pieces{"Hello", " world", "'s", " 12345", "!!", " ", " x"}));
  EXPECT_EQ(split("", "I'M here"), (Pieces{"I", "'", "M", " here"}));  // GPT-2 is case-sensitive
  EXPECT_EQ(split("gpt2", "日本語です。"), (Pieces{"日本語です", "。"}));
}

TEST(PreTokenizerForBpeTokenizer, Llama3GroupsDigitsByThree) {
  EXPECT_EQ(split("llama-bpe", "x 1234567 I'M"), (Pieces{"x", " ", "123", "456", "7", " I", "'M"}));
  EXPECT_EQ(split("llama-bpe", "「東京」、2024年"), (Pieces{"「東京", "」、", "202", "4", "年"}));
  EXPECT_EQ(split("llama-bpe", "a\r\n\r\nb  "), (Pieces{"a", "\r\n\r\n", "b", "  "}));
}

TEST(PreTokenizerForBpeTokenizer, Qwen2SplitsSingleDigits) {
  EXPECT_EQ(split("qwen2", "第３四半期は2024年"), (Pieces{"第", "３", "四半期は", "2", "0", "2", "4", "年"}));
  EXPECT_EQ(split("qwen2", "\tTab  x\n"), (Pieces{"\tTab", " ", " x", "\n"}));
  // U+3000 (ideographic space) and U+000B are white space.
  EXPECT_EQ(split("qwen2", "です\u3000ます\vね"), (Pieces{"です", "\u3000ます", "\vね"}));
}

TEST(PreTokenizerForBpeTokenizer, CoversInvalidUtf8) {
  const std::string text = "ab\xFF\xC3 c";
  std::string joined;
  for (const std::string& piece : split("qwen2", text)) joined += piece;
  EXPECT_EQ(joined, text);
}

TEST(PreTokenizerForBpeTokenizer, SupportedNamesAreTheTableRowsAndAllWork) {
  const std::span<const std::string_view> names = PreTokenizer::supported_names();
  EXPECT_EQ(std::vector<std::string_view>(names.begin(), names.end()),
            (std::vector<std::string_view>{"qwen2", "llama-bpe", "llama3", "default", "gpt2", "gpt-2"}));
  for (std::string_view name : names) EXPECT_NO_THROW(PreTokenizer(name, "test.gguf")) << name;
}

TEST(PreTokenizerForBpeTokenizer, UnknownNameIsUnsupported) {
  try {
    PreTokenizer pre("deepseek-coder", "model.gguf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    const std::string message = e.what();
    EXPECT_NE(message.find("model.gguf"), std::string::npos);
    EXPECT_NE(message.find("deepseek-coder"), std::string::npos);
    EXPECT_NE(message.find("qwen2"), std::string::npos);
    EXPECT_NE(message.find("llama-bpe"), std::string::npos);
  }
}

}  // namespace
}  // namespace koto
