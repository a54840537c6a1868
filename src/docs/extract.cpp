#include "docs/extract.h"

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <poppler/cpp/poppler-document.h>
#include <poppler/cpp/poppler-global.h>
#include <poppler/cpp/poppler-page.h>
#include <unicode/uchar.h>
#include <unicode/ucnv.h>
#include <unicode/uscript.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/utf8.h"
#include "koto/error.h"
#include "koto/i18n.h"

namespace koto::docs {
namespace {

// ---------------------------------------------------------------------------
// Encodings

struct ConverterCloser {
  void operator()(UConverter* converter) const { ucnv_close(converter); }
};
using ConverterPtr = std::unique_ptr<UConverter, ConverterCloser>;

bool is_high_surrogate(char16_t unit) { return unit >= 0xD800 && unit <= 0xDBFF; }
bool is_low_surrogate(char16_t unit) { return unit >= 0xDC00 && unit <= 0xDFFF; }

// The bytes in `charset` as UTF-8, or nullopt when a byte sequence is invalid or has no
// mapping (strict: no substitution characters are ever produced).
std::optional<std::string> convert_strict(const char* charset, std::string_view bytes) {
  UErrorCode status = U_ZERO_ERROR;
  ConverterPtr converter(ucnv_open(charset, &status));
  if (U_FAILURE(status)) {
    throw Error(ErrorCode::kInternal, tr("ICU has no {0} converter ({1})", "ICU に {0} の変換器がありません ({1})",
                                         charset, u_errorName(status)));
  }
  ucnv_setToUCallBack(converter.get(), UCNV_TO_U_CALLBACK_STOP, nullptr, nullptr, nullptr, &status);

  std::string out;
  out.reserve(bytes.size() + bytes.size() / 2);
  std::array<char16_t, 4096> units;
  const char* source = bytes.data();
  const char* const source_end = bytes.data() + bytes.size();
  char16_t pending_high = 0;  // a high surrogate whose low half is in the next buffer
  while (true) {
    char16_t* target = units.data();
    status = U_ZERO_ERROR;
    ucnv_toUnicode(converter.get(), &target, units.data() + units.size(), &source, source_end, nullptr,
                   /*flush=*/true, &status);
    if (U_FAILURE(status) && status != U_BUFFER_OVERFLOW_ERROR) return std::nullopt;
    for (const char16_t* unit = units.data(); unit != target; ++unit) {
      if (pending_high != 0) {
        if (!is_low_surrogate(*unit)) return std::nullopt;
        utf8::append(out, 0x10000 + ((char32_t(pending_high) - 0xD800) << 10) + (char32_t(*unit) - 0xDC00));
        pending_high = 0;
      } else if (is_high_surrogate(*unit)) {
        pending_high = *unit;
      } else if (is_low_surrogate(*unit)) {
        return std::nullopt;
      } else {
        utf8::append(out, *unit);
      }
    }
    if (status != U_BUFFER_OVERFLOW_ERROR) break;
  }
  if (pending_high != 0) return std::nullopt;
  return out;
}

// Hiragana or (full-width) katakana: what real Japanese prose nearly always contains.
bool has_kana(std::string_view utf8_text) {
  size_t pos = 0;
  while (pos < utf8_text.size()) {
    const char32_t cp = utf8::decode(utf8_text, pos);
    if (cp >= 0x3041 && cp <= 0x30FF) return true;
  }
  return false;
}

std::string normalize_line_ends(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out += '\n';
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

[[noreturn]] void throw_binary() {
  throw Error(ErrorCode::kCorruptFile,
              tr("not a text file: it contains NUL bytes (binary data)",
                 "テキストファイルではありません: NUL バイトを含みます (バイナリデータ)"));
}

size_t first_invalid_utf8_offset(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t length = utf8::sequence_length(static_cast<uint8_t>(bytes[pos]));
    if (length == 0 || pos + length > bytes.size() || !utf8::is_valid(bytes.substr(pos, length))) return pos;
    pos += length;
  }
  return bytes.size();
}

// ---------------------------------------------------------------------------
// Lines

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\v' || c == '\r' || c == '\n'; }

constexpr std::string_view kIdeographicSpace = "\u3000";

// Blank: only spaces, tabs and ideographic spaces (U+3000).
bool is_blank(std::string_view line) {
  size_t i = 0;
  while (i < line.size()) {
    if (is_ascii_space(line[i])) {
      ++i;
    } else if (line.substr(i, kIdeographicSpace.size()) == kIdeographicSpace) {
      i += kIdeographicSpace.size();
    } else {
      return false;
    }
  }
  return true;
}

// Japanese paragraphs are indented with an ideographic space, so it counts as indentation.
// U+00A0: text converted from HTML (debian-reference's .txt) indents with no-break spaces.
constexpr std::string_view kNoBreakSpace = "\u00A0";

bool is_indented(std::string_view line) {
  return !line.empty() &&
         (line[0] == ' ' || line[0] == '\t' || line.starts_with(kIdeographicSpace) || line.starts_with(kNoBreakSpace));
}

std::string_view trim_right(std::string_view text) {
  while (!text.empty() && is_ascii_space(text.back())) text.remove_suffix(1);
  while (text.ends_with(kIdeographicSpace)) text.remove_suffix(kIdeographicSpace.size());
  return text;
}

std::string_view trim(std::string_view text) {
  text = trim_right(text);
  while (!text.empty() && is_ascii_space(text.front())) text.remove_prefix(1);
  return text;
}

// The lines with trailing spaces removed and the leading spaces/tabs they all share
// (the page margin of manuals and PDF layouts) taken off; relative indentation stays.
std::string join_dedented(const std::vector<std::string_view>& lines, size_t begin, size_t end) {
  std::string_view common;
  bool first = true;
  for (size_t i = begin; i < end; ++i) {
    const std::string_view line = trim_right(lines[i]);
    if (line.empty()) continue;
    size_t indent = 0;
    while (indent < line.size() && (line[indent] == ' ' || line[indent] == '\t')) ++indent;
    const std::string_view prefix = line.substr(0, indent);
    if (first) {
      common = prefix;
      first = false;
    } else {
      size_t shared = 0;
      while (shared < common.size() && shared < prefix.size() && common[shared] == prefix[shared]) ++shared;
      common = common.substr(0, shared);
    }
  }
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    std::string_view line = trim_right(lines[i]);
    if (line.starts_with(common)) line.remove_prefix(common.size());
    if (i != begin) out += '\n';
    out += line;
  }
  return out;
}

std::string join_lines(const std::vector<std::string_view>& lines, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    if (i != begin) out += '\n';
    out += lines[i];
  }
  return out;
}

