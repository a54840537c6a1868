// The serving core: one model, several sequences at once, prompts never processed twice.
//
// A Scheduler owns n_slots sessions (sequence slots) of one model and a thread that
// runs steps. Each step is ONE forward pass (Model::eval_batch) over the next token of
// every generating sequence plus a slice of the waiting prompts (chunked prefill: at
// most batch_tokens rows in all, so a long prompt delays the others by one slice per
// step, never by its whole length); the weights are read once per step for all
// sequences. Requests wait in a FIFO queue (at most max_queue) for a free slot.
//
// Reuse. A new request takes the free slot whose retained tokens share the longest
// prefix with its prompt (same cache partition only); when the prefix cache
// (koto/prefix_cache.h) holds a longer prefix, that is copied in instead. Only the
// rest of the prompt is evaluated (at least its last token, whose logits choose the
// first answer token). Prompts are stored in the cache once processed, and whole
// sequences when a request ends.
//
// Per request: sampling options and seed, stop strings, max_tokens, the text streamed
// as events (valid UTF-8 chunks that never split a character nor show a stop string),
// and statistics. Requests are cancelled from any thread with RequestHandle::cancel():
// a queued request leaves the queue, a running one frees its slot before the next
// step (also in the middle of its prompt).
//
// Thread-safety: submit(), status(), stop_accepting() and cancel_all() may be called
// from any thread; a RequestHandle may be read by one thread and cancelled from any.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "koto/error.h"
#include "koto/generate.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "koto/prefix_cache.h"
#include "koto/sampler.h"
#include "koto/text_stream.h"

namespace koto {

struct SchedulerOptions {
  int32_t n_slots = 4;         // sequences generated at once (koto serve --parallel)
  int32_t n_ctx = 0;           // positions per slot; 0: min(n_ctx_train, 4096)
  int32_t max_queue = 16;      // requests waiting for a slot; more are refused (kUnavailable)
  int32_t batch_tokens = 64;   // rows per step: one per generating slot, the rest for prompts (>= n_slots)
  TensorType kv_type = TensorType::kF16;
  PrefixCacheOptions cache;    // memory_bytes 0: no prefix cache (slots still reuse their own tokens)
  // Receives one translated line for prefix-cache warnings (damaged files...); may be empty.
  std::function<void(const std::string&)> warn;
};

struct CompletionRequest {
  std::vector<TokenId> prompt;        // the whole prompt, template applied; not empty
  int32_t max_tokens = -1;            // < 0: until the context is full
  SamplingOptions sampling;
  std::vector<std::string> stop_strings;
  LeadingSpace leading_space = LeadingSpace::kStrip;  // chat answers follow markup; raw prompts pass kKeep
  bool ignore_eos = false;            // never choose an end-of-generation token (benchmarks: fixed lengths)
  std::string cache_partition;        // requests share cached prefixes only within one partition
  Language language = Language::kEnglish;  // of messages about this request
  // Lookup decoding, as generate() does it (GenerateOptions::Lookup): up to this many
  // guessed tokens checked with each step's row; 0: off. Same text for a seed as
  // generate() with the same setting.
  int32_t lookup_max_draft = GenerateOptions::Lookup{}.max_draft;
};

struct RequestStats {
  int32_t prompt_tokens = 0;     // the whole prompt
  int32_t cached_tokens = 0;     // of those, restored instead of evaluated (slot or prefix cache)
  int32_t generated_tokens = 0;  // chosen tokens, an end-of-generation token included
  uint64_t output_bytes = 0;
  uint64_t output_chars = 0;     // code points of the streamed text
  double queue_seconds = 0;      // submit → slot
  double prompt_seconds = 0;     // slot → the prompt's last token evaluated (0 when cancelled before)
  double time_to_first_token_seconds = 0;  // submit → first token chosen
  double generation_seconds = 0;           // first token → end
  double total_seconds = 0;                // submit → end
  StopReason stop_reason = StopReason::kMaxTokens;
  uint64_t seed = 0;             // the sampler's seed
  int32_t lookup_drafted = 0;    // tokens guessed by lookup decoding
  int32_t lookup_accepted = 0;   // of them, kept

