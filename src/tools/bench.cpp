#include "koto/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <cstring>
#include <span>

#include "base/op_profile.h"
#include "base/thread_pool.h"
#include "koto/error.h"
#include "koto/generate.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "koto/quant_mix.h"
#include "koto/run_stats.h"
#include "tensor/kernels.h"

#include "koto_git_commit.h"  // KOTO_GIT_COMMIT, written at every build (cmake/git_commit.cmake)
#ifndef KOTO_VERSION
#define KOTO_VERSION "unknown"
#endif

namespace koto {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string utc_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string read_proc_value(const char* path, std::string_view key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t begin = line.find_first_not_of(" \t", colon + 1);
    return begin == std::string::npos ? std::string() : line.substr(begin);
  }
  return {};
}

std::string human_bytes(double bytes) {
  if (bytes >= 1e9) return fmt::format("{:.2f} GB", bytes / 1e9);
  if (bytes >= 1e6) return fmt::format("{:.1f} MB", bytes / 1e6);
  if (bytes >= 1e3) return fmt::format("{:.1f} kB", bytes / 1e3);
  return fmt::format("{:.0f} B", bytes);
}

std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.1f} M", n / 1e6);
  return fmt::format("{:.1f} K", n / 1e3);
}


nlohmann::json stat_json(const BenchStat& s) {
  return {{"mean", s.mean}, {"sd", s.sd}, {"samples", s.samples}};
}

}  // namespace

BenchStat BenchStat::of(std::vector<double> samples) {
  BenchStat s;
  s.samples = std::move(samples);
  if (s.samples.empty()) return s;
  double sum = 0.0;
  for (double v : s.samples) sum += v;
  s.mean = sum / static_cast<double>(s.samples.size());
  if (s.samples.size() > 1) {
    double sq = 0.0;
    for (double v : s.samples) sq += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(sq / static_cast<double>(s.samples.size() - 1));
  }
  return s;
}

BenchMachine describe_machine() {
  BenchMachine m;
  m.cpu_model = read_proc_value("/proc/cpuinfo", "model name");
  if (m.cpu_model.empty()) m.cpu_model = "unknown";
  m.logical_cpus = available_cpu_count();
  m.physical_cores = ThreadPool::physical_core_count();
  const std::string mem = read_proc_value("/proc/meminfo", "MemTotal");  // "23456789 kB"
  if (!mem.empty()) m.memory_bytes = std::strtoull(mem.c_str(), nullptr, 10) * 1024;
  m.isa = std::string(kernels::active_isa());
  // "260M", "32768K": the size of the last-level cache of CPU 0.
  std::ifstream l3("/sys/devices/system/cpu/cpu0/cache/index3/size");
  std::string size;
  if (l3 >> size && !size.empty()) {
    uint64_t value = std::strtoull(size.c_str(), nullptr, 10);
    if (size.back() == 'K') value <<= 10;
    if (size.back() == 'M') value <<= 20;
    m.l3_cache_bytes = value;
  }
  return m;
}

namespace {

// Streams [data, data + bytes) with every thread of the pool (a slice per task), best of
// `passes`, in 1e9 bytes per second.
double stream_read_gbps(const uint8_t* data, size_t bytes, ThreadPool& pool, int passes) {
  const size_t n = bytes / sizeof(uint64_t);
  if (n == 0) return 0.0;
  const int64_t n_tasks = static_cast<int64_t>(pool.size()) * 16;
  const size_t per_task = (n + static_cast<size_t>(n_tasks) - 1) / static_cast<size_t>(n_tasks);
  std::vector<uint64_t> sums(static_cast<size_t>(n_tasks));
  double best = 0.0;
  for (int pass = 0; pass < std::max(1, passes); ++pass) {
    const auto start = Clock::now();
    pool.parallel_for(n_tasks, [&](int64_t task) {
      const size_t begin = std::min(n, static_cast<size_t>(task) * per_task);
      const size_t end = std::min(n, begin + per_task);
      // Eight independent sums so the loop is bound by loads, not by an add chain.
      uint64_t a[8] = {};
      size_t i = begin;
      for (; i + 8 <= end; i += 8) {
        for (int k = 0; k < 8; ++k) {
          uint64_t word;
          std::memcpy(&word, data + (i + static_cast<size_t>(k)) * sizeof(uint64_t), sizeof(word));
          a[k] += word;
        }
      }
      for (; i < end; ++i) {
        uint64_t word;
        std::memcpy(&word, data + i * sizeof(uint64_t), sizeof(word));
        a[0] += word;
      }
      sums[static_cast<size_t>(task)] = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
    });
    const double seconds = seconds_since(start);
    if (seconds > 0) best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / seconds / 1e9);
  }
  // Use the sums so the reads cannot be optimized away.
  volatile uint64_t sink = 0;
  for (uint64_t s : sums) sink = sink + s;
  (void)sink;
  return best;
}

}  // namespace

