// Token ids written by people or other tools, one syntax for every front end:
// a JSON array ("[1, 2, 3]") or integers separated by commas and/or white space
// ("1,2,3", "1 2 3", "1, 2\n3").
#pragma once

#include <string_view>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

// Empty or blank input gives no ids. Throws koto::Error(kInvalidArgument) naming the
// first word that is not a 32-bit integer (or the JSON problem). Ids are not checked
// against a vocabulary: Tokenizer::piece does that.
std::vector<TokenId> parse_token_id_list(std::string_view input);

}  // namespace koto
