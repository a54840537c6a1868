// The scheduler: a queue, sequence slots and one thread that runs steps of continuous
// batching (see koto/scheduler.h for the contract).
//
// One step, in order:
//   1. cancellations: cancelled queued requests leave the queue, cancelled slots end;
//   2. admission: queued requests take free slots, restoring their longest cached
//      prefix (the slot's own tokens or the prefix cache);
//   3. the batch: one row per generating slot (its last chosen token, followed by lookup
//      decoding's guesses when it has some), then prompt slices of the prefilling
//      slots, oldest first, up to batch_tokens rows;
//   4. one Model::eval_batch;
//   5. for every slot whose logits came back: keep the guesses its sampler agrees with,
//      choose a token, stream its text, and end the request at an end-of-generation
//      token, a stop string, max_tokens or a full context.
#include "koto/scheduler.h"

#include <algorithm>
#include <limits>
#include <thread>

#include "base/utf8.h"
#include "koto/gguf_identity.h"
#include "serving/token_prefix.h"
#include "generate/ngram_draft.h"

namespace koto {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }


}  // namespace

double RequestStats::prompt_tokens_per_second() const {
  return prompt_seconds > 0 ? (prompt_tokens - cached_tokens) / prompt_seconds : 0.0;
}
double RequestStats::tokens_per_second() const {
  return generation_seconds > 0 && generated_tokens > 1 ? (generated_tokens - 1) / generation_seconds : 0.0;
}
double RequestStats::chars_per_second() const {
  return generation_seconds > 0 ? static_cast<double>(output_chars) / generation_seconds : 0.0;
}

// ---- RequestHandle ----

void RequestHandle::cancel() {
  if (!cancel_.exchange(true) && wake_) wake_();
}

void RequestHandle::push(RequestEvent event) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (ended_) return;
    if (event.kind != RequestEvent::Kind::kText) ended_ = true;
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
}

std::optional<RequestEvent> RequestHandle::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty() || drained_; })) return std::nullopt;
  if (events_.empty()) return std::nullopt;
  RequestEvent event = std::move(events_.front());
  events_.pop_front();
  if (event.kind != RequestEvent::Kind::kText) drained_ = true;
  return event;
}

RequestEvent RequestHandle::wait(const std::function<void(std::string_view)>& on_text) {
  while (true) {
    std::optional<RequestEvent> event = next(std::chrono::hours(1));
    if (!event) continue;
    if (event->kind != RequestEvent::Kind::kText) return std::move(*event);
    if (on_text) on_text(event->text);
  }
}

// ---- Scheduler ----

struct Scheduler::Pending {
  std::shared_ptr<RequestHandle> handle;
  CompletionRequest request;
  Clock::time_point submitted;
};

struct Scheduler::Slot {
  std::unique_ptr<Session> session;
  std::vector<TokenId> tokens;  // what the session's KV cache holds, position by position
  std::string partition;        // whose tokens they are
  uint64_t last_used = 0;

  // The request being served; none when handle is null.
  std::shared_ptr<RequestHandle> handle;
  CompletionRequest request;
  Clock::time_point submitted, admitted, first_token;
  uint64_t admission = 0;       // order of admission: older prompts get rows first
  size_t prompt_done = 0;       // prompt tokens in the KV cache
  bool generating = false;      // the prompt is done and pending_token waits to be evaluated
  TokenId pending_token = 0;
  std::optional<Sampler> sampler;
  std::optional<TextStream> stream;
  std::optional<NgramDraft> drafter;  // lookup decoding, when the request asks for it
  std::vector<TokenId> check;         // this step's row: pending_token, then the guesses
  int32_t generated = 0;
  RequestStats stats;

  bool busy() const { return handle != nullptr; }
};

struct Scheduler::Core {
  mutable std::mutex mutex;
  std::shared_ptr<std::condition_variable> wake = std::make_shared<std::condition_variable>();
  std::deque<Pending> queue;
  bool accepting = true;
  bool stopping = false;
  uint64_t next_id = 1;
  std::atomic<bool> cancel_running{false};

  // Scheduler thread only.
  std::vector<Slot> slots;
  uint64_t tick = 0;
  uint64_t admissions = 0;
  std::unique_ptr<PrefixCache> cache;
  std::thread thread;

