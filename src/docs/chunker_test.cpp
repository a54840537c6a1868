#include "docs/chunker.h"

#include <gtest/gtest.h>

namespace koto::docs {
namespace {

Block text(std::string s, int line_start, int line_end, int page = 0) {
  Block b;
  b.text = std::move(s);
  b.line_start = line_start;
  b.line_end = line_end;
  b.page = page;
  return b;
}

Block heading(std::string s, int level, int line) {
  Block b;
  b.heading = true;
  b.level = level;
  b.text = std::move(s);
  b.line_start = b.line_end = line;
  return b;
}

int chars(const std::string& s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

TEST(Chunker, PassagesEndAtSentenceEndsAndKeepTheirSection) {
  Document doc;
  doc.blocks = {heading("説明", 1, 1), heading("オプション", 2, 2),
                text("一つ目の文です。二つ目の文です。三つ目の文です。", 3, 3), heading("注意", 1, 4),
                text("最後の文です。", 5, 5)};
  ChunkOptions options;
  options.target_chars = 10;
  options.overlap_chars = 0;
  const std::vector<Chunk> chunks = chunk_document(doc, options);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0].text, "一つ目の文です。");
  EXPECT_EQ(chunks[0].heading, "説明 > オプション");
  EXPECT_EQ(chunks[1].text, "二つ目の文です。");
  EXPECT_EQ(chunks[2].text, "三つ目の文です。");
  EXPECT_EQ(chunks[3].text, "最後の文です。");
  EXPECT_EQ(chunks[3].heading, "注意");
  EXPECT_EQ(chunks[3].line_start, 5);
}

TEST(Chunker, SentencesFillAPassageUpToTheTargetAndOverlap) {
  Document doc;
  doc.blocks = {text("あいうえお。かきくけこ。さしすせそ。たちつてと。", 10, 10)};
  ChunkOptions options;
  options.target_chars = 12;
  options.overlap_chars = 6;
  const std::vector<Chunk> chunks = chunk_document(doc, options);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].text, "あいうえお。かきくけこ。");
  EXPECT_EQ(chunks[1].text, "かきくけこ。さしすせそ。");  // the last sentence carried over
  EXPECT_EQ(chunks[2].text, "さしすせそ。たちつてと。");
}

TEST(Chunker, LineRangesFollowTheBlockLines) {
  Document doc;
  doc.blocks = {text("一行目の文。\n二行目の文。\n三行目の文。", 7, 9)};
  ChunkOptions options;
  options.target_chars = 14;
  options.overlap_chars = 0;
  const std::vector<Chunk> chunks = chunk_document(doc, options);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].text, "一行目の文。\n二行目の文。");
  EXPECT_EQ(chunks[0].line_start, 7);
  EXPECT_EQ(chunks[0].line_end, 8);
  EXPECT_EQ(chunks[1].text, "三行目の文。");
  EXPECT_EQ(chunks[1].line_start, 9);
  EXPECT_EQ(chunks[1].line_end, 9);
}

TEST(Chunker, AnOverlongSentenceIsCutAtACommaAndPagesAreKept) {
  std::string long_sentence;
  for (int i = 0; i < 30; ++i) long_sentence += "長い文、";
  long_sentence += "終わり。";
  Document doc;
  doc.blocks = {text(long_sentence, 1, 1, 3)};
  ChunkOptions options;
  options.target_chars = 40;
  options.max_chars = 50;
  options.overlap_chars = 0;
  const std::vector<Chunk> chunks = chunk_document(doc, options);
  ASSERT_GE(chunks.size(), 3u);
  std::string joined;
  for (const Chunk& c : chunks) {
    EXPECT_LE(chars(c.text), 50);
    EXPECT_EQ(c.page, 3);
    joined += c.text;
  }
  EXPECT_EQ(joined, long_sentence);
  EXPECT_EQ(chunks[0].text.substr(chunks[0].text.size() - 3), "、");  // cut after a comma
}

}  // namespace
}  // namespace koto::docs
