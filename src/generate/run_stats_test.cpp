#include "koto/run_stats.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "koto/i18n.h"

namespace koto {
namespace {

TEST(RunStats, ReadsMemoryAndCpuFromTheOperatingSystem) {
  EXPECT_GT(peak_rss_bytes(), 1024u * 1024u);  // a running test binary holds more than 1 MiB
  EXPECT_GT(available_memory_bytes(), 0u);
  EXPECT_GE(available_cpu_count(), 1);

  UsageMeter meter;
  // Touch 64 MiB and burn some CPU so both readings must move.
  std::vector<char> block(64u << 20);
  for (size_t i = 0; i < block.size(); i += 4096) block[i] = static_cast<char>(i);
  volatile double sink = 0;
  for (int i = 0; i < 20000000; ++i) sink = sink + i * 0.5;
  RunStats stats;
  meter.fill(stats);
  EXPECT_GE(stats.peak_rss_bytes, 64u << 20);
  EXPECT_GT(stats.cpu_user_seconds + stats.cpu_system_seconds, 0.0);
  EXPECT_GT(stats.total_seconds, 0.0);
  EXPECT_GT(stats.cpu_percent_of_one_core(), 0.0);
  EXPECT_GE(stats.cpu_count, 1);
  EXPECT_LE(stats.cpu_percent_of_all_cores(), stats.cpu_percent_of_one_core());
}

RunStats example() {
  RunStats s;
  s.model = "stories260K.gguf";
  s.prompt_tokens = 100;
  s.prompt_seconds = 2.0;
  s.generated_tokens = 11;
  s.generation_seconds = 5.0;
  s.output_chars = 20;
  s.output_bytes = 60;
  s.total_seconds = 10.0;
  s.cpu_user_seconds = 15.0;
  s.cpu_system_seconds = 1.0;
  s.cpu_count = 4;
  s.threads = 2;
  s.stop_reason = "eos";
  s.seed = 42;
  return s;
}

TEST(RunStats, DerivedSpeeds) {
  const RunStats s = example();
  EXPECT_DOUBLE_EQ(s.prompt_tokens_per_second(), 50.0);
  EXPECT_DOUBLE_EQ(s.generation_tokens_per_second(), 2.0);  // 10 steps after the first token
  EXPECT_DOUBLE_EQ(s.chars_per_second(), 4.0);
  EXPECT_DOUBLE_EQ(s.cpu_percent_of_one_core(), 160.0);
  EXPECT_DOUBLE_EQ(s.cpu_percent_of_all_cores(), 40.0);
  EXPECT_DOUBLE_EQ(RunStats{}.generation_tokens_per_second(), 0.0);
}

TEST(RunStats, JsonHasEveryField) {
  const nlohmann::json j = nlohmann::json::parse(run_stats_json(example()));
  for (const char* key : {"load_s", "prompt_tokens", "prompt_tokens_per_s", "time_to_first_token_s",
                          "generated_tokens", "generation_tokens_per_s", "chars_per_s", "peak_rss_bytes",
                          "cpu_percent_of_one_core", "cpu_percent_of_all_cores", "threads", "seed", "stop_reason"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["prompt_tokens"], 100);
  EXPECT_DOUBLE_EQ(j["chars_per_s"].get<double>(), 4.0);
  EXPECT_EQ(j["stop_reason"], "eos");
}

TEST(RunStats, HumanBlockInBothLanguages) {
  set_language(Language::kJapanese);
  const std::string ja = format_run_stats(example());
  set_language(Language::kEnglish);
  const std::string en = format_run_stats(example());
  EXPECT_NE(ja.find("毎秒 4.0 文字"), std::string::npos) << ja;
  EXPECT_NE(en.find("4.0 characters/s"), std::string::npos) << en;
  EXPECT_NE(en.find("160% of one core, 40% of 4 CPUs"), std::string::npos) << en;
}

}  // namespace
}  // namespace koto
