// `koto bench`: measures a model's load time, prompt and generation speed, time to
// first token, peak memory and share of the memory-bandwidth roofline (koto/bench.h).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>

#include "cli/commands.h"
#include "cli/kv_type.h"
#include "cli/model_path.h"
#include "koto/bench.h"
#include "koto/error.h"
#include "koto/i18n.h"
#include "cli/usage_error.h"
#include "koto/retrieval_bench.h"
#include "koto/timeline.h"
#include "server/serve_bench.h"
#include <nlohmann/json.hpp>

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
  bool retrieval = false;
  RetrievalBenchOptions retrieval_bench;
  std::string corpus;
  std::string questions;
  std::string db;
  std::string timeline;
  std::string kv_type = "f16";
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

// `koto bench --retrieval`: indexing time, recall@5, MRR@10, refusals, query time.
int run_retrieval_bench_command(BenchCommandOptions& options) {
  RetrievalBenchOptions& o = options.retrieval_bench;
  if (options.corpus.empty() || options.questions.empty()) {
    throw UsageError(tr("--retrieval needs --corpus FOLDER and --questions FILE.jsonl",
                        "--retrieval には --corpus フォルダー と --questions ファイル.jsonl が必要です"));
  }
  o.corpus = options.corpus;
  o.questions = options.questions;
  o.db = options.db;
  o.index.threads = options.bench.threads;
  o.progress = [](const std::string& note) {
    std::fprintf(stderr, "%s\n", tr("koto bench --retrieval: {0}…", "koto bench --retrieval: {0}…", note).c_str());
  };
  const RetrievalBenchResult r = run_retrieval_bench(o);
  const BenchStamp stamp = bench_stamp();
  nlohmann::json questions = nlohmann::json::array();
  for (const RetrievalQuestion& q : r.questions) {
    questions.push_back({{"id", q.id}, {"answerable", q.answerable}, {"first_correct_rank", q.first_correct_rank},
                         {"evidence_rank", q.evidence_rank},
                         {"coverage", q.coverage}, {"refused", q.refused}});
  }
  nlohmann::json sweep = nlohmann::json::array();
  for (const auto& row : r.sweep) sweep.push_back({{"threshold", row[0]}, {"refused_unanswerable", row[1]}, {"refused_answerable", row[2]}});
  const nlohmann::json json = {{"koto_version", stamp.koto_version}, {"git_commit", stamp.git_commit}, {"timestamp", stamp.timestamp},
                               {"corpus", o.corpus.string()}, {"questions_file", o.questions.string()},
                               {"chunk_chars", o.index.chunk_chars}, {"overlap_chars", o.index.overlap_chars},
                               {"files", r.files}, {"chunks", r.chunks}, {"index_seconds", r.index_seconds},
                               {"db_bytes", r.db_bytes}, {"answerable", r.answerable}, {"unanswerable", r.unanswerable},
                               {"recall_at_5", r.recall_at_5}, {"mrr_at_10", r.mrr_at_10},
                               {"evidence_recall_at_5", r.evidence_recall_at_5}, {"evidence_mrr_at_10", r.evidence_mrr_at_10},
                               {"with_evidence", r.with_evidence}, {"threshold", r.threshold},
                               {"refused_unanswerable", r.refused_unanswerable}, {"refused_answerable", r.refused_answerable},
                               {"query_ms_median", r.query_ms_median}, {"query_ms_p90", r.query_ms_p90},
                               {"sweep", sweep}, {"questions", questions}};
  std::string text = tr("koto bench --retrieval: {0} files, {1} passages indexed in {2:.2f} s ({3:.1f} MB index)\n"
                        "  recall@5 {4:.3f}, MRR@10 {5:.3f} over {6} answerable questions\n"
                        "  the evidence sentence in a top-5 passage: {13:.3f} (MRR@10 {14:.3f}) over {15} questions\n"
                        "  coverage below {7:.2f} refused: {8:.0f} % of {9} unanswerable, {10:.0f} % of answerable wrongly\n"
                        "  one query: {11:.1f} ms median, {12:.1f} ms p90\n",
                        "koto bench --retrieval: {0} ファイル、{1} 断片を {2:.2f} 秒で索引 (索引 {3:.1f} MB)\n"
                        "  回答可能な {6} 問で recall@5 {4:.3f}、MRR@10 {5:.3f}\n"
                        "  根拠の文を含む断片が上位 5 件にある割合: {13:.3f} (MRR@10 {14:.3f}、{15} 問)\n"
                        "  被覆率 {7:.2f} 未満で回答拒否: 回答不能 {9} 問の {8:.0f} %、回答可能な問の誤拒否 {10:.0f} %\n"
                        "  検索 1 回: 中央値 {11:.1f} ms、p90 {12:.1f} ms\n",
                        r.files, r.chunks, r.index_seconds, static_cast<double>(r.db_bytes) / 1e6, r.recall_at_5, r.mrr_at_10,
                        r.answerable, r.threshold, 100 * r.refused_unanswerable, r.unanswerable, 100 * r.refused_answerable,
                        r.query_ms_median, r.query_ms_p90, r.evidence_recall_at_5, r.evidence_mrr_at_10, r.with_evidence);
  text += pick("  threshold  refused unanswerable  wrongly refused answerable\n", "  閾値  回答不能の拒否  回答可能の誤拒否\n");
  for (const auto& row : r.sweep) text += fmt::format("  {:9.2f}  {:19.0f} %  {:24.0f} %\n", row[0], 100 * row[1], 100 * row[2]);
  std::string stamp_name = stamp.timestamp;
  stamp_name.erase(std::remove(stamp_name.begin(), stamp_name.end(), ':'), stamp_name.end());
  stamp_name.erase(std::remove(stamp_name.begin(), stamp_name.end(), '-'), stamp_name.end());
  publish(options, options.json ? json.dump(2) + "\n" : text, json.dump(2) + "\n", stamp_name + "_retrieval_" + std::filesystem::path(options.corpus).filename().string() + ".json");
  return kExitOk;
}

