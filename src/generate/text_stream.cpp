#include "koto/text_stream.h"

#include <algorithm>

#include "base/utf8.h"

namespace koto {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Complete characters in, valid UTF-8 out: bytes that cannot start or finish a
// character become U+FFFD.
std::string sanitize(std::string_view text) {
  if (utf8::is_valid(text)) return std::string(text);
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) utf8::append(out, utf8::decode(text, pos));
  return out;
}

}  // namespace

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings, LeadingSpace leading_space)
    : tokenizer_(tokenizer),
      strip_leading_space_(leading_space == LeadingSpace::kStrip ||
                           (leading_space == LeadingSpace::kLikeDecode && tokenizer.strips_leading_space())) {
  for (std::string& stop : stop_strings) {
    if (!stop.empty()) stop_strings_.push_back(std::move(stop));
  }
}

std::string TextStream::push(TokenId id) {
  if (stopped_ || finished_) return {};
  return push_bytes(tokenizer_.token_bytes(id));
}

std::string TextStream::push_bytes(std::string_view bytes) {
  if (stopped_ || finished_ || bytes.empty()) return {};
  if (at_start_) {
    at_start_ = false;
    if (strip_leading_space_ && bytes.front() == ' ') bytes.remove_prefix(1);
  }
  pending_.append(bytes);
  const size_t complete = utf8::complete_prefix_length(pending_);
  held_ += sanitize(std::string_view(pending_).substr(0, complete));
  pending_.erase(0, complete);
  return release_safe_text();
}

std::string TextStream::release_safe_text() {
  // A full stop string: return what precedes the earliest one, drop the rest.
  size_t stop_at = std::string::npos;
  for (const std::string& stop : stop_strings_) {
    const size_t pos = held_.find(stop);
    if (pos < stop_at) {
      stop_at = pos;
      matched_stop_ = stop;
    }
  }
  if (stop_at != std::string::npos) {
    std::string out = held_.substr(0, stop_at);
    held_.clear();
    pending_.clear();
    stopped_ = true;
    emitted_ += out;
    return out;
  }
  // Hold back the longest tail that is a prefix of some stop string. Every stop
  // occurrence therefore starts inside held_, so searching held_ above is enough.
  size_t keep_from = held_.size();
  for (const std::string& stop : stop_strings_) {
    const size_t longest = std::min(stop.size() - 1, held_.size());
    for (size_t len = longest; len > 0; --len) {
      const size_t start = held_.size() - len;
      if (start >= keep_from) break;
      if (std::string_view(held_).substr(start) == std::string_view(stop).substr(0, len)) {
        keep_from = start;
        break;
      }
    }
  }
  std::string out = held_.substr(0, keep_from);
  held_.erase(0, keep_from);
  emitted_ += out;
  return out;
}

std::string TextStream::finish() {
  if (stopped_ || finished_) return {};
  if (!pending_.empty()) {
    // Generation ended inside a character: show that something was cut.
    held_ += kReplacement;
    pending_.clear();
  }
  std::string out = release_safe_text();
  if (!stopped_) {
    // No more text can arrive, so a held stop-string prefix is just text.
    out += held_;
    emitted_ += held_;
    held_.clear();
  }
  finished_ = true;
  return out;
}

}  // namespace koto