Block text_block(std::string text, int line_start, int line_end, int page = 0) {
  Block block;
  block.text = std::move(text);
  block.line_start = line_start;
  block.line_end = line_end;
  block.page = page;
  return block;
}

Block heading_block(std::string text, int level, int line_start, int line_end) {
  Block block = text_block(std::move(text), line_start, line_end);
  block.heading = true;
  block.level = level;
  return block;
}

// ---------------------------------------------------------------------------
// Plain text

constexpr size_t kMaxHeadingChars = 60;

// Sentence ends (the contract's list) and code-like ends ("int main() {", "x =").
bool ends_like_sentence(std::string_view line) {
  static constexpr std::string_view kEnds[] = {"。", "．", ".", "！", "？", "!", "?", ":", "：", "、", ",",
                                               "，", ";", "；", "{", "[", "(", "=", "\\"};
  for (std::string_view end : kEnds) {
    if (line.ends_with(end)) return true;
  }
  return false;
}

bool starts_like_bullet(std::string_view line) {
  static constexpr std::string_view kBullets[] = {"- ", "* ", "+ ", "・", "•", "●", "○", "■", "□", "◆", "※"};
  for (std::string_view bullet : kBullets) {
    if (line.starts_with(bullet)) return true;
  }
  return false;
}

bool has_word_character(std::string_view line) {
  size_t pos = 0;
  while (pos < line.size()) {
    if (u_isalnum(static_cast<UChar32>(utf8::decode(line, pos)))) return true;
  }
  return false;
}

