#include "koto/doc_index.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "docs/chunker.h"
#include "docs/extract.h"
#include "docs/terms.h"
#include "koto/data_dir.h"
#include "koto/embedding.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_identity.h"
#include "koto/i18n.h"

namespace koto {
namespace {

using docs::Chunk;
using docs::DocFormat;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr int kSchemaVersion = 1;

// ---- SQLite, with RAII ------------------------------------------------------

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) fail("prepare");
    stmt_.reset(raw);
  }
  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_.get(), i, v));
    return *this;
  }
  Stmt& bind(int i, double v) {
    check(sqlite3_bind_double(stmt_.get(), i, v));
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind_blob(int i, const void* data, size_t bytes) {
    check(sqlite3_bind_blob(stmt_.get(), i, data, static_cast<int>(bytes), SQLITE_TRANSIENT));
    return *this;
  }
  std::string_view blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_.get(), col);
    return p == nullptr ? std::string_view()
                        : std::string_view(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
  }
  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
    return false;
  }
  void run() {
    while (step()) {
    }
    reset();
  }
  void reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  double real(int col) const { return sqlite3_column_double(stmt_.get(), col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), col));
    return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail("bind");
  }
  [[noreturn]] void fail(const char* what) {
    const int code = sqlite3_extended_errcode(db_);
    const ErrorCode category = (code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB ? ErrorCode::kCorruptFile
                                                                                                 : ErrorCode::kIo;
    throw Error(category, tr("document index: SQLite {0} failed: {1}", "文書索引: SQLite の {0} に失敗しました: {1}", what,
                             sqlite3_errmsg(db_)));
  }
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt_;
};

void exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message != nullptr ? message : "?";
    sqlite3_free(message);
    const int code = sqlite3_extended_errcode(db) & 0xff;
    throw Error(code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? ErrorCode::kCorruptFile : ErrorCode::kIo,
                tr("document index: {0}", "文書索引: {0}", text));
  }
}

// ---- FTS5 tokenizers -------------------------------------------------------
// "koto_words": the stored words column is already the words, one space between them.
// "koto_grams": the stored text is normalised; its character bigrams are the terms.
// Queries are built from quoted terms, so both see one term per quoted string.

int words_tokenize(Fts5Tokenizer*, void* ctx, int, const char* text, int n,
                   int (*token)(void*, int, const char*, int, int, int)) {
  int start = 0;
  for (int i = 0; i <= n; ++i) {
    if (i == n || text[i] == ' ' || text[i] == '\n') {
      if (i > start) {
        const int rc = token(ctx, 0, text + start, i - start, start, i);
        if (rc != SQLITE_OK) return rc;
      }
      start = i + 1;
    }
  }
  return SQLITE_OK;
}

int grams_tokenize(Fts5Tokenizer*, void* ctx, int, const char* text, int n,
                   int (*token)(void*, int, const char*, int, int, int)) {
  int rc = SQLITE_OK;
  docs::for_each_char_gram(std::string_view(text, static_cast<size_t>(n)), [&](size_t begin, size_t end) {
    rc = token(ctx, 0, text + begin, static_cast<int>(end - begin), static_cast<int>(begin), static_cast<int>(end));
    return rc == SQLITE_OK;
  });
  return rc;
}

int tokenizer_create(void*, const char**, int, Fts5Tokenizer** out) {
  static int dummy = 0;
  *out = reinterpret_cast<Fts5Tokenizer*>(&dummy);
  return SQLITE_OK;
}
void tokenizer_delete(Fts5Tokenizer*) {}

void register_tokenizers(sqlite3* db) {
  fts5_api* api = nullptr;
  {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &raw, nullptr) != SQLITE_OK) {
      throw Error(ErrorCode::kUnsupported, tr("this SQLite has no FTS5 (full-text search)", "この SQLite には FTS5 (全文検索) がありません"));
    }
    std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt(raw);
    sqlite3_bind_pointer(raw, 1, static_cast<void*>(&api), "fts5_api_ptr", nullptr);
    sqlite3_step(raw);
  }
  if (api == nullptr) throw Error(ErrorCode::kUnsupported, "SQLite: no fts5_api");
  fts5_tokenizer words{tokenizer_create, tokenizer_delete, words_tokenize};
  fts5_tokenizer grams{tokenizer_create, tokenizer_delete, grams_tokenize};
  api->xCreateTokenizer(api, "koto_words", nullptr, &words, nullptr);
  api->xCreateTokenizer(api, "koto_grams", nullptr, &grams, nullptr);
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,      -- absolute, as found
  root TEXT NOT NULL,             -- the folder (or file) given to koto index
  rel TEXT NOT NULL,              -- path relative to root
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  hash TEXT NOT NULL,             -- XXH3-128 of the bytes, hex
  format TEXT NOT NULL,
  encoding TEXT NOT NULL,
  n_chunks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
  id INTEGER PRIMARY KEY,
  file_id INTEGER NOT NULL,
  ord INTEGER NOT NULL,
  heading TEXT NOT NULL,
  line_start INTEGER NOT NULL,
  line_end INTEGER NOT NULL,
  page INTEGER NOT NULL,
  text TEXT NOT NULL,             -- original characters, for display
  words TEXT NOT NULL,            -- search words, space-separated (fts_words)
  norm TEXT NOT NULL,             -- normalised text, for bigrams (fts_grams)
  n_words INTEGER NOT NULL,       -- terms in words, bigrams in norm (BM25's lengths)
  n_grams INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id);
