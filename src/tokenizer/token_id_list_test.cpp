#include "koto/token_id_list.h"

#include <gtest/gtest.h>

#include "koto/error.h"

namespace koto {
namespace {

TEST(TokenIdList, AcceptsCommasSpacesAndJson) {
  const std::vector<TokenId> expected = {1, 15043, 3186};
  EXPECT_EQ(parse_token_id_list("1,15043,3186"), expected);
  EXPECT_EQ(parse_token_id_list("1 15043 3186\n"), expected);
  EXPECT_EQ(parse_token_id_list(" 1, 15043,\t3186 "), expected);
  EXPECT_EQ(parse_token_id_list("[1, 15043, 3186]"), expected);
  EXPECT_EQ(parse_token_id_list(" \n"), std::vector<TokenId>{});
  EXPECT_EQ(parse_token_id_list("-5"), std::vector<TokenId>{-5});  // range is the tokenizer's business
}

TEST(TokenIdList, NamesTheWordThatIsNoId) {
  try {
    parse_token_id_list("1,トークン,3");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("トークン"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_token_id_list("1,2x"), Error);
  EXPECT_THROW(parse_token_id_list("99999999999"), Error);
  EXPECT_THROW(parse_token_id_list("[1, \"2\"]"), Error);
  EXPECT_THROW(parse_token_id_list("[1, 2"), Error);
  EXPECT_THROW(parse_token_id_list("[4294967296]"), Error);
}

}  // namespace
}  // namespace koto