  // Read by status() from any thread.
  std::atomic<int32_t> busy_slots{0};
  std::atomic<uint64_t> steps{0}, prompt_tokens{0}, cached_prompt_tokens{0}, generated_tokens{0};
  std::atomic<uint64_t> lookup_drafted{0}, lookup_accepted{0};
};

Scheduler::Scheduler(const Model& model, SchedulerOptions options)
    : model_(model), options_(std::move(options)), core_(std::make_unique<Core>()) {
  if (options_.n_slots < 1 || options_.n_slots > 256) {
    throw Error(ErrorCode::kInvalidArgument, tr("--parallel {0}: give 1 to 256 sequence slots",
                                                "--parallel {0}: 同時に処理する系列数は 1〜256 にしてください",
                                                options_.n_slots));
  }
  if (options_.max_queue < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("--queue {0}: must be 0 or more", "--queue {0}: 0 以上にしてください", options_.max_queue));
  }
  if (options_.batch_tokens < options_.n_slots) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("--batch {0}: a step needs at least one row per slot ({1})",
                   "--batch {0}: 1 ステップには系列ごとに 1 行 (計 {1} 行) 以上が必要です", options_.batch_tokens,
                   options_.n_slots));
  }
  Core& c = *core_;
  SessionOptions session_options;
  session_options.n_ctx = options_.n_ctx;
  session_options.kv_type = options_.kv_type;
  c.slots.resize(static_cast<size_t>(options_.n_slots));
  for (Slot& slot : c.slots) slot.session = model_.new_session(session_options);
  n_ctx_ = c.slots[0].session->n_ctx();
  const Tokenizer& tokenizer = model_.tokenizer();
  for (TokenId id = 0; id < tokenizer.vocab_size(); ++id) {
    if (tokenizer.is_end_of_generation(id)) end_of_generation_.push_back(id);
  }
  if (options_.cache.memory_bytes > 0) {
    const std::string identity = fmt::format("{}/kv-{}", gguf_identity(model_.file()), tensor_type_name(options_.kv_type));
    c.cache = std::make_unique<PrefixCache>(identity, c.slots[0].session->kv_bytes_per_position(), options_.cache,
                                            options_.warn);
  }
  c.thread = std::thread([this] { run(); });
}

Scheduler::~Scheduler() {
  Core& c = *core_;
  {
    const std::lock_guard<std::mutex> lock(c.mutex);
    c.accepting = false;
    c.stopping = true;
  }
  cancel_all();
  c.thread.join();
  if (c.cache) c.cache->flush();
}

std::shared_ptr<RequestHandle> Scheduler::submit(CompletionRequest request) {
  const ScopedLanguage language(request.language);
  const size_t n = request.prompt.size();
  if (n == 0) {
    throw Error(ErrorCode::kInvalidArgument, tr("the prompt has no tokens", "プロンプトのトークンがありません"));
  }
  if (n >= static_cast<size_t>(n_ctx_)) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("the prompt is {0} tokens but the context holds {1}, leaving no room for an answer — shorten the "
                   "prompt or start the server with a larger context",
                   "プロンプトが {0} トークンあり、コンテキスト {1} トークンに回答の余地がありません。プロンプトを短くするか、"
                   "より大きいコンテキストでサーバーを起動してください",
                   n, n_ctx_));
  }
  const int32_t n_vocab = model_.params().n_vocab;
  for (size_t i = 0; i < n; ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= n_vocab) {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("token id {0} (prompt position {1}) is out of range: the vocabulary has ids 0 to {2}",
                     "トークン ID {0} (プロンプトの {1} 番目) が範囲外です。語彙の ID は 0〜{2} です", request.prompt[i], i,
                     n_vocab - 1));
    }
  }
  (void)Sampler(request.sampling);  // throws kInvalidArgument for options that cannot work

  Core& c = *core_;
  std::shared_ptr<RequestHandle> handle;
  {
    const std::lock_guard<std::mutex> lock(c.mutex);
    if (!c.accepting) {
      throw Error(ErrorCode::kUnavailable, tr("the server is shutting down and takes no new requests",
                                              "サーバーは終了処理中のため、新しい依頼を受け付けません"));
    }
    const int32_t free_slots = options_.n_slots - c.busy_slots.load();
    if (static_cast<int64_t>(c.queue.size()) >= int64_t{options_.max_queue} + std::max(free_slots, 0)) {
      throw Error(ErrorCode::kUnavailable,
                  tr("all {0} slots are busy and the queue of {1} is full; try again shortly",
                     "{0} 個の処理枠がすべて使用中で、待ち行列 ({1} 件) も満杯です。少し待ってから再度お試しください",
                     options_.n_slots, options_.max_queue));
    }
    // The handle may outlive the scheduler: it keeps the condition variable alive.
    handle.reset(new RequestHandle(c.next_id++, [wake = c.wake] { wake->notify_all(); }));
    c.queue.push_back({handle, std::move(request), Clock::now()});
  }
  c.wake->notify_all();
  return handle;
}

