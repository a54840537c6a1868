// The one place where errors become messages and exit codes (main.cpp), checked on the
// built executable: 2 and a message in the user's language for a bad command line
// (CLI11's parse errors and the commands' own option checks), 1 when the work fails,
// and no silent death when stdout goes away.
#include <gtest/gtest.h>

#include <csignal>
#include <string>

#include "cli_runner.h"
#include "test_support.h"

namespace koto {
namespace {

using testing::CliResult;
using testing::run_koto;

std::string model() { return "'" + fixture_path("models/stories260K.gguf") + "'"; }

bool has(const CliResult& r, const std::string& text) { return r.output.find(text) != std::string::npos; }

TEST(CliErrors, MissingRequiredOptionIsAUsageErrorInBothLanguages) {
  const CliResult en = run_koto("en", "run こんにちは");
  EXPECT_EQ(en.exit_code, 2) << en.output;
  EXPECT_TRUE(has(en, "koto: --model is required\n")) << en.output;
  EXPECT_TRUE(has(en, "koto run --help")) << en.output;
  const CliResult ja = run_koto("ja", "run こんにちは");
  EXPECT_EQ(ja.exit_code, 2) << ja.output;
  EXPECT_TRUE(has(ja, "koto: --model を指定してください\n")) << ja.output;
  EXPECT_FALSE(has(ja, "is required")) << ja.output;
}

TEST(CliErrors, ConversionExtrasAndRangeErrorsAreTranslated) {
  const CliResult conversion = run_koto("ja", "run -m " + model() + " -n たくさん 質問");
  EXPECT_EQ(conversion.exit_code, 2) << conversion.output;
  EXPECT_TRUE(has(conversion, "--max-tokens: 「たくさん」を変換できません")) << conversion.output;
  const CliResult conversion_en = run_koto("en", "run -m " + model() + " -n many question");
  EXPECT_TRUE(has(conversion_en, "--max-tokens: could not convert \"many\"")) << conversion_en.output;

  const CliResult extras = run_koto("en", "run -m " + model() + " 一つ目 二つ目 三つ目");
  EXPECT_EQ(extras.exit_code, 2) << extras.output;
  EXPECT_TRUE(has(extras, "unexpected argument(s): 二つ目 三つ目")) << extras.output;
  const CliResult extras_ja = run_koto("ja", "run -m " + model() + " 一つ目 二つ目");
  EXPECT_TRUE(has(extras_ja, "不明な引数があります: 二つ目")) << extras_ja.output;

  const CliResult range = run_koto("ja", "logits -m " + model() + " -o /dev/null -t 5000 --tokens 1");
  EXPECT_EQ(range.exit_code, 2) << range.output;
  EXPECT_TRUE(has(range, "--threads: 5000 は範囲外です (0〜1024)")) << range.output;

  const CliResult missing_value = run_koto("en", "run -m");
  EXPECT_EQ(missing_value.exit_code, 2) << missing_value.output;
  EXPECT_TRUE(has(missing_value, "--model needs a value")) << missing_value.output;
}

TEST(CliErrors, NegativeSizesAreUsageErrors) {
  for (const char* option : {"-c -5", "-t -1", "-n -2"}) {
    const CliResult r = run_koto("en", "run -m " + model() + " " + option + " question");
    EXPECT_EQ(r.exit_code, 2) << option << ": " << r.output;
    EXPECT_TRUE(has(r, "out of range")) << option << ": " << r.output;
  }
  EXPECT_EQ(run_koto("en", "run -m " + model() + " --raw --temp 0 -n -1 -c 16 Once").exit_code, 0);
}

TEST(CliErrors, CommandOptionChecksAreUsageErrors) {
  const CliResult tmpl = run_koto("en", "run -m " + model() + " --template jinja question");
  EXPECT_EQ(tmpl.exit_code, 2) << tmpl.output;
  EXPECT_TRUE(has(tmpl, "llama2, chatml, llama3, gemma, mistral, plain")) << tmpl.output;
  const CliResult sampling = run_koto("en", "run -m " + model() + " --top-p 2 question");
  EXPECT_EQ(sampling.exit_code, 2) << sampling.output;
  const CliResult ids = run_koto("ja", "logits -m " + model() + " -o /dev/null --tokens 1,x");
  EXPECT_EQ(ids.exit_code, 2) << ids.output;
  EXPECT_TRUE(has(ids, "--tokens: 「x」はトークン ID ではありません")) << ids.output;
}

// A library error is the work failing, even when the library calls it an invalid
// argument: `-m /` names a folder.
TEST(CliErrors, LibraryErrorsExitWithOne) {
  const CliResult folder = run_koto("en", "run -m / question");
  EXPECT_EQ(folder.exit_code, 1) << folder.output;
  EXPECT_TRUE(has(folder, "koto: /:")) << folder.output;
  const CliResult bad_id = run_koto("en", "tokenize -m " + model() + " --decode 1,999999");
  EXPECT_EQ(bad_id.exit_code, 1) << bad_id.output;
  EXPECT_TRUE(has(bad_id, "999999")) << bad_id.output;
}

// --stats-json is checked before the model is loaded: nothing is generated, so the
// error is not glued to an answer.
TEST(CliErrors, UnwritableStatsJsonIsRefusedBeforeGenerating) {
  const CliResult r = run_koto("en", "run -m " + model() + " --raw --temp 0 -n 20 --stats-json /nonexistent/stats.json Once");
  EXPECT_EQ(r.exit_code, 2);
  // The error is all there is: no answer before it.
  EXPECT_EQ(r.output.rfind("koto: --stats-json /nonexistent/stats.json: cannot write there", 0), 0u) << r.output;
  const CliResult message = run_koto("ja", "run -m " + model() + " --stats-json /nonexistent/stats.json Once");
  EXPECT_TRUE(has(message, "--stats-json /nonexistent/stats.json: 書き込めません")) << message.output;
}

TEST(CliErrors, HelpIsCli11sOwnAndExitsZero) {
  const CliResult help = run_koto("en", "run --help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_TRUE(has(help, "--max-tokens")) << help.output;
  EXPECT_TRUE(has(help, "Usage:")) << help.output;
}

TEST(CliErrors, TokenizeReadsStdinWhenItIsNotATerminal) {
  const CliResult r = run_koto("en", "tokenize -m " + model() + " < /dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "\n");  // no text, no ids
}

// `koto run ... | head`: the reader is gone. koto must neither die of SIGPIPE nor go on
// generating; it stops and says why on stderr.
TEST(CliErrors, ClosedStdoutStopsGenerationWithAMessage) {
  const CliResult r = testing::run_koto_with_closed_stdout("en", "run -m " + model() + " --raw --temp 0 -n 100 Once");
  EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << (r.signal == SIGPIPE ? " (SIGPIPE)" : "");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(has(r, "koto: stdout was closed by the reading program; stopped after 1 tokens")) << r.output;
  const CliResult ja = testing::run_koto_with_closed_stdout("ja", "run -m " + model() + " --raw --temp 0 -n 100 Once");
  EXPECT_TRUE(has(ja, "標準出力が読み手のプログラムに閉じられた")) << ja.output;
}

}  // namespace
}  // namespace koto
