// `koto serve -m MODEL [options]`: the resident OpenAI-compatible server.
//
// Order of events: options and API keys are checked; the port is bound and served at
// once (/health answers 503 "loading"); the model is loaded and checked against the
// memory it will need; then every route works. SIGINT or SIGTERM: no new requests
// (503), running answers get --shutdown-timeout seconds, then they are cancelled, the
// prefix cache's pending writes are finished and the process exits 0. A second signal
// cancels at once.
//
// Everything the server prints goes to stderr: one line per request, and the notable
// events. Options are rows of server/server_options.cpp (with their environment
// variables).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <csignal>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "cli/load_model.h"
#include "cli/chat_format_option.h"
#include "cli/commands.h"
#include "cli/kv_type.h"
#include "cli/model_path.h"
#include "cli/progress_line.h"
#include "cli/usage_error.h"
#include "koto/chat_template.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_summary.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "koto/timeline.h"
#include "koto/run_stats.h"
#include "koto/scheduler.h"
#include "server/api_keys.h"
#include "server/http_server.h"
#include "server/server_options.h"

namespace koto::cli {
namespace {

using server::ServerOptions;

// Lines to stderr, whole, from any thread.
class ServerLog {
 public:
  void operator()(const std::string& line) {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::cerr << "koto serve: " << line << '\n' << std::flush;
  }

 private:
  std::mutex mutex_;
};

// Waits for SIGINT/SIGTERM on a thread of its own. The signals must be blocked in every
// thread, so this is made before any other thread starts.
class SignalWaiter {
 public:
  SignalWaiter() {
    // A process started in the background by a shell inherits SIGINT ignored; the
    // server is meant to stop on it all the same.
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      int signal = 0;
      while (sigwait(&set_, &signal) == 0) {
        if (done_) return;
        {
          const std::lock_guard<std::mutex> lock(mutex_);
          ++count_;
        }
        changed_.notify_all();
      }
    });
  }
  ~SignalWaiter() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
    pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
  }
  SignalWaiter(const SignalWaiter&) = delete;
  SignalWaiter& operator=(const SignalWaiter&) = delete;

  int count() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return count_;
  }
  // Waits until more than `seen` signals arrived or `timeout` passed; returns the count.
  int wait_beyond(int seen, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return count_ > seen; });
    return count_;
  }

 private:
  sigset_t set_{};
  std::thread thread_;
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::condition_variable changed_;
  int count_ = 0;
};

// Weights + every slot's KV cache at full context + the prefix cache, against
// MemAvailable; a refusal names the settings that would fit.
void require_server_memory(const Model& model, const ServerOptions& o, int32_t n_ctx) {
  const uint64_t available = available_memory_bytes();
  if (available == 0) return;
  const uint64_t weights = model.file().file_size();
  const uint64_t cache = static_cast<uint64_t>(o.cache_mb) << 20;
  auto need = [&](int parallel, int32_t ctx) { return weights + parallel * model.session_bytes(ctx) + cache; };
  if (need(o.parallel, n_ctx) <= available) return;
  std::string way_out;
  for (int32_t c = n_ctx / 2; c >= 256; c /= 2) {
    if (need(o.parallel, c) <= available) {
      way_out = tr("--ctx {0}", "--ctx {0}", c);
      break;
    }
  }
  for (int p = o.parallel - 1; p >= 1 && way_out.empty(); --p) {
    if (need(p, n_ctx) <= available) way_out = tr("--parallel {0}", "--parallel {0}", p);
  }
  const std::string sizes =
      tr("needs {0} ({1} weights + {2} slots × {3} for {4} tokens each + {5} prefix cache) but {6} is available",
         "必要量 {0} (重み {1} + 処理枠 {2} 個 × {4} トークン分 {3} + プレフィックスキャッシュ {5}) に対して空きは {6} です",
         format_byte_size(need(o.parallel, n_ctx)), format_byte_size(weights), o.parallel, format_byte_size(model.session_bytes(n_ctx)),
         n_ctx, format_byte_size(cache), format_byte_size(available));
  if (!way_out.empty()) {
    throw Error(ErrorCode::kOutOfMemory, tr("not enough memory: {0} — try {1} (or a smaller --cache-mb)",
                                            "メモリが足りません: {0}。{1} を試してください (または --cache-mb を小さく)", sizes,
                                            way_out));
  }
  throw Error(ErrorCode::kOutOfMemory,
              tr("not enough memory: {0} — use a smaller (more quantized) model or close other programs",
                 "メモリが足りません: {0}。より小さい (量子化の強い) モデルを使うか、他のプログラムを閉じてください", sizes));
}

