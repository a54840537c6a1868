// `koto index DIR...`: brings the document index up to date with folders of documents,
// with a progress line and a summary. The work is in koto/doc_index.h.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/load_model.h"
#include "cli/commands.h"
#include "cli/model_path.h"
#include "koto/doc_index.h"
#include "koto/embedding.h"
#include "koto/model.h"
#include "koto/i18n.h"

namespace koto::cli {
namespace {

struct IndexCommandOptions {
  std::vector<std::string> roots;
  std::string db;
  int chunk_chars = 400;
  int overlap_chars = 100;
  int threads = 0;
  bool json = false;
  std::string embed_model;
};

// On a terminal: one line redrawn in place; otherwise a line per 10 % of the bytes.
class IndexProgressLine {
 public:
  IndexProgressLine() : tty_(::isatty(STDERR_FILENO) != 0) {}

  void update(const IndexProgress& p) {
    if (p.files_total == 0) return;
    const double share = p.bytes_total > 0 ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total)
                                           : static_cast<double>(p.files_done) / static_cast<double>(p.files_total);
    const bool done = p.files_done >= p.files_total;
    if (!tty_) {
      const int decile = static_cast<int>(share * 10);
      if (decile == last_decile_ && !done) return;
      last_decile_ = decile;
    }
    const double rate = p.seconds > 0 ? static_cast<double>(p.chunks) / p.seconds : 0;
    const double eta = share > 0 && !done ? p.seconds * (1 - share) / share : 0;
    const std::string line =
        tr("indexing: {0}/{1} files  {2:.1f}/{3:.1f} MB  {4} passages  {5:.0f} passages/s  {6}",
           "索引作成中: {0}/{1} ファイル  {2:.1f}/{3:.1f} MB  {4} 個の断片  毎秒 {5:.0f} 断片  {6}", p.files_done,
           p.files_total, static_cast<double>(p.bytes_done) / 1e6, static_cast<double>(p.bytes_total) / 1e6, p.chunks, rate,
           done ? std::string(pick("done", "完了")) : tr("about {0:.0f} s left", "残り約 {0:.0f} 秒", eta));
    std::fprintf(stderr, "%s%s%s", tty_ ? "\r\x1b[K" : "", line.c_str(), tty_ && !done ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  bool tty_;
  int last_decile_ = -1;
};

int run_index(const IndexCommandOptions& options) {
  const std::filesystem::path db = options.db.empty() ? DocIndex::default_path() : std::filesystem::path(options.db);
  DocIndex index(db, true);
  IndexOptions index_options;
  index_options.chunk_chars = options.chunk_chars;
  index_options.overlap_chars = options.overlap_chars;
  index_options.threads = options.threads;
  IndexProgressLine line;
  index_options.progress = [&](const IndexProgress& p) { line.update(p); };
  std::vector<std::filesystem::path> roots(options.roots.begin(), options.roots.end());
  const IndexReport r = index.index(roots, index_options);
  int64_t embedded = 0;
  if (!options.embed_model.empty()) {
    LoadOptions load_options;
    load_options.n_threads = options.threads;
    const std::unique_ptr<Model> model = load_model(resolve_model_path(options.embed_model), load_options);
    Embedder embedder(*model);
    const bool tty = ::isatty(STDERR_FILENO) != 0;
    embedded = index.embed_passages(embedder, [&](int64_t done, int64_t total) {
      std::fprintf(stderr, "%s%s%s", tty ? "\r\x1b[K" : "",
                   tr("embedding passages: {0}/{1}", "断片の埋め込み: {0}/{1}", done, total).c_str(),
                   tty && done < total ? "" : "\n");
      std::fflush(stderr);
    });
  }

  if (options.json) {
    nlohmann::json skipped = nlohmann::json::array();
    for (const SkippedFile& s : r.skipped) skipped.push_back({{"path", s.path}, {"reason", s.reason}});
    const nlohmann::json out = {{"db", db.string()},
                                {"files_indexed", r.files_indexed},
                                {"files_unchanged", r.files_unchanged},
                                {"files_removed", r.files_removed},
                                {"files_ignored", r.files_ignored},
                                {"indexed_by_format", r.indexed_by_format},
                                {"skipped", skipped},
                                {"chunks_written", r.chunks_written},
                                {"chunks_total", r.chunks_total},
                                {"passages_embedded", embedded},
                                {"bytes_read", r.bytes_read},
                                {"seconds", r.seconds}};
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    std::string formats;
    for (const auto& [format, n] : r.indexed_by_format) formats += fmt::format("{}{} {}", formats.empty() ? "" : ", ", format, n);
    fmt::print("{}", tr("koto index: {0}\n  indexed {1} file(s){2}, unchanged {3}, removed {4}, other files ignored {5}\n"
                        "  {6} passages written, {7} in the index; {8:.1f} MB read in {9:.1f} s\n",
                        "koto index: {0}\n  索引に追加 {1} ファイル{2}、変更なし {3}、削除 {4}、対象外のファイル {5}\n"
                        "  書き込んだ断片 {6} 個、索引全体で {7} 個。{8:.1f} MB を {9:.1f} 秒で読み込み\n",
                        db.string(), r.files_indexed, formats.empty() ? "" : " (" + formats + ")", r.files_unchanged,
                        r.files_removed, r.files_ignored, r.chunks_written, r.chunks_total,
                        static_cast<double>(r.bytes_read) / 1e6, r.seconds));
    if (embedded > 0) fmt::print("{}", tr("  {0} passages embedded\n", "  {0} 個の断片を埋め込みました\n", embedded));
    if (!r.skipped.empty()) {
      fmt::print("{}", tr("  skipped {0} file(s):\n", "  読めなかったファイル {0} 件:\n", r.skipped.size()));
      for (const SkippedFile& s : r.skipped) fmt::print("    {}: {}\n", s.path, s.reason);
    }
  }
  return kExitOk;
}

}  // namespace

CommandRunner define_index(CLI::App& command) {
  auto options = std::make_shared<IndexCommandOptions>();
  command.add_option("folders", options->roots, std::string(pick("folders (or files) of documents: .txt .md .html .pdf",
                                                                  "文書のフォルダー (またはファイル): .txt .md .html .pdf")))
      ->required();
  command.add_option("--db", options->db,
                     tr("index file (default {0})", "索引ファイル (既定 {0})", DocIndex::default_path().string()));
  command.add_option("--chunk-chars", options->chunk_chars,
                     std::string(pick("passage size in characters (default 400)", "断片の大きさ (文字数、既定 400)")))
      ->check(CLI::Range(50, 4000));
  command.add_option("--overlap-chars", options->overlap_chars,
                     std::string(pick("overlap of consecutive passages (default 100)", "隣り合う断片の重なり (既定 100)")))
      ->check(CLI::Range(0, 2000));
  command.add_option("-t,--threads", options->threads,
                     std::string(pick("reader threads (default: one per CPU)", "読み込みスレッド数 (既定: CPU ごとに 1)")));
  command.add_flag("--json", options->json, std::string(pick("print the summary as JSON", "結果を JSON で表示")));
  command.add_option("--embed-model", options->embed_model,
                     std::string(pick("also embed every passage with this embedding model (GGUF), for hybrid search",
                                      "この埋め込みモデル (GGUF) で各断片のベクトルも作る (ハイブリッド検索用)")));
  return [options] { return run_index(*options); };
}

}  // namespace koto::cli
