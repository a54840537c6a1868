#include "server/serve_bench.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "koto/chat_template.h"
#include "koto/error.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "koto/scheduler.h"
#include "server/http_server.h"

namespace koto::server {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double>(end - start).count();
}

// What one streaming request looked like from the client.
struct Exchange {
  bool ok = false;
  std::string error;
  double ttft = 0;              // request sent → first text chunk
  double generation = 0;        // first text chunk → end of the answer
  int generated_tokens = 0;     // from the usage chunk
  int cached_tokens = 0;
  Clock::time_point end;
};

Exchange stream_completion(int port, const std::vector<TokenId>& prompt, int n_gen) {
  Exchange out;
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(600, 0);
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/completions";
  request.set_header("Content-Type", "application/json");
  request.body = json({{"prompt", prompt},
                       {"max_tokens", n_gen},
                       {"temperature", 0},
                       {"ignore_eos", true},
                       {"stream", true},
                       {"stream_options", {{"include_usage", true}}}})
                     .dump();
  std::string pending;
  Clock::time_point first{};
  const Clock::time_point sent = Clock::now();
  request.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    pending.append(data, size);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos; pending.erase(0, end + 2)) {
      const std::string event = pending.substr(0, end);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      const json chunk = json::parse(event.substr(6), nullptr, false);
      if (chunk.is_discarded()) continue;
      if (chunk.contains("error")) out.error = chunk["error"].value("message", "");
      if (chunk.contains("choices") && !chunk["choices"].empty() &&
          !chunk["choices"][0].value("text", "").empty() && first == Clock::time_point{}) {
        first = Clock::now();
      }
      if (chunk.contains("usage") && chunk["usage"].is_object()) {
        out.generated_tokens = chunk["usage"].value("completion_tokens", 0);
        out.cached_tokens = chunk["usage"]["prompt_tokens_details"].value("cached_tokens", 0);
      }
    }
    return true;
  };
  const httplib::Result result = client.send(request);
  out.end = Clock::now();
  if (!result || result->status != 200) {
    out.error = result ? fmt::format("HTTP {}", result->status) : httplib::to_string(result.error());
    return out;
  }
  if (first == Clock::time_point{}) first = out.end;  // no text at all (a model that says nothing)
  out.ttft = seconds_since(sent, first);
  out.generation = seconds_since(first, out.end);
  out.ok = out.error.empty();
  return out;
}

std::vector<TokenId> random_tokens(std::mt19937_64& rng, int n, int32_t vocab) {
  std::uniform_int_distribution<TokenId> pick_id(0, vocab - 1);
  std::vector<TokenId> ids(static_cast<size_t>(n));
  for (TokenId& id : ids) id = pick_id(rng);
  return ids;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

// A scheduler and an HTTP server on a free loopback port, for one model.
struct LocalServer {
  LocalServer(const Model& model, const SchedulerOptions& options) : scheduler(model, options) {
    ServerOptions server_options;
    server_options.port = 0;
    server_options.http_threads = 64;
    server_options.max_body_bytes = 64ull << 20;
    http = std::make_unique<HttpServer>(server_options, ApiKeys(), nullptr);
    port = http->bind();
    http->start();
    http->set_model(model, scheduler, ChatTemplate(ChatFamily::kPlain), "bench");
  }
  ~LocalServer() { http->stop(); }
  Scheduler scheduler;
  std::unique_ptr<HttpServer> http;
  int port = 0;
};

void check(const Exchange& e) {
  if (!e.ok) throw Error(ErrorCode::kInternal, tr("bench --serve: a request failed: {0}", "bench --serve: 依頼が失敗しました: {0}", e.error));
}

}  // namespace

