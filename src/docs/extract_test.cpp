#include "docs/extract.h"

#include <gtest/gtest.h>
#include <unicode/ucnv.h>

#include <cstdio>
#include <string>
#include <vector>

#include "koto/error.h"
#include "koto/i18n.h"
#include "test_support.h"

namespace koto::docs {
namespace {

// What a block should be, written compactly in the tests.
struct Expected {
  bool heading;
  int level;
  std::string text;
  int line_start;
  int line_end;
  int page = 0;
};

void expect_blocks(const Document& document, const std::vector<Expected>& expected) {
  ASSERT_EQ(document.blocks.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const Block& block = document.blocks[i];
    SCOPED_TRACE("block " + std::to_string(i) + ": " + block.text);
    EXPECT_EQ(block.heading, expected[i].heading);
    EXPECT_EQ(block.level, expected[i].level);
    EXPECT_EQ(block.text, expected[i].text);
    EXPECT_EQ(block.line_start, expected[i].line_start);
    EXPECT_EQ(block.line_end, expected[i].line_end);
    EXPECT_EQ(block.page, expected[i].page);
  }
}

ErrorCode error_code_of(DocFormat format, std::string_view bytes, std::string* message = nullptr) {
  try {
    extract_document(format, bytes);
  } catch (const Error& error) {
    if (message != nullptr) *message = error.what();
    return error.code();
  }
  ADD_FAILURE() << "no error thrown";
  return ErrorCode::kInternal;
}

// UTF-16 code units as bytes, with the byte order mark first.
std::string utf16_with_bom(std::u16string_view text, bool little_endian) {
  std::string bytes = little_endian ? "\xFF\xFE" : "\xFE\xFF";
  for (char16_t unit : text) {
    const char low = static_cast<char>(unit & 0xFF);
    const char high = static_cast<char>(unit >> 8);
    bytes += little_endian ? low : high;
    bytes += little_endian ? high : low;
  }
  return bytes;
}

// UTF-8 text in another encoding, through ICU (a second source besides the hard-coded bytes).
std::string encode_with_icu(const char* charset, const std::string& utf8_text) {
  UErrorCode status = U_ZERO_ERROR;
  std::string out(utf8_text.size() * 2 + 16, '\0');
  const int32_t length = ucnv_convert(charset, "UTF-8", out.data(), static_cast<int32_t>(out.size()),
                                      utf8_text.data(), static_cast<int32_t>(utf8_text.size()), &status);
  EXPECT_TRUE(U_SUCCESS(status)) << u_errorName(status);
  out.resize(length);
  return out;
}

// ---------------------------------------------------------------------------
// decode_text

TEST(DecodeText, Utf8IsKeptAndEmptyInputIsEmptyText) {
  const DecodedText decoded = decode_text("日本語の文書です。\n");
  EXPECT_EQ(decoded.utf8, "日本語の文書です。\n");
  EXPECT_EQ(decoded.encoding, "UTF-8");

  const DecodedText empty = decode_text("");
  EXPECT_EQ(empty.utf8, "");
  EXPECT_EQ(empty.encoding, "UTF-8");
}

TEST(DecodeText, Utf8ByteOrderMarkIsRemoved) {
  const DecodedText decoded = decode_text("\xEF\xBB\xBF日本語の文書です。");
  EXPECT_EQ(decoded.utf8, "日本語の文書です。");
  EXPECT_EQ(decoded.encoding, "UTF-8 BOM");
}

TEST(DecodeText, LineEndsBecomeNewlines) {
  const DecodedText decoded = decode_text("一行目\r\n二行目\r三行目\r\n\r\n");
  EXPECT_EQ(decoded.utf8, "一行目\n二行目\n三行目\n\n");
  EXPECT_EQ(decoded.encoding, "UTF-8");
}

TEST(DecodeText, Utf16LittleAndBigEndianWithByteOrderMark) {
  // 𠮷 (U+20BB7) is a surrogate pair in UTF-16.
  const std::u16string text = u"日本語の文書です。\r\n𠮷野家";
  const DecodedText little = decode_text(utf16_with_bom(text, true));
  EXPECT_EQ(little.utf8, "日本語の文書です。\n𠮷野家");
  EXPECT_EQ(little.encoding, "UTF-16LE");

  const DecodedText big = decode_text(utf16_with_bom(text, false));
  EXPECT_EQ(big.utf8, "日本語の文書です。\n𠮷野家");
  EXPECT_EQ(big.encoding, "UTF-16BE");

  EXPECT_EQ(decode_text("\xFF\xFE").utf8, "");  // only the mark
}

TEST(DecodeText, BrokenUtf16IsCorrupt) {
  const std::u16string lone_high_surrogate = {u'日', char16_t(0xD842), u'本'};
  EXPECT_EQ(error_code_of(DocFormat::kText, utf16_with_bom(lone_high_surrogate, true)), ErrorCode::kCorruptFile);
  const std::string odd_length = utf16_with_bom(u"日本", true) + "\x41";
  EXPECT_EQ(error_code_of(DocFormat::kText, odd_length), ErrorCode::kCorruptFile);
}

TEST(DecodeText, ShiftJisFromKnownBytes) {
  // 日本語の文書です。 in Shift_JIS.
  const DecodedText decoded = decode_text("\x93\xFA\x96\x7B\x8C\xEA\x82\xCC\x95\xB6\x8F\x91\x82\xC5\x82\xB7\x81\x42");
  EXPECT_EQ(decoded.utf8, "日本語の文書です。");
  EXPECT_EQ(decoded.encoding, "Shift_JIS");
}

TEST(DecodeText, EucJpFromKnownBytesWithCrlf) {
  // 日本語の文書です。CRLF 日本 in EUC-JP.
  const DecodedText decoded =
      decode_text("\xC6\xFC\xCB\xDC\xB8\xEC\xA4\xCE\xCA\xB8\xBD\xF1\xA4\xC7\xA4\xB9\xA1\xA3\r\n\xC6\xFC\xCB\xDC");
  EXPECT_EQ(decoded.utf8, "日本語の文書です。\n日本");
  EXPECT_EQ(decoded.encoding, "EUC-JP");
}

TEST(DecodeText, ShiftJisHalfWidthKatakanaAndWindowsExtensions) {
  // 半角ｶﾅのﾃｽﾄ①～: half-width katakana are single bytes; ① (87 40) exists only in
  // CP932, and CP932's 81 60 is the full-width tilde U+FF5E.
  const DecodedText decoded = decode_text("\x94\xBC\x8A\x70\xB6\xC5\x82\xCC\xC3\xBD\xC4\x87\x40\x81\x60");
  EXPECT_EQ(decoded.utf8, "半角ｶﾅのﾃｽﾄ①\uFF5E");
  EXPECT_EQ(decoded.encoding, "Shift_JIS");

  // ｶﾀｶﾅ (B6 C0 B6 C5) is also valid EUC-JP (鏡凝); without kana the EUC-JP reading loses.
  const DecodedText katakana_only = decode_text("\xB6\xC0\xB6\xC5");
  EXPECT_EQ(katakana_only.utf8, "ｶﾀｶﾅ");
  EXPECT_EQ(katakana_only.encoding, "Shift_JIS");
}

TEST(DecodeText, EucJpHalfWidthKatakanaWithKanaIsEucJp) {
  // 日本のｶﾅ: half-width katakana take the SS2 prefix 8E in EUC-JP.
  const DecodedText decoded = decode_text("\xC6\xFC\xCB\xDC\xA4\xCE\x8E\xB6\x8E\xC5");
  EXPECT_EQ(decoded.utf8, "日本のｶﾅ");
  EXPECT_EQ(decoded.encoding, "EUC-JP");
}

TEST(DecodeText, LongerTextsRoundTripThroughIcuEncoders) {
  const std::string text =
      "吾輩は猫である。名前はまだ無い。\nどこで生れたかとんと見当がつかぬ。"
      "「ＡＢＣ」と半角のABC、記号（）・ー、カタカナのテキスト。\n";
  const DecodedText sjis = decode_text(encode_with_icu("windows-31j", text));
  EXPECT_EQ(sjis.encoding, "Shift_JIS");
  EXPECT_EQ(sjis.utf8, text);
  const DecodedText euc = decode_text(encode_with_icu("EUC-JP", text));
  EXPECT_EQ(euc.encoding, "EUC-JP");
  EXPECT_EQ(euc.utf8, text);
}

TEST(DecodeText, BinaryDataIsCorrupt) {
  const std::string png("\x89PNG\r\n\x1A\n\0\0\0\x0DIHDR\0\0\x01\0", 20);
  std::string message;
  EXPECT_EQ(error_code_of(DocFormat::kText, png, &message), ErrorCode::kCorruptFile);
  EXPECT_EQ(message, "not a text file: it contains NUL bytes (binary data)");
  {
    ScopedLanguage japanese(Language::kJapanese);
    EXPECT_EQ(error_code_of(DocFormat::kMarkdown, png, &message), ErrorCode::kCorruptFile);
    EXPECT_EQ(message, "テキストファイルではありません: NUL バイトを含みます (バイナリデータ)");
  }

  // No NUL, but valid in none of the encodings (82 20 is no Shift_JIS character).
  EXPECT_EQ(error_code_of(DocFormat::kText, "日本\x82\x20\xFF", &message), ErrorCode::kCorruptFile);
  EXPECT_EQ(message,
            "not text in UTF-8, EUC-JP or Shift_JIS (byte 6 is the first that is not UTF-8) — "
            "binary data, or convert the file to UTF-8");

  EXPECT_EQ(error_code_of(DocFormat::kText, "\xEF\xBB\xBF日本\xFF", &message), ErrorCode::kCorruptFile);
  EXPECT_EQ(message, "starts with a UTF-8 byte order mark but byte 9 is not UTF-8 — the file is damaged");
}

// ---------------------------------------------------------------------------
// format_for_path

TEST(ExtractFormat, ByExtensionIgnoringCase) {
  EXPECT_EQ(format_for_path("メモ.txt"), DocFormat::kText);
  EXPECT_EQ(format_for_path("/docs/README.TEXT"), DocFormat::kText);
  EXPECT_EQ(format_for_path("設計.md"), DocFormat::kMarkdown);
  EXPECT_EQ(format_for_path("notes.Markdown"), DocFormat::kMarkdown);
  EXPECT_EQ(format_for_path("index.HTML"), DocFormat::kHtml);
  EXPECT_EQ(format_for_path("a/b/page.htm"), DocFormat::kHtml);
  EXPECT_EQ(format_for_path("book.xhtml"), DocFormat::kHtml);
  EXPECT_EQ(format_for_path("報告書.PDF"), DocFormat::kPdf);
  EXPECT_EQ(format_for_path("archive.tar.gz"), std::nullopt);
  EXPECT_EQ(format_for_path("notes.txt.bak"), std::nullopt);
  EXPECT_EQ(format_for_path("Makefile"), std::nullopt);
  EXPECT_EQ(format_for_path(".md"), std::nullopt);  // a hidden file named ".md", no extension

  EXPECT_STREQ(doc_format_name(DocFormat::kText), "text");
  EXPECT_STREQ(doc_format_name(DocFormat::kMarkdown), "markdown");
  EXPECT_STREQ(doc_format_name(DocFormat::kHtml), "html");
  EXPECT_STREQ(doc_format_name(DocFormat::kPdf), "pdf");
}

// ---------------------------------------------------------------------------
// Plain text

TEST(ExtractText, ManualPageSectionsAreHeadings) {
  const std::string page =
      "LS(1)                 ユーザーコマンド                 LS(1)\n"  // 1
      "\n"
      "名前\n"                                                         // 3
      "       ls - ディレクトリの内容をリスト表示する\n"
      "\n"
      "書式\n"                                                         // 6
      "       ls [オプション]... [ファイル]...\n"
      "\n"
      "説明\n"                                                         // 9
      "       FILE に関する情報を一覧表示します。\n"
      "       要素はアルファベット順でソートされます。\n"
      "\n"
      "       -a, --all\n"                                             // 13
      "              . で始まる要素を無視しない\n"
      "\n"
      "GNU coreutils                 2021年5月                 LS(1)\n";  // 16
  const Document document = extract_document(DocFormat::kText, page);
  EXPECT_EQ(document.format, DocFormat::kText);
  EXPECT_EQ(document.encoding, "UTF-8");
  expect_blocks(document, {
      {false, 0, "LS(1)                 ユーザーコマンド                 LS(1)", 1, 1},
      {true, 1, "名前", 3, 3},
      {false, 0, "ls - ディレクトリの内容をリスト表示する", 4, 4},
      {true, 1, "書式", 6, 6},
      {false, 0, "ls [オプション]... [ファイル]...", 7, 7},
      {true, 1, "説明", 9, 9},
      {false, 0, "FILE に関する情報を一覧表示します。\n要素はアルファベット順でソートされます。", 10, 11},
      {false, 0, "-a, --all\n       . で始まる要素を無視しない", 13, 14},
      {false, 0, "GNU coreutils                 2021年5月                 LS(1)", 16, 16},
  });
}

TEST(ExtractText, HeadingNeedsAShortUnindentedLineThatIsNoSentence) {
  std::string sixty_one_chars;
  for (int i = 0; i < 61; ++i) sixty_one_chars += "あ";
  const std::string text =
      "第一章　はじめに\n"                                       // 1: alone between blank lines
      "\n"
      "これは日本語の文書です。段落の一行目。\n"                 // 3
      "二行目です。\n"
      "\n"
      "終わりに。\n"                                             // 6: ends like a sentence
      "\n"
      "設定方法\n"                                               // 8: followed by an indented line
      "　全角空白で字下げした段落です。\n"
      "\n" +
      sixty_one_chars + "\n"                                     // 11: too long
      "\n"
      "- 箇条書きの項目\n"                                       // 13: a bullet
      "  続きの行\n"
      "\n"
      "int main() {\n"                                           // 16: code
      "    return 0;\n"
      "}\n"
      "\n"
      "最後の行\n";                                              // 20: nothing follows it
  const Document document = extract_document(DocFormat::kText, text);
  expect_blocks(document, {
      {true, 1, "第一章　はじめに", 1, 1},
      {false, 0, "これは日本語の文書です。段落の一行目。\n二行目です。", 3, 4},
      {false, 0, "終わりに。", 6, 6},
      {true, 1, "設定方法", 8, 8},
      {false, 0, "　全角空白で字下げした段落です。", 9, 9},
      {false, 0, sixty_one_chars, 11, 11},
      {false, 0, "- 箇条書きの項目\n  続きの行", 13, 14},
      {false, 0, "int main() {\n    return 0;\n}", 16, 18},
      {false, 0, "最後の行", 20, 20},
  });
}

TEST(ExtractText, OutlineWithoutBlankLines) {
  const Document document = extract_document(DocFormat::kText,
                                             "インストール\n"
                                             "    make を実行します。\n"
                                             "使い方\n"
                                             "    koto を実行します。   \n"
                                             "    終わり。\n");
  expect_blocks(document, {
      {true, 1, "インストール", 1, 1},
      {false, 0, "make を実行します。", 2, 2},
      {true, 1, "使い方", 3, 3},
      {false, 0, "koto を実行します。\n終わり。", 4, 5},
  });
}

TEST(ExtractText, NoBreakSpacesIndentLikeSpaces) {
  // debian-reference's .txt indents some lines with U+00A0: they are body, not headings.
  const Document document = extract_document(DocFormat::kText,
                                             "1.4. 基本\n"
                                             "\u00A0 \u00A0 ます。Debian システムも例外ではありませ\n"
                                             "    ん。\n");
  ASSERT_EQ(document.blocks.size(), 2u);
  EXPECT_TRUE(document.blocks[0].heading);
  EXPECT_EQ(document.blocks[0].text, "1.4. 基本");
  EXPECT_FALSE(document.blocks[1].heading);
  EXPECT_EQ(document.blocks[1].line_start, 2);
  EXPECT_EQ(document.blocks[1].line_end, 3);
}

TEST(ExtractText, ShiftJisWithCrlfAndEmptyInput) {
  // 見出し CRLF CRLF 日本語の文書です。 CRLF 日本 CRLF, in Shift_JIS.
  const std::string bytes =
      "\x8C\xA9\x8F\x6F\x82\xB5\r\n\r\n"
      "\x93\xFA\x96\x7B\x8C\xEA\x82\xCC\x95\xB6\x8F\x91\x82\xC5\x82\xB7\x81\x42\r\n"
      "\x93\xFA\x96\x7B\r\n";
  const Document document = extract_document(DocFormat::kText, bytes);
  EXPECT_EQ(document.encoding, "Shift_JIS");
  expect_blocks(document, {
      {true, 1, "見出し", 1, 1},
      {false, 0, "日本語の文書です。\n日本", 3, 4},
  });

  const Document empty = extract_document(DocFormat::kText, "");
  EXPECT_EQ(empty.encoding, "UTF-8");
  EXPECT_TRUE(empty.blocks.empty());
  EXPECT_TRUE(extract_document(DocFormat::kText, " \n\t\n\u3000\n").blocks.empty());
}

// ---------------------------------------------------------------------------
// Markdown

TEST(ExtractMarkdown, HeadingsParagraphsAndFencedCode) {
  const std::string markdown =
      "---\n"                        // 1: front matter
      "title: 試験\n"
      "---\n"
      "# 日本語の文書\n"             // 4
      "\n"
      "最初の段落です。\n"           // 6
      "二行目です。\n"
      "\n"
      "## 使い方 ##\n"               // 9
      "```sh\n"                      // 10
      "# コメントは見出しではない\n"
      "\n"
      "echo こんにちは\n"
      "```\n"                        // 14
      "設定\n"                       // 15
      "====\n"
      "\n"
      "詳細な説明\n"                 // 18
      "---\n"
      "\n"
      "- 項目一\n"                   // 21
      "- 項目二\n"
      "---\n"                        // 23: a rule after a list, not a heading
      "###### 六段目\n"              // 24
      "    # 字下げしたコード\n"     // 25: indented code, not a heading
      "#タグ\n"                      // 26: no space after '#': not a heading
      "\n"
      "***\n"                        // 28: a rule
      "終わり。\n";                  // 29
  const Document document = extract_document(DocFormat::kMarkdown, markdown);
  EXPECT_EQ(document.format, DocFormat::kMarkdown);
  EXPECT_EQ(document.encoding, "UTF-8");
  expect_blocks(document, {
      {false, 0, "---\ntitle: 試験\n---", 1, 3},
      {true, 1, "日本語の文書", 4, 4},
      {false, 0, "最初の段落です。\n二行目です。", 6, 7},
      {true, 2, "使い方", 9, 9},
      {false, 0, "```sh\n# コメントは見出しではない\n\necho こんにちは\n```", 10, 14},
      {true, 1, "設定", 15, 16},
      {true, 2, "詳細な説明", 18, 19},
      {false, 0, "- 項目一\n- 項目二", 21, 22},
      {true, 6, "六段目", 24, 24},
      {false, 0, "    # 字下げしたコード\n#タグ", 25, 26},
      {false, 0, "終わり。", 29, 29},
  });
}

TEST(ExtractMarkdown, UnclosedFenceRunsToTheEndAndTildesFence) {
  const Document document = extract_document(DocFormat::kMarkdown,
                                              "~~~~\n"
                                              "```\n"
                                              "~~~\n"  // shorter than the opening: still inside
                                              "~~~~~\n"
                                              "本文\n"
                                              "````\n"
                                              "# 見出しではない\n");
  expect_blocks(document, {
      {false, 0, "~~~~\n```\n~~~\n~~~~~", 1, 4},
      {false, 0, "本文", 5, 5},
      {false, 0, "````\n# 見出しではない", 6, 7},
  });
}

// ---------------------------------------------------------------------------
// HTML

TEST(ExtractHtml, VisibleTextHeadingsListsTablesAndPre) {
  const std::string html =
      "<!DOCTYPE html>\n"                                                   // 1
      "<html><head><title>題名は本文ではない</title>\n"
      "<style>p { color: red }</style></head>\n"
      "<body>\n"
      "<h1>日本語の\n"                                                      // 5
      "  見出し</h1>\n"
      "<p>最初の段落です。\n"                                               // 7
      "改行の後&amp;続き。 A&lt;B &#x65E5;&#26412;</p>\n"
      "<script>var hidden = \"見えない\";</script><noscript>これも見えない</noscript>\n"
      "<ul>\n"
      "  <li>項目一\n"                                                      // 11
      "    <ul><li>入れ子の項目</li></ul>\n"
      "  </li>\n"
      "  <li>項目<b>二</b>\n"                                               // 14
      "  </li>\n"
      "</ul>\n"
      "<pre>\n"                                                             // 17
      "\n"
      "  int main() {\n"
      "    return 0;\n"
      "  }\n"
      "</pre>\n"
      "<div>直接の<span>テキスト</span><br>二行目<template>型</template></div>\n"  // 23
      "<table><tr><th>名前</th><td>値&nbsp;です</td></tr></table>\n"
      "<h3>小見出し</h3><dl><dt>用語</dt><dd>説明です。</dd></dl>\n"
      "<blockquote>引用文です。</blockquote>\n"                             // 26
      "本文の最後。\n"
      "</body></html>\n";
  const Document document = extract_document(DocFormat::kHtml, html);
  EXPECT_EQ(document.format, DocFormat::kHtml);
  EXPECT_EQ(document.encoding, "UTF-8");
  expect_blocks(document, {
      {true, 1, "日本語の見出し", 5, 6},
      {false, 0, "最初の段落です。改行の後&続き。 A<B 日本", 7, 8},
      {false, 0, "項目一", 11, 11},
      {false, 0, "入れ子の項目", 12, 12},
      {false, 0, "項目二", 14, 14},
      {false, 0, "  int main() {\n    return 0;\n  }", 19, 21},  // the blank first line is dropped
      {false, 0, "直接のテキスト\n二行目", 23, 23},
      {false, 0, "名前", 24, 24},
      {false, 0, "値\u00A0です", 24, 24},
      {true, 3, "小見出し", 25, 25},
      {false, 0, "用語", 25, 25},
      {false, 0, "説明です。", 25, 25},
      {false, 0, "引用文です。", 26, 26},
      {false, 0, "本文の最後。", 27, 27},
  });
}

TEST(ExtractHtml, WrongMetaCharsetDoesNotReDecodeUtf8) {
  const std::string html =
      "<html><head><meta charset=\"shift_jis\"></head>\n"
      "<body><p>日本語の文書です。</p></body></html>\n";
  const Document document = extract_document(DocFormat::kHtml, html);
  EXPECT_EQ(document.encoding, "UTF-8");
  expect_blocks(document, {{false, 0, "日本語の文書です。", 2, 2}});

  const std::string http_equiv =
      "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=EUC-JP\"></head>\n"
      "<body><h2>見出し</h2></body></html>\n";
  expect_blocks(extract_document(DocFormat::kHtml, http_equiv), {{true, 2, "見出し", 2, 2}});
}

TEST(ExtractHtml, ShiftJisBytesAreDecodedFirst) {
  // <p>日本語の文書です。</p> in Shift_JIS, after a meta that says so.
  const std::string html =
      "<meta charset=\"Shift_JIS\">\n<p>"
      "\x93\xFA\x96\x7B\x8C\xEA\x82\xCC\x95\xB6\x8F\x91\x82\xC5\x82\xB7\x81\x42"
      "</p>\n";
  const Document document = extract_document(DocFormat::kHtml, html);
  EXPECT_EQ(document.encoding, "Shift_JIS");
  expect_blocks(document, {{false, 0, "日本語の文書です。", 2, 2}});
}

TEST(ExtractHtml, LongTextKeepsItsLineRange) {
  // libxml2 reports a long text node's line after its first 1000 bytes; the range
  // must still start where the text does.
  std::string html = "<html><body>\n<p>\n";
  std::string expected;
  for (int i = 1; i <= 100; ++i) {
    const std::string line = "これは長い段落の" + std::to_string(i) + "行目です。";
    html += line + "\n";
    expected += line;  // the newline between two Japanese characters is dropped
  }
  html += "</p>\n<p>次の段落</p>\n</body></html>\n";
  const Document document = extract_document(DocFormat::kHtml, html);
  expect_blocks(document, {
      {false, 0, expected, 3, 102},
      {false, 0, "次の段落", 104, 104},
  });
}

TEST(ExtractHtml, LineBreaksBetweenLatinWordsBecomeSpaces) {
  const Document document =
      extract_document(DocFormat::kHtml, "<p>koto is\na local engine\t\t for 日本語\nの文書</p>");
  expect_blocks(document, {{false, 0, "koto is a local engine for 日本語の文書", 1, 3}});
}

TEST(ExtractHtml, EmptyAndBinaryInput) {
  EXPECT_TRUE(extract_document(DocFormat::kHtml, "").blocks.empty());
  EXPECT_TRUE(extract_document(DocFormat::kHtml, "<html><head><title>題</title></head><body> </body></html>")
                  .blocks.empty());
  EXPECT_EQ(error_code_of(DocFormat::kHtml, std::string("<p>\0</p>", 8)), ErrorCode::kCorruptFile);
}

// ---------------------------------------------------------------------------
// PDF

// A PDF file written by hand: one page per content stream, Helvetica as F1, and an
// xref table whose offsets are counted here. `encrypt` adds a standard security
// handler whose user password is not empty, so the file cannot be opened without it.
std::string make_pdf(const std::vector<std::string>& page_contents, bool encrypt = false) {
  std::vector<std::string> objects = {"<< /Type /Catalog /Pages 2 0 R >>", "",
                                      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"};
  std::string kids;
  for (const std::string& content : page_contents) {
    const size_t page_number = objects.size() + 1;
    kids += std::to_string(page_number) + " 0 R ";
    objects.push_back("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                      "/Contents " + std::to_string(page_number + 1) + " 0 R >>");
    objects.push_back("<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content + "\nendstream");
  }
  objects[1] = "<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(page_contents.size()) + " >>";
  std::string trailer_extra;
  if (encrypt) {
    objects.push_back("<< /Filter /Standard /V 1 /R 2 /O <" + std::string(64, '1') + "> /U <" + std::string(64, '2') +
                      "> /P -4 >>");
    trailer_extra = " /Encrypt " + std::to_string(objects.size()) + " 0 R /ID [<" + std::string(32, '0') + "> <" +
                    std::string(32, '0') + ">]";
  }
  std::string pdf = "%PDF-1.4\n";
  std::vector<size_t> offsets;
  for (size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
  }
  const size_t xref_offset = pdf.size();
  pdf += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t offset : offsets) {
    char entry[32];
    std::snprintf(entry, sizeof entry, "%010zu 00000 n \n", offset);  // exactly 20 bytes
    pdf += entry;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objects.size() + 1) + " /Root 1 0 R" + trailer_extra +
         " >>\nstartxref\n" + std::to_string(xref_offset) + "\n%%EOF\n";
  return pdf;
}

TEST(ExtractPdf, TextPerPageSplitAtBlankLines) {
  const std::string pdf = make_pdf({
      "BT /F1 12 Tf 72 720 Td (Hello PDF world.) Tj 0 -14 Td (Second line here.) Tj ET\n"
      "BT /F1 12 Tf 72 600 Td (Another paragraph.) Tj ET",
      "BT /F1 12 Tf 72 720 Td (Page two text.) Tj ET",
      "",  // an empty page gives no block
      "BT /F1 12 Tf 72 720 Td (Last page.) Tj ET",
  });
  const Document document = extract_document(DocFormat::kPdf, pdf);
  EXPECT_EQ(document.format, DocFormat::kPdf);
  EXPECT_EQ(document.encoding, "");
  expect_blocks(document, {
      {false, 0, "Hello PDF world.\nSecond line here.", 1, 2, 1},
      {false, 0, "Another paragraph.", 4, 4, 1},
      {false, 0, "Page two text.", 1, 1, 2},
      {false, 0, "Last page.", 1, 1, 4},
  });
}

TEST(ExtractPdf, PasswordProtectedIsUnsupported) {
  std::string message;
  EXPECT_EQ(error_code_of(DocFormat::kPdf, make_pdf({"BT /F1 12 Tf 72 720 Td (Secret.) Tj ET"}, true), &message),
            ErrorCode::kUnsupported);
  EXPECT_EQ(message, "the PDF is protected by a password — save a copy without the password to index it");
}

TEST(ExtractPdf, GarbageAndEmptyAreCorrupt) {
  std::string message;
  EXPECT_EQ(error_code_of(DocFormat::kPdf, "これは PDF ではありません。", &message), ErrorCode::kCorruptFile);
  EXPECT_EQ(message, "not a readable PDF (damaged, incomplete or not a PDF at all)");
  EXPECT_EQ(error_code_of(DocFormat::kPdf, "", &message), ErrorCode::kCorruptFile);
  EXPECT_EQ(message, "not a PDF: the file is empty");
  {
    ScopedLanguage japanese(Language::kJapanese);
    EXPECT_EQ(error_code_of(DocFormat::kPdf, "%PDF-1.4\n壊れた", &message), ErrorCode::kCorruptFile);
    EXPECT_EQ(message, "読み取れる PDF ではありません (壊れているか、不完全か、PDF ではありません)");
  }
}

}  // namespace
}  // namespace koto::docs