double measure_read_bandwidth(uint64_t bytes, int threads, int passes) {
  const size_t n = static_cast<size_t>(std::max<uint64_t>(bytes / sizeof(uint64_t), 1024));
  const std::unique_ptr<uint64_t[]> buffer = std::make_unique_for_overwrite<uint64_t[]>(n);
  ThreadPool pool(threads);
  const int64_t n_tasks = static_cast<int64_t>(pool.size()) * 16;
  const size_t per_task = (n + static_cast<size_t>(n_tasks) - 1) / static_cast<size_t>(n_tasks);
  // Touch every page from the threads that will read it.
  pool.parallel_for(n_tasks, [&](int64_t task) {
    const size_t begin = std::min(n, static_cast<size_t>(task) * per_task);
    const size_t end = std::min(n, begin + per_task);
    for (size_t i = begin; i < end; ++i) buffer[i] = i;
  });
  return stream_read_gbps(reinterpret_cast<const uint8_t*>(buffer.get()), n * sizeof(uint64_t), pool, passes);
}

double measure_mapped_bandwidth(const Model& model, int threads, int passes) {
  ThreadPool pool(threads);
  // The pages tg streams: the repacked weights' file when there is one (the model's
  // own Q5_0 pages are then never read; reading them here would bring them back).
  const RepackReport& repack = model.repack_report();
  if (repack.mapped != nullptr) return stream_read_gbps(repack.mapped, repack.mapped_bytes, pool, passes);
  const std::string_view bytes = model.file().bytes();
  return stream_read_gbps(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), pool, passes);
}

// Model facts that do not need the forward pass: types, bytes read per token.
BenchModel describe_bench_model(const std::string& path, const Model& model) {
  const GgufFile& file = model.file();
  BenchModel m;
  m.path = path;
  m.name = file.get_string("general.name");
  m.architecture = model.params().architecture;
  m.shape = file.get_string("koto.synth.shape");
  m.file_bytes = file.file_size();
  m.n_params = model.params().n_params;
  m.n_vocab = model.params().n_vocab;
  m.n_layer = model.params().n_layer;
  m.n_embd = model.params().n_embd;
  m.tied_output = file.find_tensor("output.weight") == nullptr;

  std::map<uint32_t, int> type_counts;
  std::map<uint32_t, uint64_t> type_bytes;
  for (const GgufTensor& t : file.tensors()) {
    type_counts[static_cast<uint32_t>(t.type)] += 1;
    if (t.shape.size() >= 2) type_bytes[static_cast<uint32_t>(t.type)] += t.n_bytes;
    if (t.shape.size() < 2) continue;
    if (t.name == "token_embd.weight" && !m.tied_output) {
      m.weight_bytes_per_token += t.n_bytes / static_cast<uint64_t>(std::max<int64_t>(1, t.rows()));
    } else {
      m.weight_bytes_per_token += t.n_bytes;
    }
  }
  for (const auto& [id, count] : type_counts) {
    if (!m.tensor_types.empty()) m.tensor_types += ", ";
    m.tensor_types += fmt::format("{} {}", tensor_type_name(static_cast<TensorType>(id)), count);
  }
  const GgufValue* file_type = file.find("general.file_type");
  if (file_type != nullptr && file_type->is_integer()) {
    m.file_type = std::string(file_type_name(static_cast<uint32_t>(file_type->as_u64())));
  }
  if (m.file_type.empty() && !type_bytes.empty()) {
    const auto main = std::max_element(type_bytes.begin(), type_bytes.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; });
    m.file_type = std::string(tensor_type_name(static_cast<TensorType>(main->first)));
  }
  return m;
}