ServeBenchResult run_serve_bench(const ServeBenchOptions& options) {
  if (options.concurrency.empty() || options.n_gen < 2 || options.n_prompt < 1 || options.requests_per_stream < 1) {
    throw Error(ErrorCode::kInvalidArgument, tr("bench --serve: needs concurrency levels, n_gen >= 2, a prompt and a request per stream",
                                                "bench --serve: 同時数・2 以上の生成長・プロンプト・系列ごとの依頼が必要です"));
  }
  auto note = [&](const std::string& text) {
    if (options.progress) options.progress(text);
  };
  ServeBenchResult result;
  result.stamp = bench_stamp();
  result.machine = describe_machine();
  result.n_prompt = options.n_prompt;
  result.n_gen = options.n_gen;
  result.prefix_tokens = options.prefix_tokens;

  // 1. Plain generation, no HTTP, as `koto bench` measures it.
  note(pick("plain tg (no HTTP)", "HTTP なしの生成 (tg)").data());
  BenchOptions plain;
  plain.model_path = options.model_path;
  plain.n_prompt = 0;
  plain.n_gen = options.n_gen;
  plain.repetitions = 2;
  plain.threads = options.threads;
  plain.bandwidth_bytes = 0;
  result.plain_tg_tokens_per_second = run_bench(plain).tg_tokens_per_second.mean;

  LoadOptions load_options;
  load_options.n_threads = options.threads;
  const std::unique_ptr<Model> model = Model::load(options.model_path, load_options);
  result.model = describe_bench_model(options.model_path, *model);
  result.threads = model->n_threads();
  const int32_t vocab = model->tokenizer().vocab_size();
  std::mt19937_64 rng(options.seed);

  const int max_streams = *std::max_element(options.concurrency.begin(), options.concurrency.end());
  const int needed = std::max(options.n_prompt + options.n_gen, options.prefix_tokens + options.question_tokens + 8) + 64;
  SchedulerOptions scheduler_options;
  scheduler_options.n_slots = max_streams;
  scheduler_options.n_ctx = (needed + 255) / 256 * 256;
  scheduler_options.batch_tokens = std::max(64, max_streams);
  // The streams run as `koto serve` does by default (memory cache only); the prefix
  // test adds the disk cache, for the restart.
  std::string cache_dir = options.cache_dir;
  if (cache_dir.empty()) {
    cache_dir = (std::filesystem::temp_directory_path() / fmt::format("koto-serve-bench-{}", ::getpid())).string();
  }
  std::filesystem::remove_all(cache_dir);
  SchedulerOptions with_disk = scheduler_options;
  with_disk.cache.disk_dir = cache_dir;

  const std::vector<TokenId> prefix = random_tokens(rng, options.prefix_tokens, vocab);
  auto with_question = [&] {
    std::vector<TokenId> prompt = prefix;
    const std::vector<TokenId> question = random_tokens(rng, options.question_tokens, vocab);
    prompt.insert(prompt.end(), question.begin(), question.end());
    return prompt;
  };
  {
    LocalServer server(*model, scheduler_options);
    check(stream_completion(server.port, random_tokens(rng, options.n_prompt, vocab), options.n_gen));  // warm-up

    // 2. 1, 2, 4, 8... streams at once.
    for (int streams : options.concurrency) {
      note(tr("{0} concurrent stream(s)", "同時 {0} 系列", streams));
      std::vector<std::vector<TokenId>> prompts;
      for (int i = 0; i < streams * options.requests_per_stream; ++i) {
        prompts.push_back(random_tokens(rng, options.n_prompt, vocab));
      }
      std::vector<Exchange> exchanges(prompts.size());
      const Clock::time_point start = Clock::now();
      std::vector<std::thread> threads;
      for (int s = 0; s < streams; ++s) {
        threads.emplace_back([&, s] {
          for (int r = 0; r < options.requests_per_stream; ++r) {
            const size_t i = static_cast<size_t>(s * options.requests_per_stream + r);
            exchanges[i] = stream_completion(server.port, prompts[i], options.n_gen);
          }
        });
      }
      for (std::thread& t : threads) t.join();
      ServeBenchRow row;
      row.concurrency = streams;
      std::vector<double> ttfts;
      double stream_speed = 0;
      Clock::time_point last = start;
      for (const Exchange& e : exchanges) {
        check(e);
        row.generated_tokens += e.generated_tokens;
        ttfts.push_back(e.ttft);
        if (e.generation > 0) stream_speed += (e.generated_tokens - 1) / e.generation;
        last = std::max(last, e.end);
      }
      row.requests = static_cast<int>(exchanges.size());
      row.seconds = seconds_since(start, last);
      row.tokens_per_second = static_cast<double>(row.generated_tokens) / row.seconds;
      row.stream_tokens_per_second = stream_speed / static_cast<double>(exchanges.size());
      row.ttft_p50 = percentile(ttfts, 0.5);
      row.ttft_p90 = percentile(ttfts, 0.9);
      row.ttft_max = percentile(ttfts, 1.0);
      result.rows.push_back(row);
    }
    const double one = result.rows.front().concurrency == 1 ? result.rows.front().tokens_per_second : 0;
    for (ServeBenchRow& row : result.rows) row.speedup = one > 0 ? row.tokens_per_second / one : 0;
    if (result.rows.front().concurrency == 1 && result.plain_tg_tokens_per_second > 0) {
      result.http_share_of_plain = result.rows.front().stream_tokens_per_second / result.plain_tg_tokens_per_second;
    }

  }
  if (options.prefix_tokens > 0) {
    // 3. A long prefix: uncached, then cached in memory (and written to disk).
    LocalServer server(*model, with_disk);
    {
      note(tr("{0}-token prefix, nothing cached", "{0} トークンの前置き、キャッシュなし", options.prefix_tokens));
      const Exchange cold = stream_completion(server.port, with_question(), 4);
      check(cold);
      result.prefix_cold_ttft = cold.ttft;
      note(tr("{0}-token prefix, cached", "{0} トークンの前置き、キャッシュあり", options.prefix_tokens));
      const Exchange cached = stream_completion(server.port, with_question(), 4);
      check(cached);
      result.prefix_cached_ttft = cached.ttft;
      result.prefix_cached_tokens = cached.cached_tokens;
    }
  }  // the scheduler's destructor finishes the cache's disk writes
  // 4. After a restart: a new scheduler and server on the same folder, memory cache empty.
  if (options.prefix_tokens > 0) {
    note(tr("{0}-token prefix after a restart (disk cache)", "再起動後の {0} トークンの前置き (ディスクキャッシュ)", options.prefix_tokens));
    LocalServer restarted(*model, with_disk);
    const Exchange after = stream_completion(restarted.port, with_question(), 4);
    check(after);
    result.prefix_restart_ttft = after.ttft;
    result.prefix_restart_cached_tokens = after.cached_tokens;
  }
  if (options.cache_dir.empty()) std::filesystem::remove_all(cache_dir);
  return result;
}

