// The document index: the user's folders of documents (text, Markdown, HTML, PDF, in
// UTF-8, Shift_JIS, EUC-JP or UTF-16) cut into passages and stored in one SQLite file
// (WAL mode) with two full-text indexes: Japanese words from MeCab plus ASCII words
// (commands, options), and character bigrams. A search ranks passages by BM25 in each
// and fuses the two.
//
// Indexing is incremental (unchanged files are skipped by size and mtime, then by a
// content hash; changed files replaced; deleted files removed) and crash-safe: every
// file is written in a transaction, so a run killed at any moment leaves an index that
// opens and answers, and the next run completes it. A file that cannot be read or parsed
// is reported with the reason and skipped.
//
// Thread-safety: a DocIndex is one connection; use it from one thread at a time.
// Several processes may read one index while another process writes it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace koto {

class Embedder;

struct IndexProgress {
  int64_t files_done = 0;
  int64_t files_total = 0;  // files to read this run (new or changed)
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  int64_t chunks = 0;       // passages written so far
  double seconds = 0;
};

struct IndexOptions {
  int chunk_chars = 400;    // passage size, characters (see chunker.h)
  int overlap_chars = 100;  // overlap of consecutive passages of a section
  int threads = 0;          // readers; 0 = one per CPU
  // Called from the calling thread, at most every ~100 ms and once at the end.
  std::function<void(const IndexProgress&)> progress;
};

struct SkippedFile {
  std::string path;
  std::string reason;  // in the user's language
};

struct IndexReport {
  int64_t files_indexed = 0;    // new or changed, written
  int64_t files_unchanged = 0;
  int64_t files_removed = 0;    // gone from the folders since the last run
  int64_t files_ignored = 0;    // not a document type (by extension)
  std::map<std::string, int64_t> indexed_by_format;  // "text", "markdown", "html", "pdf"
  std::vector<SkippedFile> skipped;
  int64_t chunks_written = 0;
  int64_t chunks_total = 0;     // in the whole index after the run
  uint64_t bytes_read = 0;
  double seconds = 0;
};

struct SearchHit {
  std::string path;       // relative to the folder it was indexed from
  std::string full_path;  // as indexed (absolute)
  double score = 0;       // fused score, higher is better; comparable within one search
  int line_start = 0;
  int line_end = 0;
  int page = 0;           // PDF page, else 0
  std::string heading;
  std::string text;
  int64_t chunk_id = 0;
};

struct SearchResult {
  std::vector<SearchHit> hits;  // best first
  // How well the best passage covers the question, 0..1: the share of the question's
  // content words (nouns, unknown words, ASCII words; weighted by rarity) and of its
  // character bigrams found in it. Low means the documents probably do not say.
  double coverage = 0;
  double seconds = 0;
};

class DocIndex {
 public:
  // Below this coverage of the question by the best passage, `koto ask` answers that the
  // documents do not say instead of asking the model (calibrated on the ja-manpages
  // question set; see README).
  static constexpr double kDefaultMinCoverage = 0.30;

  // $KOTO_HOME/index.db, else $XDG_DATA_HOME/koto/index.db, else ~/.local/share/koto/index.db.
  static std::filesystem::path default_path();

  // Opens (with `create`, creates) the index at `path`. Throws koto::Error: kNotFound
  // when it does not exist and `create` is false (the message says to run `koto index`),
  // kCorruptFile when the file is not a koto index or is damaged, kUnavailable when MeCab
  // is missing.
  DocIndex(const std::filesystem::path& path, bool create);
  ~DocIndex();
  DocIndex(const DocIndex&) = delete;
  DocIndex& operator=(const DocIndex&) = delete;

  // Brings the index up to date with `roots` (folders or single files). Files indexed
  // earlier from other roots are left alone. Throws kNotFound for a root that does not
  // exist (before anything is written).
  IndexReport index(const std::vector<std::filesystem::path>& roots, const IndexOptions& options = {});

  // The `k` best passages for `query`. With an `embedder` (the model that embedded the
  // passages, see embed_passages) the keyword ranking and the vector ranking (exact
  // cosine over every passage vector) are fused by reciprocal rank; coverage stays the
  // keyword measure. Throws kInvalidArgument when the embedder's model is not the one
  // the index's vectors came from.
  SearchResult search(std::string_view query, int k = 5, Embedder* embedder = nullptr);

  // Embeds every passage that has no vector yet (all of them the first time; after a
  // `koto index`, only new and changed files' passages) and stores the vectors.
  // `progress(done, total)` is called from this thread. Throws kInvalidArgument when the
  // index already holds vectors of another model (the message names both).
  int64_t embed_passages(Embedder& embedder, const std::function<void(int64_t done, int64_t total)>& progress = {});

  // The identity and file name of the model whose vectors the index holds ("" when none).
  std::string embedding_model();

  int64_t file_count();
  int64_t chunk_count();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace koto
