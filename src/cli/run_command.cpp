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
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "koto/chat.h"
#include "koto/error.h"
#include "koto/generate.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "koto/run_stats.h"
#include "koto/sampler.h"

namespace koto::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string prompt;
  std::string file;
  bool raw = false;
  int32_t max_tokens = 512;
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
};

// Set from the SIGINT handler, read by the generator between tokens.
std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the cancel flag is written from a signal handler");

extern "C" void on_interrupt(int) {
  g_cancel.store(true, std::memory_order_relaxed);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process
}

// Installs the Ctrl-C handler for the life of the run and restores the old one.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_cancel.store(false);
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_);
  }
  ~InterruptGuard() { sigaction(SIGINT, &previous_, nullptr); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction previous_ {};
};

std::string read_stream(std::istream& in, const std::string& name) {
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, tr("{0}: read failed", "{0}: 読み込みに失敗しました", name));
  return bytes.str();
}

std::string read_prompt(const RunOptions& o, const CLI::App& command) {
  const bool has_text = command.count("prompt") > 0;
  if (!o.file.empty() && has_text) {
    throw Error(ErrorCode::kInvalidArgument, tr("give the prompt either as an argument or with --file, not both",
                                                "プロンプトは引数か --file のどちらか一方で指定してください"));
  }
  if (o.file == "-" || (has_text && o.prompt == "-")) return read_stream(std::cin, "stdin");
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) throw Error(ErrorCode::kNotFound, tr("{0}: cannot open the file", "{0}: ファイルを開けません", o.file));
    return read_stream(in, o.file);
  }
  if (has_text) return o.prompt;
  if (!isatty(STDIN_FILENO)) return read_stream(std::cin, "stdin");
  throw Error(ErrorCode::kInvalidArgument,
              tr("no prompt: give it as an argument (koto run -m MODEL \"question\"), with --file, or on stdin",
                 "プロンプトがありません。引数 (koto run -m MODEL \"質問\")、--file、標準入力のいずれかで渡してください"));
}

std::string gib(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  return b >= (1u << 30) ? fmt::format("{:.2f} GiB", b / (1u << 30)) : fmt::format("{:.1f} MiB", b / (1u << 20));
}

// Refuses a context that will not fit next to the weights, before anything is allocated.
void check_memory(const Model& model, int32_t n_ctx) {
  const uint64_t available = available_memory_bytes();
  if (available == 0) return;  // unknown: do not guess
  const uint64_t weights = model.file().file_size();
  const uint64_t session = model.session_bytes(n_ctx);
  if (weights + session <= available) return;
  int32_t suggestion = 0;
  for (int32_t c = n_ctx / 2; c >= 256; c /= 2) {
    if (weights + model.session_bytes(c) <= available) {
      suggestion = c;
      break;
    }
  }
  const std::string need = tr("needs {0} ({1} weights + {2} for a context of {3} tokens) but {4} is available",
                              "必要量 {0} (重み {1} + コンテキスト {3} トークン分 {2}) に対して空きは {4} です",
                              gib(weights + session), gib(weights), gib(session), n_ctx, gib(available));
  if (suggestion > 0) {
    throw Error(ErrorCode::kOutOfMemory, tr("not enough memory: {0} — try a smaller context: -c {1}",
                                            "メモリが足りません: {0}。コンテキストを小さくしてください: -c {1}",
                                            need, suggestion));
  }
  throw Error(ErrorCode::kOutOfMemory,
              tr("not enough memory: {0} — the model does not fit even with a small context; close other programs "
                 "or use a smaller (more quantized) model",
                 "メモリが足りません: {0}。小さいコンテキストでも入りません。他のプログラムを閉じるか、より小さい "
                 "(量子化の強い) モデルを使ってください",
                 need));
}

void write_chunk(std::string_view chunk) {
  std::fwrite(chunk.data(), 1, chunk.size(), stdout);
  std::fflush(stdout);
}

void write_stats_json(const std::string& path, const RunStats& stats) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << run_stats_json(stats);
  if (!out) {
    throw Error(ErrorCode::kIo, tr("{0}: cannot write the statistics", "{0}: 統計を書き込めません", path));
  }
}

