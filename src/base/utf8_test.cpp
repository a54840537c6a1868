#include "base/utf8.h"

#include <gtest/gtest.h>

namespace koto::utf8 {
namespace {

TEST(Utf8, ValidatesJapaneseAndRejectsBrokenSequences) {
  EXPECT_TRUE(is_valid("こんにちは、世界。𠮷"));
  EXPECT_TRUE(is_valid(""));
  EXPECT_FALSE(is_valid("\xE3\x81"));          // cut after two of three bytes
  EXPECT_FALSE(is_valid("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(is_valid("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid("\xFF"));
}

TEST(Utf8, CompletePrefixHoldsBackAnUnfinishedCharacter) {
  const std::string text = "日本";  // 6 bytes
  EXPECT_EQ(complete_prefix_length(text), 6u);
  EXPECT_EQ(complete_prefix_length(text.substr(0, 5)), 3u);
  EXPECT_EQ(complete_prefix_length(text.substr(0, 4)), 3u);
  EXPECT_EQ(complete_prefix_length(text.substr(0, 3)), 3u);
  // An invalid byte is passed through instead of being held forever.
  EXPECT_EQ(complete_prefix_length("a\xFF"), 2u);
}

TEST(Utf8, DecodeAndAppendRoundTrip) {
  const std::string text = "aé日𠮷";
  size_t pos = 0;
  std::string rebuilt;
  std::u32string cps;
  while (pos < text.size()) cps += decode(text, pos);
  EXPECT_EQ(cps, U"aé日𠮷");
  for (char32_t cp : cps) append(rebuilt, cp);
  EXPECT_EQ(rebuilt, text);
  EXPECT_EQ(count_chars(text), 4u);
}

TEST(Utf8, EscapeForMessageShowsBadBytes) {
  EXPECT_EQ(escape_for_message("tok\xFF" "en"), "tok\\xFFen");
  EXPECT_EQ(escape_for_message("語\n"), "語\\x0A");
}

}  // namespace
}  // namespace koto::utf8
