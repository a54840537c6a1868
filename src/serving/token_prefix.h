// How many leading tokens two sequences share: the measure of every reuse in the
// serving core (a slot's tokens, a cached block's).
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>

#include "koto/tokenizer.h"

namespace koto::serving {

inline size_t common_prefix_length(std::span<const TokenId> a, std::span<const TokenId> b) {
  return static_cast<size_t>(std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(std::min(a.size(), b.size())), b.begin()).first -
                             a.begin());
}

}  // namespace koto::serving