std::string serve_bench_table(const ServeBenchResult& r) {
  std::string out = tr("koto bench --serve: {0} ({1}, {2}), threads {3}, {4} prompt + {5} generated tokens per request\n",
                       "koto bench --serve: {0} ({1}、{2})、スレッド {3}、1 依頼あたりプロンプト {4} + 生成 {5} トークン\n",
                       std::filesystem::path(r.model.path).filename().string(), r.model.architecture, r.model.file_type,
                       r.threads, r.n_prompt, r.n_gen);
  out += tr("  plain generation (no HTTP, 1 sequence): {0:.2f} tokens/s\n", "  HTTP なしの生成 (1 系列): 毎秒 {0:.2f} トークン\n",
            r.plain_tg_tokens_per_second);
  out += pick("  streams  requests  tokens/s  × 1 stream  per stream  TTFT p50   p90      max\n",
              "  同時数   依頼数    合計 tok/s × 1 系列   系列ごと    TTFT 中央  p90      最大\n");
  for (const ServeBenchRow& row : r.rows) {
    out += fmt::format("  {:>7}  {:>8}  {:>8.2f}  {:>10.2f}  {:>10.2f}  {:>7.3f} s {:>6.3f} s {:>6.3f} s\n", row.concurrency,
                       row.requests, row.tokens_per_second, row.speedup, row.stream_tokens_per_second, row.ttft_p50,
                       row.ttft_p90, row.ttft_max);
  }
  if (r.http_share_of_plain > 0) {
    out += tr("  one stream through HTTP: {0:.1f} % of plain generation\n", "  HTTP 経由の 1 系列: HTTP なしの {0:.1f} %\n",
              100 * r.http_share_of_plain);
  }
  if (r.prefix_tokens > 0) {
    out += tr("  {0}-token prefix: first token {1:.3f} s uncached, {2:.3f} s cached ({3} tokens), {4:.3f} s after a "
              "restart ({5} tokens from disk)\n",
              "  {0} トークンの前置き: 最初のトークンまで キャッシュなし {1:.3f} 秒、キャッシュあり {2:.3f} 秒 ({3} トークン)、"
              "再起動後 {4:.3f} 秒 (ディスクから {5} トークン)\n",
              r.prefix_tokens, r.prefix_cold_ttft, r.prefix_cached_ttft, r.prefix_cached_tokens, r.prefix_restart_ttft,
              r.prefix_restart_cached_tokens);
  }
  out += fmt::format("  {}, {} CPUs, {}; koto {} ({}), {}\n", r.machine.cpu_model, r.machine.logical_cpus, r.machine.isa,
                     r.stamp.koto_version, r.stamp.git_commit, r.stamp.timestamp);
  return out;
}

