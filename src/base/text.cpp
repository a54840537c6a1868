#include "koto/text.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/utf8.h"

namespace koto {

std::string quote_bytes(std::string_view bytes) {
  std::string out = "\"";
  for (size_t pos = 0; pos < bytes.size();) {
    const size_t start = pos;
    const char32_t c = utf8::decode(bytes, pos);
    const bool invalid = c == 0xFFFD && bytes.substr(start, pos - start) != "\xEF\xBF\xBD";
    if (invalid) {
      out += fmt::format("\\x{:02X}", static_cast<unsigned>(static_cast<uint8_t>(bytes[start])));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02X}", static_cast<unsigned>(c));
    } else {
      out.append(bytes.substr(start, pos - start));
    }
  }
  out += '"';
  return out;
}

std::string_view utf8_prefix(std::string_view text, size_t max_bytes) {
  const std::string_view head = text.substr(0, max_bytes);
  return head.substr(0, utf8::complete_prefix_length(head));
}

std::string one_line_snippet(std::string_view text, size_t max_chars) {
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < text.size();) {
    if (chars == max_chars) {
      out += "…";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t len = std::min(text.size() - i, size_t{c < 0x80 ? 1u : c < 0xE0 ? 2u : c < 0xF0 ? 3u : 4u});
    if (text[i] == '\n') {
      out += ' ';
    } else {
      out.append(text, i, len);
    }
    i += len;
    ++chars;
  }
  return out;
}

}  // namespace koto
