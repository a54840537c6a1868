// `koto run -m MODEL [options] "質問"`: answers one prompt through the model's chat
// template (or, with --raw, continues the prompt as-is after BOS) and streams the
// answer to stdout, flushing every chunk.
//
// Output bytes: stdout receives exactly the generated text (valid UTF-8, stop strings
// cut). When stdout is a terminal and the answer does not end with a newline, one is
// added so the shell prompt starts on its own line; when stdout is a pipe or a file
// nothing is added, so `koto run ... > out.txt` holds exactly the answer.
// Notes, warnings and statistics go to stderr.
//
// Ctrl-C stops generation between tokens (or prefill batches), prints the statistics
// so far to stderr and exits 130; a second Ctrl-C kills the process at once.
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/load_model.h"
#include "cli/chat_format_option.h"
#include "cli/cli_io.h"
#include "cli/commands.h"
#include "cli/kv_type.h"
#include "cli/interrupt_guard.h"
#include "cli/model_path.h"
#include "cli/usage_error.h"
#include "koto/chat_template.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/generate.h"
#include "koto/i18n.h"
#include "koto/memory_check.h"
#include "koto/model.h"
#include "koto/run_stats.h"
#include "koto/sampler.h"
#include "koto/timeline.h"

namespace koto::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string prompt;
  std::string file;
  bool raw = false;
  int32_t max_tokens = 512;
  int32_t lookup = GenerateOptions::Lookup{}.max_draft;
  std::string kv_type = "f16";
  SamplingOptions sampling;
  int64_t seed = -1;
  std::vector<std::string> stop;
  int32_t n_ctx = 0;
  int threads = 0;
  std::string system{kDefaultSystemPrompt};
  std::string chat_template;
  bool stats = false;
  std::string stats_json;
  bool print_prompt = false;
  std::string timeline;
};

std::string read_prompt(const RunOptions& o, const CLI::App& command) {
  const bool has_text = command.count("prompt") > 0;
  if (!o.file.empty() && has_text) {
    throw UsageError(tr("give the prompt either as an argument or with --file, not both",
                        "プロンプトは引数か --file のどちらか一方で指定してください"));
  }
  if (!o.file.empty()) return read_file_or_stdin(o.file);
  if (has_text) return o.prompt == "-" ? read_all(std::cin, "stdin") : o.prompt;
  if (!stdin_is_terminal()) return read_all(std::cin, "stdin");
  throw UsageError(tr("no prompt: give it as an argument (koto run -m MODEL \"question\"), with --file, or on stdin",
                      "プロンプトがありません。引数 (koto run -m MODEL \"質問\")、--file、標準入力のいずれかで渡してください"));
}

// --stats-json is checked before the model is loaded, so a typo does not cost a whole
// generation (and its error is not glued to the answer).
void check_writable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path file(path);
  if (fs::is_directory(file, ec)) {
    throw UsageError(tr("--stats-json {0}: is a folder, give a file name", "--stats-json {0}: フォルダです。ファイル名を指定してください", path));
  }
  const bool exists = fs::exists(file, ec);
  const fs::path folder = file.has_parent_path() ? file.parent_path() : fs::path(".");
  if (exists ? ::access(path.c_str(), W_OK) != 0 : ::access(folder.c_str(), W_OK) != 0) {
    throw UsageError(tr("--stats-json {0}: cannot write there ({1})", "--stats-json {0}: 書き込めません ({1})", path,
                        std::strerror(errno)));
  }
}

// The answer goes to stdout chunk by chunk. A failed write (the reader of a pipe went
// away: `koto run ... | head`, with SIGPIPE ignored in main; a full disk) stops the
// generation through the cancel flag and is reported after it.
class AnswerWriter {
 public:
  explicit AnswerWriter(std::atomic<bool>& cancel) : cancel_(cancel) {}

  void write(std::string_view chunk) {
    if (failed_errno_ != 0) return;
    if (std::fwrite(chunk.data(), 1, chunk.size(), stdout) != chunk.size() || std::fflush(stdout) != 0) {
      failed_errno_ = errno != 0 ? errno : EIO;
      cancel_.store(true, std::memory_order_relaxed);
    }
  }
  bool failed() const { return failed_errno_ != 0; }