void Scheduler::stop_accepting() {
  const std::lock_guard<std::mutex> lock(core_->mutex);
  core_->accepting = false;
}

void Scheduler::cancel_all() {
  Core& c = *core_;
  {
    const std::lock_guard<std::mutex> lock(c.mutex);
    for (Pending& pending : c.queue) pending.handle->cancel_.store(true);
    c.cancel_running = true;
  }
  c.wake->notify_all();
}

bool Scheduler::idle() const {
  const std::lock_guard<std::mutex> lock(core_->mutex);
  return core_->queue.empty() && core_->busy_slots.load() == 0;
}

SchedulerStatus Scheduler::status() const {
  const Core& c = *core_;
  SchedulerStatus s;
  s.slots = options_.n_slots;
  s.busy_slots = c.busy_slots.load();
  {
    const std::lock_guard<std::mutex> lock(c.mutex);
    s.queued = static_cast<int32_t>(c.queue.size());
    s.accepting = c.accepting;
  }
  s.steps = c.steps.load();
  s.prompt_tokens = c.prompt_tokens.load();
  s.cached_prompt_tokens = c.cached_prompt_tokens.load();
  s.generated_tokens = c.generated_tokens.load();
  s.lookup_drafted_tokens = c.lookup_drafted.load();
  s.lookup_accepted_tokens = c.lookup_accepted.load();
  if (c.cache) s.cache = c.cache->stats();
  return s;
}

void Scheduler::run() {
  Core& c = *core_;
  // A request cancelled before it reached a slot.
  auto end_unstarted = [](Pending& pending) {
    RequestEvent event;
    event.kind = RequestEvent::Kind::kFinished;
    event.stats.prompt_tokens = static_cast<int32_t>(pending.request.prompt.size());
    event.stats.queue_seconds = seconds_between(pending.submitted, Clock::now());
    event.stats.total_seconds = event.stats.queue_seconds;
    event.stats.stop_reason = StopReason::kCancelled;
    event.stats.seed = pending.request.sampling.seed;
    pending.handle->push(std::move(event));
  };
  while (true) {
    std::vector<Pending> admitted;
    {
      std::unique_lock<std::mutex> lock(c.mutex);
      c.wake->wait(lock, [&] { return c.stopping || !c.queue.empty() || c.busy_slots.load() > 0; });
      // Cancelled requests leave the queue at once, so they stop holding its places.
      for (auto it = c.queue.begin(); it != c.queue.end();) {
        if (it->handle->cancelled()) {
          end_unstarted(*it);
          it = c.queue.erase(it);
        } else {
          ++it;
        }
      }
      int32_t free_slots = options_.n_slots - c.busy_slots.load();
      while (free_slots > 0 && !c.queue.empty()) {
        admitted.push_back(std::move(c.queue.front()));
        c.queue.pop_front();
        --free_slots;
        c.busy_slots.fetch_add(1);  // counted now, so submit() sees the slot as taken
      }
      if (c.stopping && c.queue.empty() && admitted.empty() && c.busy_slots.load() == 0) return;
    }
    for (Pending& pending : admitted) admit(pending);
    step();
  }
}

