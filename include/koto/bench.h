// Measuring the engine's speed on one model (`koto bench`): load time, prompt
// processing, token generation, time to first token, peak memory, and how close token
// generation comes to the machine's memory-bandwidth limit.
//
// What is measured (each timed phase: one warm-up, then `repetitions` runs, reported
// as mean ± sample standard deviation):
//   load   Model::load (mapping, checks, norms, tokenizer), the model released in between;
//   pp     one prefill of n_prompt random valid token ids in a fresh context: n_prompt / s;
//   ttft   the same prefill plus choosing the first token (argmax of the last logits):
//          what `koto run` calls time to first token, load excluded;
//   tg     n_gen sequential single-token evaluations after a tg_depth-token prompt (default
//          4; --depth 4096 measures decoding deep in a long context): n_gen / s.
// Then, once, the machine's read bandwidth: every thread of the same count streams its
// share of a buffer of bandwidth_bytes (default 1 GiB, far above the 260 MB L3 here),
// best of 5 passes. tg's share of the bandwidth roofline is
//   (weight bytes read per token × tg tokens/s) / bandwidth,
// where weight bytes per token = every matrix's bytes, except that token_embd counts
// one row unless it is also the output matrix (tied), when it counts once in full.
// KV-cache reads are left out (small at these lengths). Peak RSS is read before the
// bandwidth buffer is allocated, and compared with file size + session_bytes(n_ctx).
//
// Token ids are random (seeded), so no tokenizer work is involved. run_bench is not
// thread-safe with respect to the process: it uses all the threads it is given.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "koto/tensor_type.h"

