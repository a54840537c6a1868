// Runs the built `koto` executable (src/testing/cli_runner.h) and checks what
// `koto info` prints and its exit code.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <string>

#include "cli_runner.h"
#include "test_support.h"

namespace koto {
namespace {

using testing::run_koto;
using RunResult = testing::CliResult;

TEST(GgufInfoCli, DescribesStories260K) {
  const RunResult r = run_koto("en", "info '" + fixture_path("models/stories260K.gguf") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* expected : {"stories260K.gguf (1.1 MiB)", "GGUF v3, alignment 32, 48 tensors, 19 metadata keys",
                               "292.8 K (292800)", "F32        48 tensors  1.1 MiB", "llama, pre -, 512 tokens, BOS 1, EOS 2",
                               "(KV 4)", "memory (n_ctx 2048)", "KV cache 1.2 MiB", "chat template         none"}) {
    EXPECT_NE(r.output.find(expected), std::string::npos) << "missing \"" << expected << "\" in:\n" << r.output;
  }
}

TEST(GgufInfoCli, PrintsJapaneseLabelsAndJson) {
  const std::string model = fixture_path("models/stories260K.gguf");
  const RunResult ja = run_koto("ja_JP.UTF-8", "info '" + model + "' --ctx 256");
  ASSERT_EQ(ja.exit_code, 0) << ja.output;
  EXPECT_NE(ja.output.find("パラメータ数"), std::string::npos) << ja.output;
  EXPECT_NE(ja.output.find("メモリ (n_ctx 256)"), std::string::npos) << ja.output;

  const RunResult json = run_koto("en", "info --json --ctx 256 '" + model + "'");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  const nlohmann::json j = nlohmann::json::parse(json.output);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["parameters"], 292800);
  EXPECT_EQ(j["memory"]["n_ctx"], 256);
  EXPECT_EQ(j["memory"]["kv_cache"], 5 * 256 * 4 * 16 * 2);
  EXPECT_EQ(j["vocabulary"]["eos_token_id"], 2);
}

// After a repacked load (KOTO_REPACK=on, cache in a temporary KOTO_HOME), info names the
// cache file and its size; before, it says nothing about it.
TEST(GgufInfoCli, NamesTheRepackedWeightsCache) {
  const std::string home = ::testing::TempDir() + "koto_info_repack_home";
  std::filesystem::remove_all(home);
  const std::string model = fixture_path("arch/llama-gqa-Q5_0.gguf");
  const std::string env = "KOTO_HOME='" + home + "' ";
  const RunResult before = run_koto("en", "info '" + model + "'", env);
  ASSERT_EQ(before.exit_code, 0) << before.output;
  EXPECT_EQ(before.output.find("repacked weights"), std::string::npos) << before.output;
  const RunResult run = run_koto("en", "run -m '" + model + "' -n 2 --raw こんにちは", env + "KOTO_REPACK=on ");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const RunResult after = run_koto("ja_JP.UTF-8", "info '" + model + "'", env);
  ASSERT_EQ(after.exit_code, 0) << after.output;
  EXPECT_NE(after.output.find("並べ替えた重み"), std::string::npos) << after.output;
  EXPECT_NE(after.output.find(home + "/cache/"), std::string::npos) << after.output;
  std::filesystem::remove_all(home);
}

TEST(GgufInfoCli, MissingFileExitsWithOneAndSaysSo) {
  const RunResult en = run_koto("en", "info /nonexistent/モデル.gguf");
  EXPECT_EQ(en.exit_code, 1);
  EXPECT_EQ(en.output, "koto: /nonexistent/モデル.gguf: no such file — check the path\n");
  const RunResult ja = run_koto("ja", "info /nonexistent/モデル.gguf");
  EXPECT_EQ(ja.exit_code, 1);
  EXPECT_NE(ja.output.find("ファイルがありません"), std::string::npos) << ja.output;
  EXPECT_EQ(run_koto("en", "info " + fixture_path("models/stories260K.gguf") + " --ctx 0").exit_code, 2);
}

}  // namespace
}  // namespace koto