// "LS(1)   User Commands   LS(1)": the running header of a formatted manual page (the
// page's name at both ends), which names the page rather than a section.
bool is_man_page_header(std::string_view line) {
  const size_t last_space = line.find_last_of(" \t");
  if (last_space == std::string_view::npos) return false;
  const std::string_view name = line.substr(last_space + 1);  // "LS(1)"
  const size_t open = name.find('(');
  if (open == std::string_view::npos || open == 0 || !name.ends_with(")") || name.size() < open + 3) return false;
  const std::string_view header = line.substr(0, line.find(name) + name.size());  // "LAST, LASTB(1)"
  return header.size() < line.size() && line.ends_with(header);
}

bool is_heading_candidate(std::string_view line) {
  if (is_blank(line) || is_indented(line)) return false;
  const std::string_view text = trim_right(line);
  return utf8::count_chars(text) <= kMaxHeadingChars && !ends_like_sentence(text) && !starts_like_bullet(text) &&
         has_word_character(text) && !is_man_page_header(text);
}

std::vector<Block> extract_text(std::string_view text) {
  const std::vector<std::string_view> lines = split_lines(text);
  const size_t n = lines.size();
  std::vector<Block> blocks;
  // A heading standing alone between blank lines must head something: some text follows.
  std::vector<bool> text_follows(n + 1, false);
  for (size_t i = n; i-- > 0;) text_follows[i] = text_follows[i + 1] || !is_blank(lines[i]);

  size_t paragraph_start = 0;
  bool in_paragraph = false;
  auto flush = [&](size_t end) {
    if (in_paragraph) {
      blocks.push_back(text_block(join_dedented(lines, paragraph_start, end), int(paragraph_start) + 1, int(end)));
    }
    in_paragraph = false;
  };
  for (size_t i = 0; i < n; ++i) {
    if (is_blank(lines[i])) {
      flush(i);
      continue;
    }
    if (is_heading_candidate(lines[i])) {
      const bool next_indented = i + 1 < n && !is_blank(lines[i + 1]) && is_indented(lines[i + 1]);
      const bool stands_alone = (i == 0 || is_blank(lines[i - 1])) && (i + 1 == n || is_blank(lines[i + 1])) &&
                                text_follows[i + 1];
      if (next_indented || stands_alone) {
        flush(i);
        blocks.push_back(heading_block(std::string(trim_right(lines[i])), 1, int(i) + 1, int(i) + 1));
        continue;
      }
    }
    if (!in_paragraph) {
      paragraph_start = i;
      in_paragraph = true;
    }
  }
  flush(n);
  return blocks;
}

// ---------------------------------------------------------------------------
// Markdown

size_t leading_spaces(std::string_view line) {
  size_t count = 0;
  while (count < line.size() && line[count] == ' ') ++count;
  return count;
}

// "```lang" or "~~~": the fence character and its length; 0 when the line opens none.
std::pair<char, size_t> fence_opening(std::string_view line) {
  const size_t indent = leading_spaces(line);
  if (indent > 3 || indent >= line.size()) return {0, 0};
  const char fence = line[indent];
  if (fence != '`' && fence != '~') return {0, 0};
  size_t length = 0;
  while (indent + length < line.size() && line[indent + length] == fence) ++length;
  if (length < 3) return {0, 0};
  if (fence == '`' && line.substr(indent + length).find('`') != std::string_view::npos) return {0, 0};
  return {fence, length};
}

bool closes_fence(std::string_view line, char fence, size_t length) {
  const size_t indent = leading_spaces(line);
  if (indent > 3) return false;
  size_t count = 0;
  while (indent + count < line.size() && line[indent + count] == fence) ++count;
  return count >= length && trim(line.substr(indent + count)).empty();
}

