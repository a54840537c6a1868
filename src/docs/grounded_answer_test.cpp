#include "koto/grounded_answer.h"

#include <gtest/gtest.h>

#include "koto/i18n.h"

namespace koto {
namespace {

SearchHit hit(std::string path, int line_start, int line_end, std::string heading, std::string text, int page = 0) {
  SearchHit h;
  h.path = std::move(path);
  h.line_start = line_start;
  h.line_end = line_end;
  h.heading = std::move(heading);
  h.text = std::move(text);
  h.page = page;
  return h;
}

TEST(GroundedAnswer, PromptNumbersThePassagesWithTheirSourcesAndAsksForCitations) {
  const std::vector<SearchHit> passages = {hit("規程/経費.txt", 3, 5, "精算", "経費精算の締め日は毎月二十五日です。"),
                                           hit("手引き.pdf", 1, 4, "", "交通費は実費を精算します。", 2)};
  const GroundedPrompt p = build_grounded_prompt("経費精算の締め日は？", passages);
  EXPECT_NE(p.system.find("資料には記載がありません。"), std::string::npos);
  EXPECT_NE(p.system.find("[1]"), std::string::npos);
  EXPECT_EQ(p.user,
            "資料:\n"
            "[1] 出典: 規程/経費.txt 3–5 行目 「精算」\n経費精算の締め日は毎月二十五日です。\n\n"
            "[2] 出典: 手引き.pdf 2 ページ\n交通費は実費を精算します。\n\n"
            "質問: 経費精算の締め日は？\n\n資料だけに基づいて答え、根拠の資料番号を [1] のように示してください。"
            "資料に答えがなければ「資料には記載がありません。」とだけ答えてください。");
}

TEST(GroundedAnswer, CitationsAreReadInOrderOnceAndWithinRange) {
  EXPECT_EQ(cited_passages("締め日は二十五日です [2]。交通費は実費です [1][2]。", 3), (std::vector<int>{2, 1}));
  EXPECT_EQ(cited_passages("根拠は［３］と［１］です。", 3), (std::vector<int>{3, 1}));
  EXPECT_EQ(cited_passages("[1, 3] と [2-3] と [1、2]", 5), (std::vector<int>{1, 3, 2}));
  EXPECT_EQ(cited_passages("[9] と [0] は範囲外、[x] や [1a] は引用ではない", 3), (std::vector<int>{}));
  EXPECT_TRUE(cited_passages("引用なし", 3).empty());
}

TEST(GroundedAnswer, TheFixedSentenceIsRecognised) {
  EXPECT_TRUE(says_not_in_documents("資料には記載がありません。"));
  EXPECT_TRUE(says_not_in_documents("  資料には記載がありません\n"));
  EXPECT_FALSE(says_not_in_documents("資料には記載がありませんが、一般には三日前です。"));
  EXPECT_FALSE(says_not_in_documents(""));
}

TEST(GroundedAnswer, SourcesForPeopleFollowTheLanguage) {
  const SearchHit h = hit("man1/ls.1.txt", 12, 20, "説明", "...");
  {
    ScopedLanguage ja(Language::kJapanese);
    EXPECT_EQ(passage_source(h), "man1/ls.1.txt 12–20 行目 「説明」");
    EXPECT_EQ(passage_source(hit("a.pdf", 1, 1, "", "", 7)), "a.pdf 7 ページ");
  }
  {
    ScopedLanguage en(Language::kEnglish);
    EXPECT_EQ(passage_source(h), "man1/ls.1.txt lines 12–20 (説明)");
  }
}

TEST(GroundedAnswer, RefusalFollowsCoverage) {
  SearchResult r;
  EXPECT_TRUE(should_refuse(r));  // nothing found
  r.hits.push_back(hit("a.txt", 1, 1, "", "本文"));
  r.coverage = DocIndex::kDefaultMinCoverage + 0.01;
  EXPECT_FALSE(should_refuse(r));
  r.coverage = DocIndex::kDefaultMinCoverage - 0.01;
  EXPECT_TRUE(should_refuse(r));
}

}  // namespace
}  // namespace koto
