#include "koto/bench.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "koto/gguf.h"
#include "test_support.h"

namespace koto {
namespace {

// A short benchmark of `model` (a fixture path): the knobs every test here sets.
BenchOptions short_bench(const std::string& model, int n_prompt, int n_gen, int repetitions, int threads,
                         uint64_t bandwidth_mib) {
  BenchOptions options;
  options.model_path = fixture_path(model);
  options.n_prompt = n_prompt;
  options.n_gen = n_gen;
  options.repetitions = repetitions;
  options.threads = threads;
  options.bandwidth_bytes = bandwidth_mib << 20;
  return options;
}

TEST(Bench, MeasuresStories260KWithSaneValues) {
  BenchOptions options = short_bench("models/stories260K.gguf", 16, 8, 2, 1, 64);
  int notes = 0;
  options.progress = [&notes](const std::string&) { ++notes; };
  const BenchResult r = run_bench(options);

  EXPECT_GT(notes, 4);
  EXPECT_EQ(r.threads, 1);
  EXPECT_EQ(r.n_prompt, 16);
  EXPECT_EQ(r.n_gen, 8);
  EXPECT_EQ(r.n_ctx, 17);
  for (const BenchStat* s : {&r.load_seconds, &r.pp_tokens_per_second, &r.ttft_seconds, &r.tg_tokens_per_second}) {
    ASSERT_EQ(s->samples.size(), 2u);
    EXPECT_GT(s->mean, 0.0);
    EXPECT_GE(s->sd, 0.0);
  }
  EXPECT_GT(r.bandwidth_gb_per_second, 0.0);
  EXPECT_GT(r.tg_roofline_percent, 0.0);
  EXPECT_GT(r.peak_rss_bytes, 0u);
  // The weights were read in (the file is under 2 MB: none of it in 2 MB pages).
  EXPECT_GT(r.weights_resident_bytes, 0);
  EXPECT_LE(r.weights_resident_bytes, static_cast<int64_t>(r.model.file_bytes) + 4096);
  EXPECT_EQ(r.weights_huge_bytes, 0);

  // Model facts: stories260K has its own output.weight, so token_embd counts one row.
  EXPECT_EQ(r.model.architecture, "llama");
  EXPECT_EQ(r.model.n_params, 292800);
  EXPECT_EQ(r.model.n_vocab, 512);
  EXPECT_FALSE(r.model.tied_output);
  const GgufFile file = GgufFile::open(options.model_path);
  uint64_t expected = 0;
  for (const GgufTensor& t : file.tensors()) {
    if (t.shape.size() < 2) continue;
    expected += t.name == "token_embd.weight" ? t.n_bytes / t.rows() : t.n_bytes;
  }
  EXPECT_EQ(r.model.weight_bytes_per_token, expected);
  EXPECT_EQ(r.model.file_bytes, 1185376u);
  EXPECT_EQ(r.model.file_type, "F32");
  EXPECT_GT(r.session_bytes, 0u);

  const nlohmann::json j = nlohmann::json::parse(bench_json(r));
  EXPECT_EQ(j["model"]["n_params"], 292800);
  EXPECT_EQ(j["n_prompt"], 16);
  EXPECT_EQ(j["tg_tokens_per_s"]["samples"].size(), 2u);
  EXPECT_GT(j["pp_tokens_per_s"]["mean"].get<double>(), 0.0);
  EXPECT_FALSE(j["git_commit"].get<std::string>().empty());
  EXPECT_FALSE(j["machine"]["cpu_model"].get<std::string>().empty());
  EXPECT_EQ(j["file_plus_session_bytes"], r.model.file_bytes + r.session_bytes);

  const std::string csv = bench_csv(r);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2);
  const std::string header = csv.substr(0, csv.find('\n'));
  const std::string row = csv.substr(csv.find('\n') + 1);
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), std::count(row.begin(), row.end(), ','));
  EXPECT_NE(bench_markdown(r).find("| stories260K.gguf |"), std::string::npos);
  EXPECT_NE(bench_table(r).find("pp16"), std::string::npos);
  EXPECT_NE(bench_result_file_name(r).find("stories260K_t1.json"), std::string::npos);
}