namespace koto {

struct BenchOptions {
  std::string model_path;
  int n_prompt = 512;     // pp and ttft prompt length (0: skip pp/ttft)
  int n_gen = 128;        // tg tokens (0: skip tg)
  int repetitions = 5;    // timed runs after one warm-up, >= 1
  int tg_depth = 4;       // tg generates after a prompt of this many tokens (attention over them)
  int threads = 0;        // 0: one per physical core
  uint64_t seed = 1;      // for the token ids
  uint64_t bandwidth_bytes = 1ull << 30;  // 0: skip both bandwidth measurements
  // One more untimed prefill and generation with per-operation counters (BenchProfile).
  bool profile = false;
  // Lookup decoding (BenchLookup): greedy generation of n_gen tokens after a 64-token
  // prompt without guesses, with guesses from the prompt only, and with the answer
  // itself given as reference text (what an answer quoting its passage gets).
  bool lookup = false;
  TensorType kv_type = TensorType::kF16;  // of the sessions
  // Short progress notes ("pp 2/5") for a front end to show; may be empty.
  std::function<void(const std::string&)> progress;
};

struct BenchStat {
  std::vector<double> samples;
  double mean = 0.0;
  double sd = 0.0;  // sample standard deviation (0 for one sample)
  static BenchStat of(std::vector<double> samples);
};

struct BenchMachine {
  std::string cpu_model;       // /proc/cpuinfo "model name"
  int logical_cpus = 0;        // CPUs this process may use
  int physical_cores = 0;
  uint64_t memory_bytes = 0;   // MemTotal
  uint64_t l3_cache_bytes = 0; // last-level cache of CPU 0 (sysfs); 0 when unknown
  std::string isa;             // active kernels: avx512, avx2, generic
};

struct BenchModel {
  std::string path;
  std::string name;            // general.name
  std::string architecture;
  std::string shape;           // koto.synth.shape for synthetic models, else ""
  std::string file_type;       // general.file_type as a name ("Q4_K_M"), else the main tensor type
  std::string tensor_types;    // "Q4_K 193, Q6_K 33, F32 65"
  uint64_t file_bytes = 0;
  int64_t n_params = 0;
  int32_t n_vocab = 0;
  int32_t n_layer = 0;
  int32_t n_embd = 0;
  uint64_t weight_bytes_per_token = 0;
  bool tied_output = false;
};

// Where one phase's time went, per token (`--profile`): one row per step of the forward
// pass (matrix products split by weight type, with the weight bytes they streamed per
// second), sampling, and "other" (what no step accounts for). Rows add up to the
// phase's wall time. parallel_idle_percent: of the threads' time inside parallel
// regions, the share not spent in tasks (hand-off, waiting for the slowest thread, or
// time taken by other processes).
struct BenchProfileRow {
  std::string op;
  double ms_per_token = 0;
  double percent = 0;
  double gb_per_second = 0;    // matrix products only: weight bytes streamed per second
  double gops_per_second = 0;  // and 2 x multiply-adds per second (wall time of the row)
};
struct BenchProfile {
  int tokens = 0;  // 0: not measured
  double ms_per_token = 0;
  double parallel_idle_percent = 0;
  double parallel_regions_per_token = 0;
  std::vector<BenchProfileRow> rows;
};

// tg of greedy generation, median of the repetitions, three ways (alternated per
// repetition): off, on with nothing to quote (random prompt), on with the answer in
// the reference text (a quote). Each "on" run's text is checked to equal the "off" one.
struct BenchLookup {
  BenchStat off_tokens_per_second;
  BenchStat no_match_tokens_per_second;
  BenchStat quote_tokens_per_second;
  int32_t no_match_drafted = 0, no_match_accepted = 0;  // of the last repetition
  int32_t quote_drafted = 0, quote_accepted = 0;
  bool same_text = true;
};

struct BenchResult {
  std::string timestamp;       // UTC, ISO 8601
  std::string koto_version;
  std::string git_commit;      // from the build ("unknown" outside a git checkout)
  BenchMachine machine;
  BenchModel model;
  int threads = 0;
  int n_prompt = 0;
  int n_gen = 0;
  int tg_depth = 0;
  int repetitions = 0;
  int32_t n_ctx = 0;           // context of the sessions
  double load_first_seconds = 0.0;  // the warm-up load (cold when the file is not cached)
  // Q5_0 weights read as Q5_0R from the repack cache (koto/model.h RepackMode); the
  // build time when the warm-up load built it (included in load_first_seconds).
  bool repacked = false;
  double repack_build_seconds = 0.0;
  BenchStat load_seconds;
  BenchStat pp_tokens_per_second;
  BenchStat ttft_seconds;
  BenchStat tg_tokens_per_second;
  double bandwidth_gb_per_second = 0.0;   // 1e9 bytes/s; 0 when skipped
  double tg_roofline_percent = 0.0;       // 0 when skipped
  // The model file's own mapped pages read by the same threads in the same run (what tg
  // streams), and tg's weight bytes per second as a share of it.
  double mapped_bandwidth_gb_per_second = 0.0;
  double tg_mapped_percent = 0.0;
  // The model's mapped files: bytes in memory after the runs, and how many of them are
  // mapped 2 MB at a time (Model::mapped_memory); -1 when unknown.
  int64_t weights_resident_bytes = -1;
  int64_t weights_huge_bytes = -1;
  double int8_peak_gops_per_second = 0.0;  // with --profile: kernels::int8_peak_ops_per_second
  BenchLookup lookup;  // with options.lookup
  BenchProfile profile_pp;
  BenchProfile profile_tg;
  uint64_t peak_rss_bytes = 0;
  uint64_t session_bytes = 0;             // KV cache + scratch for n_ctx
};

// Runs the measurements. Throws what Model::load and Session::eval throw, and
// kInvalidArgument for repetitions < 1 or negative lengths.
BenchResult run_bench(const BenchOptions& options);

// Multi-threaded streaming read of a buffer of `bytes` (touched first), best of
// `passes`, in 1e9 bytes per second.
double measure_read_bandwidth(uint64_t bytes, int threads, int passes = 5);

// The model file's mapping streamed the same way, with `threads` threads.
class Model;
double measure_mapped_bandwidth(const Model& model, int threads, int passes = 5);

BenchMachine describe_machine();

class Model;
// The model's facts as BenchResult reports them (types, bytes read per token).
BenchModel describe_bench_model(const std::string& path, const Model& model);

// When and from what a result came: UTC ISO 8601 time, koto's version, the git commit.
struct BenchStamp {
  std::string timestamp;
  std::string koto_version;
  std::string git_commit;
};
BenchStamp bench_stamp();

// Output formats. The table is in the current language; the others use English keys.
std::string bench_table(const BenchResult& result);
std::string bench_json(const BenchResult& result);   // one pretty-printed object
std::string bench_csv(const BenchResult& result);    // a header line and one row
std::string bench_markdown(const BenchResult& result);
// The per-operation breakdown (empty without --profile), in the current language.
std::string bench_profile_table(const BenchResult& result);
// A file name for the results folder: "<date>T<time>_<model>_t<threads>.json".
std::string bench_result_file_name(const BenchResult& result);

}  // namespace koto
