// `koto bench --serve`: how the server serves, measured through real HTTP on loopback.
//
// In one process and one run (so the ratios hold on a noisy machine):
//   1. plain generation speed, as `koto bench` measures it (tg, no HTTP, one sequence);
//   2. the HTTP server with `max concurrency` slots, driven by 1, 2, 4, 8... client
//      threads at once; each sends streaming /v1/completions requests of n_prompt random
//      token ids and n_gen generated tokens (ignore_eos, so every answer has the same
//      length), one after another. Reported: aggregate generated tokens/s over the phase,
//      its ratio to one stream, each stream's tokens/s, and time to first token
//      percentiles as the client sees it (request sent → first text chunk received);
//   3. a prompt of prefix_tokens tokens plus a short question: time to first token with
//      nothing cached, with the prefix cached in memory (another question), and after a
//      "restart" (a new scheduler and server on the same --cache-dir, memory cache empty).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "koto/bench.h"

namespace koto::server {

struct ServeBenchOptions {
  std::string model_path;
  std::vector<int> concurrency{1, 2, 4, 8};
  int n_prompt = 32;             // random prompt tokens per request
  int n_gen = 64;                // generated tokens per request
  int requests_per_stream = 2;   // requests each client thread sends in a row
  int threads = 0;               // engine threads; 0: one per physical core
  int prefix_tokens = 2000;      // 0 skips the prefix-cache measurement
  int question_tokens = 16;      // the new part after the cached prefix
  std::string cache_dir;         // for the restart measurement; "": a temporary folder
  uint64_t seed = 1;
  std::function<void(const std::string&)> progress;
};

struct ServeBenchRow {
  int concurrency = 0;
  int requests = 0;
  int64_t generated_tokens = 0;
  double seconds = 0;                   // the phase, first request sent → last answer done
  double tokens_per_second = 0;         // aggregate
  double speedup = 0;                   // tokens_per_second / the 1-stream row's
  double stream_tokens_per_second = 0;  // mean over requests of n_gen / (last − first token)
  double ttft_p50 = 0, ttft_p90 = 0, ttft_max = 0;  // seconds
};

struct ServeBenchResult {
  BenchStamp stamp;
  BenchMachine machine;
  BenchModel model;
  int threads = 0;
  int n_prompt = 0;
  int n_gen = 0;
  double plain_tg_tokens_per_second = 0;  // one sequence, no HTTP
  std::vector<ServeBenchRow> rows;
  double http_share_of_plain = 0;         // 1-stream stream tokens/s ÷ plain tg
  int prefix_tokens = 0;
  double prefix_cold_ttft = 0;            // nothing cached
  double prefix_cached_ttft = 0;          // the prefix in the memory cache
  int prefix_cached_tokens = 0;           // what the server reported as cached
  double prefix_restart_ttft = 0;         // after a restart, from the disk cache
  int prefix_restart_cached_tokens = 0;
};

// Throws what loading and serving throw; kInvalidArgument for impossible options.
ServeBenchResult run_serve_bench(const ServeBenchOptions& options);

std::string serve_bench_table(const ServeBenchResult& result);     // current language
std::string serve_bench_markdown(const ServeBenchResult& result);
std::string serve_bench_json(const ServeBenchResult& result);
// "<date>T<time>_<model>_serve.json"
std::string serve_bench_file_name(const ServeBenchResult& result);

}  // namespace koto::server