// "## Title ##" → level 2, "Title"; level 0 when the line is no ATX heading.
std::pair<int, std::string_view> atx_heading(std::string_view line) {
  const size_t indent = leading_spaces(line);
  if (indent > 3) return {0, {}};
  size_t level = 0;
  while (indent + level < line.size() && line[indent + level] == '#') ++level;
  if (level == 0 || level > 6) return {0, {}};
  std::string_view rest = line.substr(indent + level);
  if (!rest.empty() && rest[0] != ' ' && rest[0] != '\t') return {0, {}};
  rest = trim(rest);
  // An optional closing run of '#' preceded by a space.
  size_t closing = rest.size();
  while (closing > 0 && rest[closing - 1] == '#') --closing;
  if (closing == 0) {
    rest = {};
  } else if (closing < rest.size() && (rest[closing - 1] == ' ' || rest[closing - 1] == '\t')) {
    rest = trim(rest.substr(0, closing));
  }
  return {int(level), rest};
}

// '=' or '-' when the line is a setext underline, else 0.
char setext_underline(std::string_view line) {
  const size_t indent = leading_spaces(line);
  if (indent > 3 || indent >= line.size()) return 0;
  const char mark = line[indent];
  if (mark != '=' && mark != '-') return 0;
  size_t end = indent;
  while (end < line.size() && line[end] == mark) ++end;
  return trim(line.substr(end)).empty() ? mark : 0;
}

bool is_thematic_break(std::string_view line) {
  const std::string_view text = trim(line);
  if (leading_spaces(line) > 3 || text.empty()) return false;
  const char mark = text[0];
  if (mark != '-' && mark != '*' && mark != '_') return false;
  size_t marks = 0;
  for (char c : text) {
    if (c == mark) {
      ++marks;
    } else if (c != ' ' && c != '\t') {
      return false;
    }
  }
  return marks >= 3;
}

bool starts_list_item(std::string_view line) {
  const std::string_view text = trim(line);
  if (text.size() >= 2 && (text[0] == '-' || text[0] == '*' || text[0] == '+') && text[1] == ' ') return true;
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  return digits > 0 && digits + 1 < text.size() && (text[digits] == '.' || text[digits] == ')') &&
         text[digits + 1] == ' ';
}

std::vector<Block> extract_markdown(std::string_view text) {
  const std::vector<std::string_view> lines = split_lines(text);
  const size_t n = lines.size();
  std::vector<Block> blocks;
  size_t paragraph_start = 0;
  bool in_paragraph = false;
  auto flush = [&](size_t end) {
    if (in_paragraph) {
      blocks.push_back(text_block(join_lines(lines, paragraph_start, end), int(paragraph_start) + 1, int(end)));
    }
    in_paragraph = false;
  };

  size_t i = 0;
  // YAML front matter: kept whole as a text block, never read as a setext heading.
  if (n > 0 && trim_right(lines[0]) == "---") {
    size_t close = 1;
    while (close < n && trim_right(lines[close]) != "---" && trim_right(lines[close]) != "...") ++close;
    if (close < n) {
      blocks.push_back(text_block(join_lines(lines, 0, close + 1), 1, int(close) + 1));
      i = close + 1;
    }
  }
  for (; i < n; ++i) {
    const std::string_view line = lines[i];
    if (const auto [fence, length] = fence_opening(line); length > 0) {
      flush(i);
      size_t close = i + 1;
      while (close < n && !closes_fence(lines[close], fence, length)) ++close;
      const size_t end = std::min(close + 1, n);  // an unclosed fence runs to the end
      blocks.push_back(text_block(join_lines(lines, i, end), int(i) + 1, int(end)));
      i = end - 1;
      continue;
    }
    if (const auto [level, title] = atx_heading(line); level > 0) {
      flush(i);
      if (!title.empty()) blocks.push_back(heading_block(std::string(title), level, int(i) + 1, int(i) + 1));
      continue;
    }
    if (is_blank(line)) {
      flush(i);
      continue;
    }
    if (const char mark = setext_underline(line);
        mark != 0 && in_paragraph && !(mark == '-' && starts_list_item(lines[paragraph_start]))) {
      std::string title;
      for (size_t k = paragraph_start; k < i; ++k) {
        if (k != paragraph_start) title += '\n';
        title += trim(lines[k]);
      }
      blocks.push_back(heading_block(std::move(title), mark == '=' ? 1 : 2, int(paragraph_start) + 1, int(i) + 1));
      in_paragraph = false;
      continue;
    }
    if (is_thematic_break(line)) {
      flush(i);
      continue;
    }
    if (!in_paragraph) {
      paragraph_start = i;
      in_paragraph = true;
    }
  }
  flush(n);
  return blocks;
}