std::string serve_bench_markdown(const ServeBenchResult& r) {
  std::string out = "| streams | requests | aggregate tok/s | × 1 stream | tok/s per stream | TTFT p50 | TTFT p90 | TTFT max |\n"
                    "|---|---|---|---|---|---|---|---|\n";
  for (const ServeBenchRow& row : r.rows) {
    out += fmt::format("| {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.3f} s | {:.3f} s | {:.3f} s |\n", row.concurrency, row.requests,
                       row.tokens_per_second, row.speedup, row.stream_tokens_per_second, row.ttft_p50, row.ttft_p90, row.ttft_max);
  }
  return out;
}

std::string serve_bench_json(const ServeBenchResult& r) {
  json rows = json::array();
  for (const ServeBenchRow& row : r.rows) {
    rows.push_back({{"concurrency", row.concurrency},
                    {"requests", row.requests},
                    {"generated_tokens", row.generated_tokens},
                    {"seconds", row.seconds},
                    {"tokens_per_second", row.tokens_per_second},
                    {"speedup_vs_1", row.speedup},
                    {"stream_tokens_per_second", row.stream_tokens_per_second},
                    {"ttft_p50_s", row.ttft_p50},
                    {"ttft_p90_s", row.ttft_p90},
                    {"ttft_max_s", row.ttft_max}});
  }
  const json j = {{"timestamp", r.stamp.timestamp},
                  {"koto_version", r.stamp.koto_version},
                  {"git_commit", r.stamp.git_commit},
                  {"machine", {{"cpu_model", r.machine.cpu_model}, {"logical_cpus", r.machine.logical_cpus},
                               {"memory_bytes", r.machine.memory_bytes}, {"isa", r.machine.isa}}},
                  {"model", {{"path", r.model.path}, {"architecture", r.model.architecture}, {"file_type", r.model.file_type},
                             {"shape", r.model.shape}, {"file_bytes", r.model.file_bytes}, {"n_params", r.model.n_params}}},
                  {"threads", r.threads},
                  {"n_prompt", r.n_prompt},
                  {"n_gen", r.n_gen},
                  {"plain_tg_tokens_per_second", r.plain_tg_tokens_per_second},
                  {"http_share_of_plain", r.http_share_of_plain},
                  {"rows", rows},
                  {"prefix", {{"tokens", r.prefix_tokens},
                              {"cold_ttft_s", r.prefix_cold_ttft},
                              {"cached_ttft_s", r.prefix_cached_ttft},
                              {"cached_tokens", r.prefix_cached_tokens},
                              {"restart_ttft_s", r.prefix_restart_ttft},
                              {"restart_cached_tokens", r.prefix_restart_cached_tokens}}}};
  return j.dump(2) + "\n";
}

std::string serve_bench_file_name(const ServeBenchResult& r) {
  std::string stamp = r.stamp.timestamp;
  stamp.erase(std::remove(stamp.begin(), stamp.end(), ':'), stamp.end());
  std::string name = r.model.shape.empty() ? std::filesystem::path(r.model.path).stem().string() : r.model.shape;
  if (!r.model.file_type.empty()) name += "-" + r.model.file_type;
  return fmt::format("{}_{}_serve.json", stamp, name);
}

}  // namespace koto::server