  // Throws the write failure as an Error(kIo).
  [[noreturn]] void throw_failure(size_t tokens) const {
    if (failed_errno_ == EPIPE) {
      throw Error(ErrorCode::kIo, tr("stdout was closed by the reading program; stopped after {0} tokens",
                                     "標準出力が読み手のプログラムに閉じられたため、{0} トークンで生成を止めました", tokens));
    }
    throw Error(ErrorCode::kIo, tr("stdout: write failed ({0}); stopped after {1} tokens",
                                   "標準出力への書き込みに失敗しました ({0})。{1} トークンで生成を止めました",
                                   std::strerror(failed_errno_), tokens));
  }

 private:
  std::atomic<bool>& cancel_;
  int failed_errno_ = 0;
};

void write_stats_json(const std::string& path, const RunStats& stats) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << run_stats_json(stats);
  if (!out) {
    throw Error(ErrorCode::kIo, tr("{0}: cannot write the statistics", "{0}: 統計を書き込めません", path));
  }
}

int run(const RunOptions& o, const CLI::App& command) {
  const UsageMeter meter;
  std::unique_ptr<TimelineRecorder> timeline;
  if (!o.timeline.empty()) timeline = std::make_unique<TimelineRecorder>();
  auto mark = [&](const char* phase) {
    if (timeline) timeline->mark(phase);
  };
  const InterruptGuard interrupt_guard(/*second_ends_process=*/true);
  std::atomic<bool>& g_cancel = InterruptGuard::flag();
  // Bad options are reported before the (possibly long) model load.
  const std::optional<ChatFamily> forced_family = chat_format_option(o.chat_template);
  SamplingOptions sampling = o.sampling;
  sampling.seed = o.seed < 0 ? kRandomSeed : static_cast<uint64_t>(o.seed);
  try {
    (void)Sampler(sampling);  // throws kInvalidArgument for out-of-range values
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument) throw UsageError(e.what());
    throw;
  }
  if (!o.stats_json.empty()) check_writable(o.stats_json);
  const std::string prompt = read_prompt(o, command);
  if (g_cancel.load()) return kExitInterrupted;

  LoadOptions load_options;
  load_options.n_threads = o.threads;
  mark("load");
  const std::unique_ptr<Model> model = load_model(resolve_model_path(o.model), load_options);
  // The weights' pages, read now rather than by the prompt's first pass (which reads them
  // all anyway): where the page cache holds them in small pages (a model just pulled or
  // repacked), they come back in 2 MB pages, and decoding runs ~1.2x faster (koto/model.h).
  model->touch_weights([&g_cancel](uint64_t, uint64_t) { return !g_cancel.load(); });
  if (g_cancel.load()) return kExitInterrupted;
  const double load_seconds = meter.wall_seconds();
  const Tokenizer& tokenizer = model->tokenizer();
  if (timeline) timeline->watch_mapping(weight_pages(*model).first, weight_pages(*model).second);

  // An explicit context is checked before anything is allocated. The default one
  // (n_ctx 0: the model decides, at most 4096) is checked once the session says its size.
  if (o.n_ctx > 0) require_memory(*model, o.n_ctx);
  SessionOptions session_options;
  session_options.n_ctx = o.n_ctx;
  session_options.kv_type = parse_kv_type(o.kv_type);
  const std::unique_ptr<Session> session = model->new_session(session_options);
  const int32_t n_ctx = session->n_ctx();
  if (o.n_ctx == 0) require_memory(*model, n_ctx);
  const int32_t n_ctx_train = model->params().n_ctx_train;
  if (n_ctx_train > 0 && n_ctx > n_ctx_train) {
    std::cerr << "koto: "
              << tr("note: context {0} is longer than the {1} tokens the model was trained for; answers past that "
                    "may degrade",
                    "注意: コンテキスト {0} はモデルの学習時の長さ {1} を超えています。それ以降の回答は質が落ちる"
                    "ことがあります",
                    n_ctx, n_ctx_train)
              << '\n';
  }

  GenerateOptions options;
  options.max_tokens = o.max_tokens;
  options.lookup.max_draft = o.lookup;
  options.sampling = sampling;
  options.stop_strings = o.stop;
  options.cancel = &g_cancel;

  std::vector<TokenId> ids;
  if (o.raw) {
    // The user writes the whole prompt, markup included: special-token text counts.
    // The answer continues the text, so its leading space stays (generate's default).
    ids = tokenizer.encode(prompt, tokenizer.add_bos_by_default(), /*parse_special=*/true);
    if (o.print_prompt) std::cerr << tokenizer.decode(ids, /*show_special=*/true) << '\n';
  } else {
    ChatTemplate chat(ChatFamily::kPlain);
    if (forced_family) {
      chat = ChatTemplate(*forced_family);
    } else {
      chat = ChatTemplate::for_model(model->file(), tokenizer);
      if (!chat.note().empty()) std::cerr << "koto: " << chat.note() << '\n';
    }
    ChatPrompt chat_prompt = build_chat_prompt(chat, tokenizer, o.system, prompt);
    ids = std::move(chat_prompt.ids);
    for (std::string& stop : chat_prompt.stop_strings) options.stop_strings.push_back(std::move(stop));
    options.leading_space = LeadingSpace::kStrip;  // after the template's markup a space is noise
    if (o.print_prompt) std::cerr << render_text(chat_prompt.segments) << '\n';
  }

  AnswerWriter writer(g_cancel);
  mark("prompt");
  bool first_chunk = true;
  GenerateResult result = generate(*session, tokenizer, ids, options, [&](std::string_view chunk) {
    if (first_chunk) {
      mark("first_token");
      mark("generation");
      first_chunk = false;
    }
    writer.write(chunk);
  });
  mark("end");
  const bool stdout_is_terminal = isatty(STDOUT_FILENO) != 0;
  if (stdout_is_terminal && !result.text.empty() && result.text.back() != '\n') writer.write("\n");
  // Whatever goes to stderr from here starts on a line of its own when both streams end
  // up in one place (a terminal or `2>&1`), while the answer's bytes stay exact on a pipe.
  bool line_ended = result.text.empty() || result.text.back() == '\n' || stdout_is_terminal;
  auto end_answer_line = [&line_ended] {
    std::fflush(stdout);
    if (!line_ended) std::cerr << '\n';
    line_ended = true;
  };
  if (writer.failed()) {
    end_answer_line();
    writer.throw_failure(result.tokens.size());
  }

  RunStats& stats = result.stats;
  stats.model = std::filesystem::path(o.model).filename().string();
  stats.load_seconds = load_seconds;
  stats.threads = model->n_threads();
  meter.fill(stats);
  const bool interrupted = result.stop_reason == StopReason::kCancelled;
  if (o.stats || interrupted) {
    end_answer_line();
    if (interrupted) std::cerr << '\n' << "koto: " << pick("interrupted", "中断しました") << '\n';
    std::cerr << format_run_stats(stats);
  }
  if (timeline) {
    timeline->stop();
    try {
      write_timeline(o.timeline, *timeline,
                     {stats.model, stats.load_seconds, stats.time_to_first_token_seconds, stats.generation_tokens_per_second(),
                      stats.chars_per_second()});
    } catch (const Error&) {
      end_answer_line();
      throw;
    }
  }
  if (!o.stats_json.empty()) {
    try {
      write_stats_json(o.stats_json, stats);
    } catch (const Error&) {
      end_answer_line();
      throw;
    }
  }
  return interrupted ? kExitInterrupted : kExitOk;
}

}  // namespace

