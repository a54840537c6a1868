#include "koto/i18n.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

namespace koto {
namespace {

TEST(I18n, PicksJapaneseFromTheLocale) {
  ::setenv("KOTO_LANG", "ja_JP.UTF-8", 1);
  EXPECT_EQ(detect_language_from_environment(), Language::kJapanese);
  EXPECT_EQ(tr("{0}: no such file", "{0}: ファイルがありません", "a.gguf"),
            "a.gguf: ファイルがありません");
  ::setenv("KOTO_LANG", "C", 1);
  EXPECT_EQ(detect_language_from_environment(), Language::kEnglish);
  EXPECT_EQ(tr("{0}: no such file", "{0}: ファイルがありません", "a.gguf"), "a.gguf: no such file");
  ::unsetenv("KOTO_LANG");
}

TEST(I18n, JapaneseMayReorderArguments) {
  set_language(Language::kJapanese);
  EXPECT_EQ(tr("tensor {0} in {1}", "{1} のテンソル {0}", "blk.0", "m.gguf"), "m.gguf のテンソル blk.0");
  set_language(Language::kEnglish);
}

TEST(I18n, AcceptLanguagePicksTheHigherQualityOfJapaneseAndEnglish) {
  EXPECT_EQ(language_from_accept_language("ja"), Language::kJapanese);
  EXPECT_EQ(language_from_accept_language("ja-JP,ja;q=0.9,en-US;q=0.8"), Language::kJapanese);
  EXPECT_EQ(language_from_accept_language("en-US,en;q=0.9,ja;q=0.8"), Language::kEnglish);
  EXPECT_EQ(language_from_accept_language("fr-FR, ja;q=0.5"), Language::kJapanese);
  EXPECT_EQ(language_from_accept_language("en;q=0.3, JA;q=0.7"), Language::kJapanese);
  EXPECT_EQ(language_from_accept_language("fr, de"), Language::kEnglish);
  EXPECT_EQ(language_from_accept_language("", Language::kJapanese), Language::kJapanese);
  EXPECT_EQ(language_from_accept_language("jam, ja;q=0"), Language::kEnglish);  // "jam" is not Japanese; q=0 refuses
  EXPECT_EQ(language_from_accept_language("ja;q=abc, en;q=0.1"), Language::kEnglish);
}

TEST(I18n, ScopedLanguageIsPerThreadAndNests) {
  set_language(Language::kEnglish);
  {
    const ScopedLanguage japanese(Language::kJapanese);
    EXPECT_EQ(language(), Language::kJapanese);
    {
      const ScopedLanguage english(Language::kEnglish);
      EXPECT_EQ(language(), Language::kEnglish);
    }
    EXPECT_EQ(language(), Language::kJapanese);
    Language other_thread = Language::kJapanese;
    std::thread([&other_thread] { other_thread = language(); }).join();
    EXPECT_EQ(other_thread, Language::kEnglish);
  }
  EXPECT_EQ(language(), Language::kEnglish);
}

}  // namespace
}  // namespace koto