// ---------------------------------------------------------------------------
// HTML

struct XmlDocFree {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
using XmlDocPtr = std::unique_ptr<xmlDoc, XmlDocFree>;

// Stands for <br> in collected text until whitespace is collapsed (the same character in
// the document's text is replaced by a space when collected).
constexpr char kLineBreak = '\x1F';

bool is_html_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Wide and half-width characters (CJK, kana): a line break between two of them is
// dropped instead of becoming a space (CSS Text's segment-break rule), so Japanese
// wrapped in the source does not gain spaces.
bool is_east_asian(char32_t cp) {
  const int width = u_getIntPropertyValue(static_cast<UChar32>(cp), UCHAR_EAST_ASIAN_WIDTH);
  const bool hangul = u_getIntPropertyValue(static_cast<UChar32>(cp), UCHAR_SCRIPT) == USCRIPT_HANGUL;
  return (width == U_EA_WIDE || width == U_EA_FULLWIDTH || width == U_EA_HALFWIDTH) && !hangul;
}

// HTML's whitespace rules for text outside <pre>: runs of spaces become one space and
// are trimmed at line ends; kLineBreak becomes "\n".
std::string collapse_whitespace(std::string_view raw) {
  std::string out;
  bool pending_space = false;
  bool pending_segment_break = false;
  char32_t previous = 0;  // last character written on this line; 0 at a line start
  size_t pos = 0;
  while (pos < raw.size()) {
    const char c = raw[pos];
    if (is_html_space(c)) {
      pending_space = true;
      pending_segment_break = pending_segment_break || c == '\n';
      ++pos;
      continue;
    }
    if (c == kLineBreak) {
      out += '\n';
      pending_space = pending_segment_break = false;
      previous = 0;
      ++pos;
      continue;
    }
    const char32_t cp = utf8::decode(raw, pos);
    if (pending_space && previous != 0 && !(pending_segment_break && is_east_asian(previous) && is_east_asian(cp))) {
      out += ' ';
    }
    pending_space = pending_segment_break = false;
    utf8::append(out, cp);
    previous = cp;
  }
  const size_t first = out.find_first_not_of('\n');
  if (first == std::string::npos) return {};
  const size_t last = out.find_last_not_of('\n');
  return out.substr(first, last - first + 1);
}

// The text of <pre>: kept as written, without blank lines before and after it (the
// line range counts from the first character that is not a space).
std::string preformatted_text(std::string raw) {
  std::replace(raw.begin(), raw.end(), kLineBreak, '\n');
  const size_t first = raw.find_first_not_of(" \t\n\r\f");
  if (first == std::string::npos) return {};
  const size_t line_begin = raw.rfind('\n', first);
  raw.erase(0, line_begin == std::string::npos ? 0 : line_begin + 1);
  while (!raw.empty() && is_ascii_space(raw.back())) raw.pop_back();
  return raw;
}

bool name_in(const xmlChar* name, std::initializer_list<const char*> names) {
  const char* text = reinterpret_cast<const char*>(name);
  for (const char* candidate : names) {
    if (std::strcmp(text, candidate) == 0) return true;
  }
  return false;
}

bool is_skipped_element(const xmlChar* name) {
  return name_in(name, {"script", "style", "noscript", "template", "head", "title"});
}

// Elements whose text forms paragraphs of its own (the rest are inline).
bool is_block_element(const xmlChar* name) {
  return name_in(name, {"address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
                        "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
                        "header", "hgroup", "hr", "html", "legend", "li", "main", "menu", "nav", "ol", "p",
                        "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"});
}

int heading_level(const xmlChar* name) {
  const char* text = reinterpret_cast<const char*>(name);
  if ((text[0] == 'h' || text[0] == 'H') && text[1] >= '1' && text[1] <= '6' && text[2] == '\0') return text[1] - '0';
  return 0;
}

// Walks the parsed tree in document order and turns its visible text into blocks.
class HtmlBlockWriter {
 public:
  explicit HtmlBlockWriter(std::vector<Block>& blocks) : blocks_(blocks) {}

