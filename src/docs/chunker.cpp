#include "docs/chunker.h"

#include <unicode/brkiter.h>
#include <unicode/locid.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <memory>

#include "koto/error.h"

namespace koto::docs {
namespace {

// A sentence (or a cut part of a long one) with where it is.
struct Piece {
  std::string text;
  int chars = 0;
  int line_start = 0;
  int line_end = 0;
  bool new_block = false;  // first piece of its block: joined to the previous with "\n"
  bool overlap_only = false;  // carried over from the previous passage
};

int count_chars(std::string_view s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; });
}

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Byte offset of the `chars`-th character of s (or s.size()).
size_t byte_at_char(std::string_view s, int chars) {
  size_t i = 0;
  for (int n = 0; i < s.size() && n < chars; ++n) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  }
  return i;
}

// Cuts a sentence longer than max_chars: after the last 、 or space of each window,
// else at the window's end.
std::vector<std::string_view> cut_long(std::string_view sentence, int max_chars) {
  std::vector<std::string_view> parts;
  while (count_chars(sentence) > max_chars) {
    const size_t window = byte_at_char(sentence, max_chars);
    size_t cut = window;
    const std::string_view head = sentence.substr(0, window);
    for (std::string_view mark : {std::string_view("、"), std::string_view("，"), std::string_view(" "), std::string_view("\n")}) {
      const size_t at = head.rfind(mark);
      if (at != std::string_view::npos && at > window / 2) {
        cut = at + mark.size();
        break;
      }
    }
    parts.push_back(sentence.substr(0, cut));
    sentence.remove_prefix(cut);
  }
  if (!sentence.empty()) parts.push_back(sentence);
  return parts;
}

class SentenceSplitter {
 public:
  SentenceSplitter() {
    UErrorCode status = U_ZERO_ERROR;
    iterator_.reset(icu::BreakIterator::createSentenceInstance(icu::Locale::getJapanese(), status));
    if (U_FAILURE(status)) throw Error(ErrorCode::kInternal, "ICU: no sentence break iterator");
  }

  // Byte ranges of the sentences of `text`, covering it.
  std::vector<std::pair<size_t, size_t>> split(std::string_view text) {
    std::vector<std::pair<size_t, size_t>> ranges;
    const icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
    iterator_->setText(u);
    // UTF-16 offsets back to UTF-8 bytes, walking both strings once.
    size_t byte = 0;
    int32_t unit = 0;
    auto to_byte = [&](int32_t target) {
      while (unit < target && byte < text.size()) {
        const auto c = static_cast<unsigned char>(text[byte]);
        const int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        byte += static_cast<size_t>(len);
        unit += len == 4 ? 2 : 1;
      }
      return byte;
    };
    int32_t start = iterator_->first();
    size_t start_byte = 0;
    for (int32_t end = iterator_->next(); end != icu::BreakIterator::DONE; end = iterator_->next()) {
      const size_t end_byte = to_byte(end);
      ranges.emplace_back(start_byte, end_byte);
      start = end;
      start_byte = end_byte;
    }
    (void)start;
    return ranges;
  }

 private:
  std::unique_ptr<icu::BreakIterator> iterator_;
};

class ChunkBuilder {
 public:
  ChunkBuilder(const ChunkOptions& options, std::vector<Chunk>& out) : options_(options), out_(out) {}

  void set_section(std::string heading, int page) {
    flush(false);
    current_.clear();
    heading_ = std::move(heading);
    page_ = page;
  }

  void add(Piece piece) {
    if (!current_.empty() && chars_ + piece.chars > options_.target_chars) flush(true);
    chars_ += piece.chars;
    current_.push_back(std::move(piece));
  }

  // Closes the current passage; with `overlap`, its last sentences start the next one.
  void flush(bool overlap) {
    if (current_.empty()) return;
    Chunk chunk;
    chunk.heading = heading_;
    chunk.page = page_;
    chunk.line_start = current_.front().line_start;
    chunk.line_end = current_.back().line_end;
    std::string text;
    for (size_t i = 0; i < current_.size(); ++i) {
      if (i > 0 && current_[i].new_block && (text.empty() || text.back() != '\n')) text += '\n';
      text += current_[i].text;
    }
    chunk.text = std::string(trim(text));
    bool fresh = false;
    for (const Piece& p : current_) fresh = fresh || !p.overlap_only;
    if (!chunk.text.empty() && fresh) out_.push_back(std::move(chunk));
    std::vector<Piece> kept;
    if (overlap) {
      int kept_chars = 0;
      for (auto it = current_.rbegin(); it != current_.rend(); ++it) {
        if (kept_chars + it->chars > options_.overlap_chars) break;
        kept_chars += it->chars;
        kept.insert(kept.begin(), *it);
      }
      // The whole passage fits in the overlap: the next starts fresh instead.
      if (kept.size() == current_.size()) kept.clear();
      for (Piece& p : kept) p.overlap_only = true;
    }
    current_ = std::move(kept);
    chars_ = 0;
    for (const Piece& p : current_) chars_ += p.chars;
  }

 private:
  const ChunkOptions& options_;
  std::vector<Chunk>& out_;
  std::vector<Piece> current_;
  int chars_ = 0;
  std::string heading_;
  int page_ = 0;
};

}  // namespace

std::vector<Chunk> chunk_document(const Document& document, const ChunkOptions& options) {
  std::vector<Chunk> chunks;
  SentenceSplitter splitter;
  ChunkBuilder builder(options, chunks);
  std::vector<std::pair<int, std::string>> headings;  // level, text
  auto heading_path = [&] {
    std::string path;
    for (const auto& [level, text] : headings) {
      if (!path.empty()) path += " > ";
      path += text;
    }
    return path;
  };
  int page = -1;
  for (const Block& block : document.blocks) {
    if (block.page != page) {
      page = block.page;
      builder.set_section(heading_path(), page);
    }
    if (block.heading) {
      while (!headings.empty() && headings.back().first >= block.level) headings.pop_back();
      headings.emplace_back(block.level, std::string(trim(block.text)));
      builder.set_section(heading_path(), page);
      continue;
    }
    if (blank(block.text)) continue;
    bool first = true;
    int line = block.line_start;
    for (const auto& [begin, end] : splitter.split(block.text)) {
      const std::string_view sentence = std::string_view(block.text).substr(begin, end - begin);
      for (std::string_view part : cut_long(sentence, options.max_chars)) {
        Piece piece;
        piece.text = std::string(part);
        piece.chars = count_chars(part);
        piece.line_start = line;
        // Lines end inside the part; a part ending with its newline stays on its last line.
        const std::string_view body = part.substr(0, part.find_last_not_of('\n') + 1);
        line += static_cast<int>(std::count(part.begin(), part.end(), '\n'));
        piece.line_end = piece.line_start + static_cast<int>(std::count(body.begin(), body.end(), '\n'));
        piece.new_block = first;
        first = false;
        if (!blank(part)) builder.add(std::move(piece));
      }
    }
  }
  builder.flush(false);
  return chunks;
}

}  // namespace koto::docs
