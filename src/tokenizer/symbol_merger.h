// The merge loop shared by SentencePiece and byte-level BPE: a row of symbols (adjacent
// byte ranges of one piece of text) is repeatedly reduced by merging the best adjacent
// pair, where "best" is the lowest cost the caller assigns (BPE: merge rank;
// SentencePiece: minus the score) and ties go to the leftmost pair.
//
// Symbols form a doubly linked list inside a vector; candidate pairs wait in a binary
// heap and are checked for staleness when popped, so n symbols cost O(n log n) instead
// of the O(n^2) of rescanning after every merge.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

struct MergeSymbol {
  uint32_t start = 0;   // byte offset in the text being merged
  uint32_t length = 0;  // bytes; 0 once merged into its left neighbour
  int32_t prev = -1;    // index of the left neighbour, -1 at the start
  int32_t next = -1;    // index of the right neighbour, -1 at the end
  TokenId id = -1;      // the token this symbol is, -1 when it is no token
};

// What merging a pair would give.
struct PairMerge {
  double cost = 0;  // lower merges first
  TokenId id = -1;  // the token of the merged symbol
};

// Builds the linked list over `symbols` (start, length and id must be set; prev/next are
// overwritten), then merges until find_pair() returns nullopt for every adjacent pair.
// find_pair(const MergeSymbol& left, const MergeSymbol& right) -> std::optional<PairMerge>.
// Afterwards the surviving symbols (length > 0), in order from index 0, are the result.
template <typename FindPair>
void merge_symbols(std::vector<MergeSymbol>& symbols, FindPair&& find_pair) {
  const auto n = static_cast<int32_t>(symbols.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols[i].prev = i - 1;
    symbols[i].next = i + 1 < n ? i + 1 : -1;
  }

  struct Candidate {
    double cost;
    uint32_t left_start;  // tie-break: leftmost first
    int32_t left;
    int32_t right;
    uint32_t length;  // left.length + right.length when the pair was found
    TokenId id;
  };
  const auto worse = [](const Candidate& a, const Candidate& b) {
    if (a.cost != b.cost) return a.cost > b.cost;
    return a.left_start > b.left_start;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
  const auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const MergeSymbol& l = symbols[left];
    const MergeSymbol& r = symbols[right];
    if (const std::optional<PairMerge> merge = find_pair(l, r)) {
      queue.push({merge->cost, l.start, left, right, l.length + r.length, merge->id});
    }
  };

  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    MergeSymbol& left = symbols[c.left];
    MergeSymbol& right = symbols[c.right];
    // Symbols only grow, so unchanged neighbours with the same total length mean
    // the pair is still the one that was found.
    if (left.length == 0 || right.length == 0 || left.next != c.right || left.length + right.length != c.length) {
      continue;
    }
    left.length += right.length;
    left.id = c.id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    right.length = 0;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
}

}  // namespace koto
