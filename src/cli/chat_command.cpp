// `koto chat -m MODEL`: a conversation in the terminal. The conversation logic is the
// library's (koto/conversation.h, on the serving core's Scheduler); this file reads
// lines (libedit on a terminal: line editing, history, Japanese input), runs the
// commands, prints the answers and one cost line per answer.
//
// On a terminal: a `"""` line starts and ends a multi-line message, pasted lines arrive
// as one message, Ctrl-C stops an answer (and at the prompt, like Ctrl-D, ends the chat).
// Otherwise (a pipe or a file): one message per line, answers on stdout, costs on stderr.
#include <editline/readline.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <clocale>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <langinfo.h>
#include <memory>
#include <sstream>
#include <stop_token>
#include <thread>

#include "cli/load_model.h"
#include "cli/chat_format_option.h"
#include "cli/cli_io.h"
#include "cli/commands.h"
#include "cli/kv_type.h"
#include "cli/interrupt_guard.h"
#include "cli/model_path.h"
#include "koto/conversation.h"
#include "koto/data_dir.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "koto/memory_check.h"
#include "koto/model.h"
#include "koto/timeline.h"

namespace koto::cli {
namespace {

struct ChatOptions {
  std::string model;
  std::string system{kDefaultSystemPrompt};
  std::string chat_template;
  int32_t n_ctx = 0;
  std::string kv_type = "f16";
  int threads = 0;
  int32_t max_tokens = -1;
  SamplingOptions sampling;
  int64_t seed = -1;
  std::string history;
  bool no_history = false;
  std::string timeline;
};

std::filesystem::path default_history_path() { return koto_data_dir() / "chat_history"; }

bool input_pending() {
  pollfd fd{STDIN_FILENO, POLLIN, 0};
  return ::poll(&fd, 1, 0) > 0 && (fd.revents & POLLIN) != 0;
}

// Lines from a terminal (libedit) or from a pipe.
class LineReader {
 public:
  LineReader(bool terminal, std::filesystem::path history) : terminal_(terminal), history_(std::move(history)) {
    if (!terminal_) return;
    using_history();
    stifle_history(1000);
    if (!history_.empty()) read_history(history_.c_str());
  }
  ~LineReader() { save(); }

  // The next line, without its newline; nullopt at the end of input (Ctrl-D).
  std::optional<std::string> line(const char* prompt) {
    if (!terminal_) {
      std::string text;
      if (!std::getline(std::cin, text)) return std::nullopt;
      if (!text.empty() && text.back() == '\r') text.pop_back();
      return text;
    }
    char* raw = readline(prompt);
    if (raw == nullptr) return std::nullopt;
    std::string text(raw);
    std::free(raw);
    return text;
  }

  // A message: one line; a `"""` block; or, on a terminal, lines pasted together.
  std::optional<std::string> message(const char* prompt) {
    std::optional<std::string> first = line(prompt);
    if (!first) return std::nullopt;
    std::string text = *first;
    if (text == "\"\"\"") {
      text.clear();
      for (;;) {
        std::optional<std::string> next = line(terminal_ ? "... " : "");
        if (!next || *next == "\"\"\"") break;
        if (!text.empty()) text += '\n';
        text += *next;
      }
    } else if (terminal_) {
      while (input_pending()) {
        std::optional<std::string> next = line("");
        if (!next) break;
        text += '\n';
        text += *next;
      }
    }
    if (terminal_ && !text.empty()) {
      add_history(text.c_str());
      save();
    }
    return text;
  }

