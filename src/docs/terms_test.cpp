#include "docs/terms.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace koto::docs {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

TEST(Terms, NormalizationFoldsWidthsAndCase) {
  EXPECT_EQ(normalize_for_search("ＰＲＩＮＴＦ　ｶﾀｶﾅ　①"), "printf カタカナ 1");
  EXPECT_EQ(normalize_for_search("ファイル"), "ファイル");
  // The final long-vowel mark of a katakana word: サーバー and サーバ are one word.
  EXPECT_EQ(normalize_for_search("サーバーとユーザーのメモリー"), "サーバとユーザのメモリ");
  EXPECT_EQ(normalize_for_search("ｻｰﾊﾞｰ"), "サーバ");
  EXPECT_EQ(normalize_for_search("データベース"), "データベース");  // only a final one
  EXPECT_EQ(normalize_for_search("フォルダー。"), "フォルダ。");
  EXPECT_EQ(normalize_for_search("キー"), "キー");  // too short to be a spelling variant
  // A word wrapped across lines is whole again; a blank line (a paragraph) stays.
  EXPECT_EQ(normalize_for_search("パスフ\n    レーズを設定"), "パスフレーズを設定");
  EXPECT_EQ(normalize_for_search("設定します。\n\n次に"), "設定します。\n\n次に");
  EXPECT_EQ(normalize_for_search("ssh\n  keygen"), "ssh\n  keygen");
}

TEST(Terms, GramsAreBigramsOfNonAsciiRunsAndLoneCharacters) {
  EXPECT_EQ(char_grams("日本語の文書"), (std::vector<std::string>{"日本", "本語", "語の", "の文", "文書"}));
  EXPECT_EQ(char_grams("鍵 ls 設定。"), (std::vector<std::string>{"鍵", "設定"}));
  EXPECT_TRUE(char_grams("printf --all").empty());
}

TEST(Terms, WordsAreMeCabContentWordsPlusAsciiWordsWhole) {
  TermExtractor terms;
  const std::vector<std::string> words = terms.words(normalize_for_search("ls コマンドで隠しファイルを表示するには --all を使います。ld.so も"));
  EXPECT_TRUE(contains(words, "ls"));
  EXPECT_TRUE(contains(words, "--all"));
  EXPECT_TRUE(contains(words, "all"));
  EXPECT_TRUE(contains(words, "ld.so"));
  EXPECT_TRUE(contains(words, "コマンド"));
  EXPECT_TRUE(contains(words, "ファイル"));
  EXPECT_TRUE(contains(words, "表示"));
  EXPECT_TRUE(contains(words, "使う"));  // dictionary form of 使い
  EXPECT_FALSE(contains(words, "を"));    // particles are not terms
  EXPECT_FALSE(contains(words, "する"));
  EXPECT_FALSE(contains(words, "-"));
}

TEST(Terms, TaggedWordsMarkNounsAsContent) {
  TermExtractor terms;
  for (const auto& w : terms.tagged_words(normalize_for_search("タイムゾーンを変更したい"))) {
    if (w.text == "タイムゾーン" || w.text == "変更") {
      EXPECT_TRUE(w.content) << w.text;
    }
  }
  // MeCab (IPADIC) splits タイム|ゾーン; the bigrams match the whole word.
  const auto words = terms.words("タイムゾーンを変更したい");
  EXPECT_TRUE(contains(words, "タイム"));
  EXPECT_TRUE(contains(words, "ゾーン"));
  EXPECT_FALSE(contains(words, "し"));
  EXPECT_EQ(char_grams("タイムゾーン")[2], "ムゾ");
  EXPECT_TRUE(contains(words, "変更"));
}

}  // namespace
}  // namespace koto::docs