namespace {

// The counters of one phase as rows per token: every step's wall time, the matrix
// products split by weight type in proportion to their tasks' busy time, and what no
// step accounts for.
BenchProfile make_profile(const profile::Snapshot& snap, double seconds, int tokens) {
  BenchProfile p;
  p.tokens = tokens;
  p.ms_per_token = 1e3 * seconds / tokens;
  const double total_ns = seconds * 1e9;
  auto row = [&](std::string op, double ns, double bytes, double ops = 0) {
    BenchProfileRow r;
    r.op = std::move(op);
    r.ms_per_token = ns / 1e6 / tokens;
    r.percent = total_ns > 0 ? 100.0 * ns / total_ns : 0.0;
    r.gb_per_second = ns > 0 && bytes > 0 ? bytes / ns : 0.0;
    r.gops_per_second = ns > 0 && ops > 0 ? ops / ns : 0.0;
    p.rows.push_back(std::move(r));
  };
  double accounted = 0.0;
  int64_t busy_total = 0;
  for (int64_t busy : snap.matmul_busy_ns) busy_total += busy;
  const double matmul_wall = static_cast<double>(snap.wall_ns[static_cast<size_t>(profile::Op::kMatmul)]);
  for (size_t type = 0; type < snap.matmul_busy_ns.size(); ++type) {
    if (snap.matmul_busy_ns[type] == 0 || busy_total == 0) continue;
    const double ns = matmul_wall * static_cast<double>(snap.matmul_busy_ns[type]) / static_cast<double>(busy_total);
    row(fmt::format("matmul {}", tensor_type_name(static_cast<TensorType>(type))), ns,
        static_cast<double>(snap.matmul_bytes[type]), static_cast<double>(snap.matmul_ops[type]));
  }
  std::sort(p.rows.begin(), p.rows.end(), [](const auto& a, const auto& b) { return a.ms_per_token > b.ms_per_token; });
  accounted += matmul_wall;
  for (int op = 0; op < profile::kOpCount; ++op) {
    if (op == static_cast<int>(profile::Op::kMatmul)) continue;
    const double ns = static_cast<double>(snap.wall_ns[static_cast<size_t>(op)]);
    accounted += ns;
    row(std::string(profile::op_name(static_cast<profile::Op>(op))), ns, 0.0);
  }
  row("other", std::max(0.0, total_ns - accounted), 0.0);
  if (snap.parallel_capacity_ns > 0) {
    p.parallel_idle_percent = 100.0 * static_cast<double>(snap.parallel_capacity_ns - snap.parallel_busy_ns) /
                              static_cast<double>(snap.parallel_capacity_ns);
    p.parallel_regions_per_token = static_cast<double>(snap.parallel_regions) / tokens;
  }
  return p;
}

// See BenchLookup. The tokenizer is not needed for ids, but generate() streams text.
BenchLookup run_lookup_bench(const Model& model, const BenchOptions& options, const std::vector<TokenId>& prompt) {
  BenchLookup out;
  SessionOptions session_options;
  session_options.n_ctx = static_cast<int32_t>(prompt.size()) + options.n_gen + 8;
  session_options.kv_type = options.kv_type;
  const std::unique_ptr<Session> session = model.new_session(session_options);
  auto run = [&](int32_t max_draft, const std::vector<TokenId>& reference) {
    session->truncate(0);
    GenerateOptions g;
    g.max_tokens = options.n_gen;
    g.sampling.temperature = 0.0f;
    g.lookup.max_draft = max_draft;
    g.lookup.reference = reference;
    return generate(*session, model.tokenizer(), prompt, g);
  };
  const GenerateResult reference_run = run(0, {});  // warm-up, and the text to quote
  std::vector<TokenId> answer = reference_run.tokens;
  std::vector<double> off, no_match, quote;
  for (int r = 0; r < options.repetitions; ++r) {
    const GenerateResult a = run(0, {});
    const GenerateResult b = run(GenerateOptions::Lookup{}.max_draft, {});
    const GenerateResult c = run(GenerateOptions::Lookup{}.max_draft, answer);
    off.push_back(a.stats.generation_tokens_per_second());
    no_match.push_back(b.stats.generation_tokens_per_second());
    quote.push_back(c.stats.generation_tokens_per_second());
    out.same_text = out.same_text && a.tokens == reference_run.tokens && b.tokens == a.tokens && c.tokens == a.tokens;
    out.no_match_drafted = b.stats.lookup_drafted;
    out.no_match_accepted = b.stats.lookup_accepted;
    out.quote_drafted = c.stats.lookup_drafted;
    out.quote_accepted = c.stats.lookup_accepted;
  }
  out.off_tokens_per_second = BenchStat::of(off);
  out.no_match_tokens_per_second = BenchStat::of(no_match);
  out.quote_tokens_per_second = BenchStat::of(quote);
  return out;
}

}  // namespace

BenchStamp bench_stamp() { return {utc_timestamp(), KOTO_VERSION, KOTO_GIT_COMMIT}; }