int run_bench_command(BenchCommandOptions& options) {
  options.bench.bandwidth_bytes = options.bandwidth_mb << 20;
  std::unique_ptr<TimelineRecorder> timeline;
  if (!options.timeline.empty()) timeline = std::make_unique<TimelineRecorder>();
  // Each phase the benchmark announces is a mark of the timeline.
  options.bench.progress = [&timeline](const std::string& note) {
    if (timeline) timeline->mark(note);
    std::fprintf(stderr, "%s\n", tr("koto bench: {0}…", "koto bench: {0}…", note).c_str());
    std::fflush(stderr);
  };
  const BenchResult result = run_bench(options.bench);
  if (timeline) {
    timeline->mark("end");
    timeline->stop();
    write_timeline(options.timeline, *timeline,
                   {std::filesystem::path(options.bench.model_path).filename().string(), result.load_seconds.mean,
                    result.ttft_seconds.mean, result.tg_tokens_per_second.mean, 0});
  }

  const std::string text = options.json       ? bench_json(result)
                           : options.csv      ? bench_csv(result)
                           : options.markdown ? bench_markdown(result)
                                              : bench_table(result) + bench_profile_table(result);
  publish(options, text, bench_json(result), bench_result_file_name(result));
  return kExitOk;
}

}  // namespace

CommandRunner define_bench(CLI::App& command) {
  auto options = std::make_shared<BenchCommandOptions>();
  command.add_option("-m,--model", options->bench.model_path, std::string(pick("GGUF model file", "GGUF モデルファイル")));
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
  command.add_option("--depth", options->bench.tg_depth,
                     std::string(pick("tg starts after a prompt of this many tokens (default 4)",
                                      "tg をこのトークン数のプロンプトの後から測る (既定 4)")))
      ->check(CLI::Range(1, 1 << 20));
  command.add_option("--seed", options->bench.seed, std::string(pick("seed of the random token ids (default 1)",
                                                                     "ランダムなトークン ID の種 (既定 1)")));
  command.add_option("--bandwidth-mb", options->bandwidth_mb,
                     std::string(pick("buffer for the read-bandwidth measurement in MiB (default 1024; 0 skips)",
                                      "読み出し帯域の測定に使うバッファ (MiB、既定 1024、0 で省略)")));
  command.add_flag("--profile", options->bench.profile,
                   std::string(pick("also break one prefill and one generation down by operation (matrix products by "
                                    "type, attention, norms, …, thread waits), per token",
                                    "前処理と生成を 1 回ずつ処理ごとに分解して表示 (型ごとの行列積、注意、正規化…、"
                                    "スレッドの待ち)、1 トークンあたり")));
  command.add_option("--kv-type", options->kv_type, std::string(pick(kv_type_help_en(), kv_type_help_ja())));
  command.add_flag("--lookup", options->bench.lookup,
                   std::string(pick("also measure lookup decoding: greedy tg without guesses, with nothing to quote, and "
                                    "quoting a reference text that holds the answer",
                                    "先読み復号も測定: 推測なし・引用なし・答えを含む参照文からの引用の 3 通りの貪欲生成 tg")));
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
  command.add_option("--timeline", options->timeline,
                     std::string(pick("draw CPU, memory and the benchmark's phases over time: an SVG (or .html) and FILE.json",
                                      "CPU・メモリ・ベンチマークの段階の推移を SVG (または .html) と FILE.json に描く")));
  command.add_flag("--retrieval", options->retrieval,
                   std::string(pick("measure document retrieval: index --corpus, ask --questions (recall@5, MRR@10, refusals, "
                                    "query time); no model needed",
                                    "文書検索を測定: --corpus を索引し --questions で検索 (recall@5、MRR@10、回答拒否、検索時間)。"
                                    "モデルは不要")));
  command.add_option("--corpus", options->corpus, std::string(pick("with --retrieval: folder of documents", "--retrieval 用: 文書のフォルダー")));
  command.add_option("--questions", options->questions,
                     std::string(pick("with --retrieval: question set (JSON lines)", "--retrieval 用: 質問集 (JSON Lines)")));
  command.add_option("--db", options->db,
                     std::string(pick("with --retrieval: index file to rebuild (default: a temporary one)",
                                      "--retrieval 用: 作り直す索引ファイル (既定: 一時ファイル)")));
  command.add_option("--refuse-below", options->retrieval_bench.refuse_below,
                     std::string(pick("with --retrieval: coverage threshold of refusals (default: koto ask's)",
                                      "--retrieval 用: 回答拒否の被覆率の閾値 (既定: koto ask と同じ)")));
  command.add_option("--chunk-chars", options->retrieval_bench.index.chunk_chars,
                     std::string(pick("with --retrieval: passage size (default 400)", "--retrieval 用: 断片の大きさ (既定 400)")));
  command.add_option("--overlap-chars", options->retrieval_bench.index.overlap_chars,
                     std::string(pick("with --retrieval: passage overlap (default 100)", "--retrieval 用: 断片の重なり (既定 100)")));
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
    if (options->retrieval) return run_retrieval_bench_command(*options);
    options->bench.model_path = resolve_model_path(options->bench.model_path);
    options->bench.kv_type = parse_kv_type(options->kv_type);
    if (options->bench.model_path.empty()) {
      throw UsageError(tr("--model is required", "--model を指定してください"));
    }
    return options->serve ? run_serve_bench_command(*options, command) : run_bench_command(*options);
  };
}

}  // namespace koto::cli