  // New (evaluated) prompt tokens per second of prompt_seconds; 0 when empty.
  double prompt_tokens_per_second() const;
  double tokens_per_second() const;  // (generated_tokens - 1) / generation_seconds
  double chars_per_second() const;   // output_chars / generation_seconds
};

struct RequestEvent {
  enum class Kind {
    kText,      // text: the next chunk of the answer
    kFinished,  // stats (and stop_string when one matched); the last event
    kFailed,    // error_code, error_message; the last event
  };
  Kind kind = Kind::kText;
  std::string text;
  RequestStats stats;
  std::string stop_string;
  ErrorCode error_code = ErrorCode::kInternal;
  std::string error_message;
};

// A submitted request, shared by the submitter and the scheduler.
class RequestHandle {
 public:
  uint64_t id() const { return id_; }
  // Stops the request as soon as possible (idempotent, any thread). Its last event is
  // kFinished with StopReason::kCancelled and the text produced so far.
  void cancel();
  bool cancelled() const { return cancel_.load(std::memory_order_relaxed); }
  // The next event, waiting at most `timeout`; nullopt on timeout or after the last
  // event was taken.
  std::optional<RequestEvent> next(std::chrono::milliseconds timeout);
  // Every event until the last, calling on_text for text chunks; returns the last one
  // (kFinished or kFailed).
  RequestEvent wait(const std::function<void(std::string_view)>& on_text = {});

 private:
  friend class Scheduler;
  RequestHandle(uint64_t id, std::function<void()> wake) : id_(id), wake_(std::move(wake)) {}
  void push(RequestEvent event);

  const uint64_t id_;
  std::function<void()> wake_;  // tells the scheduler a cancel arrived
  std::atomic<bool> cancel_{false};
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<RequestEvent> events_;
  bool ended_ = false;   // the last event was pushed
  bool drained_ = false; // and taken
};

struct SchedulerStatus {
  int32_t slots = 0;
  int32_t busy_slots = 0;
  int32_t queued = 0;
  bool accepting = true;
  uint64_t steps = 0;                 // forward passes run
  uint64_t prompt_tokens = 0;         // totals over all finished requests
  uint64_t cached_prompt_tokens = 0;
  uint64_t generated_tokens = 0;
  uint64_t lookup_drafted_tokens = 0;   // guessed by lookup decoding, finished requests
  uint64_t lookup_accepted_tokens = 0;  // of them, kept
  PrefixCacheStats cache;
};

class Scheduler {
 public:
  // Makes the slots' sessions and starts the scheduler thread. The model must outlive
  // the scheduler. Throws kInvalidArgument for options that cannot work (naming the
  // option), kOutOfMemory / kIo from the sessions and the prefix cache's folder.
  Scheduler(const Model& model, SchedulerOptions options);
  // Cancels what is running and queued (their handles get kFinished / kCancelled) and
  // joins the thread; pending prefix-cache writes are finished.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Throws kInvalidArgument when the prompt is empty or leaves no
  // room for an answer in a slot's context (the message gives both numbers) or the
  // sampling options are invalid; kUnavailable when the queue is full or the scheduler
  // stopped accepting.
  std::shared_ptr<RequestHandle> submit(CompletionRequest request);

  // From now on submit() refuses with kUnavailable; queued and running requests go on.
  void stop_accepting();
  // Cancels every queued and running request.
  void cancel_all();
  // True when no request is queued or running.
  bool idle() const;

  SchedulerStatus status() const;
  const Model& model() const { return model_; }
  int32_t n_ctx() const { return n_ctx_; }
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Slot;
  struct Pending;
  void run();
  void admit(Pending& pending);
  void step();
  void choose_token(Slot& slot, std::span<const float> logits);
  bool take_token(Slot& slot, TokenId id);
  void check_guesses(Slot& slot, std::span<const float> rows);
  std::span<const float> visible_logits(const Slot& slot, std::span<const float> logits) const;
  void emit(Slot& slot, const std::string& text);
  void finish(Slot& slot, StopReason reason);
  void fail(Slot& slot, ErrorCode code, const std::string& message);
  void release(Slot& slot);

  const Model& model_;
  const SchedulerOptions options_;
  int32_t n_ctx_ = 0;
  std::vector<TokenId> end_of_generation_;  // every id the tokenizer calls end of generation
  struct Core;
  std::unique_ptr<Core> core_;
};

}  // namespace koto
