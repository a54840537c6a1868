#include "koto/token_id_list.h"

#include <charconv>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "base/utf8.h"
#include "koto/error.h"
#include "koto/i18n.h"

namespace koto {
namespace {

constexpr std::string_view kSeparators = ", \t\r\n";

std::vector<TokenId> parse_json_array(std::string_view input) {
  const nlohmann::json array = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (!array.is_array()) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("the ids are not a valid JSON array of integers", "ID の並びが整数の JSON 配列になっていません"));
  }
  std::vector<TokenId> ids;
  for (const nlohmann::json& element : array) {
    if (!element.is_number_integer() || element.get<int64_t>() < INT32_MIN || element.get<int64_t>() > INT32_MAX) {
      throw Error(ErrorCode::kInvalidArgument, tr("{0} in the JSON array is not a token id",
                                                  "JSON 配列の {0} はトークン ID ではありません", element.dump()));
    }
    ids.push_back(element.get<TokenId>());
  }
  return ids;
}

}  // namespace

std::vector<TokenId> parse_token_id_list(std::string_view input) {
  const size_t first = input.find_first_not_of(kSeparators);
  if (first != std::string_view::npos && input[first] == '[') return parse_json_array(input);
  std::vector<TokenId> ids;
  size_t pos = 0;
  while (pos < input.size()) {
    const size_t start = input.find_first_not_of(kSeparators, pos);
    if (start == std::string_view::npos) break;
    size_t end = input.find_first_of(kSeparators, start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view word = input.substr(start, end - start);
    TokenId id = 0;
    const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || ptr != word.data() + word.size()) {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("\"{0}\" is not a token id; give integers separated by commas or spaces, or a JSON array",
                     "「{0}」はトークン ID ではありません。カンマか空白で区切った整数、または JSON 配列で指定してください",
                     utf8::escape_for_message(word)));
    }
    ids.push_back(id);
    pos = end;
  }
  return ids;
}

}  // namespace koto