// A Q5_0 model read repacked (KOTO_REPACK=on, the cache in a temporary KOTO_HOME):
// the result says so, the first load built the cache, and the mapped-read bandwidth
// is measured on the cache's pages.
TEST(Bench, SaysWhenWeightsAreRepacked) {
  const std::filesystem::path home = std::filesystem::path(::testing::TempDir()) / "koto_bench_repack_home";
  std::filesystem::remove_all(home);
  std::optional<BenchResult> result;
  {
    const ScopedEnv koto_home("KOTO_HOME", home.c_str());
    const ScopedEnv koto_repack("KOTO_REPACK", "on");
    BenchOptions options = short_bench("arch/llama-gqa-Q5_0.gguf", 8, 4, 1, 1, 16);
    result = run_bench(options);
  }
  const BenchResult& r = *result;

  EXPECT_TRUE(r.repacked);
  EXPECT_GT(r.repack_build_seconds, 0.0);
  EXPECT_GT(r.mapped_bandwidth_gb_per_second, 0.0);
  EXPECT_TRUE(std::filesystem::exists(home / "cache"));
  const nlohmann::json j = nlohmann::json::parse(bench_json(r));
  EXPECT_EQ(j["repacked"], true);
  EXPECT_NE(bench_table(r).find("Q5_0R"), std::string::npos);
  std::filesystem::remove_all(home);
}

TEST(Bench, ProfileRowsAddUpToEachPhase) {
  BenchOptions options = short_bench("models/stories260K.gguf", 16, 8, 1, 2, 16);
  options.profile = true;
  const BenchResult r = run_bench(options);
  EXPECT_GT(r.mapped_bandwidth_gb_per_second, 0.0);
  EXPECT_GT(r.tg_mapped_percent, 0.0);
  for (const BenchProfile* p : {&r.profile_pp, &r.profile_tg}) {
    EXPECT_EQ(p->tokens, p == &r.profile_pp ? 16 : 8);
    double sum = 0.0;
    bool matmul_f32 = false;
    bool sampling = false;
    for (const BenchProfileRow& row : p->rows) {
      EXPECT_GE(row.ms_per_token, 0.0) << row.op;
      sum += row.ms_per_token;
      if (row.op == "matmul F32") {
        matmul_f32 = true;
        EXPECT_GT(row.gops_per_second, 0.0);
      }
      if (row.op == "sampling") sampling = row.ms_per_token > 0;
    }
    EXPECT_TRUE(matmul_f32);
    EXPECT_TRUE(sampling);
    // "other" is what the steps leave, so the rows add up to the phase (when the steps
    // do not add up to more, which they cannot: they are disjoint parts of it).
    EXPECT_NEAR(sum, p->ms_per_token, 1e-9 + 1e-6 * p->ms_per_token);
    EXPECT_GE(p->parallel_idle_percent, 0.0);
    EXPECT_LE(p->parallel_idle_percent, 100.0);
  }
  const nlohmann::json j = nlohmann::json::parse(bench_json(r));
  EXPECT_EQ(j["profile_tg"]["tokens"], 8);
  EXPECT_GT(j["mapped_bandwidth_gb_per_s"].get<double>(), 0.0);
  EXPECT_EQ(j["weights_resident_bytes"].get<int64_t>(), r.weights_resident_bytes);
  EXPECT_EQ(j["weights_huge_page_bytes"].get<int64_t>(), 0);
  const std::string table = bench_profile_table(r);
  EXPECT_NE(table.find("pp16"), std::string::npos);
  EXPECT_NE(table.find("matmul F32"), std::string::npos);
  EXPECT_NE(table.find("attention"), std::string::npos);
}

TEST(Bench, LookupQuotingKeepsGuessesAndTheText) {
  BenchOptions options = short_bench("models/stories260K.gguf", 0, 48, 2, 1, 0);
  options.lookup = true;
  const BenchResult r = run_bench(options);
  const BenchLookup& l = r.lookup;
  EXPECT_TRUE(l.same_text);
  EXPECT_EQ(l.off_tokens_per_second.samples.size(), 2u);
  EXPECT_EQ(l.quote_tokens_per_second.samples.size(), 2u);
  // Quoting its own answer, nearly every guess after the first two tokens is kept.
  EXPECT_GE(l.quote_accepted, 30);
  EXPECT_LE(l.quote_accepted, l.quote_drafted);
  EXPECT_LE(l.no_match_accepted, l.no_match_drafted);
  const nlohmann::json j = nlohmann::json::parse(bench_json(r));
  EXPECT_EQ(j["lookup"]["same_text"], true);
  EXPECT_NE(bench_table(r).find("lookup decoding"), std::string::npos);
}

TEST(Bench, StatisticsAreMeanAndSampleSd) {
  const BenchStat s = BenchStat::of({1.0, 2.0, 3.0, 4.0});
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.sd, 1.2909944, 1e-6);
  EXPECT_EQ(BenchStat::of({5.0}).sd, 0.0);
}

TEST(Bench, RefusesZeroRepetitions) {
  BenchOptions options;
  options.model_path = fixture_path("models/stories260K.gguf");
  options.repetitions = 0;
  EXPECT_THROW(run_bench(options), std::exception);
}

}  // namespace
}  // namespace koto
