#include "base/utf8.h"

#include <fmt/format.h>

namespace koto::utf8 {

int sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;  // continuation byte or overlong 2-byte lead
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

namespace {

// Returns the length of the valid sequence at text[pos], 0 if invalid, or -1 if it is a
// valid but incomplete prefix cut by the end of text.
int valid_sequence_at(std::string_view text, size_t pos) {
  const auto b0 = static_cast<uint8_t>(text[pos]);
  const int n = sequence_length(b0);
  if (n <= 1) return n;
  for (int i = 1; i < n; ++i) {
    if (pos + i >= text.size()) return -1;
    const auto b = static_cast<uint8_t>(text[pos + i]);
    if ((b & 0xC0) != 0x80) return 0;
    if (i == 1) {
      if (b0 == 0xE0 && b < 0xA0) return 0;   // overlong
      if (b0 == 0xED && b > 0x9F) return 0;   // surrogate
      if (b0 == 0xF0 && b < 0x90) return 0;   // overlong
      if (b0 == 0xF4 && b > 0x8F) return 0;   // > U+10FFFF
    }
  }
  return n;
}

}  // namespace

bool is_valid(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const int n = valid_sequence_at(text, pos);
    if (n <= 0) return false;
    pos += static_cast<size_t>(n);
  }
  return true;
}

size_t complete_prefix_length(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const int n = valid_sequence_at(text, pos);
    if (n < 0) return pos;
    pos += n == 0 ? 1 : static_cast<size_t>(n);
  }
  return pos;
}

char32_t decode(std::string_view text, size_t& pos) {
  const int n = valid_sequence_at(text, pos);
  if (n <= 0) {
    ++pos;
    return 0xFFFD;
  }
  const auto b0 = static_cast<uint8_t>(text[pos]);
  char32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (int i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
  pos += static_cast<size_t>(n);
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t count_chars(std::string_view text) {
  size_t count = 0;
  for (char c : text) count += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return count;
}

std::string escape_for_message(std::string_view bytes, size_t max_bytes) {
  std::string out;
  size_t pos = 0;
  while (pos < bytes.size() && out.size() < max_bytes) {
    const int n = valid_sequence_at(bytes, pos);
    const auto b = static_cast<uint8_t>(bytes[pos]);
    if (n > 0 && (n > 1 || b >= 0x20)) {
      out.append(bytes.substr(pos, static_cast<size_t>(n)));
      pos += static_cast<size_t>(n);
    } else {
      out += fmt::format("\\x{:02X}", b);
      ++pos;
    }
  }
  if (pos < bytes.size()) out += "…";
  return out;
}

}  // namespace koto::utf8