void Scheduler::admit(Pending& pending) {
  Core& c = *core_;
  const ScopedLanguage language(pending.request.language);
  const std::vector<TokenId>& prompt = pending.request.prompt;
  const size_t limit = prompt.size() - 1;  // the last prompt token is always evaluated: its logits start the answer
  Slot* best = nullptr;
  size_t best_reuse = 0;
  for (Slot& slot : c.slots) {
    if (slot.busy()) continue;
    const size_t reuse =
        slot.partition == pending.request.cache_partition ? std::min(serving::common_prefix_length(slot.tokens, prompt), limit) : 0;
    if (best == nullptr || reuse > best_reuse || (reuse == best_reuse && slot.last_used < best->last_used)) {
      best = &slot;
      best_reuse = reuse;
    }
  }
  Slot& slot = *best;  // run() admits only while a slot is free
  slot.handle = pending.handle;
  slot.request = std::move(pending.request);
  slot.submitted = pending.submitted;
  slot.admitted = Clock::now();
  slot.admission = ++c.admissions;
  slot.generating = false;
  slot.generated = 0;
  slot.stats = RequestStats{};
  slot.stats.prompt_tokens = static_cast<int32_t>(slot.request.prompt.size());
  slot.stats.queue_seconds = seconds_between(slot.submitted, slot.admitted);
  try {
    slot.sampler.emplace(slot.request.sampling);
    slot.stream.emplace(model_.tokenizer(), slot.request.stop_strings, slot.request.leading_space);
    slot.stats.seed = slot.sampler->seed();
    size_t reused = best_reuse;
    slot.session->truncate(static_cast<int32_t>(reused));
    slot.tokens.resize(reused);
    if (c.cache) {
      const PrefixCache::Match match =
          c.cache->find(slot.request.cache_partition, slot.request.prompt, static_cast<int32_t>(limit));
      if (static_cast<size_t>(match.tokens()) > reused) {
        reused = static_cast<size_t>(c.cache->restore(match, static_cast<int32_t>(reused), *slot.session));
      }
    }
    slot.partition = slot.request.cache_partition;
    slot.tokens.assign(slot.request.prompt.begin(), slot.request.prompt.begin() + static_cast<ptrdiff_t>(reused));
    slot.prompt_done = reused;
    slot.stats.cached_tokens = static_cast<int32_t>(reused);
  } catch (const Error& e) {
    fail(slot, e.code(), e.what());
  }
}

void Scheduler::emit(Slot& slot, const std::string& text) {
  if (text.empty()) return;
  slot.stats.output_bytes += text.size();
  slot.stats.output_chars += utf8::count_chars(text);
  RequestEvent event;
  event.kind = RequestEvent::Kind::kText;
  event.text = text;
  slot.handle->push(std::move(event));
}

void Scheduler::release(Slot& slot) {
  Core& c = *core_;
  slot.handle.reset();
  slot.sampler.reset();
  slot.stream.reset();
  slot.drafter.reset();
  slot.generating = false;
  slot.last_used = ++c.tick;
  c.busy_slots.fetch_sub(1);
}

void Scheduler::finish(Slot& slot, StopReason reason) {
  Core& c = *core_;
  const ScopedLanguage language(slot.request.language);
  const Clock::time_point now = Clock::now();
  // Guesses evaluated past the last kept token leave the KV cache.
  if (static_cast<size_t>(slot.session->n_past()) > slot.tokens.size()) {
    slot.session->truncate(static_cast<int32_t>(slot.tokens.size()));
  }
  if (slot.stream) emit(slot, slot.stream->finish());
  RequestStats& stats = slot.stats;
  stats.generated_tokens = slot.generated;
  if (slot.generated > 0) stats.generation_seconds = seconds_between(slot.first_token, now);
  stats.total_seconds = seconds_between(slot.submitted, now);
  stats.stop_reason = reason;
  RequestEvent event;
  event.kind = RequestEvent::Kind::kFinished;
  event.stats = stats;
  if (slot.stream && slot.stream->stopped()) event.stop_string = slot.stream->stop_string();
  c.prompt_tokens += static_cast<uint64_t>(stats.prompt_tokens);
  c.cached_prompt_tokens += static_cast<uint64_t>(stats.cached_tokens);
  c.generated_tokens += static_cast<uint64_t>(stats.generated_tokens);
  c.lookup_drafted += static_cast<uint64_t>(stats.lookup_drafted);
  c.lookup_accepted += static_cast<uint64_t>(stats.lookup_accepted);
  // Everything evaluated may start a later request: the next turn of a conversation
  // repeats this one, answer included.
  if (c.cache) {
    try {
      c.cache->store(slot.partition, slot.tokens, *slot.session);
    } catch (const Error&) {
      // A cache that cannot take the state only costs a later request its reuse.
    }
  }
  // The slot is free before the last event is seen, so the caller may count on it.
  const std::shared_ptr<RequestHandle> handle = slot.handle;
  release(slot);
  handle->push(std::move(event));
}

