// The generation loop: prompt → prefill → (sample → stream → eval)* → stop.
//
// generate() runs the prompt through a Session (appending at session.n_past(), so a
// caller may keep a prefix in the session and pass only the new tokens), then chooses
// tokens with a Sampler and turns them into text with a TextStream, calling on_text
// with every printable chunk (valid UTF-8, never a split character, never a stop
// string). It stops at the first of:
//   - an end-of-generation token (Tokenizer::is_end_of_generation; not printed);
//   - max_tokens chosen tokens;
//   - a stop string in the text (not printed, nor anything after it);
//   - a full context (session.n_ctx());
//   - the cancel flag, checked between tokens and between prefill batches.
// The last chosen token is not evaluated (nothing would use its logits), so after
// generate() the session holds the prompt and every generated token but the last.
//
// Thread-safety: one call per Session at a time. The cancel flag may be set from any
// thread or from a signal handler (it is only read, with relaxed ordering).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "koto/model.h"
#include "koto/run_stats.h"
#include "koto/sampler.h"
#include "koto/text_stream.h"

namespace koto {

enum class StopReason { kEndOfGeneration, kMaxTokens, kStopString, kContextFull, kCancelled };

// "eos", "max_tokens", "stop_string", "context_full", "cancelled" (as in RunStats).
std::string_view stop_reason_name(StopReason reason);

struct GenerateOptions {
  int32_t max_tokens = 512;             // < 0: until the context is full
  SamplingOptions sampling;
  std::vector<std::string> stop_strings;
  int32_t prefill_batch = 256;          // prompt tokens per Session::eval call (>= 1)
  const std::atomic<bool>* cancel = nullptr;  // not owned; may be null
  // A space at the start of the answer (see LeadingSpace). nullopt (the default):
  // kLikeDecode when the prompt holds only control tokens (BOS: the answer starts the
  // text), kKeep otherwise (the answer continues the prompt's text, or the session
  // already held earlier tokens). Chat front ends pass kStrip: the answer follows the
  // template's markup.
  std::optional<LeadingSpace> leading_space;
  // Lookup (prompt n-gram) decoding: after each chosen token, up to max_draft tokens
  // are guessed from an earlier occurrence of the last 3 (else 2) tokens in the prompt
  // and answer, and checked in the same forward pass; the agreeing guesses are kept
  // (Sampler::sample_with_draft), so greedy output is token for token what it is
  // without guesses and sampled output has the same distribution. The number of
  // guesses shrinks after a miss and grows after hits. 0: off.
  struct Lookup {
    int32_t max_draft = 6;
    // More text the answer may quote without the model seeing it (an earlier answer
    // being regenerated, a document): guesses come from it as from the prompt.
    std::vector<TokenId> reference;
  } lookup;
};

struct GenerateResult {
  std::string text;             // everything passed to on_text, concatenated
  std::vector<TokenId> tokens;  // chosen tokens, end-of-generation token included
  StopReason stop_reason = StopReason::kMaxTokens;
  // Generation fields filled: prompt_tokens, prompt_seconds, time_to_first_token_seconds,
  // time_to_first_text_seconds, generated_tokens, generation_seconds, output_bytes,
  // output_chars, stop_reason, seed, n_ctx. The caller adds the rest.
  RunStats stats;
};

// Called with each chunk of text as soon as it is safe to print.
using TextCallback = std::function<void(std::string_view chunk)>;

// Throws koto::Error(kInvalidArgument) when the prompt is empty or does not leave room
// for one generated token in the context (the message gives both numbers), or for
// invalid sampling options; Session errors propagate. Cancellation is not an error:
// the result says kCancelled and holds what was produced so far.
GenerateResult generate(Session& session, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                        const GenerateOptions& options, const TextCallback& on_text = {});

}  // namespace koto