  void write(xmlNode* root) {
    Pending top;
    walk_children(root, top);
    flush(top);
  }

 private:
  // Text collected for one block, with the source lines it came from.
  struct Pending {
    std::string raw;
    int line_start = 0;
    int line_end = 0;
  };

  void walk_children(xmlNode* parent, Pending& pending) {
    for (xmlNode* node = parent->children; node != nullptr; node = node->next) walk(node, pending);
  }

  void walk(xmlNode* node, Pending& pending) {
    if (node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) {
      add_text(node, pending);
      return;
    }
    if (node->type != XML_ELEMENT_NODE || node->name == nullptr) return;
    const xmlChar* name = node->name;
    if (is_skipped_element(name)) return;
    note_element_line(node);
    if (name_in(name, {"br"})) {
      pending.raw += kLineBreak;
      return;
    }
    if (const int level = heading_level(name); level > 0) {
      flush(pending);
      Pending heading;
      walk_all_inline(node, heading);
      std::string text = collapse_whitespace(heading.raw);
      if (!text.empty()) {
        Block block = heading_block(std::move(text), level, heading.line_start, heading.line_end);
        blocks_.push_back(std::move(block));
      }
      return;
    }
    if (name_in(name, {"pre", "listing", "xmp", "plaintext"})) {
      flush(pending);
      Pending pre;
      walk_all_inline(node, pre);
      std::string text = preformatted_text(std::move(pre.raw));
      if (!text.empty()) blocks_.push_back(text_block(std::move(text), pre.line_start, pre.line_end));
      return;
    }
    if (is_block_element(name)) {
      flush(pending);
      Pending inner;
      walk_children(node, inner);
      flush(inner);
      return;
    }
    walk_children(node, pending);
  }

  // Headings and <pre>: every descendant's text goes into one block.
  void walk_all_inline(xmlNode* parent, Pending& pending) {
    for (xmlNode* node = parent->children; node != nullptr; node = node->next) {
      if (node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) {
        add_text(node, pending);
      } else if (node->type == XML_ELEMENT_NODE && node->name != nullptr && !is_skipped_element(node->name)) {
        note_element_line(node);
        if (name_in(node->name, {"br"})) {
          pending.raw += kLineBreak;
        } else {
          walk_all_inline(node, pending);
        }
      }
    }
  }

  void add_text(xmlNode* node, Pending& pending) {
    if (node->content == nullptr) return;
    std::string text(reinterpret_cast<const char*>(node->content));
    for (char& c : text) {
      if (c == kLineBreak || c == '\0') c = ' ';
    }
    const size_t first = text.find_first_not_of(" \t\n\r\f");
    if (first != std::string::npos) {
      const size_t last = text.find_last_not_of(" \t\n\r\f");
      // libxml2 records the line where the parser was after the node's first piece of
      // text (the whole text unless an entity or a 1000-byte buffer split it), so the
      // start is found by counting back, but never before the last element seen.
      const int recorded = static_cast<int>(xmlGetLineNo(node));
      if (recorded > 0) {
        const int newlines = int(std::count(text.begin(), text.end(), '\n'));
        const int node_start = std::max(recorded - newlines, anchor_line_);
        const int start = node_start + int(std::count(text.begin(), text.begin() + first, '\n'));
        const int end = node_start + int(std::count(text.begin(), text.begin() + last, '\n'));
        if (pending.line_start == 0 || start < pending.line_start) pending.line_start = start;
        pending.line_end = std::max(pending.line_end, end);
      }
    }
    pending.raw += text;
  }

  void note_element_line(xmlNode* element) {
    const long line = xmlGetLineNo(element);
    if (line > anchor_line_) anchor_line_ = static_cast<int>(line);
  }

  void flush(Pending& pending) {
    std::string text = collapse_whitespace(pending.raw);
    if (!text.empty()) blocks_.push_back(text_block(std::move(text), pending.line_start, pending.line_end));
    pending = Pending{};
  }

