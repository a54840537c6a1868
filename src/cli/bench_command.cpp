// `koto bench`: measures a model's load time, prompt and generation speed, time to
// first token, peak memory and share of the memory-bandwidth roofline (koto/bench.h).
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>

#include "cli/commands.h"
#include "koto/bench.h"
#include "koto/error.h"
#include "koto/i18n.h"
#include "server/serve_bench.h"

namespace koto::cli {
namespace {

struct BenchCommandOptions {
  BenchOptions bench;
  bool serve = false;
  server::ServeBenchOptions serve_bench;
  bool json = false;
  bool csv = false;
  bool markdown = false;
  std::string output;
  std::string results_dir;
  uint64_t bandwidth_mb = 1024;
};

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    throw Error(ErrorCode::kIo, tr("{0}: cannot write the results", "{0}: 結果を書き込めません", path));
  }
}

// The result as asked (stdout or -o FILE), and its JSON in --results-dir when given.
void publish(const BenchCommandOptions& options, const std::string& text, const std::string& json,
             const std::string& file_name) {
  if (options.output.empty()) {
    fmt::print("{}", text);
  } else {
    write_text_file(options.output, text);
  }
  if (!options.results_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.results_dir, ec);
    const std::string path = (std::filesystem::path(options.results_dir) / file_name).string();
    write_text_file(path, json);
    std::fprintf(stderr, "%s\n", tr("koto bench: results saved to {0}", "koto bench: 結果を {0} に保存しました", path).c_str());
  }
}

// `koto bench --serve`: the serving benchmark (server/serve_bench.h).
int run_serve_bench_command(BenchCommandOptions& options, const CLI::App& command) {
  server::ServeBenchOptions& o = options.serve_bench;
  o.model_path = options.bench.model_path;
  o.threads = options.bench.threads;
  o.seed = options.bench.seed;
  if (command.count("--prompt") > 0) o.n_prompt = options.bench.n_prompt;
  if (command.count("--gen") > 0) o.n_gen = options.bench.n_gen;
  o.progress = [](const std::string& note) {
    std::fprintf(stderr, "%s\n", tr("koto bench --serve: {0}…", "koto bench --serve: {0}…", note).c_str());
    std::fflush(stderr);
  };
  const server::ServeBenchResult result = server::run_serve_bench(o);
  const std::string text = options.json       ? server::serve_bench_json(result)
                           : options.markdown ? server::serve_bench_markdown(result)
                                              : server::serve_bench_table(result);
  publish(options, text, server::serve_bench_json(result), server::serve_bench_file_name(result));
  return kExitOk;
}

int run_bench_command(BenchCommandOptions& options) {
  options.bench.bandwidth_bytes = options.bandwidth_mb << 20;
  options.bench.progress = [](const std::string& note) {
    std::fprintf(stderr, "%s\n", tr("koto bench: {0}…", "koto bench: {0}…", note).c_str());
    std::fflush(stderr);
  };
  const BenchResult result = run_bench(options.bench);

  const std::string text = options.json       ? bench_json(result)
                           : options.csv      ? bench_csv(result)
                           : options.markdown ? bench_markdown(result)
                                              : bench_table(result);
  publish(options, text, bench_json(result), bench_result_file_name(result));
  return kExitOk;
}

}  // namespace

CommandRunner define_bench(CLI::App& command) {
  auto options = std::make_shared<BenchCommandOptions>();
  command.add_option("-m,--model", options->bench.model_path, std::string(pick("GGUF model file", "GGUF モデルファイル")))
      ->required();
  command.add_option("-p,--prompt", options->bench.n_prompt,
                     std::string(pick("prompt tokens for pp and TTFT (default 512; 0 skips)",
                                      "pp と TTFT のプロンプトのトークン数 (既定 512、0 で省略)")))
      ->check(CLI::Range(0, 1 << 20));
  command.add_option("-n,--gen", options->bench.n_gen,
                     std::string(pick("generated tokens for tg (default 128; 0 skips)", "tg の生成トークン数 (既定 128、0 で省略)")))
      ->check(CLI::Range(0, 1 << 20));
  command.add_option("-r,--repetitions", options->bench.repetitions,
                     std::string(pick("timed runs after one warm-up (default 5)", "ウォームアップ後の測定回数 (既定 5)")))
      ->check(CLI::Range(1, 1000));
  command.add_option("-t,--threads", options->bench.threads,
                     std::string(pick("threads (default: one per physical core)", "スレッド数 (既定: 物理コア数)")))
      ->check(CLI::Range(0, 1024));
  command.add_option("--seed", options->bench.seed, std::string(pick("seed of the random token ids (default 1)",
                                                                     "ランダムなトークン ID の種 (既定 1)")));
  command.add_option("--bandwidth-mb", options->bandwidth_mb,
                     std::string(pick("buffer for the read-bandwidth measurement in MiB (default 1024; 0 skips)",
                                      "読み出し帯域の測定に使うバッファ (MiB、既定 1024、0 で省略)")));
  auto* json = command.add_flag("--json", options->json, std::string(pick("print JSON", "JSON で出力")));
  auto* csv = command.add_flag("--csv", options->csv, std::string(pick("print CSV", "CSV で出力")));
  auto* md = command.add_flag("--md", options->markdown, std::string(pick("print a Markdown table", "Markdown の表で出力")));
  json->excludes(csv)->excludes(md);
  csv->excludes(md);
  command.add_option("-o,--output", options->output,
                     std::string(pick("write the output to this file instead of stdout", "標準出力の代わりにこのファイルへ書く")));
  command.add_option("--results-dir", options->results_dir,
                     std::string(pick("also save the JSON result in this folder (e.g. bench/results)",
                                      "JSON の結果をこのフォルダにも保存 (例: bench/results)")));
  command.add_flag("--serve", options->serve,
                   std::string(pick("measure serving through HTTP: 1, 2, 4, 8 concurrent streams, TTFT percentiles, a cached "
                                    "prefix (-p/-n default to 32/64 per request)",
                                    "HTTP 経由の提供を測定: 同時 1・2・4・8 系列、TTFT の分布、キャッシュされた前置き "
                                    "(-p/-n の既定は 1 依頼あたり 32/64)")));
  command.add_option("--concurrency", options->serve_bench.concurrency,
                     std::string(pick("with --serve: concurrent streams to measure (default 1,2,4,8)",
                                      "--serve 用: 測定する同時系列数 (既定 1,2,4,8)")))
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  command.add_option("--requests", options->serve_bench.requests_per_stream,
                     std::string(pick("with --serve: requests each stream sends (default 2)", "--serve 用: 系列ごとの依頼数 (既定 2)")))
      ->check(CLI::Range(1, 10000));
  command.add_option("--prefix", options->serve_bench.prefix_tokens,
                     std::string(pick("with --serve: tokens of the cached-prefix test (default 2000; 0 skips)",
                                      "--serve 用: キャッシュ前置きの測定のトークン数 (既定 2000、0 で省略)")))
      ->check(CLI::Range(0, 1 << 20));
  command.add_option("--cache-dir", options->serve_bench.cache_dir,
                     std::string(pick("with --serve: folder for the disk cache of the restart test (default: a temporary one)",
                                      "--serve 用: 再起動の測定に使うディスクキャッシュのフォルダー (既定: 一時フォルダー)")));
  return [options, &command] {
    return options->serve ? run_serve_bench_command(*options, command) : run_bench_command(*options);
  };
}

}  // namespace koto::cli
