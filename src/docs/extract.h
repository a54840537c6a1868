// Reading a document file into text blocks: the encoding is detected and converted to
// UTF-8, and the format's structure (headings, paragraphs, PDF pages) is kept so that
// chunks can say where they came from. Nothing here is normalised: blocks keep the
// original characters for display; search normalisation happens in `terms`.
//
// Thread-safety: the functions are pure and may run on several threads at once.
// Errors: a file that cannot be decoded or parsed throws koto::Error (kCorruptFile
// or kUnsupported) whose message says why, without the path (the caller adds it).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace koto::docs {

enum class DocFormat { kText, kMarkdown, kHtml, kPdf };

// "text", "markdown", "html", "pdf".
const char* doc_format_name(DocFormat format);

// By extension, case-insensitive: .txt .text → text; .md .markdown → markdown;
// .html .htm .xhtml → html; .pdf → pdf. Anything else: nullopt (the indexer skips it).
std::optional<DocFormat> format_for_path(const std::filesystem::path& path);

struct DecodedText {
  std::string utf8;      // the text as UTF-8, BOM removed, "\r\n" and "\r" turned into "\n"
  std::string encoding;  // "UTF-8", "UTF-8 BOM", "UTF-16LE", "UTF-16BE", "EUC-JP" or "Shift_JIS"
};

// Detects the encoding: a BOM (UTF-8, UTF-16LE/BE) first; then valid UTF-8; then the
// Japanese legacy encodings EUC-JP and Shift_JIS (CP932, with its vendor extensions),
// each tried in strict mode. Throws kCorruptFile when none of them fits (binary data).
DecodedText decode_text(std::string_view bytes);

// One unit of a document's structure.
struct Block {
  bool heading = false;
  int level = 0;         // heading level, 1 = top; 0 for text blocks
  std::string text;      // UTF-8, original characters; a paragraph's lines joined with "\n"
  int line_start = 0;    // 1-based line range in the decoded text (PDF: within the page)
  int line_end = 0;
  int page = 0;          // PDF: 1-based page number; 0 for other formats
};

struct Document {
  DocFormat format = DocFormat::kText;
  std::string encoding;  // as DecodedText::encoding ("" for PDF)
  std::vector<Block> blocks;
};

// Splits `bytes` (the whole file) into blocks in reading order.
// - text: paragraphs are runs of non-blank lines; a heading is a short line (≤ 60
//   characters) that is not indented, does not end like a sentence (。．.！？!?:：、,)
//   and is followed by an indented line or preceded and followed by a blank line
//   (the outline of manual pages and most plain-text manuals).
// - markdown: ATX (`#`…) and setext headings; fenced code blocks are text blocks kept whole.
// - html: visible text only (no script/style/template/head); h1–h6 are headings; p, li,
//   pre, td/th, dt/dd, blockquote and div text are paragraphs; lines are the source lines
//   of the element. Parsed by libxml2's HTML parser (tolerant of tag soup).
// - pdf: text per page (poppler-cpp), paragraphs split at blank lines; `page` set.
Document extract_document(DocFormat format, std::string_view bytes);

}  // namespace koto::docs