  std::vector<Block>& blocks_;
  int anchor_line_ = 1;  // source line of the last element start tag walked past
};

std::vector<Block> extract_html(const std::string& utf8_text) {
  if (trim(utf8_text).empty()) return {};
  if (utf8_text.size() > static_cast<size_t>(INT_MAX)) {
    throw Error(ErrorCode::kUnsupported, tr("HTML file too large ({0} bytes; at most 2 GiB)",
                                            "HTML ファイルが大きすぎます ({0} バイト、最大 2 GiB)", utf8_text.size()));
  }
  static std::once_flag init_once;
  std::call_once(init_once, [] { xmlInitParser(); });
  // The text is UTF-8 already; HTML_PARSE_IGNORE_ENC keeps a <meta charset> from
  // re-decoding it.
  const int options = HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET | HTML_PARSE_RECOVER |
                      HTML_PARSE_IGNORE_ENC;
  XmlDocPtr doc(htmlReadMemory(utf8_text.data(), static_cast<int>(utf8_text.size()), nullptr, "UTF-8", options));
  if (!doc) {
    throw Error(ErrorCode::kCorruptFile, tr("could not be parsed as HTML", "HTML として解析できません"));
  }
  std::vector<Block> blocks;
  HtmlBlockWriter(blocks).write(reinterpret_cast<xmlNode*>(doc.get()));
  return blocks;
}

// ---------------------------------------------------------------------------
// PDF

void ignore_poppler_message(const std::string&, void*) {}

std::vector<Block> extract_pdf(std::string_view bytes) {
  if (bytes.empty()) {
    throw Error(ErrorCode::kCorruptFile, tr("not a PDF: the file is empty", "PDF ではありません: ファイルが空です"));
  }
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    throw Error(ErrorCode::kUnsupported, tr("PDF file too large ({0} bytes; at most 2 GiB)",
                                            "PDF ファイルが大きすぎます ({0} バイト、最大 2 GiB)", bytes.size()));
  }
  // Poppler prints syntax complaints to stderr; the error below says what matters.
  static std::once_flag quiet_once;
  std::call_once(quiet_once, [] { poppler::set_debug_error_function(ignore_poppler_message, nullptr); });

  // load_from_raw_data does not copy: `bytes` outlives the document.
  std::unique_ptr<poppler::document> doc(
      poppler::document::load_from_raw_data(bytes.data(), static_cast<int>(bytes.size())));
  if (!doc) {
    throw Error(ErrorCode::kCorruptFile,
                tr("not a readable PDF (damaged, incomplete or not a PDF at all)",
                   "読み取れる PDF ではありません (壊れているか、不完全か、PDF ではありません)"));
  }
  if (doc->is_locked()) {
    throw Error(ErrorCode::kUnsupported,
                tr("the PDF is protected by a password — save a copy without the password to index it",
                   "PDF がパスワードで保護されています — パスワードなしのコピーを保存すると索引に入れられます"));
  }
  std::vector<Block> blocks;
  const int pages = doc->pages();
  for (int index = 0; index < pages; ++index) {
    std::unique_ptr<poppler::page> page(doc->create_page(index));
    if (!page) continue;
    // Reading order (columns one after the other), not the physical layout.
    const poppler::byte_array bytes_utf8 =
        page->text(poppler::rectf(), poppler::page::non_raw_non_physical_layout).to_utf8();
    std::string raw(bytes_utf8.begin(), bytes_utf8.end());
    if (!utf8::is_valid(raw)) {
      std::string repaired;
      size_t pos = 0;
      while (pos < raw.size()) utf8::append(repaired, utf8::decode(raw, pos));
      raw = std::move(repaired);
    }
    std::replace(raw.begin(), raw.end(), '\f', '\n');
    std::replace(raw.begin(), raw.end(), '\0', ' ');
    const std::string text = normalize_line_ends(raw);
    const std::vector<std::string_view> lines = split_lines(text);
    size_t i = 0;
    while (i < lines.size()) {
      if (is_blank(lines[i])) {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < lines.size() && !is_blank(lines[end])) ++end;
      blocks.push_back(text_block(join_dedented(lines, i, end), int(i) + 1, int(end), index + 1));
      i = end;
    }
  }
  return blocks;
}

}  // namespace