BenchResult run_bench(const BenchOptions& options) {
  if (options.repetitions < 1 || options.n_prompt < 0 || options.n_gen < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("bench: repetitions must be at least 1 and lengths not negative",
                   "bench: 繰り返し回数は 1 以上、長さは 0 以上にしてください"));
  }
  auto note = [&](const std::string& text) {
    if (options.progress) options.progress(text);
  };
  BenchResult result;
  result.timestamp = utc_timestamp();
  result.koto_version = KOTO_VERSION;
  result.git_commit = KOTO_GIT_COMMIT;
  result.machine = describe_machine();
  result.n_prompt = options.n_prompt;
  result.n_gen = options.n_gen;
  result.tg_depth = options.tg_depth;
  result.repetitions = options.repetitions;

  LoadOptions load_options;
  load_options.n_threads = options.threads;

  // Load: one warm-up (reported apart: it may read the file from disk), then timed loads.
  note(std::string(pick("load", "読み込み")));
  auto start = Clock::now();
  load_options.progress = [&note, last = -1](uint64_t done, uint64_t total) mutable {
    const int percent = static_cast<int>(100 * done / std::max<uint64_t>(total, 1));
    if (percent / 10 == last / 10) return;
    last = percent;
    note(tr("repacking the Q5_0 weights (first load only): {0}%", "Q5_0 の重みの並べ替え (初回のみ): {0}%", percent));
  };
  std::unique_ptr<Model> model = Model::load(options.model_path, load_options);
  result.load_first_seconds = seconds_since(start);
  result.repacked = !model->repack_report().cache_path.empty();
  result.repack_build_seconds = model->repack_report().built ? model->repack_report().build_seconds : 0.0;
  if (!model->repack_report().problem.empty()) note(model->repack_report().problem);
  std::vector<double> loads;
  for (int r = 0; r < options.repetitions; ++r) {
    model.reset();
    start = Clock::now();
    model = Model::load(options.model_path, load_options);
    loads.push_back(seconds_since(start));
  }
  result.load_seconds = BenchStat::of(loads);
  result.threads = model->n_threads();
  // As a server does before it says it is ready (and, where weights sit in the page
  // cache in small pages, it brings them back in 2 MB pages: koto/model.h).
  note(std::string(pick("reading the weights", "重みの読み込み")));
  model->touch_weights([](uint64_t, uint64_t) { return true; });
  result.model = describe_bench_model(options.model_path, *model);

  // tg starts after this many prompt tokens (its depth in the context).
  const int kTgPrompt = std::max(options.tg_depth, 1);
  SessionOptions session_options;
  session_options.n_ctx = std::max({options.n_prompt + 1, kTgPrompt + options.n_gen, 8});
  session_options.kv_type = options.kv_type;
  result.n_ctx = session_options.n_ctx;
  result.session_bytes = model->session_bytes(session_options.n_ctx);
  const std::unique_ptr<Session> session = model->new_session(session_options);

  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<TokenId> any_token(0, model->params().n_vocab - 1);
  auto random_tokens = [&](int n) {
    std::vector<TokenId> ids(static_cast<size_t>(n));
    for (TokenId& id : ids) id = any_token(rng);
    return ids;
  };

  if (options.n_prompt > 0) {
    std::vector<double> pp;
    std::vector<double> ttft;
    for (int r = 0; r <= options.repetitions; ++r) {
      note(r == 0 ? tr("pp{0} warm-up", "pp{0} ウォームアップ", options.n_prompt)
                  : fmt::format("pp{} {}/{}", options.n_prompt, r, options.repetitions));
      session->truncate(0);
      const std::vector<TokenId> prompt = random_tokens(options.n_prompt);
      start = Clock::now();
      const std::span<const float> logits = session->eval(prompt);
      const double prefill = seconds_since(start);
      const TokenId first = static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      const double to_first = seconds_since(start);
      if (first < 0 || !std::isfinite(logits[static_cast<size_t>(first)])) {
        throw Error(ErrorCode::kInternal, tr("bench: the logits are not finite", "bench: ロジットが有限値ではありません"));
      }
      if (r == 0) continue;
      pp.push_back(options.n_prompt / prefill);
      ttft.push_back(to_first);
    }
    result.pp_tokens_per_second = BenchStat::of(pp);
    result.ttft_seconds = BenchStat::of(ttft);
  }

  if (options.n_gen > 0) {
    std::vector<double> tg;
    for (int r = 0; r <= options.repetitions; ++r) {
      note(r == 0 ? tr("tg{0} warm-up", "tg{0} ウォームアップ", options.n_gen)
                  : fmt::format("tg{} {}/{}", options.n_gen, r, options.repetitions));
      session->truncate(0);
      session->eval(random_tokens(kTgPrompt));
      const std::vector<TokenId> tokens = random_tokens(options.n_gen);
      start = Clock::now();
      for (const TokenId id : tokens) session->eval(std::span<const TokenId>(&id, 1));
      if (r > 0) tg.push_back(options.n_gen / seconds_since(start));
    }
    result.tg_tokens_per_second = BenchStat::of(tg);
  }

  if (options.lookup && options.n_gen > 0) {
    note(std::string(pick("lookup decoding", "先読み復号")));
    result.lookup = run_lookup_bench(*model, options, random_tokens(64));
  }

  if (options.profile) {
    // One untimed prefill and generation with the counters on (they cost a clock read
    // per step, so the timed runs above are left without them).
    note(std::string(pick("profile", "プロファイル")));
    auto argmax = [](std::span<const float> logits) {
      const profile::Scope scope(profile::Op::kSampling);
      return static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    };
    profile::set_enabled(true);
    if (options.n_prompt > 0) {
      session->truncate(0);
      const std::vector<TokenId> prompt = random_tokens(options.n_prompt);
      profile::reset();
      start = Clock::now();
      argmax(session->eval(prompt));
      result.profile_pp = make_profile(profile::snapshot(), seconds_since(start), options.n_prompt);
    }
    if (options.n_gen > 0) {
      session->truncate(0);
      session->eval(random_tokens(kTgPrompt));
      const std::vector<TokenId> tokens = random_tokens(options.n_gen);
      profile::reset();
      start = Clock::now();
      for (const TokenId id : tokens) argmax(session->eval(std::span<const TokenId>(&id, 1)));
      result.profile_tg = make_profile(profile::snapshot(), seconds_since(start), options.n_gen);
    }
    profile::set_enabled(false);
    note(std::string(pick("8-bit multiply-add peak", "8 ビット積和のピーク")));
    result.int8_peak_gops_per_second = kernels::int8_peak_ops_per_second(model->n_threads()) / 1e9;
  }

  // Before the bandwidth buffer exists, so it does not count.
  result.peak_rss_bytes = peak_rss_bytes();
  const Model::MappedMemory pages = model->mapped_memory();
  result.weights_resident_bytes = pages.resident_bytes;
  result.weights_huge_bytes = pages.huge_bytes;

  // The pages tg streams, read in the same run: the bound tg is measured against.
  if (options.bandwidth_bytes > 0) {
    note(std::string(pick("model file read bandwidth", "モデルファイルの読み出し帯域")));
    result.mapped_bandwidth_gb_per_second = measure_mapped_bandwidth(*model, model->n_threads());
    if (result.mapped_bandwidth_gb_per_second > 0 && result.tg_tokens_per_second.mean > 0) {
      result.tg_mapped_percent = 100.0 * static_cast<double>(result.model.weight_bytes_per_token) *
                                 result.tg_tokens_per_second.mean / (result.mapped_bandwidth_gb_per_second * 1e9);
    }
  }

  const int threads = result.threads;
  model.reset();

  if (options.bandwidth_bytes > 0) {
    note(std::string(pick("read bandwidth", "読み出し帯域")));
    result.bandwidth_gb_per_second = measure_read_bandwidth(options.bandwidth_bytes, threads);
    if (result.bandwidth_gb_per_second > 0 && result.tg_tokens_per_second.mean > 0) {
      result.tg_roofline_percent = 100.0 * static_cast<double>(result.model.weight_bytes_per_token) *
                                   result.tg_tokens_per_second.mean / (result.bandwidth_gb_per_second * 1e9);
    }
  }
  return result;
}