CREATE TABLE IF NOT EXISTS vectors(
  chunk_id INTEGER PRIMARY KEY,   -- chunks.id
  v BLOB NOT NULL);               -- float32 little-endian, L2-normalised, meta 'embed_dims' values
CREATE VIRTUAL TABLE IF NOT EXISTS fts_words USING fts5(words, content='chunks', content_rowid='id', tokenize='koto_words');
CREATE VIRTUAL TABLE IF NOT EXISTS fts_grams USING fts5(norm, content='chunks', content_rowid='id', tokenize='koto_grams');
CREATE VIRTUAL TABLE IF NOT EXISTS fts_words_vocab USING fts5vocab(fts_words, 'row');
CREATE VIRTUAL TABLE IF NOT EXISTS fts_grams_vocab USING fts5vocab(fts_grams, 'row');
)sql";

std::string hash_hex(std::string_view bytes) {
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return out;
}

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, tr("cannot open: {0}", "開けません: {0}", std::strerror(errno)));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(ErrorCode::kIo, tr("read error: {0}", "読み込みエラー: {0}", std::strerror(errno)));
  return bytes;
}

std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

// A file to read this run.
struct WorkItem {
  fs::path path;
  std::string root;
  std::string rel;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  DocFormat format = DocFormat::kText;
  std::string old_hash;  // "" when new
  int64_t old_id = 0;
};

struct PreparedChunk {
  Chunk chunk;
  std::string words;
  std::string norm;
  int64_t n_words = 0;
  int64_t n_grams = 0;
};

// What a reader thread made of a WorkItem.
struct Prepared {
  size_t item = 0;
  std::string hash;
  bool unchanged = false;  // same bytes as indexed: only the mtime changes
  std::string encoding;
  std::vector<PreparedChunk> chunks;
  std::string error;       // non-empty: skipped, with this reason
  uint64_t bytes = 0;
};

// The text the search terms come from: the file's name (a command's page is named
// after it), the heading path and the passage.
std::string searchable_text(const std::string& rel, const Chunk& chunk) {
  std::string stem = fs::path(rel).filename().string();
  return stem + "\n" + chunk.heading + "\n" + chunk.text;
}

Prepared prepare(const WorkItem& item, size_t index, const IndexOptions& options, docs::TermExtractor& terms) {
  Prepared p;
  p.item = index;
  try {
    const std::string bytes = read_bytes(item.path);
    p.bytes = bytes.size();
    p.hash = hash_hex(bytes);
    if (!item.old_hash.empty() && p.hash == item.old_hash) {
      p.unchanged = true;
      return p;
    }
    const docs::Document document = docs::extract_document(item.format, bytes);
    p.encoding = document.encoding;
    docs::ChunkOptions chunk_options;
    chunk_options.target_chars = options.chunk_chars;
    chunk_options.overlap_chars = options.overlap_chars;
    chunk_options.max_chars = std::max(options.chunk_chars * 2, 200);
    for (Chunk& chunk : docs::chunk_document(document, chunk_options)) {
      PreparedChunk pc;
      pc.norm = docs::normalize_for_search(searchable_text(item.rel, chunk));
      const std::vector<std::string> words = terms.words(pc.norm);
      pc.words = join_words(words);
      pc.n_words = static_cast<int64_t>(words.size());
      docs::for_each_char_gram(pc.norm, [&](size_t, size_t) {
        ++pc.n_grams;
        return true;
      });
      pc.chunk = std::move(chunk);
      p.chunks.push_back(std::move(pc));
    }
  } catch (const Error& e) {
    p.error = e.what();
  } catch (const std::exception& e) {
    p.error = e.what();
  }
  return p;
}