void Scheduler::fail(Slot& slot, ErrorCode code, const std::string& message) {
  RequestEvent event;
  event.kind = RequestEvent::Kind::kFailed;
  event.error_code = code;
  event.error_message = message;
  event.stats = slot.stats;
  // The session's state is no longer known to match slot.tokens.
  slot.session->truncate(0);
  slot.tokens.clear();
  const std::shared_ptr<RequestHandle> handle = slot.handle;
  release(slot);
  handle->push(std::move(event));
}

// The slot's logits as its sampler may see them (end-of-generation tokens masked for
// ignore_eos).
std::span<const float> Scheduler::visible_logits(const Slot& slot, std::span<const float> logits) const {
  if (!slot.request.ignore_eos) return logits;
  thread_local std::vector<float> masked;
  masked.assign(logits.begin(), logits.end());
  for (TokenId eog : end_of_generation_) {
    if (static_cast<size_t>(eog) < masked.size()) masked[static_cast<size_t>(eog)] = -std::numeric_limits<float>::infinity();
  }
  return masked;
}

// After the logits of the slot's last evaluated token: choose the next token and stream it.
void Scheduler::choose_token(Slot& slot, std::span<const float> logits) {
  take_token(slot, slot.sampler->sample(visible_logits(slot, logits)));
}

// A chosen token: stream it and end the request or leave it generating. Returns
// whether the slot still generates.
bool Scheduler::take_token(Slot& slot, TokenId id) {
  const Tokenizer& tokenizer = model_.tokenizer();
  auto end = [&](StopReason reason) {
    finish(slot, reason);
    return false;
  };
  ++slot.generated;
  if (slot.generated == 1) {
    slot.first_token = Clock::now();
    slot.stats.time_to_first_token_seconds = seconds_between(slot.submitted, slot.first_token);
  }
  if (tokenizer.is_end_of_generation(id)) return end(StopReason::kEndOfGeneration);
  slot.sampler->accept(id);
  if (slot.drafter) slot.drafter->push(id);
  emit(slot, slot.stream->push(id));
  if (slot.stream->stopped()) return end(StopReason::kStopString);
  if (slot.request.max_tokens >= 0 && slot.generated >= slot.request.max_tokens) {
    return end(StopReason::kMaxTokens);  // the last token needs no evaluation
  }
  if (slot.tokens.size() >= static_cast<size_t>(slot.session->n_ctx())) {
    return end(StopReason::kContextFull);
  }
  slot.pending_token = id;
  slot.generating = true;
  return true;
}

// After a step that checked guesses: keep the agreeing ones (Sampler::sample_with_draft),
// then choose from the first row not kept, as generate() does.
void Scheduler::check_guesses(Slot& slot, std::span<const float> rows) {
  const size_t n_vocab = rows.size() / slot.check.size();
  const std::span<const TokenId> guesses = std::span<const TokenId>(slot.check).subspan(1);
  slot.stats.lookup_drafted += static_cast<int32_t>(guesses.size());
  size_t kept = 0;
  for (; kept < guesses.size(); ++kept) {
    const Sampler::DraftResult r =
        slot.sampler->sample_with_draft(visible_logits(slot, rows.subspan(kept * n_vocab, n_vocab)), guesses[kept]);
    if (!r.accepted) {
      slot.drafter->record(static_cast<int32_t>(guesses.size()), static_cast<int32_t>(kept));
      slot.session->truncate(static_cast<int32_t>(slot.tokens.size()));
      take_token(slot, r.token);
      return;
    }
    ++slot.stats.lookup_accepted;
    slot.tokens.push_back(guesses[kept]);
    if (!take_token(slot, guesses[kept])) return;
  }
  slot.drafter->record(static_cast<int32_t>(guesses.size()), static_cast<int32_t>(kept));
  choose_token(slot, rows.subspan(kept * n_vocab, n_vocab));
}