std::string bench_json(const BenchResult& r) {
  nlohmann::json j;
  j["timestamp"] = r.timestamp;
  j["koto_version"] = r.koto_version;
  j["git_commit"] = r.git_commit;
  j["machine"] = {{"cpu_model", r.machine.cpu_model},
                  {"logical_cpus", r.machine.logical_cpus},
                  {"physical_cores", r.machine.physical_cores},
                  {"memory_bytes", r.machine.memory_bytes},
                  {"l3_cache_bytes", r.machine.l3_cache_bytes},
                  {"isa", r.machine.isa}};
  j["model"] = {{"path", r.model.path},
                {"name", r.model.name},
                {"architecture", r.model.architecture},
                {"shape", r.model.shape},
                {"file_type", r.model.file_type},
                {"tensor_types", r.model.tensor_types},
                {"file_bytes", r.model.file_bytes},
                {"n_params", r.model.n_params},
                {"n_vocab", r.model.n_vocab},
                {"n_layer", r.model.n_layer},
                {"n_embd", r.model.n_embd},
                {"weight_bytes_per_token", r.model.weight_bytes_per_token},
                {"tied_output", r.model.tied_output}};
  j["threads"] = r.threads;
  j["n_prompt"] = r.n_prompt;
  j["n_gen"] = r.n_gen;
  j["tg_depth"] = r.tg_depth;
  j["repetitions"] = r.repetitions;
  j["n_ctx"] = r.n_ctx;
  j["load_first_s"] = r.load_first_seconds;
  j["repacked"] = r.repacked;
  j["repack_build_s"] = r.repack_build_seconds;
  j["load_s"] = stat_json(r.load_seconds);
  j["pp_tokens_per_s"] = stat_json(r.pp_tokens_per_second);
  j["ttft_s"] = stat_json(r.ttft_seconds);
  j["tg_tokens_per_s"] = stat_json(r.tg_tokens_per_second);
  j["bandwidth_gb_per_s"] = r.bandwidth_gb_per_second;
  j["tg_roofline_percent"] = r.tg_roofline_percent;
  j["mapped_bandwidth_gb_per_s"] = r.mapped_bandwidth_gb_per_second;
  j["tg_mapped_percent"] = r.tg_mapped_percent;
  j["weights_resident_bytes"] = r.weights_resident_bytes;
  j["weights_huge_page_bytes"] = r.weights_huge_bytes;
  auto profile_json = [](const BenchProfile& p) {
    nlohmann::json rows = nlohmann::json::array();
    for (const BenchProfileRow& row : p.rows) {
      rows.push_back({{"op", row.op}, {"ms_per_token", row.ms_per_token}, {"percent", row.percent},
                      {"gb_per_s", row.gb_per_second}, {"gops_per_s", row.gops_per_second}});
    }
    return nlohmann::json{{"tokens", p.tokens}, {"ms_per_token", p.ms_per_token},
                          {"parallel_idle_percent", p.parallel_idle_percent},
                          {"parallel_regions_per_token", p.parallel_regions_per_token}, {"rows", rows}};
  };
  j["int8_peak_gops_per_s"] = r.int8_peak_gops_per_second;
  if (!r.lookup.off_tokens_per_second.samples.empty()) {
    const BenchLookup& l = r.lookup;
    j["lookup"] = {{"off_tokens_per_s", stat_json(l.off_tokens_per_second)},
                   {"no_match_tokens_per_s", stat_json(l.no_match_tokens_per_second)},
                   {"quote_tokens_per_s", stat_json(l.quote_tokens_per_second)},
                   {"no_match_drafted", l.no_match_drafted}, {"no_match_accepted", l.no_match_accepted},
                   {"quote_drafted", l.quote_drafted}, {"quote_accepted", l.quote_accepted},
                   {"same_text", l.same_text}};
  }
  if (r.profile_pp.tokens > 0) j["profile_pp"] = profile_json(r.profile_pp);
  if (r.profile_tg.tokens > 0) j["profile_tg"] = profile_json(r.profile_tg);
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  j["session_bytes"] = r.session_bytes;
  j["file_plus_session_bytes"] = r.model.file_bytes + r.session_bytes;
  return j.dump(2) + "\n";
}

