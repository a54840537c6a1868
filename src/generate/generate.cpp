#include <algorithm>
#include <chrono>

#include "base/utf8.h"
#include "koto/error.h"
#include "koto/generate.h"
#include "koto/i18n.h"
#include "koto/text_stream.h"

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

  while (true) {
    if (cancelled(options.cancel)) return finish(StopReason::kCancelled);
    if (options.max_tokens >= 0 && result.tokens.size() >= static_cast<size_t>(options.max_tokens)) {
      return finish(StopReason::kMaxTokens);
    }
    const TokenId id = sampler.sample(logits);
    result.tokens.push_back(id);
    if (result.tokens.size() == 1) {
      first_token_time = Clock::now();
      stats.time_to_first_token_seconds = seconds_between(start, first_token_time);
    }
    if (tokenizer.is_end_of_generation(id)) return finish(StopReason::kEndOfGeneration);
    sampler.accept(id);
    emit(stream.push(id));
    if (stream.stopped()) return finish(StopReason::kStopString);
    if (options.max_tokens >= 0 && result.tokens.size() >= static_cast<size_t>(options.max_tokens)) {
      return finish(StopReason::kMaxTokens);  // the last token needs no evaluation
    }
    if (session.n_past() >= session.n_ctx()) return finish(StopReason::kContextFull);
    logits = session.eval(std::span<const TokenId>(&id, 1));
  }
}

}  // namespace koto
