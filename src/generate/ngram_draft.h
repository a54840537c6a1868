// Prompt lookup decoding's guesser: the next tokens of a text are guessed by finding
// its last 3 (else 2) tokens earlier in the text and reading what followed them there.
// Answers grounded in documents quote their passages, so the guess is often right; a
// model then checks several guessed tokens in one forward pass (generate.cpp).
//
// Cost: one hash-map update per token and one or two lookups per guess; the text is
// kept as token ids. Not thread-safe; one per generation.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

class NgramDraft {
 public:
  // max_tokens: the most tokens one guess may hold.
  explicit NgramDraft(int32_t max_tokens = 6) : max_tokens_(max_tokens), limit_(max_tokens) {}

  // Appends tokens to the text.
  void push(TokenId token);
  void push(std::span<const TokenId> tokens) {
    for (TokenId t : tokens) push(t);
  }

  // Up to max_tokens tokens that followed the latest earlier occurrence of the text's
  // last 3 tokens (or, when they never occurred before, its last 2); empty when neither
  // did. Never reads past the end of the text.
  std::vector<TokenId> propose(int max_tokens) const;

  // The next guess, as long as the record allows (see record()), and at most `room`.
  std::vector<TokenId> guess(int32_t room);
  // How the last guess did: the guess length grows by 2 after a whole guess was kept
  // and falls to kept + 1 after a miss; a guess missed at its first token also pauses
  // guessing for 1, 2, 4 ... 32 steps (reset by a kept token), since checking costs a
  // wider forward pass.
  void record(int32_t guessed, int32_t kept);

  size_t size() const { return tokens_.size(); }

 private:
  // Ids are below 2^21 (any real vocabulary), so three fit one key exactly.
  static uint64_t key(const TokenId* last, int n);

  int32_t max_tokens_;
  int32_t limit_;
  int32_t pause_ = 0;       // steps left without guessing
  int32_t next_pause_ = 1;  // the pause after the next first-token miss
  std::vector<TokenId> tokens_;
  // For n = 2 and 3: n-gram → index of the token that followed its latest occurrence.
  std::unordered_map<uint64_t, int32_t> next_[2];
};

}  // namespace koto