namespace {

// CSV cells: quoted when they hold a comma, quote or newline.
std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string bench_csv(const BenchResult& r) {
  std::string out =
      "timestamp,git_commit,cpu_model,isa,threads,model,architecture,file_type,file_bytes,n_params,n_prompt,n_gen,"
      "repetitions,load_s,load_sd,pp_tokens_per_s,pp_sd,tg_tokens_per_s,tg_sd,ttft_s,ttft_sd,bandwidth_gb_per_s,"
      "tg_roofline_percent,weight_bytes_per_token,peak_rss_bytes,file_plus_session_bytes\n";
  out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6f},{:.6f},{:.3f},{:.3f},{:.3f},{:.3f},{:.6f},{:.6f},{:.3f},"
                     "{:.2f},{},{},{}\n",
                     r.timestamp, csv_cell(r.git_commit), csv_cell(r.machine.cpu_model), r.machine.isa, r.threads,
                     csv_cell(std::filesystem::path(r.model.path).filename().string()), r.model.architecture,
                     r.model.file_type, r.model.file_bytes, r.model.n_params, r.n_prompt, r.n_gen, r.repetitions,
                     r.load_seconds.mean, r.load_seconds.sd, r.pp_tokens_per_second.mean, r.pp_tokens_per_second.sd,
                     r.tg_tokens_per_second.mean, r.tg_tokens_per_second.sd, r.ttft_seconds.mean, r.ttft_seconds.sd,
                     r.bandwidth_gb_per_second, r.tg_roofline_percent, r.model.weight_bytes_per_token,
                     r.peak_rss_bytes, r.model.file_bytes + r.session_bytes);
  return out;
}

std::string bench_markdown(const BenchResult& r) {
  std::string out =
      "| model | type | size | threads | load s | pp t/s | tg t/s | TTFT s | tg % of roofline | peak RSS | commit |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  out += fmt::format("| {} | {} | {} | {} | {:.3f} ± {:.3f} | pp{}: {:.2f} ± {:.2f} | tg{}: {:.2f} ± {:.2f} | "
                     "{:.3f} ± {:.3f} | {:.1f}% of {:.1f} GB/s | {} | {} |\n",
                     std::filesystem::path(r.model.path).filename().string(), r.model.file_type,
                     human_bytes(static_cast<double>(r.model.file_bytes)), r.threads, r.load_seconds.mean,
                     r.load_seconds.sd, r.n_prompt, r.pp_tokens_per_second.mean, r.pp_tokens_per_second.sd, r.n_gen,
                     r.tg_tokens_per_second.mean, r.tg_tokens_per_second.sd, r.ttft_seconds.mean, r.ttft_seconds.sd,
                     r.tg_roofline_percent, r.bandwidth_gb_per_second,
                     human_bytes(static_cast<double>(r.peak_rss_bytes)), r.git_commit);
  return out;
}

