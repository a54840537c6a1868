// The progress line as it appears in a log (stderr not a terminal): the first report,
// then one line per tenth, the end once however often it is reported, the label in the
// user's language.
#include "cli/progress_line.h"

#include <gtest/gtest.h>

#include <string>

#include "koto/i18n.h"

namespace koto::cli {
namespace {

int count(const std::string& text, const std::string& part) {
  int n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST(ProgressLine, OneLinePerTenthAndTheEndOnceInJapanese) {
  const ScopedLanguage japanese(Language::kJapanese);
  ::testing::internal::CaptureStderr();
  {
    ProgressLine progress("Reading the weights into memory", "重みをメモリに読み込んでいます");
    for (uint64_t done = 1; done <= 100; ++done) progress.update(done * 1000000, 100000000);
    progress.update(100000000, 100000000);  // reported again by a caller's last step
  }
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(out, "\n"), 11) << out;  // the first report (1 %), then 10 %, 20 %, … 100 %
  EXPECT_EQ(count(out, "重みをメモリに読み込んでいます"), 11) << out;
  EXPECT_EQ(count(out, " 100%  100.0 / 100.0 MB"), 1) << out;
  EXPECT_EQ(count(out, "Reading"), 0) << out;
}

}  // namespace
}  // namespace koto::cli