void Scheduler::step() {
  Core& c = *core_;
  if (c.cancel_running.exchange(false)) {
    for (Slot& slot : c.slots) {
      if (slot.busy()) slot.handle->cancel_.store(true);
    }
  }
  for (Slot& slot : c.slots) {
    if (slot.busy() && slot.handle->cancelled()) finish(slot, StopReason::kCancelled);
  }

  // The batch: generating slots first (one row each), then prompt slices, oldest first.
  std::vector<BatchEntry> entries;
  std::vector<Slot*> owners;
  int32_t rows_left = options_.batch_tokens;
  for (Slot& slot : c.slots) {
    if (!slot.busy() || !slot.generating) continue;
    slot.check.assign(1, slot.pending_token);
    // Guesses within the context, max_tokens and a fair share of the step's rows.
    int32_t room = slot.session->n_ctx() - slot.session->n_past() - 1;
    if (slot.request.max_tokens >= 0) room = std::min(room, slot.request.max_tokens - slot.generated - 1);
    room = std::min(room, rows_left / 2);
    if (slot.drafter && room > 0) {
      const std::vector<TokenId> guesses = slot.drafter->guess(room);
      slot.check.insert(slot.check.end(), guesses.begin(), guesses.end());
    }
    entries.push_back({slot.session.get(), std::span<const TokenId>(slot.check), slot.check.size() > 1, {}});
    owners.push_back(&slot);
    rows_left -= static_cast<int32_t>(slot.check.size());
  }
  std::vector<Slot*> prefilling;
  for (Slot& slot : c.slots) {
    if (slot.busy() && !slot.generating) prefilling.push_back(&slot);
  }
  std::sort(prefilling.begin(), prefilling.end(), [](const Slot* a, const Slot* b) { return a->admission < b->admission; });
  for (Slot* slot : prefilling) {
    if (rows_left <= 0) break;
    const std::vector<TokenId>& prompt = slot->request.prompt;
    const size_t n = std::min(static_cast<size_t>(rows_left), prompt.size() - slot->prompt_done);
    entries.push_back({slot->session.get(), std::span<const TokenId>(prompt).subspan(slot->prompt_done, n), false, {}});
    owners.push_back(slot);
    rows_left -= static_cast<int32_t>(n);
  }
  if (entries.empty()) return;

  try {
    model_.eval_batch(entries);
  } catch (const Error& e) {
    for (Slot* slot : owners) {
      const ScopedLanguage language(slot->request.language);
      fail(*slot, e.code(), e.what());
    }
    return;
  } catch (const std::exception& e) {
    for (Slot* slot : owners) fail(*slot, ErrorCode::kInternal, e.what());
    return;
  }
  ++c.steps;

  for (size_t i = 0; i < entries.size(); ++i) {
    Slot& slot = *owners[i];
    const ScopedLanguage language(slot.request.language);
    try {
      if (slot.generating && slot.check.size() > 1) {
        slot.tokens.push_back(slot.check[0]);
        check_guesses(slot, entries[i].logits);
        continue;
      }
      slot.tokens.insert(slot.tokens.end(), entries[i].tokens.begin(), entries[i].tokens.end());
      const bool prompt_done_now = !slot.generating;
      if (prompt_done_now) {
        slot.prompt_done += entries[i].tokens.size();
        if (slot.prompt_done < slot.request.prompt.size()) continue;  // more slices to come
        slot.stats.prompt_seconds = seconds_between(slot.admitted, Clock::now());
        for (TokenId id : slot.request.prompt) slot.sampler->accept(id);
        const int32_t max_draft = std::min(slot.request.lookup_max_draft, slot.session->exact_rows() - 1);
        if (max_draft > 0) {
          slot.drafter.emplace(max_draft);
          slot.drafter->push(slot.request.prompt);
        }
      }
      choose_token(slot, entries[i].logits);
      // The prompt goes to the prefix cache after the first token is out (storing a long
      // prompt copies its whole KV state). A request that ended already stored it all.
      if (prompt_done_now && slot.busy() && c.cache) c.cache->store(slot.partition, slot.tokens, *slot.session);
    } catch (const Error& e) {
      fail(slot, e.code(), e.what());
    }
  }
}

}  // namespace koto