int run(const RunOptions& o, const CLI::App& command) {
  const UsageMeter meter;
  const InterruptGuard interrupt_guard;
  std::string prompt = read_prompt(o, command);
  if (g_cancel.load()) return kExitInterrupted;
  // Bad options are reported before the (possibly long) model load.
  std::optional<ChatFamily> forced_family;
  if (!o.chat_template.empty()) {
    forced_family = parse_chat_family(o.chat_template);
    if (!forced_family) {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("--template {0}: unknown (known: llama2, chatml, llama3, gemma, mistral, plain)",
                     "--template {0}: 不明な形式です (使えるもの: llama2, chatml, llama3, gemma, mistral, plain)",
                     o.chat_template));
    }
  }
  SamplingOptions sampling = o.sampling;
  sampling.seed = o.seed < 0 ? kRandomSeed : static_cast<uint64_t>(o.seed);
  (void)Sampler(sampling);  // throws kInvalidArgument for out-of-range values

  LoadOptions load_options;
  load_options.n_threads = o.threads;
  const std::unique_ptr<Model> model = Model::load(o.model, load_options);
  const double load_seconds = meter.wall_seconds();
  const Tokenizer& tokenizer = model->tokenizer();

  const int32_t n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min(model->params().n_ctx_train > 0 ? model->params().n_ctx_train : 4096, 4096);
  if (n_ctx > model->params().n_ctx_train && model->params().n_ctx_train > 0) {
    std::cerr << "koto: "
              << tr("note: context {0} is longer than the {1} tokens the model was trained for; answers past that "
                    "may degrade",
                    "注意: コンテキスト {0} はモデルの学習時の長さ {1} を超えています。それ以降の回答は質が落ちる"
                    "ことがあります",
                    n_ctx, model->params().n_ctx_train)
              << '\n';
  }
  check_memory(*model, n_ctx);
  SessionOptions session_options;
  session_options.n_ctx = n_ctx;
  const std::unique_ptr<Session> session = model->new_session(session_options);

  GenerateOptions options;
  options.max_tokens = o.max_tokens;
  options.sampling = sampling;
  options.stop_strings = o.stop;
  options.cancel = &g_cancel;

  std::vector<TokenId> ids;
  if (o.raw) {
    // The user writes the whole prompt, markup included: special-token text counts.
    ids = tokenizer.encode(prompt, tokenizer.add_bos_by_default(), /*parse_special=*/true);
    if (o.print_prompt) std::cerr << tokenizer.decode(ids, /*show_special=*/true) << '\n';
  } else {
    while (!prompt.empty() && (prompt.back() == '\n' || prompt.back() == '\r')) prompt.pop_back();
    ChatTemplate chat(ChatFamily::kPlain);
    if (forced_family) {
      chat = ChatTemplate(*forced_family);
    } else {
      chat = ChatTemplate::for_model(model->file(), tokenizer);
      if (!chat.note().empty()) std::cerr << "koto: " << chat.note() << '\n';
    }
    std::vector<ChatMessage> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", prompt});
    const std::vector<PromptSegment> segments = chat.render(messages);
    ids = tokenize_prompt(tokenizer, segments);
    for (std::string& stop : chat.stop_strings()) options.stop_strings.push_back(std::move(stop));
    if (o.print_prompt) std::cerr << render_text(segments) << '\n';
  }

  GenerateResult result = generate(*session, tokenizer, ids, options, write_chunk);
  if (isatty(STDOUT_FILENO) && !result.text.empty() && result.text.back() != '\n') write_chunk("\n");

  RunStats& stats = result.stats;
  stats.model = std::filesystem::path(o.model).filename().string();
  stats.load_seconds = load_seconds;
  stats.threads = model->n_threads();
  meter.fill(stats);
  const bool interrupted = result.stop_reason == StopReason::kCancelled;
  if (o.stats || interrupted) {
    // The answer's bytes stay exact on a pipe, but the statistics start on a line of
    // their own when both streams end up in one place (a terminal or `2>&1`).
    const bool ended_line = result.text.empty() || result.text.back() == '\n' || isatty(STDOUT_FILENO);
    std::fflush(stdout);
    if (!ended_line) std::cerr << '\n';
    if (interrupted) std::cerr << '\n' << "koto: " << pick("interrupted", "中断しました") << '\n';
    std::cerr << format_run_stats(stats);
  }
  if (!o.stats_json.empty()) write_stats_json(o.stats_json, stats);
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
  command.add_option("-n,--max-tokens", o->max_tokens,
                     help("Most tokens to generate (-1: until the context is full)", "生成する最大トークン数 (-1: コンテキストが尽きるまで)"))
      ->capture_default_str();
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
      ->capture_default_str();
  command.add_option("-t,--threads", o->threads, help("Worker threads (0: one per physical core)",
                                                      "ワーカースレッド数 (0: 物理コアごとに 1)"))
      ->capture_default_str();
  command.add_option("--system", o->system, help("System prompt (\"\": none)", "システムプロンプト (\"\": なし)"))
      ->capture_default_str();
  command.add_option("--template", o->chat_template,
                     help("Chat format instead of the model's: llama2, chatml, llama3, gemma, mistral, plain",
                          "モデルの代わりに使うチャット形式: llama2, chatml, llama3, gemma, mistral, plain"));
  command.add_flag("--stats", o->stats, help("Print time, speed, memory and CPU to stderr after the answer",
                                             "回答の後に時間・速度・メモリ・CPU を標準エラーに表示"));
  command.add_option("--stats-json", o->stats_json, help("Write the statistics as JSON to this file",
                                                         "統計を JSON でこのファイルに書く"));
  command.add_flag("--print-prompt", o->print_prompt,
                   help("Show the prompt as given to the model on stderr", "モデルに渡すプロンプトを標準エラーに表示"));
  return [o, &command] { return run(*o, command); };
}

}  // namespace koto::cli
