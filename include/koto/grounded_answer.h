// Answers grounded in the user's documents: the prompt that gives a model numbered
// passages with their sources and tells it (in Japanese) to answer only from them, to
// cite passage numbers like [1], and to say kNotInDocuments when they do not contain the
// answer; and the reading of the answer back (which passages it cited).
//
// The refusal before any model runs is the retrieval's: SearchResult::coverage below
// DocIndex::kDefaultMinCoverage (or no passage) means the documents probably do not say.
// Pure functions; thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "koto/doc_index.h"

namespace koto {

// The fixed sentence of an answer the documents do not contain.
inline constexpr std::string_view kNotInDocuments = "資料には記載がありません。";

struct GroundedPrompt {
  std::string system;  // the instruction
  std::string user;    // the numbered passages, then the question
};

// Passage i (1-based) is hits[i-1], written as "[i] 出典: SOURCE\n本文".
GroundedPrompt build_grounded_prompt(std::string_view question, std::span<const SearchHit> passages);

// Where a passage is, for people: "man1/ls.1.txt 12–20 行目 「説明」" or "manual.pdf 3 ページ"
// (English by locale: "man1/ls.1.txt lines 12–20 (説明)").
std::string passage_source(const SearchHit& hit);

// The passage numbers an answer cites ([1], [1][3], [1, 3], [1-2], full-width ［２］),
// each once, in order of first citation; numbers outside 1..n_passages are ignored.
std::vector<int> cited_passages(std::string_view answer, int n_passages);

// True when the answer says the documents do not contain it (kNotInDocuments, also with
// surrounding spaces or without the final 。).
bool says_not_in_documents(std::string_view answer);

// The retrieval's decision: true when there is no passage or the best one covers less
// of the question than `min_coverage`.
bool should_refuse(const SearchResult& result, double min_coverage = DocIndex::kDefaultMinCoverage);

}  // namespace koto
