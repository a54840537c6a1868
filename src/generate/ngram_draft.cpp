#include "generate/ngram_draft.h"

#include <algorithm>

namespace koto {

uint64_t NgramDraft::key(const TokenId* last, int n) {
  uint64_t k = 0;
  for (int i = 0; i < n; ++i) k = (k << 21) | (static_cast<uint64_t>(static_cast<uint32_t>(last[i])) & 0x1FFFFF);
  return k;
}

void NgramDraft::push(TokenId token) {
  // The n-grams ending at the current last token are followed by `token`.
  const int32_t at = static_cast<int32_t>(tokens_.size());
  for (int n = 2; n <= 3; ++n) {
    if (at >= n) next_[n - 2][key(tokens_.data() + at - n, n)] = at;
  }
  tokens_.push_back(token);
}

std::vector<TokenId> NgramDraft::propose(int max_tokens) const {
  const int32_t size = static_cast<int32_t>(tokens_.size());
  for (int n = 3; n >= 2 && max_tokens > 0; --n) {
    if (size < n) continue;
    const auto found = next_[n - 2].find(key(tokens_.data() + size - n, n));
    if (found == next_[n - 2].end()) continue;
    const int32_t begin = found->second;
    const int32_t end = std::min(size, begin + max_tokens);
    return {tokens_.begin() + begin, tokens_.begin() + end};
  }
  return {};
}

std::vector<TokenId> NgramDraft::guess(int32_t room) {
  if (pause_ > 0) {
    --pause_;
    return {};
  }
  return propose(std::min(room, limit_));
}

void NgramDraft::record(int32_t guessed, int32_t kept) {
  if (kept == guessed) {
    limit_ = std::min(max_tokens_, limit_ + 2);
  } else {
    limit_ = std::max<int32_t>(1, kept + 1);
  }
  if (kept > 0) {
    next_pause_ = 1;
  } else {
    pause_ = next_pause_;
    next_pause_ = std::min(32, next_pause_ * 2);
  }
}

}  // namespace koto
