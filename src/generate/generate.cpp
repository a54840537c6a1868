#include <algorithm>
#include <chrono>
#include <optional>
#include <vector>

#include "base/utf8.h"
#include "koto/error.h"
#include "koto/generate.h"
#include "koto/i18n.h"
#include "koto/text_stream.h"
#include "generate/ngram_draft.h"

namespace koto {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

bool cancelled(const std::atomic<bool>* flag) { return flag != nullptr && flag->load(std::memory_order_relaxed); }

// See GenerateOptions::leading_space. session.n_past() > 0 means earlier text exists.
LeadingSpace leading_space_for(const Session& session, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                               const GenerateOptions& options) {
  if (options.leading_space) return *options.leading_space;
  if (session.n_past() > 0) return LeadingSpace::kKeep;
  for (TokenId id : prompt) {
    if (!tokenizer.is_control(id)) return LeadingSpace::kKeep;
  }
  return LeadingSpace::kLikeDecode;
}

}  // namespace

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kEndOfGeneration: return "eos";
    case StopReason::kMaxTokens: return "max_tokens";
    case StopReason::kStopString: return "stop_string";
    case StopReason::kContextFull: return "context_full";
    case StopReason::kCancelled: return "cancelled";
  }
  return "unknown";
}

GenerateResult generate(Session& session, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                        const GenerateOptions& options, const TextCallback& on_text) {
  if (prompt.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("the prompt has no tokens (this tokenizer adds no BOS to an empty prompt)",
                   "プロンプトのトークンがありません (このトークナイザーは空のプロンプトに BOS を付けません)"));
  }
  const int64_t needed = static_cast<int64_t>(session.n_past()) + static_cast<int64_t>(prompt.size());
  if (needed >= session.n_ctx()) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("the prompt is {0} tokens but the context holds {1} (with {2} already used), leaving no room "
                   "for an answer — raise the context size (koto run -c) or shorten the prompt",
                   "プロンプトが {0} トークンあり、コンテキスト {1} トークン (使用済み {2}) に回答の余地がありません。"
                   "コンテキストを大きくする (koto run -c) か、プロンプトを短くしてください",
                   prompt.size(), session.n_ctx(), session.n_past()));
  }

  Sampler sampler(options.sampling);
  std::vector<std::string> stops = options.stop_strings;
  TextStream stream(tokenizer, std::move(stops), leading_space_for(session, tokenizer, prompt, options));
  GenerateResult result;
  RunStats& stats = result.stats;
  stats.seed = sampler.seed();
  stats.n_ctx = session.n_ctx();

  const Clock::time_point start = Clock::now();
  Clock::time_point first_token_time{};
  auto emit = [&](const std::string& chunk) {
    if (chunk.empty()) return;
    if (result.text.empty()) stats.time_to_first_text_seconds = seconds_between(start, Clock::now());
    result.text += chunk;
    if (on_text) on_text(chunk);
  };
  auto finish = [&](StopReason reason) {
    emit(stream.finish());
    const Clock::time_point end = Clock::now();
    result.stop_reason = reason;
    stats.stop_reason = std::string(stop_reason_name(reason));
    stats.generated_tokens = static_cast<int32_t>(result.tokens.size());
    if (!result.tokens.empty()) stats.generation_seconds = seconds_between(first_token_time, end);
    stats.output_bytes = result.text.size();
    stats.output_chars = utf8::count_chars(result.text);
    return std::move(result);
  };

  // Prefill in batches so Ctrl-C is noticed during a long prompt.
  const size_t batch = static_cast<size_t>(std::max<int32_t>(options.prefill_batch, 1));
  std::span<const float> logits;
  for (size_t done = 0; done < prompt.size(); done += batch) {
    if (cancelled(options.cancel)) {
      stats.prompt_tokens = static_cast<int32_t>(done);
      stats.prompt_seconds = seconds_between(start, Clock::now());
      return finish(StopReason::kCancelled);
    }
    logits = session.eval(prompt.subspan(done, std::min(batch, prompt.size() - done)));
  }
  stats.prompt_tokens = static_cast<int32_t>(prompt.size());
  stats.prompt_seconds = seconds_between(start, Clock::now());
  for (TokenId id : prompt) sampler.accept(id);

  // Lookup decoding (see GenerateOptions::lookup): guesses from the prompt and the
  // answer so far, checked in one pass with the token just chosen.
  // No more rows than the kernels compute exactly as single rows (Session::exact_rows).
  const int32_t max_draft = std::clamp<int32_t>(options.lookup.max_draft, 0, session.exact_rows() - 1);
  NgramDraft drafter(max_draft);
  if (max_draft > 0) {
    drafter.push(options.lookup.reference);
    drafter.push(prompt);
  }
  const size_t n_vocab = logits.size();
  // Where the session must end when generation stops: every chosen token but the last
  // evaluated (checked drafts past a stop are dropped again).
  const int32_t base = session.n_past() - static_cast<int32_t>(prompt.size());
  auto trim_session = [&] {
    const int32_t keep = base + static_cast<int32_t>(prompt.size()) +
                         std::max<int32_t>(static_cast<int32_t>(result.tokens.size()) - 1, 0);
    if (session.n_past() > keep) session.truncate(keep);
  };
  auto done = [&](StopReason reason) {
    trim_session();
    return finish(reason);
  };

  // Takes a chosen token; returns a reason to stop, if any.
  auto take = [&](TokenId id) -> std::optional<StopReason> {
    result.tokens.push_back(id);
    if (result.tokens.size() == 1) {
      first_token_time = Clock::now();
      stats.time_to_first_token_seconds = seconds_between(start, first_token_time);
    }
    if (tokenizer.is_end_of_generation(id)) return StopReason::kEndOfGeneration;
    sampler.accept(id);
    if (max_draft > 0) drafter.push(id);
    emit(stream.push(id));
    if (stream.stopped()) return StopReason::kStopString;
    if (options.max_tokens >= 0 && result.tokens.size() >= static_cast<size_t>(options.max_tokens)) {
      return StopReason::kMaxTokens;  // the last token needs no evaluation
    }
    return std::nullopt;
  };

  std::optional<TokenId> next;  // already chosen (a rejected draft's replacement)
  while (true) {
    if (cancelled(options.cancel)) return done(StopReason::kCancelled);
    if (options.max_tokens >= 0 && result.tokens.size() >= static_cast<size_t>(options.max_tokens)) {
      return done(StopReason::kMaxTokens);
    }
    const TokenId id = next ? *next : sampler.sample(logits);
    next.reset();
    if (const auto stop = take(id)) return done(*stop);
    if (session.n_past() >= session.n_ctx()) return done(StopReason::kContextFull);

    // Guesses must fit the context beside `id` and stay within max_tokens.
    int32_t room = max_draft > 0 ? session.n_ctx() - session.n_past() - 1 : 0;
    if (options.max_tokens >= 0) {
      room = std::min<int32_t>(room, options.max_tokens - static_cast<int32_t>(result.tokens.size()) - 1);
    }
    const std::vector<TokenId> draft = room > 0 ? drafter.guess(room) : std::vector<TokenId>{};
    if (draft.empty()) {
      logits = session.eval(std::span<const TokenId>(&id, 1));
      continue;
    }
    std::vector<TokenId> check{id};
    check.insert(check.end(), draft.begin(), draft.end());
    const std::span<const float> rows = session.eval(check, /*all_logits=*/true);
    stats.lookup_drafted += static_cast<int32_t>(draft.size());
    size_t accepted = 0;
    for (; accepted < draft.size(); ++accepted) {
      const Sampler::DraftResult r = sampler.sample_with_draft(rows.subspan(accepted * n_vocab, n_vocab), draft[accepted]);
      if (!r.accepted) {
        next = r.token;
        break;
      }
      ++stats.lookup_accepted;
      if (const auto stop = take(r.token)) return done(*stop);
    }
    drafter.record(static_cast<int32_t>(draft.size()), static_cast<int32_t>(accepted));
    // The session keeps `id` and the accepted guesses; the rest is dropped.
    session.truncate(session.n_past() - static_cast<int32_t>(draft.size() - accepted));
    logits = rows.subspan(accepted * n_vocab, n_vocab);
  }
}

}  // namespace koto
