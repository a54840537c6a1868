#include "koto/text.h"

#include <gtest/gtest.h>

namespace koto {
namespace {

TEST(QuoteBytes, KeepsCharactersAndEscapesTheRest) {
  EXPECT_EQ(quote_bytes("日本語"), "\"日本語\"");
  EXPECT_EQ(quote_bytes("改行\n\t\r\"\\"), "\"改行\\n\\t\\r\\\"\\\\\"");
  EXPECT_EQ(quote_bytes("\x01\x7F"), "\"\\x01\\x7F\"");
  // The first two bytes of 日 (E6 97 A5) are no character: each becomes \xNN.
  EXPECT_EQ(quote_bytes("\xE6\x97"), "\"\\xE6\\x97\"");
  EXPECT_EQ(quote_bytes("\xEF\xBF\xBD"), "\"\xEF\xBF\xBD\"");  // a real U+FFFD stays
}

TEST(Utf8Prefix, NeverEndsInsideACharacter) {
  EXPECT_EQ(utf8_prefix("東京都", 4), "東");
  EXPECT_EQ(utf8_prefix("東京都", 6), "東京");
  EXPECT_EQ(utf8_prefix("東京都", 100), "東京都");
  EXPECT_EQ(utf8_prefix("ab東", 3), "ab");
  EXPECT_EQ(utf8_prefix("東", 0), "");
}

TEST(OneLineSnippet, JoinsLinesAndCutsOnCharacters) {
  EXPECT_EQ(one_line_snippet("東京\n大阪", 3), "東京 …");
  EXPECT_EQ(one_line_snippet("東京\n大阪", 5), "東京 大阪");
  EXPECT_EQ(one_line_snippet("", 3), "");
}

}  // namespace
}  // namespace koto
