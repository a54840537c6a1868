// Japanese-aware chunking: a document's blocks become passages of a few hundred
// characters that never end inside a sentence (ICU's sentence rules, which know 。！？
// and line structure) unless one sentence alone is over the limit. A passage never spans
// two sections: each keeps its heading path ("書式 > オプション"), its line range and,
// for PDF, its page. Consecutive passages of one section overlap by the last sentence(s)
// of the previous one (up to `overlap_chars`), so an answer split by a boundary is whole
// in one of them.
//
// Sizes count characters (code points). Defaults were chosen on the ja-manpages corpus
// (bench/results, README): recall and MRR were best around 400 characters.
// Thread-safety: pure; may run on several threads at once.
#pragma once

#include <string>
#include <vector>

#include "docs/extract.h"

namespace koto::docs {

struct ChunkOptions {
  int target_chars = 400;   // a passage is closed once it reaches this
  int max_chars = 800;      // a single sentence longer than this is cut (at 、, spaces or anywhere)
  int overlap_chars = 100;  // at most this much of the previous passage starts the next one
};

struct Chunk {
  std::string heading;  // heading path, " > " between levels; "" before the first heading
  std::string text;     // the passage, original characters
  int line_start = 0;   // 1-based, as Block
  int line_end = 0;
  int page = 0;         // PDF page of the first line; 0 for other formats
};

std::vector<Chunk> chunk_document(const Document& document, const ChunkOptions& options = {});

}  // namespace koto::docs