std::string bench_table(const BenchResult& r) {
  std::string out;
  const std::string file = std::filesystem::path(r.model.path).filename().string();
  out += tr("koto bench: {0} ({1}, {2}, {3}, {4} parameters), threads: {5}, {6} kernels\n",
            "koto bench: {0} ({1}, {2}, {3}, パラメータ {4})、{5} スレッド、{6} カーネル\n", file,
            r.model.architecture, r.model.file_type, human_bytes(static_cast<double>(r.model.file_bytes)),
            human_count(static_cast<double>(r.model.n_params)), r.threads, r.machine.isa);
  out += tr("  {0} repetitions after one warm-up; mean ± standard deviation\n",
            "  ウォームアップ 1 回の後に {0} 回測定 (平均 ± 標準偏差)\n", r.repetitions);
  out += tr("  load                {0:10.3f} ± {1:.3f} s   (first load {2:.3f} s)\n",
            "  読み込み            {0:10.3f} ± {1:.3f} 秒 (初回 {2:.3f} 秒)\n", r.load_seconds.mean, r.load_seconds.sd,
            r.load_first_seconds);
  if (r.repacked) {
    out += r.repack_build_seconds > 0
               ? tr("  weights             Q5_0 read as Q5_0R (repacked for these kernels; built in {0:.1f} s at the first "
                    "load)\n",
                    "  重み                Q5_0 を Q5_0R として読む (このカーネル向けに並べ替え。初回の読み込みで {0:.1f} 秒)\n",
                    r.repack_build_seconds)
               : tr("  weights             Q5_0 read as Q5_0R (repacked for these kernels, from the cache)\n",
                    "  重み                Q5_0 を Q5_0R として読む (このカーネル向けに並べ替え済み、キャッシュから)\n");
  }
  if (r.n_prompt > 0) {
    out += tr("  prompt pp{0:<6}      {1:10.2f} ± {2:.2f} tokens/s\n", "  プロンプト pp{0:<6}  {1:10.2f} ± {2:.2f} トークン/秒\n",
              r.n_prompt, r.pp_tokens_per_second.mean, r.pp_tokens_per_second.sd);
    out += tr("  first token         {0:10.3f} ± {1:.3f} s   (prefill of {2} + first token, load excluded)\n",
              "  最初のトークン      {0:10.3f} ± {1:.3f} 秒 ({2} トークンの前処理 + 最初のトークン、読み込みを除く)\n",
              r.ttft_seconds.mean, r.ttft_seconds.sd, r.n_prompt);
  }
  if (r.n_gen > 0) {
    out += tr("  generation tg{0:<6}  {1:10.2f} ± {2:.2f} tokens/s{3}\n", "  生成 tg{0:<6}        {1:10.2f} ± {2:.2f} トークン/秒{3}\n",
              r.n_gen, r.tg_tokens_per_second.mean, r.tg_tokens_per_second.sd,
              r.tg_depth > 4 ? tr("   (after {0} tokens)", "   ({0} トークンの後)", r.tg_depth) : std::string());
  }
  if (r.bandwidth_gb_per_second > 0) {
    out += tr("  read bandwidth      {0:10.2f} GB/s (threads: {1}); tg reads {2} of weights per token = {3:.1f}% of "
              "the roofline\n",
              "  読み出し帯域        {0:10.2f} GB/秒 ({1} スレッド)。tg はトークンごとに重み {2} を読む = 上限の {3:.1f}%\n",
              r.bandwidth_gb_per_second, r.threads, human_bytes(static_cast<double>(r.model.weight_bytes_per_token)),
              r.tg_roofline_percent);
    if (r.machine.l3_cache_bytes > 0 && r.model.weight_bytes_per_token < r.machine.l3_cache_bytes) {
      out += tr("                      (the weights fit in the {0} L3 cache, so the memory roofline does not bound tg)\n",
                "                      (重みが L3 キャッシュ {0} に収まるため、メモリ帯域の上限は tg を縛りません)\n",
                human_bytes(static_cast<double>(r.machine.l3_cache_bytes)));
    }
  }
  if (r.mapped_bandwidth_gb_per_second > 0) {
    out += tr("  model file read     {0:10.2f} GB/s (its mapped pages, same threads); tg = {1:.1f}% of it\n",
              "  モデルファイル読出  {0:10.2f} GB/秒 (マップされたページ、同じスレッド数)。tg はその {1:.1f}%\n",
              r.mapped_bandwidth_gb_per_second, r.tg_mapped_percent);
  }
  if (r.weights_resident_bytes > 0 && r.weights_huge_bytes >= 0) {
    out += tr("  pages               {0:.1f}% of the {1} of mapped model files in memory are in 2 MB pages\n",
              "  ページ              メモリ上のモデルファイル {1} のうち {0:.1f}% が 2 MB ページ\n",
              100.0 * static_cast<double>(r.weights_huge_bytes) / static_cast<double>(r.weights_resident_bytes),
              human_bytes(static_cast<double>(r.weights_resident_bytes)));
  }
  if (!r.lookup.off_tokens_per_second.samples.empty()) {
    const BenchLookup& l = r.lookup;
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.empty() ? 0.0 : v[v.size() / 2];
    };
    const double off = median(l.off_tokens_per_second.samples);
    const double none = median(l.no_match_tokens_per_second.samples);
    const double quote = median(l.quote_tokens_per_second.samples);
    out += tr("  lookup decoding     off {0:.2f}, nothing to quote {1:.2f} ({2:.2f}x, {3}/{4} guesses kept), "
              "quoting {5:.2f} ({6:.2f}x, {7}/{8} kept) tokens/s (medians); same text: {9}\n",
              "  先読み復号          なし {0:.2f}、引用なし {1:.2f} ({2:.2f} 倍、推測 {4} 中 {3} 採用)、"
              "引用 {5:.2f} ({6:.2f} 倍、{8} 中 {7} 採用) トークン/秒 (中央値)。出力一致: {9}\n",
              off, none, off > 0 ? none / off : 0.0, l.no_match_accepted, l.no_match_drafted, quote,
              off > 0 ? quote / off : 0.0, l.quote_accepted, l.quote_drafted, l.same_text ? pick("yes", "はい") : pick("NO", "いいえ"));
  }
  out += tr("  peak memory (RSS)   {0:>10}   (file {1} + KV cache and buffers {2} = {3})\n",
            "  最大メモリ (RSS)    {0:>10}   (ファイル {1} + KV キャッシュとバッファ {2} = {3})\n",
            human_bytes(static_cast<double>(r.peak_rss_bytes)), human_bytes(static_cast<double>(r.model.file_bytes)),
            human_bytes(static_cast<double>(r.session_bytes)),
            human_bytes(static_cast<double>(r.model.file_bytes + r.session_bytes)));
  out += tr("  machine: {0}, {1} CPUs, {2} memory; koto {3} ({4}), {5}\n",
            "  マシン: {0}、CPU {1} 個、メモリ {2}。koto {3} ({4})、{5}\n", r.machine.cpu_model, r.machine.logical_cpus,
            human_bytes(static_cast<double>(r.machine.memory_bytes)), r.koto_version, r.git_commit, r.timestamp);
  return out;
}