int serve(const ServerOptions& o) {

  const std::optional<ChatFamily> forced_family = chat_format_option(o.chat_template);
  server::ApiKeys keys;
  try {
    keys = server::ApiKeys::load(o.api_key_file, std::getenv("KOTO_API_KEY"));
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  ServerLog log;
  if (!server::is_loopback_host(o.host) && keys.empty()) {
    if (!o.insecure_no_api_key) {
      throw UsageError(tr("refusing to listen on {0} without an API key: anyone who can reach this machine could use "
                          "the model and read what it is sent. Give keys with --api-key-file FILE or the environment "
                          "variable KOTO_API_KEY (not on the command line, where `ps` shows them), or listen on "
                          "127.0.0.1. Only if you really mean it: --insecure-no-api-key",
                          "API キーなしで {0} では待ち受けません。このマシンに届く人は誰でもモデルを使え、送られた内容も読めてしまいます。"
                          "--api-key-file ファイル または環境変数 KOTO_API_KEY でキーを指定するか (コマンドラインは `ps` で見えるため不可)、"
                          "127.0.0.1 で待ち受けてください。本当にそうしたい場合のみ: --insecure-no-api-key",
                          o.host));
    }
    log(tr("WARNING: listening on {0} WITHOUT an API key (--insecure-no-api-key): anyone who can reach it can use it",
           "警告: API キーなしで {0} で待ち受けます (--insecure-no-api-key)。届く人は誰でも使えます", o.host));
  }

  SignalWaiter signals;  // before any other thread
  // The last 5 minutes of CPU and memory, for GET /v1/koto/timeline (the web page's chart).
  TimelineRecorder timeline(std::chrono::milliseconds(100), 3000);
  server::HttpServer http(o, std::move(keys), [&log](const std::string& line) { log(line); });
  http.set_timeline(&timeline);
  const int port = http.bind();
  if (!o.port_file.empty()) {
    std::ofstream(o.port_file) << port << '\n';
  }
  http.start();
  const std::string url = fmt::format("http://{}:{}", o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host, port);
  log(tr("listening on {0} — loading {1}", "{0} で待ち受け中 — {1} を読み込んでいます", url, o.model));

  LoadOptions load_options;
  load_options.n_threads = o.threads;
  timeline.mark("load");
  const std::unique_ptr<Model> model = load_model(resolve_model_path(o.model), load_options);
  timeline.watch_mapping(weight_pages(*model).first, weight_pages(*model).second);
  SchedulerOptions scheduler_options;
  scheduler_options.n_slots = o.parallel;
  scheduler_options.n_ctx = o.n_ctx;
  scheduler_options.kv_type = parse_kv_type(o.kv_type);
  scheduler_options.max_queue = o.queue;
  scheduler_options.batch_tokens = std::max(o.batch, o.parallel);
  scheduler_options.cache.memory_bytes = static_cast<uint64_t>(o.cache_mb) << 20;
  scheduler_options.cache.disk_dir = o.cache_dir;
  scheduler_options.cache.disk_bytes = static_cast<uint64_t>(o.cache_disk_mb) << 20;
  scheduler_options.warn = [&log](const std::string& line) { log(line); };
  const int32_t n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min(model->params().n_ctx_train, 4096);
  require_server_memory(*model, o, n_ctx);
  {
    // The weights' pages are read now, not by the first request (2.3 s of a 20-token
    // prompt's answer on a 7B whose pages were not resident yet).
    timeline.mark("weights");
    const auto start = std::chrono::steady_clock::now();
    std::optional<ProgressLine> progress;
    if (::isatty(STDERR_FILENO) != 0) {
      progress.emplace("Reading the weights into memory", "重みをメモリに読み込んでいます");
    }
    // Ctrl-C or SIGTERM while a large model is read from a slow disk stops the reading;
    // the server then shuts down at once (the signal is counted).
    const uint64_t bytes = model->touch_weights([&progress, &signals](uint64_t done, uint64_t total) {
      if (progress) progress->update(done, total);
      return signals.count() == 0;
    });
    if (signals.count() == 0) {
      log(tr("weights in memory: {0} in {1:.1f} s", "重みをメモリに読み込みました: {0} ({1:.1f} 秒)", format_byte_size(bytes),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
    }
  }
  Scheduler scheduler(*model, scheduler_options);

  ChatTemplate chat = forced_family ? ChatTemplate(*forced_family) : ChatTemplate::for_model(model->file(), model->tokenizer());
  if (!chat.note().empty()) log(chat.note());
  std::string model_id = o.alias;
  if (model_id.empty()) model_id = std::filesystem::path(o.model).stem().string();
  http.set_model(*model, scheduler, chat, model_id);
  timeline.mark("idle");
  log(tr("ready: {0} ({1}, {2:.2f} B parameters), {3} slots × {4} tokens, chat format {5}, prefix cache {6} MB{7} — "
         "OpenAI API at {8}/v1",
         "準備完了: {0} ({1}、{2:.2f} B パラメータ)、処理枠 {3} 個 × {4} トークン、チャット形式 {5}、プレフィックスキャッシュ {6} MB{7} — "
         "OpenAI API: {8}/v1",
         model_id, model->params().architecture, model->params().n_params / 1e9, o.parallel, scheduler.n_ctx(),
         chat_family_name(chat.family()), o.cache_mb, o.cache_dir.empty() ? "" : " + " + o.cache_dir, url));

  int seen = signals.wait_beyond(0, std::chrono::hours(24 * 365 * 100));
  const SchedulerStatus at_signal = scheduler.status();
  log(tr("shutting down: {0} running and {1} queued answers get up to {2} s to finish (Ctrl-C again to stop now)",
         "終了します: 実行中 {0} 件・待機中 {1} 件の回答を最大 {2} 秒待ちます (もう一度 Ctrl-C で即座に停止)",
         at_signal.busy_slots, at_signal.queued, o.shutdown_timeout_s));
  http.begin_shutdown();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.shutdown_timeout_s);
  while (!scheduler.idle() && std::chrono::steady_clock::now() < deadline) {
    if (signals.wait_beyond(seen, std::chrono::milliseconds(50)) > seen) break;
  }
  if (!scheduler.idle()) {
    const SchedulerStatus left = scheduler.status();
    log(tr("cancelling {0} unfinished answers", "終わらなかった回答 {0} 件を中止します", left.busy_slots + left.queued));
    scheduler.cancel_all();
    for (int i = 0; i < 200 && !scheduler.idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  http.stop();
  log(std::string(pick("stopped", "停止しました")));
  return kExitOk;
}

}  // namespace

CommandRunner define_serve(CLI::App& command) {
  auto o = std::make_shared<ServerOptions>();
  server::add_server_options(command, *o);
  command.get_option("--model")->required();
  command.footer(std::string(pick(
      "API keys: --api-key-file FILE (one per line) or KOTO_API_KEY; never on the command line.\n"
      "Example: curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' "
      "-d '{\"messages\":[{\"role\":\"user\",\"content\":\"日本の首都は？\"}]}'",
      "API キー: --api-key-file ファイル (1 行に 1 つ) または KOTO_API_KEY。コマンドラインでは指定できません。\n"
      "例: curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' "
      "-d '{\"messages\":[{\"role\":\"user\",\"content\":\"日本の首都は？\"}]}'")));
  return [o] { return serve(*o); };
}

}  // namespace koto::cli
