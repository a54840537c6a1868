// UTF-8 helpers used wherever bytes become text: GGUF strings, tokenizer pieces and
// streamed output (which must never split a character).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace koto::utf8 {

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool is_valid(std::string_view text);

// Length in bytes of the longest prefix of `text` that ends on a character boundary,
// assuming `text` starts on one. A trailing incomplete (but so far valid) sequence is
// left out; invalid bytes count as one-byte characters so they are never held back
// forever.
size_t complete_prefix_length(std::string_view text);

// Byte length of the sequence introduced by `lead` (1..4), or 0 for a continuation
// byte or a byte that can never start a sequence.
int sequence_length(uint8_t lead);

// Decodes one code point at text[pos] and advances pos. Invalid input yields U+FFFD
// and advances by one byte.
char32_t decode(std::string_view text, size_t& pos);

// Appends the UTF-8 encoding of `cp` (must be a valid scalar value) to `out`.
void append(std::string& out, char32_t cp);

// Number of code points (characters) in valid UTF-8 text.
size_t count_chars(std::string_view text);

// A printable form of arbitrary bytes for error messages: valid UTF-8 is kept, other
// bytes become \xNN, and the result is cut to about max_bytes.
std::string escape_for_message(std::string_view bytes, size_t max_bytes = 80);

}  // namespace koto::utf8
