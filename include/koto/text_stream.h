// Turning generated token ids into printable UTF-8 text, chunk by chunk.
//
// What a TextStream guarantees about the chunks it returns:
//   - every chunk is valid UTF-8 and never splits a character: the bytes of a
//     character that arrive over several tokens (byte-fallback tokens: Japanese text
//     in the Llama-2 vocabulary comes one byte per token) are held back until the
//     character is complete. Bytes that can never form a character are replaced by
//     U+FFFD (one per bad byte), so output stays valid;
//   - when the tokenizer strips SentencePiece's dummy-prefix space
//     (Tokenizer::strips_leading_space()), one leading space of the output is dropped,
//     exactly as Tokenizer::decode would (and only at the start of the output);
//   - stop strings are matched on the text, also across token boundaries. A stop
//     string and everything after it is never returned; any tail that could be the
//     start of a stop string is held back until it is decided. After a match,
//     stopped() is true and push() returns "";
//   - finish() returns what is still held back. An incomplete UTF-8 sequence at the
//     very end (generation stopped inside a character) becomes U+FFFD rather than
//     being dropped silently.
// The concatenation of all chunks (text()) therefore equals Tokenizer::decode of
// the pushed ids, cut before the first stop string, with invalid bytes replaced.
//
// Control tokens contribute no text. A TextStream is not thread-safe; the tokenizer
// must outlive it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

class TextStream {
 public:
  // Empty stop strings are ignored.
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings = {});

  // Adds one generated token; returns the text that became safe to print (often "").
  std::string push(TokenId id);

  // Adds raw bytes as if a token had produced them (for tests and other sources).
  std::string push_bytes(std::string_view bytes);

  // Ends the stream: returns everything still held back (see above). Further pushes
  // return "".
  std::string finish();

  bool stopped() const { return stopped_; }       // a stop string matched
  const std::string& stop_string() const { return matched_stop_; }  // "" unless stopped
  const std::string& text() const { return emitted_; }  // every byte returned so far

 private:
  std::string release_safe_text();  // moves the decided part of held_ out

  const Tokenizer& tokenizer_;
  std::vector<std::string> stop_strings_;
  bool strip_leading_space_;
  bool at_start_ = true;   // nothing non-empty seen yet
  bool stopped_ = false;
  bool finished_ = false;
  std::string matched_stop_;
  std::string pending_;    // bytes of an incomplete character
  std::string held_;       // complete characters not yet returned (a possible stop prefix)
  std::string emitted_;
};

}  // namespace koto