std::string quote_term(std::string_view term) {
  std::string out = "\"";
  for (char c : term) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

// ---- DocIndex ---------------------------------------------------------------

struct DocIndex::Impl {
  fs::path path;
  DbHandle db;
  std::unique_ptr<docs::TermExtractor> terms;  // for queries, made on first use

  // Passage count and average lengths, for BM25; read once (a scan of the table) and
  // again after index().
  struct Stats {
    int64_t chunks = 0;
    double words_per_chunk = 1;
    double grams_per_chunk = 1;
  };
  std::optional<Stats> cached_stats;
  const Stats& stats() {
    if (!cached_stats) {
      Stats st;
      Stmt s(db.get(), "SELECT count(*), coalesce(avg(n_words), 1), coalesce(avg(n_grams), 1) FROM chunks");
      if (s.step()) {
        st.chunks = s.integer(0);
        st.words_per_chunk = std::max(1.0, s.real(1));
        st.grams_per_chunk = std::max(1.0, s.real(2));
      }
      cached_stats = st;
    }
    return *cached_stats;
  }

  // Passage vectors, loaded on the first vector search: [n][dims] and their chunk ids.
  bool vectors_loaded = false;
  std::vector<int64_t> vector_ids;
  std::vector<float> vector_values;
  int64_t vector_dims = 0;

  std::string meta(const char* key) {
    Stmt s(db.get(), "SELECT value FROM meta WHERE key = ?1");
    s.bind(1, std::string_view(key));
    return s.step() ? s.text(0) : std::string();
  }
  void set_meta(const char* key, const std::string& value) {
    Stmt s(db.get(), "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    s.bind(1, std::string_view(key)).bind(2, value).run();
  }
  // Refuses an embedder of another model than the index's vectors.
  void check_embedder(const Embedder& embedder) {
    const std::string have = meta("embed_model");
    const std::string want = embedder_identity(embedder);
    if (!have.empty() && have != want) {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("{0}: its passage vectors were made by {1}, not by {2}; use that model, or delete the index and run "
                     "koto index again",
                     "{0}: 索引のベクトルは {1} で作られたもので、{2} ではありません。同じモデルを使うか、索引を削除して "
                     "koto index をやり直してください",
                     path.string(), have, want));
    }
  }
  static std::string embedder_identity(const Embedder& embedder) {
    const GgufFile& file = embedder.model().file();
    return std::filesystem::path(file.path()).filename().string() + " " + gguf_identity(file);
  }
  void load_vectors() {
    if (vectors_loaded) return;
    vector_ids.clear();
    vector_values.clear();
    const std::string dims_text = meta("embed_dims");
    vector_dims = dims_text.empty() ? 0 : std::stoll(dims_text);
    Stmt s(db.get(), "SELECT chunk_id, v FROM vectors ORDER BY chunk_id");
    while (s.step()) {
      const std::string_view blob = s.blob(1);
      if (vector_dims <= 0 || blob.size() != static_cast<size_t>(vector_dims) * sizeof(float)) continue;
      vector_ids.push_back(s.integer(0));
      const size_t at = vector_values.size();
      vector_values.resize(at + static_cast<size_t>(vector_dims));
      std::memcpy(&vector_values[at], blob.data(), blob.size());
    }
    vectors_loaded = true;
  }

  docs::TermExtractor& query_terms() {
    if (!terms) terms = std::make_unique<docs::TermExtractor>();
    return *terms;
  }

  // Removes a file's passages from the full-text indexes and the table.
  void delete_chunks(int64_t file_id) {
    Stmt del_words(db.get(),
                   "INSERT INTO fts_words(fts_words, rowid, words) SELECT 'delete', id, words FROM chunks WHERE file_id = ?1");
    del_words.bind(1, file_id).run();
    Stmt del_grams(db.get(),
                   "INSERT INTO fts_grams(fts_grams, rowid, norm) SELECT 'delete', id, norm FROM chunks WHERE file_id = ?1");
    del_grams.bind(1, file_id).run();
    Stmt del_vectors(db.get(), "DELETE FROM vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE file_id = ?1)");
    del_vectors.bind(1, file_id).run();
    vectors_loaded = false;
    Stmt del(db.get(), "DELETE FROM chunks WHERE file_id = ?1");
    del.bind(1, file_id).run();
  }
};

fs::path DocIndex::default_path() { return koto_data_dir() / "index.db"; }

DocIndex::DocIndex(const fs::path& path, bool create) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  std::error_code ec;
  if (!create && !fs::exists(path, ec)) {
    throw Error(ErrorCode::kNotFound,
                tr("{0}: no document index here; make one with `koto index FOLDER` (or give --db)",
                   "{0}: 文書索引がありません。`koto index フォルダー` で作ってください (または --db で指定)", path.string()));
  }
  if (create && path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  sqlite3* raw = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  impl_->db.reset(raw);
  if (rc != SQLITE_OK) {
    throw Error(ErrorCode::kIo, tr("{0}: cannot open the document index: {1}", "{0}: 文書索引を開けません: {1}", path.string(),
                                   raw != nullptr ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3* db = impl_->db.get();
  sqlite3_busy_timeout(db, 10000);
  try {
    register_tokenizers(db);
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;");
    exec(db, "BEGIN IMMEDIATE");
    exec(db, kSchema);
    Stmt version(db, "SELECT value FROM meta WHERE key = 'schema'");
    if (version.step()) {
      const std::string v = version.text(0);
      if (v != std::to_string(kSchemaVersion)) {
        exec(db, "ROLLBACK");
        throw Error(ErrorCode::kUnsupported,
                    tr("{0}: index format {1} is not this koto's ({2}); delete it and run `koto index` again",
                       "{0}: 索引の形式 {1} はこの koto の形式 ({2}) と違います。削除して `koto index` をやり直してください",
                       path.string(), v, kSchemaVersion));
      }
    } else {
      Stmt set(db, "INSERT INTO meta(key, value) VALUES('schema', ?1)");
      set.bind(1, std::to_string(kSchemaVersion)).run();
    }
    exec(db, "COMMIT");
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kCorruptFile) {
      throw Error(ErrorCode::kCorruptFile, tr("{0}: not a koto document index, or damaged ({1})",
                                              "{0}: koto の文書索引ではないか、壊れています ({1})", path.string(), e.what()));
    }
    throw;
  }
}

DocIndex::~DocIndex() = default;

std::string DocIndex::embedding_model() { return impl_->meta("embed_model"); }

int64_t DocIndex::embed_passages(Embedder& embedder, const std::function<void(int64_t, int64_t)>& progress) {
  sqlite3* db = impl_->db.get();
  impl_->check_embedder(embedder);
  std::vector<std::pair<int64_t, std::string>> missing;
  {
    Stmt s(db,
           "SELECT c.id, c.heading, c.text FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.chunk_id = c.id) "
           "ORDER BY c.id");
    while (s.step()) {
      const std::string heading = s.text(1);
      missing.emplace_back(s.integer(0), heading.empty() ? s.text(2) : heading + "\n" + s.text(2));
    }
  }
  const int64_t total = static_cast<int64_t>(missing.size());
  if (total == 0) return 0;
  exec(db, "BEGIN IMMEDIATE");
  try {
    impl_->set_meta("embed_model", Impl::embedder_identity(embedder));
    impl_->set_meta("embed_dims", std::to_string(embedder.dimensions()));
    impl_->set_meta("embed_pooling", pooling_name(embedder.pooling()));
    exec(db, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  Stmt insert(db, "INSERT OR REPLACE INTO vectors(chunk_id, v) VALUES(?1, ?2)");
  // Vectors are committed every ~second: an interrupted run keeps what it made.
  auto last_commit = Clock::now();
  exec(db, "BEGIN IMMEDIATE");
  int64_t done = 0;
  try {
    for (const auto& [id, text] : missing) {
      const std::vector<float> v = embedder.embed_text(text, /*is_query=*/false);
      insert.bind(1, id).bind_blob(2, v.data(), v.size() * sizeof(float)).run();
      ++done;
      if (Clock::now() - last_commit > std::chrono::seconds(1)) {
        exec(db, "COMMIT");
        exec(db, "BEGIN IMMEDIATE");
        last_commit = Clock::now();
        if (progress) progress(done, total);
      }
    }
    exec(db, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  impl_->vectors_loaded = false;
  if (progress) progress(done, total);
  return done;
}

int64_t DocIndex::file_count() {
  Stmt s(impl_->db.get(), "SELECT count(*) FROM files");
  s.step();
  return s.integer(0);
}

int64_t DocIndex::chunk_count() {
  Stmt s(impl_->db.get(), "SELECT count(*) FROM chunks");
  s.step();
  return s.integer(0);
}

IndexReport DocIndex::index(const std::vector<fs::path>& roots, const IndexOptions& options) {
  const Clock::time_point start = Clock::now();
  sqlite3* db = impl_->db.get();
  IndexReport report;

  // 1. What is on disk now.
  struct Found {
    fs::path path;
    std::string root;
    std::string rel;
    int64_t size;
    int64_t mtime_ns;
    DocFormat format;
  };
  std::vector<Found> found;
  std::vector<std::string> root_names;
  for (const fs::path& given : roots) {
    std::error_code ec;
    const fs::path root = fs::weakly_canonical(fs::absolute(given, ec), ec);
    if (!fs::exists(root, ec)) {
      throw Error(ErrorCode::kNotFound, tr("{0}: no such file or folder", "{0}: ファイルもフォルダーもありません", given.string()));
    }
    root_names.push_back(root.string());
    auto consider = [&](const fs::path& file, const fs::path& base) {
      const auto format = docs::format_for_path(file);
      if (!format) {
        ++report.files_ignored;
        return;
      }
      struct stat st {};
      if (::stat(file.c_str(), &st) != 0) {
        report.skipped.push_back({file.string(), std::strerror(errno)});
        return;
      }
      const std::string rel = fs::is_directory(base) ? fs::relative(file, base, ec).string() : file.filename().string();
      found.push_back({file, root.string(), rel, static_cast<int64_t>(st.st_size), mtime_ns(st), *format});
    };
    if (fs::is_directory(root, ec)) {
      fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
      for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {  // hidden files and folders (.git...)
          if (it->is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file(ec)) consider(it->path(), root);
      }
      if (ec) report.skipped.push_back({root.string(), ec.message()});
    } else {
      consider(root, root);
    }
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.path < b.path; });

  // 2. What the index has for these roots.
  struct Known {
    int64_t id;
    int64_t size;
    int64_t mtime_ns;
    std::string hash;
  };
  std::unordered_map<std::string, Known> known;
  {
    Stmt s(db, "SELECT id, path, size, mtime_ns, hash, root FROM files");
    while (s.step()) {
      const std::string root = s.text(5);
      if (std::find(root_names.begin(), root_names.end(), root) == root_names.end()) continue;
      known[s.text(1)] = {s.integer(0), s.integer(2), s.integer(3), s.text(4)};
    }
  }
  std::vector<WorkItem> work;
  std::unordered_set<std::string> present;
  for (const Found& f : found) {
    present.insert(f.path.string());
    const auto it = known.find(f.path.string());
    if (it != known.end() && it->second.size == f.size && it->second.mtime_ns == f.mtime_ns) {
      ++report.files_unchanged;
      continue;
    }
    WorkItem item{f.path, f.root, f.rel, f.size, f.mtime_ns, f.format, "", 0};
    if (it != known.end()) {
      item.old_hash = it->second.hash;
      item.old_id = it->second.id;
    }
    work.push_back(std::move(item));
  }

  IndexProgress progress;
  progress.files_total = static_cast<int64_t>(work.size());
  for (const WorkItem& w : work) progress.bytes_total += static_cast<uint64_t>(w.size);

  // 3. Readers prepare files (read, decode, chunk, words) on worker threads; this
  //    thread writes them in order, a transaction per batch of whole files.
  const int n_threads = std::max(1, options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency()));
  std::mutex mutex;
  std::condition_variable ready_cv;
  std::condition_variable space_cv;
  std::map<size_t, Prepared> ready;
  std::atomic<size_t> next_item{0};
  std::atomic<bool> stop{false};
  std::string reader_failure;
  const size_t max_ahead = 64;
  size_t written_upto = 0;  // guarded by mutex
  std::vector<std::thread> readers;
  for (int t = 0; t < n_threads; ++t) {
    readers.emplace_back([&] {
      try {
        docs::TermExtractor terms;
        for (;;) {
          const size_t i = next_item.fetch_add(1);
          if (i >= work.size() || stop.load()) return;
          {
            std::unique_lock lock(mutex);
            space_cv.wait(lock, [&] { return stop.load() || i < written_upto + max_ahead; });
            if (stop.load()) return;
          }
          Prepared p = prepare(work[i], i, options, terms);
          std::lock_guard lock(mutex);
          ready.emplace(i, std::move(p));
          ready_cv.notify_all();
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex);
        reader_failure = e.what();
        stop = true;
        ready_cv.notify_all();
        space_cv.notify_all();
      }
    });
  }
  struct JoinReaders {
    std::vector<std::thread>& threads;
    std::atomic<bool>& stop;
    std::condition_variable& space;
    std::mutex& mutex;
    ~JoinReaders() {
      {
        std::lock_guard lock(mutex);
        stop = true;
      }
      space.notify_all();
      for (std::thread& t : threads) t.join();
    }
  } join_readers{readers, stop, space_cv, mutex};

  Stmt insert_file(db,
                   "INSERT INTO files(path, root, rel, size, mtime_ns, hash, format, encoding, n_chunks) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  Stmt delete_file(db, "DELETE FROM files WHERE id = ?1");
  Stmt touch_file(db, "UPDATE files SET size = ?2, mtime_ns = ?3 WHERE id = ?1");
  Stmt insert_chunk(db,
                    "INSERT INTO chunks(file_id, ord, heading, line_start, line_end, page, text, words, norm, n_words, n_grams) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  Stmt insert_words(db, "INSERT INTO fts_words(rowid, words) VALUES(?1, ?2)");
  Stmt insert_grams(db, "INSERT INTO fts_grams(rowid, norm) VALUES(?1, ?2)");

  bool in_transaction = false;
  Clock::time_point transaction_start;
  Clock::time_point last_progress = start;
  auto commit = [&] {
    if (in_transaction) exec(db, "COMMIT");
    in_transaction = false;
  };
  try {
    for (size_t i = 0; i < work.size(); ++i) {
      Prepared p;
      {
        std::unique_lock lock(mutex);
        ready_cv.wait(lock, [&] { return ready.count(i) > 0 || !reader_failure.empty(); });
        if (!reader_failure.empty()) throw Error(ErrorCode::kUnavailable, reader_failure);
        p = std::move(ready.at(i));
        ready.erase(i);
        written_upto = i + 1;
      }
      space_cv.notify_all();
      const WorkItem& item = work[i];
      if (!in_transaction) {
        exec(db, "BEGIN IMMEDIATE");
        in_transaction = true;
        transaction_start = Clock::now();
      }
      report.bytes_read += p.bytes;
      if (!p.error.empty()) {
        report.skipped.push_back({item.path.string(), p.error});
      } else if (p.unchanged) {
        touch_file.bind(1, item.old_id).bind(2, item.size).bind(3, item.mtime_ns).run();
        ++report.files_unchanged;
      } else {
        if (item.old_id != 0) {
          impl_->delete_chunks(item.old_id);
          delete_file.bind(1, item.old_id).run();
        }
        insert_file.bind(1, item.path.string()).bind(2, item.root).bind(3, item.rel).bind(4, item.size).bind(5, item.mtime_ns);
        insert_file.bind(6, p.hash).bind(7, std::string_view(docs::doc_format_name(item.format))).bind(8, p.encoding);
        insert_file.bind(9, static_cast<int64_t>(p.chunks.size())).run();
        const int64_t file_id = sqlite3_last_insert_rowid(db);
        int64_t ord = 0;
        for (const PreparedChunk& pc : p.chunks) {
          insert_chunk.bind(1, file_id).bind(2, ord++).bind(3, pc.chunk.heading).bind(4, static_cast<int64_t>(pc.chunk.line_start));
          insert_chunk.bind(5, static_cast<int64_t>(pc.chunk.line_end)).bind(6, static_cast<int64_t>(pc.chunk.page));
          insert_chunk.bind(7, pc.chunk.text).bind(8, pc.words).bind(9, pc.norm).bind(10, pc.n_words).bind(11, pc.n_grams).run();
          const int64_t chunk_id = sqlite3_last_insert_rowid(db);
          insert_words.bind(1, chunk_id).bind(2, pc.words).run();
          insert_grams.bind(1, chunk_id).bind(2, pc.norm).run();
        }
        ++report.files_indexed;
        ++report.indexed_by_format[docs::doc_format_name(item.format)];
        report.chunks_written += static_cast<int64_t>(p.chunks.size());
      }
      const Clock::time_point now = Clock::now();
      if (now - transaction_start > std::chrono::milliseconds(500)) commit();
      progress.files_done = static_cast<int64_t>(i + 1);
      progress.bytes_done += static_cast<uint64_t>(item.size);
      progress.chunks = report.chunks_written;
      if (options.progress && now - last_progress > std::chrono::milliseconds(100)) {
        last_progress = now;
        progress.seconds = std::chrono::duration<double>(now - start).count();
        options.progress(progress);
      }
    }
    // 4. Files gone from the folders.
    std::vector<std::pair<std::string, Known>> gone;
    for (const auto& [path, k] : known) {
      if (present.count(path) == 0) gone.emplace_back(path, k);
    }
    if (!gone.empty() && !in_transaction) {
      exec(db, "BEGIN IMMEDIATE");
      in_transaction = true;
    }
    for (const auto& [path, k] : gone) {
      impl_->delete_chunks(k.id);
      delete_file.bind(1, k.id).run();
      ++report.files_removed;
    }
    commit();
  } catch (...) {
    if (in_transaction) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  impl_->cached_stats.reset();
  report.chunks_total = chunk_count();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (options.progress) {
    progress.seconds = report.seconds;
    options.progress(progress);
  }
  return report;
}

namespace {

// A question's term: its text, BM25 weight (idf) and how many passages have it.
struct QueryTerm {
  std::string text;
  double idf = 0;
  int64_t df = 0;
  bool content = false;  // a noun, unknown or ASCII word (words side); every gram
};

struct Candidate {
  int64_t id = 0;
  double words_score = 0;
  double grams_score = 0;
  double fused = 0;
  std::string words;  // the passage's words, " " around each
  std::string norm;
  int64_t n_words = 0;
  int64_t n_grams = 0;
};

// Tunables, chosen on the ja-manpages question set (bench/results/*retrieval*): over a
// grid of k1 0.9–1.6, b 0.5–0.9 and words weight 0.6–0.8 recall@5 stayed 0.90–0.95 and
// MRR@10 0.85–0.90; these sit on that plateau rather than on its luckiest point.
struct Ranking {
  double k1 = 1.2;
  double b = 0.5;
  double words_weight = 0.8;     // of the fused score; the rest is the bigrams'
  double max_df_share = 0.02;    // terms in more passages than this find no candidates...
  int min_finding_terms = 3;     // ...unless fewer than this many rarer ones exist
  int candidates_per_side = 150;  // 300 ranked the same on ja-manpages, 25 % slower
};

const Ranking& ranking() {
  static const Ranking r;
  return r;
}

}  // namespace

SearchResult DocIndex::search(std::string_view query, int k, Embedder* embedder) {
  const Clock::time_point start = Clock::now();
  const Ranking& rk = ranking();
  SearchResult result;
  sqlite3* db = impl_->db.get();
  const std::string norm = docs::normalize_for_search(query);
  std::vector<docs::TermExtractor::Word> words = impl_->query_terms().tagged_words(norm);
  std::vector<std::string> grams = docs::char_grams(norm);

  const Impl::Stats& stats = impl_->stats();
  const int64_t n_chunks = stats.chunks;
  const double words_per_chunk = stats.words_per_chunk;
  const double grams_per_chunk = stats.grams_per_chunk;
  auto done = [&] {
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  };
  if (n_chunks == 0) return done();

  // 1. The question's terms with their document frequencies.
  auto idf = [&](int64_t df) {
    const double n = static_cast<double>(n_chunks);
    return std::log(1.0 + (n - static_cast<double>(df) + 0.5) / (static_cast<double>(df) + 0.5));
  };
  auto collect = [&](const char* sql, auto&& items, auto&& text_of, auto&& content_of) {
    std::vector<QueryTerm> terms;
    std::set<std::string> seen;
    Stmt s(db, sql);
    for (const auto& item : items) {
      const std::string& text = text_of(item);
      if (!seen.insert(text).second) continue;
      s.bind(1, text);
      const int64_t df = s.step() ? s.integer(0) : 0;
      s.reset();
      terms.push_back({text, idf(df), df, content_of(item)});
    }
    return terms;
  };
  const std::vector<QueryTerm> word_terms = collect(
      "SELECT doc FROM fts_words_vocab WHERE term = ?1", words, [](const docs::TermExtractor::Word& w) -> const std::string& { return w.text; },
      [](const docs::TermExtractor::Word& w) { return w.content; });
  const std::vector<QueryTerm> gram_terms = collect(
      "SELECT doc FROM fts_grams_vocab WHERE term = ?1", grams, [](const std::string& g) -> const std::string& { return g; },
      [](const std::string&) { return true; });

  // 2. Candidates: the passages that have the question's rarer terms (common terms
  //    would make SQLite rank most of the index, and decide little).
  std::unordered_map<int64_t, size_t> candidate_index;
  std::vector<Candidate> candidates;
  auto find = [&](const char* sql, const std::vector<QueryTerm>& terms) {
    std::vector<const QueryTerm*> present;
    for (const QueryTerm& t : terms) {
      if (t.df > 0) present.push_back(&t);
    }
    std::sort(present.begin(), present.end(), [](const QueryTerm* a, const QueryTerm* b) { return a->df < b->df; });
    std::string expr;
    int used = 0;
    for (const QueryTerm* t : present) {
      const bool rare = static_cast<double>(t->df) <= rk.max_df_share * static_cast<double>(n_chunks);
      if (!rare && used >= rk.min_finding_terms) break;
      if (!expr.empty()) expr += " OR ";
      expr += quote_term(t->text);
      ++used;
    }
    if (expr.empty()) return;
    Stmt s(db, sql);
    s.bind(1, expr).bind(2, static_cast<int64_t>(rk.candidates_per_side));
    while (s.step()) {
      const int64_t id = s.integer(0);
      if (candidate_index.emplace(id, candidates.size()).second) {
        Candidate c;
        c.id = id;
        candidates.push_back(std::move(c));
      }
    }
  };
  find("SELECT rowid FROM fts_words WHERE fts_words MATCH ?1 ORDER BY rank LIMIT ?2", word_terms);
  find("SELECT rowid FROM fts_grams WHERE fts_grams MATCH ?1 ORDER BY rank LIMIT ?2", gram_terms);
  if (candidates.empty() && embedder == nullptr) return done();

  // 3. Every candidate scored by BM25 over all the question's terms, words and bigrams
  //    separately, then fused.
  {
    Stmt s(db, "SELECT words, norm, n_words, n_grams FROM chunks WHERE id = ?1");
    for (Candidate& c : candidates) {
      s.bind(1, c.id);
      if (s.step()) {
        c.words = " " + s.text(0) + " ";
        c.norm = s.text(1);
        c.n_words = s.integer(2);
        c.n_grams = s.integer(3);
      }
      s.reset();
    }
  }
  auto bm25 = [&](double tf, double length, double average, double term_idf) {
    if (tf <= 0) return 0.0;
    return term_idf * tf * (rk.k1 + 1) / (tf + rk.k1 * (1 - rk.b + rk.b * length / average));
  };
  double best_words = 0;
  double best_grams = 0;
  // Term frequencies from one pass over each candidate's words and bigrams.
  std::unordered_map<std::string_view, size_t> word_slot;
  std::unordered_map<std::string_view, size_t> gram_slot;
  for (size_t i = 0; i < word_terms.size(); ++i) word_slot.emplace(word_terms[i].text, i);
  for (size_t i = 0; i < gram_terms.size(); ++i) gram_slot.emplace(gram_terms[i].text, i);
  std::vector<double> word_tf(word_terms.size());
  std::vector<double> gram_tf(gram_terms.size());
  for (Candidate& c : candidates) {
    std::fill(word_tf.begin(), word_tf.end(), 0.0);
    std::fill(gram_tf.begin(), gram_tf.end(), 0.0);
    const std::string_view w(c.words);
    for (size_t begin = 0; begin < w.size();) {
      size_t end = w.find(' ', begin);
      if (end == std::string_view::npos) end = w.size();
      if (end > begin) {
        const auto it = word_slot.find(w.substr(begin, end - begin));
        if (it != word_slot.end()) word_tf[it->second] += 1;
      }
      begin = end + 1;
    }
    const std::string_view n(c.norm);
    docs::for_each_char_gram(n, [&](size_t begin, size_t end) {
      const auto it = gram_slot.find(n.substr(begin, end - begin));
      if (it != gram_slot.end()) gram_tf[it->second] += 1;
      return true;
    });
    for (size_t i = 0; i < word_terms.size(); ++i) {
      c.words_score += bm25(word_tf[i], static_cast<double>(c.n_words), words_per_chunk, word_terms[i].idf);
    }
    for (size_t i = 0; i < gram_terms.size(); ++i) {
      c.grams_score += bm25(gram_tf[i], static_cast<double>(c.n_grams), grams_per_chunk, gram_terms[i].idf);
    }
    best_words = std::max(best_words, c.words_score);
    best_grams = std::max(best_grams, c.grams_score);
  }
  for (Candidate& c : candidates) {
    const double w = best_words > 0 ? c.words_score / best_words : 0;
    const double g = best_grams > 0 ? c.grams_score / best_grams : 0;
    c.fused = rk.words_weight * w + (1 - rk.words_weight) * g;
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.fused > b.fused || (a.fused == b.fused && a.id < b.id); });
  if (embedder != nullptr) {
    // Reciprocal rank fusion of the keyword ranking and the vector ranking (k = 60).
    constexpr double kRrf = 60;
    constexpr size_t kVectorCandidates = 100;
    impl_->check_embedder(*embedder);
    impl_->load_vectors();
    const std::vector<float> q = embedder->embed_text(query, /*is_query=*/true);
    const size_t dims = static_cast<size_t>(impl_->vector_dims);
    std::vector<std::pair<float, int64_t>> similar;
    if (q.size() == dims && dims > 0) {
      const size_t n = impl_->vector_ids.size();
      similar.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        const float* v = &impl_->vector_values[i * dims];
        float dot = 0;
        for (size_t j = 0; j < dims; ++j) dot += q[j] * v[j];
        similar.emplace_back(dot, impl_->vector_ids[i]);
      }
      const size_t top = std::min(similar.size(), kVectorCandidates);
      std::partial_sort(similar.begin(), similar.begin() + static_cast<std::ptrdiff_t>(top), similar.end(),
                        [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      similar.resize(top);
    }
    std::unordered_map<int64_t, size_t> keyword_rank;
    for (size_t i = 0; i < candidates.size(); ++i) keyword_rank[candidates[i].id] = i + 1;
    std::unordered_map<int64_t, size_t> vector_rank;
    Stmt fetch_terms(db, "SELECT words, norm FROM chunks WHERE id = ?1");
    for (size_t i = 0; i < similar.size(); ++i) {
      const int64_t id = similar[i].second;
      vector_rank[id] = i + 1;
      if (keyword_rank.count(id) == 0) {
        Candidate c;
        c.id = id;
        fetch_terms.bind(1, id);
        if (fetch_terms.step()) {
          c.words = " " + fetch_terms.text(0) + " ";
          c.norm = fetch_terms.text(1);
        }
        fetch_terms.reset();
        candidates.push_back(std::move(c));
      }
    }
    for (Candidate& c : candidates) {
      const auto kw = keyword_rank.find(c.id);
      const auto vec = vector_rank.find(c.id);
      c.fused = (kw != keyword_rank.end() ? 1.0 / (kRrf + static_cast<double>(kw->second)) : 0.0) +
                (vec != vector_rank.end() ? 1.0 / (kRrf + static_cast<double>(vec->second)) : 0.0);
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.fused > b.fused || (a.fused == b.fused && a.id < b.id); });
  }
  if (candidates.size() > static_cast<size_t>(std::max(k, 0))) candidates.resize(static_cast<size_t>(std::max(k, 0)));

  // 4. How much of the question the best passage covers: the share of the content
  //    words' weight and of the bigrams' weight found in it.
  if (!candidates.empty()) {
    const Candidate& best = candidates.front();
    double have = 0;
    double want = 0;
    for (const QueryTerm& t : word_terms) {
      if (!t.content) continue;
      want += t.idf;
      if (best.words.find(" " + t.text + " ") != std::string::npos) have += t.idf;
    }
    double gram_have = 0;
    double gram_want = 0;
    for (const QueryTerm& t : gram_terms) {
      gram_want += t.idf;
      if (best.norm.find(t.text) != std::string::npos) gram_have += t.idf;
    }
    const double word_cover = want > 0 ? have / want : 0;
    const double gram_cover = gram_want > 0 ? gram_have / gram_want : 0;
    result.coverage = want > 0 && gram_want > 0 ? 0.5 * word_cover + 0.5 * gram_cover : want > 0 ? word_cover : gram_cover;
  }

  Stmt fetch(db,
             "SELECT f.rel, f.path, c.heading, c.line_start, c.line_end, c.page, c.text "
             "FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id = ?1");
  for (const Candidate& c : candidates) {
    fetch.bind(1, c.id);
    if (fetch.step()) {
      SearchHit hit;
      hit.path = fetch.text(0);
      hit.full_path = fetch.text(1);
      hit.heading = fetch.text(2);
      hit.line_start = static_cast<int>(fetch.integer(3));
      hit.line_end = static_cast<int>(fetch.integer(4));
      hit.page = static_cast<int>(fetch.integer(5));
      hit.text = fetch.text(6);
      hit.score = c.fused;
      hit.chunk_id = c.id;
      result.hits.push_back(std::move(hit));
    }
    fetch.reset();
  }
  return done();
}

}  // namespace koto