 private:
  void save() {
    if (!terminal_ || history_.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(history_.parent_path(), ec);
    write_history(history_.c_str());
  }
  bool terminal_;
  std::filesystem::path history_;
};

double peak_rss_gb() {
  rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0 / 1e9;
}

double cpu_seconds() {
  rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

std::string cost_line(const ConversationTurn& t, double cpu_percent) {
  const RequestStats& s = t.stats;
  return tr("[first token {0:.2f} s · {1:.1f} tokens/s · {2:.1f} chars/s · prompt {3} reused + {4} new tokens · peak "
            "memory {5:.2f} GB · CPU {6:.0f} %",
            "[最初のトークンまで {0:.2f} 秒 · 毎秒 {1:.1f} トークン · 毎秒 {2:.1f} 文字 · プロンプト 再利用 {3} + 新規 {4} "
            "トークン · ピークメモリ {5:.2f} GB · CPU {6:.0f} %",
            s.time_to_first_token_seconds, s.tokens_per_second(), s.chars_per_second(), s.cached_tokens,
            s.prompt_tokens - s.cached_tokens, peak_rss_gb(), cpu_percent) +
         (s.lookup_accepted > 0 ? tr(" · lookup kept {0} of {1} guessed tokens", " · 先読み 推測 {1} のうち {0} トークン採用",
                                     s.lookup_accepted, s.lookup_drafted)
                                : std::string()) +
         "]";
}

std::string full_stats(const ConversationTurn& t, const Conversation& chat, int turns) {
  const RequestStats& s = t.stats;
  return tr("last answer:\n"
            "  prompt:       {0} tokens, {1} reused from the conversation, {2} new in {3:.2f} s ({4:.1f} tokens/s)\n"
            "  first token:  {5:.2f} s after the message\n"
            "  answer:       {6} tokens in {7:.2f} s ({8:.1f} tokens/s), {9} characters ({10:.1f} chars/s)\n"
            "  stopped by:   {11}\n"
            "conversation:   {12} turn(s), {13} message(s) kept\n"
            "peak memory:    {14:.2f} GB\n",
            "直前の回答:\n"
            "  プロンプト:   {0} トークン (会話から再利用 {1}、新規 {2} を {3:.2f} 秒で処理、毎秒 {4:.1f} トークン)\n"
            "  最初のトークン: メッセージから {5:.2f} 秒\n"
            "  回答:         {6} トークンを {7:.2f} 秒 (毎秒 {8:.1f} トークン)、{9} 文字 (毎秒 {10:.1f} 文字)\n"
            "  停止の理由:   {11}\n"
            "会話:           {12} 回のやり取り、保持しているメッセージ {13} 件\n"
            "ピークメモリ:   {14:.2f} GB\n",
            s.prompt_tokens, s.cached_tokens, s.prompt_tokens - s.cached_tokens, s.prompt_seconds, s.prompt_tokens_per_second(),
            s.time_to_first_token_seconds, s.generated_tokens, s.generation_seconds, s.tokens_per_second(), s.output_chars,
            s.chars_per_second(), stop_reason_name(s.stop_reason), turns, chat.messages().size(), peak_rss_gb()) +
         (s.lookup_drafted > 0 ? tr("lookup:         {0} of {1} guessed tokens kept\n",
                                    "先読み:         推測した {1} トークンのうち {0} を採用\n", s.lookup_accepted,
                                    s.lookup_drafted)
                               : std::string());
}

std::string help_text() {
  return std::string(pick("commands:\n"
                          "  /help          this list\n"
                          "  /clear         forget the conversation (the system prompt stays)\n"
                          "  /system TEXT   set the system prompt\n"
                          "  /stats         the full cost of the last answer\n"
                          "  /save FILE     save the conversation as JSON\n"
                          "  /load FILE     continue a saved conversation\n"
                          "  /exit          end (also Ctrl-D; Ctrl-C at the prompt)\n"
                          "  \"\"\"            on its own line: start or end a message of several lines\n"
                          "Ctrl-C during an answer stops the answer only.\n",
                          "コマンド:\n"
                          "  /help          この一覧\n"
                          "  /clear         会話を忘れる (システムプロンプトは残る)\n"
                          "  /system 文     システムプロンプトを設定\n"
                          "  /stats         直前の回答の詳しい費用\n"
                          "  /save ファイル 会話を JSON で保存\n"
                          "  /load ファイル 保存した会話の続きから\n"
                          "  /exit          終了 (Ctrl-D、プロンプトでの Ctrl-C でも)\n"
                          "  \"\"\"            単独の行で: 複数行のメッセージの始まりと終わり\n"
                          "回答中の Ctrl-C は回答だけを止めます。\n"));
}

// Ensures libedit can read multibyte input: a UTF-8 character type.
void use_utf8_locale() {
  if (std::setlocale(LC_CTYPE, "") == nullptr || std::string_view(nl_langinfo(CODESET)) != "UTF-8") {
    std::setlocale(LC_CTYPE, "C.UTF-8");
  }
}

int run_chat(const ChatOptions& o) {
  const bool terminal = ::isatty(STDIN_FILENO) != 0;
  if (terminal) use_utf8_locale();
  std::unique_ptr<TimelineRecorder> timeline;
  if (!o.timeline.empty()) timeline = std::make_unique<TimelineRecorder>();
  auto mark = [&](const char* phase) {
    if (timeline) timeline->mark(phase);
  };
  const auto started = std::chrono::steady_clock::now();
  mark("load");
  const std::optional<ChatFamily> forced_family = chat_format_option(o.chat_template);
  LoadOptions load_options;
  load_options.n_threads = o.threads;
  const std::unique_ptr<Model> model = load_model(resolve_model_path(o.model), load_options);
  SchedulerOptions scheduler_options;
  scheduler_options.n_slots = 1;
  scheduler_options.n_ctx = o.n_ctx;
  scheduler_options.kv_type = parse_kv_type(o.kv_type);
  const int32_t n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min<int32_t>(model->params().n_ctx_train > 0 ? model->params().n_ctx_train : 4096, 4096);
  require_memory(*model, n_ctx);
  Scheduler scheduler(*model, scheduler_options);
  // The weights' pages are read while the first question is typed, so its answer does
  // not wait for page faults (an answer that starts sooner reads the rest itself); the
  // reading stops if the chat ends first.
  const std::jthread read_weights([&model](std::stop_token stop) {
    model->touch_weights([&stop](uint64_t, uint64_t) { return !stop.stop_requested(); });
  });
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (timeline) timeline->watch_mapping(weight_pages(*model).first, weight_pages(*model).second);
  mark("idle");
  ChatTemplate chat_template = forced_family ? ChatTemplate(*forced_family) : ChatTemplate::for_model(model->file(), model->tokenizer());
  if (!chat_template.note().empty()) std::cerr << "koto: " << chat_template.note() << '\n';
  Conversation chat(scheduler, *model, std::move(chat_template), o.system);
  ConversationOptions options;
  options.sampling = o.sampling;
  options.sampling.seed = o.seed < 0 ? kRandomSeed : static_cast<uint64_t>(o.seed);
  options.max_tokens = o.max_tokens;
  if (o.max_tokens > 0) options.answer_room = o.max_tokens;

  if (terminal) {
    std::cerr << tr("koto chat: {0} (context {1} tokens). /help for commands, Ctrl-D to end.\n",
                    "koto chat: {0} (コンテキスト {1} トークン)。/help でコマンド一覧、Ctrl-D で終了します。\n",
                    std::filesystem::path(o.model).filename().string(), scheduler.n_ctx());
  }
  LineReader reader(terminal, o.no_history ? std::filesystem::path() : (o.history.empty() ? default_history_path() : std::filesystem::path(o.history)));
  std::optional<ConversationTurn> last;
  int turns = 0;
  for (;;) {
    std::optional<std::string> input = reader.message(terminal ? "> " : "");
    if (!input) break;
    const std::string& text = *input;
    if (text.empty()) continue;
    if (text[0] == '/') {
      const size_t space = text.find(' ');
      const std::string command = text.substr(0, space);
      const std::string argument = space == std::string::npos ? "" : text.substr(space + 1);
      if (command == "/exit" || command == "/quit") break;
      if (command == "/help") {
        std::cerr << help_text();
      } else if (command == "/clear") {
        chat.clear();
        std::cerr << pick("(the conversation was cleared)\n", "(会話を消去しました)\n");
      } else if (command == "/system") {
        chat.set_system_prompt(argument);
        std::cerr << (argument.empty() ? pick("(no system prompt)\n", "(システムプロンプトなし)\n")
                                       : pick("(system prompt set)\n", "(システムプロンプトを設定しました)\n"));
      } else if (command == "/stats") {
        if (last) {
          std::cerr << full_stats(*last, chat, turns);
        } else {
          std::cerr << pick("(no answer yet)\n", "(まだ回答がありません)\n");
        }
      } else if (command == "/save" || command == "/load") {
        if (argument.empty()) {
          std::cerr << tr("{0} needs a file name\n", "{0} にはファイル名が必要です\n", command);
          continue;
        }
        try {
          if (command == "/save") {
            std::ofstream out(argument, std::ios::binary | std::ios::trunc);
            out << chat.to_json() << '\n';
            out.close();
            if (!out) throw Error(ErrorCode::kIo, tr("{0}: cannot write", "{0}: 書き込めません", argument));
            std::cerr << tr("(saved to {0})\n", "({0} に保存しました)\n", argument);
          } else {
            chat.load_json(read_file_or_stdin(argument));
            std::cerr << tr("(loaded {0}: {1} message(s))\n", "({0} を読み込みました: メッセージ {1} 件)\n", argument,
                            chat.messages().size());
          }
        } catch (const Error& e) {
          std::cerr << "koto: " << e.what() << '\n';
        }
      } else {
        std::cerr << tr("unknown command {0}; /help lists them\n", "{0} というコマンドはありません。/help で一覧を表示します\n", command);
      }
      continue;
    }
    ConversationTurn turn;
    const auto wall_start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_seconds();
    try {
      const InterruptGuard interrupt(/*second_ends_process=*/false);  // Ctrl-C stops the answer only
      mark("prompt");
      bool first_chunk = true;
      turn = chat.send(text, options, [&](std::string_view chunk) {
        if (first_chunk) {
          mark("first_token");
          mark("generation");
          first_chunk = false;
        }
        std::fwrite(chunk.data(), 1, chunk.size(), stdout);
        std::fflush(stdout);
      }, &InterruptGuard::flag());
      mark("idle");
    } catch (const Error& e) {
      mark("idle");
      std::cerr << "koto: " << e.what() << '\n';
      continue;
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    ++turns;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    const double cpu_percent = wall > 0 ? 100.0 * (cpu_seconds() - cpu_start) / wall : 0;
    if (turn.dropped_messages > 0) {
      std::cerr << tr("(the context was full: the oldest {0} message(s) were left out)\n",
                      "(コンテキストがいっぱいのため、古いメッセージ {0} 件を省きました)\n", turn.dropped_messages);
    }
    if (turn.cancelled) std::cerr << pick("(stopped)\n", "(中断しました)\n");
    std::cerr << cost_line(turn, cpu_percent) << '\n';
    last = std::move(turn);
  }
  if (terminal) std::cerr << '\n';
  if (timeline) {
    mark("end");
    timeline->stop();
    TimelineHeadline headline{std::filesystem::path(o.model).filename().string(), load_seconds, 0, 0, 0};
    if (last) {
      headline.time_to_first_token_seconds = last->stats.time_to_first_token_seconds;
      headline.tokens_per_second = last->stats.tokens_per_second();
      headline.chars_per_second = last->stats.chars_per_second();
    }
    write_timeline(o.timeline, *timeline, headline);
  }
  return kExitOk;
}

}  // namespace

CommandRunner define_chat(CLI::App& command) {
  auto o = std::make_shared<ChatOptions>();
  auto help = [](const char* en, const char* ja) { return std::string(pick(en, ja)); };
  command.add_option("-m,--model", o->model, help("GGUF model file", "GGUF モデルファイル"))->required();
  command.add_option("--system", o->system, help("system prompt (\"\": none)", "システムプロンプト (\"\": なし)"))->capture_default_str();
  command.add_option("--template", o->chat_template,
                     tr("chat format instead of the model's: {0}", "モデルの代わりに使うチャット形式: {0}", chat_family_names()));
  command.add_option("--kv-type", o->kv_type, help(kv_type_help_en(), kv_type_help_ja()))->capture_default_str();
  command.add_option("-c,--ctx", o->n_ctx, help("context size in tokens (0: the model's, at most 4096)",
                                                "コンテキスト長 (0: モデルの値、最大 4096)"))
      ->check(CLI::Range(0, 1 << 24));
  command.add_option("-t,--threads", o->threads, help("worker threads (0: one per physical core)", "ワーカースレッド数 (0: 物理コアごとに 1)"))
      ->check(CLI::Range(0, 1024));
  command.add_option("-n,--max-tokens", o->max_tokens, help("most tokens per answer (-1: until the model ends it)",
                                                            "回答ごとの最大トークン数 (-1: モデルが終えるまで)"))
      ->capture_default_str();
  command.add_option("--temp", o->sampling.temperature, help("temperature (0: greedy)", "温度 (0: 貪欲法)"))->capture_default_str();
  command.add_option("--top-k", o->sampling.top_k, help("keep the k most likely tokens (0: off)", "上位 k トークンに絞る (0: 無効)"))
      ->capture_default_str();
  command.add_option("--top-p", o->sampling.top_p, help("nucleus sampling mass (1: off)", "累積確率で絞る (1: 無効)"))->capture_default_str();
  command.add_option("--seed", o->seed, help("random seed (-1: random)", "乱数シード (-1: ランダム)"))->capture_default_str();
  command.add_option("--history", o->history,
                     tr("history file (default {0})", "入力履歴のファイル (既定 {0})", default_history_path().string()));
  command.add_flag("--no-history", o->no_history, help("keep no input history", "入力履歴を保存しない"));
  command.add_option("--timeline", o->timeline,
                     help("at the end, draw CPU, memory and phases over the session: an SVG (or .html) and FILE.json",
                          "終了時に、会話中の CPU・メモリ・段階の推移を SVG (または .html) と FILE.json に描く"));
  return [o] { return run_chat(*o); };
}

}  // namespace koto::cli
