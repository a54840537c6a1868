#include "koto/i18n.h"

#include <gtest/gtest.h>

#include <cstdlib>

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

}  // namespace
}  // namespace koto