CommandRunner define_run(CLI::App& command) {
  auto o = std::make_shared<RunOptions>();
  auto help = [](const char* en, const char* ja) { return std::string(pick(en, ja)); };
  command.add_option("-m,--model", o->model, help("GGUF model file", "GGUF モデルファイル"))->required();
  command.add_option("prompt", o->prompt,
                     help("The question (\"-\": read stdin)", "質問 (\"-\" なら標準入力から読む)"));
  command.add_option("--file", o->file, help("Read the prompt from this file (\"-\": stdin)",
                                             "プロンプトをこのファイルから読む (\"-\" なら標準入力)"));
  command.add_flag("--raw", o->raw,
                   help("No chat template: continue the prompt as-is after BOS (special-token text is recognized)",
                        "チャットテンプレートを使わず、BOS の後にプロンプトをそのまま続ける (特殊トークンの表記を認識)"));
  command.add_option("--kv-type", o->kv_type, help(kv_type_help_en(), kv_type_help_ja()))->capture_default_str();
  command.add_option("--lookup", o->lookup,
                     help("Lookup decoding: most tokens guessed from the prompt and checked in one pass (0: off; "
                          "greedy output is unchanged, sampled output keeps its distribution)",
                          "先読み復号: プロンプトから推測して 1 回で確かめる最大トークン数 (0: 無効。"
                          "貪欲法の出力は変わらず、サンプリングの分布も変わらない)"))
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  command.add_option("-n,--max-tokens", o->max_tokens,
                     help("Most tokens to generate (-1: until the context is full)", "生成する最大トークン数 (-1: コンテキストが尽きるまで)"))
      ->capture_default_str()
      ->check(CLI::Range(-1, INT32_MAX));
  command.add_option("--temp", o->sampling.temperature, help("Temperature (0: greedy)", "温度 (0: 貪欲法)"))
      ->capture_default_str();
  command.add_option("--top-k", o->sampling.top_k, help("Keep the k most likely tokens (0: off)", "上位 k トークンに絞る (0: 無効)"))
      ->capture_default_str();
  command.add_option("--top-p", o->sampling.top_p, help("Nucleus sampling mass (1: off)", "累積確率で絞る (1: 無効)"))
      ->capture_default_str();
  command.add_option("--min-p", o->sampling.min_p,
                     help("Drop tokens below this fraction of the top probability (0: off)",
                          "最上位の確率のこの割合未満を除く (0: 無効)"))
      ->capture_default_str();
  command.add_option("--repeat-penalty", o->sampling.repeat_penalty,
                     help("Penalty for repeating recent tokens (1: off)", "直近のトークンの繰り返しへの罰則 (1: 無効)"))
      ->capture_default_str();
  command.add_option("--repeat-last-n", o->sampling.repeat_last_n,
                     help("Tokens the penalties look back over (-1: all)", "罰則が振り返るトークン数 (-1: 全部)"))
      ->capture_default_str();
  command.add_option("--frequency-penalty", o->sampling.frequency_penalty,
                     help("Subtracted per earlier occurrence", "出現回数ごとに引く値"))
      ->capture_default_str();
  command.add_option("--presence-penalty", o->sampling.presence_penalty,
                     help("Subtracted once if the token occurred", "一度でも出現したら引く値"))
      ->capture_default_str();
  command.add_option("--seed", o->seed, help("Random seed (-1: random; the seed used is in --stats)",
                                             "乱数シード (-1: ランダム。使った値は --stats に表示)"))
      ->capture_default_str();
  command.add_option("--stop", o->stop, help("Stop when this text appears (repeatable; not printed)",
                                             "この文字列が出たら停止 (複数可、表示しない)"));
  command.add_option("-c,--ctx", o->n_ctx, help("Context size in tokens (0: the model's, at most 4096)",
                                                "コンテキスト長 (0: モデルの値、最大 4096)"))
      ->capture_default_str()
      ->check(CLI::Range(0, INT32_MAX));
  command.add_option("-t,--threads", o->threads, help("Worker threads (0: one per physical core)",
                                                      "ワーカースレッド数 (0: 物理コアごとに 1)"))
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  command.add_option("--system", o->system, help("System prompt (\"\": none)", "システムプロンプト (\"\": なし)"))
      ->capture_default_str();
  command.add_option("--template", o->chat_template,
                     tr("Chat format instead of the model's: {0}", "モデルの代わりに使うチャット形式: {0}",
                        chat_family_names()));
  command.add_flag("--stats", o->stats, help("Print time, speed, memory and CPU to stderr after the answer",
                                             "回答の後に時間・速度・メモリ・CPU を標準エラーに表示"));
  command.add_option("--stats-json", o->stats_json, help("Write the statistics as JSON to this file",
                                                         "統計を JSON でこのファイルに書く"));
  command.add_option("--timeline", o->timeline,
                     help("Draw the run's CPU, memory and phases over time: an SVG (or .html) file, and its samples in FILE.json",
                          "実行中の CPU・メモリ・段階の推移を描く: SVG (または .html) ファイルと、サンプルを FILE.json に"));
  command.add_flag("--print-prompt", o->print_prompt,
                   help("Show the prompt as given to the model on stderr", "モデルに渡すプロンプトを標準エラーに表示"));
  return [o, &command] { return run(*o, command); };
}

}  // namespace koto::cli
