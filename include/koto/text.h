// Showing arbitrary bytes (token pieces, partial characters) as one printable line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace koto {

// The bytes in double quotes on one line: valid UTF-8 characters are kept; \n, \t, \r,
// " and \ are escaped C-style; other control characters and bytes that are not valid
// UTF-8 become \xNN. quote_bytes("改行\n\xE3") == "\"改行\\n\\xE3\"".
std::string quote_bytes(std::string_view bytes);

// The longest prefix of `text` of at most max_bytes that does not end inside a UTF-8
// character, for cutting text to a width ("東京" cut to 4 bytes is "東").
std::string_view utf8_prefix(std::string_view text, size_t max_bytes);

// A passage as one line for a listing: line breaks become spaces and, past max_chars
// characters, the rest becomes "…" ("東京\n大阪", 3 → "東京 …").
std::string one_line_snippet(std::string_view text, size_t max_chars);

}  // namespace koto