std::string bench_profile_table(const BenchResult& r) {
  std::string out;
  auto one = [&](const BenchProfile& p, std::string_view phase) {
    if (p.tokens == 0) return;
    out += tr("{0}: {1:.3f} ms per token over {2} tokens; threads idle in parallel regions {3:.1f}% of their time "
              "({4:.0f} regions per token)\n",
              "{0}: 1 トークンあたり {1:.3f} ms ({2} トークン)。並列区間でスレッドが待っていた時間 {3:.1f}% "
              "(1 トークンあたり {4:.0f} 区間)\n",
              phase, p.ms_per_token, p.tokens, p.parallel_idle_percent, p.parallel_regions_per_token);
    for (const BenchProfileRow& row : p.rows) {
      if (row.percent < 0.05 && row.op != "other") continue;
      out += fmt::format("  {:<16} {:9.3f} ms {:6.1f}%", row.op, row.ms_per_token, row.percent);
      if (row.gb_per_second > 0) {
        out += fmt::format("  {:6.1f} GB/s  {:6.1f} GOP/s", row.gb_per_second, row.gops_per_second);
        if (r.int8_peak_gops_per_second > 0) {
          out += fmt::format(" ({:.0f}% of peak)", 100.0 * row.gops_per_second / r.int8_peak_gops_per_second);
        }
      }
      out += "\n";
    }
  };
  if (r.int8_peak_gops_per_second > 0) {
    out += tr("8-bit multiply-add peak of {0} threads: {1:.0f} GOP/s (matrix products below: share of it)\n",
              "{0} スレッドの 8 ビット積和ピーク: {1:.0f} GOP/秒 (以下の行列積はその何 % か)\n", r.threads,
              r.int8_peak_gops_per_second);
  }
  one(r.profile_pp, fmt::format("pp{}", r.n_prompt));
  one(r.profile_tg, fmt::format("tg{}", r.n_gen));
  return out;
}

std::string bench_result_file_name(const BenchResult& r) {
  std::string stem = std::filesystem::path(r.model.path).stem().string();
  for (char& c : stem) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  }
  std::string stamp = r.timestamp;
  std::erase(stamp, ':');
  return fmt::format("{}_{}_t{}.json", stamp, stem, r.threads);
}

}  // namespace koto
