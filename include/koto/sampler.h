// Choosing the next token from a row of logits.
//
// A Sampler applies, in this order:
//   1. penalties over the last `repeat_last_n` accepted tokens (repetition, frequency,
//      presence; see SamplingOptions), on the raw logits;
//   2. greedy: with temperature <= 0 the highest logit wins (ties: the lowest id), and
//      nothing below applies (the RNG is not used);
//   3. top-k, top-p and min-p, judged on the probabilities at temperature 1 (so a high
//      temperature cannot pull in tokens the filters would have cut);
//   4. temperature, then one draw from the remaining tokens.
// The draw uses std::mt19937_64 seeded with `seed`, turned into a uniform number with
// our own arithmetic (not std::uniform_real_distribution), so the same seed, options,
// history and logits give the same token on every platform and standard library.
//
// Cost per token on an n-token vocabulary: O(n) for the copy, the penalties and the
// softmax; top-k is one nth_element, top-p a quickselect on probability mass (expected
// O(n) even on a flat distribution), min-p one partition. No full sort per token.
//
// A Sampler is not thread-safe (it owns its RNG and scratch buffers); use one per
// sequence.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

// Seed value meaning "pick one at random" (from std::random_device); the Sampler
// reports the seed it actually used, so a run can be repeated.
inline constexpr uint64_t kRandomSeed = UINT64_MAX;

struct SamplingOptions {
  float temperature = 0.8f;       // <= 0: greedy
  int32_t top_k = 40;             // keep the k most likely; <= 0: off
  float top_p = 0.95f;            // keep the smallest head with this mass; >= 1: off
  float min_p = 0.05f;            // drop tokens below min_p x the top probability; <= 0: off
  float repeat_penalty = 1.0f;    // divides positive logits, multiplies negative ones; 1: off
  int32_t repeat_last_n = 64;     // penalty window in tokens; 0: off, -1: all accepted tokens
  // Subtracted from a token's logit once per occurrence in the window / once if it
  // occurs at all. Negative values are allowed and favour repetition (as in OpenAI's
  // API and llama.cpp); 0: off.
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = kRandomSeed;
};

class Sampler {
 public:
  // Throws koto::Error(kInvalidArgument) for options that cannot work (repeat_penalty
  // <= 0, non-finite frequency or presence penalties, top_p or min_p outside [0, 1],
  // repeat_last_n < -1), naming the option.
  explicit Sampler(const SamplingOptions& options);

  // Picks a token from `logits` ([n_vocab], not modified). Does not add it to the
  // history: call accept() with the token that was actually used.
  TokenId sample(std::span<const float> logits);

  // For lookup decoding: decides the next token given a drafted guess, so that the
  // token has exactly the distribution sample() would give. Greedy: the best token,
  // accepted when it is the draft. Otherwise the draft is kept with its probability
  // p(draft) under all the filters above, else a token is drawn from the rest
  // (renormalized). Uses the RNG differently from sample(), so a seed gives other
  // (equally distributed) text with drafts than without.
  struct DraftResult {
    TokenId token;
    bool accepted;  // token == draft
  };
  DraftResult sample_with_draft(std::span<const float> logits, TokenId draft);

  // Adds a token to the penalty history (prompt tokens too, so the window covers the
  // context like llama.cpp's does).
  void accept(TokenId id);

  // Forgets the history and reseeds the RNG with seed().
  void reset();

  const SamplingOptions& options() const { return options_; }
  uint64_t seed() const { return seed_; }  // the seed in use (resolved when kRandomSeed)

 private:
  struct Candidate {
    TokenId id;
    float logit;
    float weight;  // exp(logit - max), filled by top_p_cut
  };

  void apply_penalties(std::vector<Candidate>& candidates) const;
  // Fills candidates_ and weights_ (temperature applied, weights_total_ their sum), or
  // returns the token when the choice is certain (greedy, or no finite weights).
  std::optional<TokenId> weigh(std::span<const float> logits);
  // The candidate where the running weight passes r, leaving out `skip`.
  TokenId draw(double r, TokenId skip) const;
  // Reorders candidates_ so the smallest top-p head comes first; returns its size.
  size_t top_p_cut(float max_logit);
  double uniform();  // [0, 1), 53 random bits

  SamplingOptions options_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::deque<TokenId> history_;  // last repeat_last_n accepted tokens (all when -1)
  std::vector<Candidate> candidates_;
  std::vector<double> weights_;
  double weights_total_ = 0.0;
};

}  // namespace koto
