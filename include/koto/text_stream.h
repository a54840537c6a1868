// Turning generated token ids into printable UTF-8 text, chunk by chunk.
//
// What a TextStream guarantees about the chunks it returns:
//   - every chunk is valid UTF-8 and never splits a character: the bytes of a
//     character that arrive over several tokens (byte-fallback tokens: Japanese text
//     in the Llama-2 vocabulary comes one byte per token) are held back until the
//     character is complete. Bytes that can never form a character are replaced by
//     U+FFFD (one per bad byte), so output stays valid;
//   - one leading space of the output is dropped or kept as the LeadingSpace option
//     says (only at the very start of the output, never later);
//   - stop strings are matched on the text, also across token boundaries. A stop
//     string and everything after it is never returned; any tail that could be the
//     start of a stop string is held back until it is decided. After a match,
//     stopped() is true and push() returns "";
//   - finish() returns what is still held back. An incomplete UTF-8 sequence at the
//     very end (generation stopped inside a character) becomes U+FFFD rather than
//     being dropped silently.
// With LeadingSpace::kLikeDecode the concatenation of all chunks (text()) therefore
// equals Tokenizer::decode of the pushed ids, cut before the first stop string, with
// invalid bytes replaced.
//
// Control tokens contribute no text. A TextStream is not thread-safe; the tokenizer
// must outlive it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

// What happens to a space at the very start of the output. SentencePiece pieces carry
// the space before a word ("▁girl"), so the first generated piece starts with one.
enum class LeadingSpace {
  // Drop it when the tokenizer strips its dummy prefix (Tokenizer::strips_leading_space()),
  // as Tokenizer::decode does: right when the output starts the text (the prompt was
  // only BOS or other control tokens).
  kLikeDecode,
  // Keep it: the output continues text the reader already has (a raw prompt), so
  // "there was a little" + " girl" must keep its space.
  kKeep,
  // Always drop one: the output follows markup the reader never sees (a chat answer
  // after "[/INST]" or "Assistant:"), where a leading space is noise.
  kStrip,
};

class TextStream {
 public:
  // Empty stop strings are ignored.
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings = {},
             LeadingSpace leading_space = LeadingSpace::kLikeDecode);

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