const char* doc_format_name(DocFormat format) {
  switch (format) {
    case DocFormat::kText: return "text";
    case DocFormat::kMarkdown: return "markdown";
    case DocFormat::kHtml: return "html";
    case DocFormat::kPdf: return "pdf";
  }
  return "text";
}

std::optional<DocFormat> format_for_path(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; });
  if (extension == ".txt" || extension == ".text") return DocFormat::kText;
  if (extension == ".md" || extension == ".markdown") return DocFormat::kMarkdown;
  if (extension == ".html" || extension == ".htm" || extension == ".xhtml") return DocFormat::kHtml;
  if (extension == ".pdf") return DocFormat::kPdf;
  return std::nullopt;
}

DecodedText decode_text(std::string_view bytes) {
  const auto has_nul = [](std::string_view text) { return text.find('\0') != std::string_view::npos; };
  DecodedText decoded;
  if (bytes.starts_with("\xEF\xBB\xBF")) {
    const std::string_view body = bytes.substr(3);
    if (has_nul(body)) throw_binary();
    if (!utf8::is_valid(body)) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("starts with a UTF-8 byte order mark but byte {0} is not UTF-8 — the file is damaged",
                     "UTF-8 の BOM で始まりますが {0} バイト目が UTF-8 ではありません — ファイルが壊れています",
                     3 + first_invalid_utf8_offset(body)));
    }
    decoded = {std::string(body), "UTF-8 BOM"};
  } else if (bytes.starts_with("\xFF\xFE") || bytes.starts_with("\xFE\xFF")) {
    const bool little_endian = bytes[0] == '\xFF';
    const char* name = little_endian ? "UTF-16LE" : "UTF-16BE";
    std::optional<std::string> text = convert_strict(name, bytes.substr(2));
    if (!text || bytes.size() % 2 != 0) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("starts with a {0} byte order mark but is not valid {0} — the file is damaged or incomplete",
                     "{0} の BOM で始まりますが正しい {0} ではありません — ファイルが壊れているか不完全です", name));
    }
    if (has_nul(*text)) throw_binary();
    decoded = {std::move(*text), name};
  } else {
    if (has_nul(bytes)) throw_binary();
    if (utf8::is_valid(bytes)) {
      decoded = {std::string(bytes), "UTF-8"};
    } else {
      // Shift_JIS half-width katakana pairs are often valid EUC-JP kanji ("ｶﾀｶﾅ" reads as
      // "鏡凝"), so EUC-JP without any kana loses to a Shift_JIS reading that also fits.
      std::optional<std::string> euc = convert_strict("EUC-JP", bytes);
      std::optional<std::string> sjis;
      if (!euc || !has_kana(*euc)) sjis = convert_strict("windows-31j", bytes);
      if (sjis) {
        decoded = {std::move(*sjis), "Shift_JIS"};
      } else if (euc) {
        decoded = {std::move(*euc), "EUC-JP"};
      } else {
        throw Error(ErrorCode::kCorruptFile,
                    tr("not text in UTF-8, EUC-JP or Shift_JIS (byte {0} is the first that is not UTF-8) — "
                       "binary data, or convert the file to UTF-8",
                       "UTF-8・EUC-JP・Shift_JIS のどのテキストでもありません ({0} バイト目が UTF-8 ではありません) — "
                       "バイナリデータか、UTF-8 に変換してください",
                       first_invalid_utf8_offset(bytes)));
      }
    }
  }
  decoded.utf8 = normalize_line_ends(decoded.utf8);
  return decoded;
}

Document extract_document(DocFormat format, std::string_view bytes) {
  Document document;
  document.format = format;
  if (format == DocFormat::kPdf) {
    document.blocks = extract_pdf(bytes);
    return document;
  }
  DecodedText decoded = decode_text(bytes);
  document.encoding = decoded.encoding;
  switch (format) {
    case DocFormat::kText: document.blocks = extract_text(decoded.utf8); break;
    case DocFormat::kMarkdown: document.blocks = extract_markdown(decoded.utf8); break;
    case DocFormat::kHtml: document.blocks = extract_html(decoded.utf8); break;
    case DocFormat::kPdf: break;
  }
  return document;
}

}  // namespace koto::docs
