// `koto search "質問"`: the passages of the document index that best answer a question.
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_path.h"
#include "koto/doc_index.h"
#include "koto/embedding.h"
#include "koto/model.h"
#include "koto/i18n.h"
#include "koto/text.h"

namespace koto::cli {
namespace {

struct SearchCommandOptions {
  std::string query;
  std::string db;
  int k = 5;
  bool json = false;
  std::string embed_model;
};

int run_search(const SearchCommandOptions& options) {
  const std::filesystem::path db = options.db.empty() ? DocIndex::default_path() : std::filesystem::path(options.db);
  DocIndex index(db, false);
  std::unique_ptr<Model> model;
  std::unique_ptr<Embedder> embedder;
  if (!options.embed_model.empty()) {
    model = Model::load(resolve_model_path(options.embed_model));
    embedder = std::make_unique<Embedder>(*model);
  }
  const SearchResult result = index.search(options.query, options.k, embedder.get());
  if (options.json) {
    nlohmann::json hits = nlohmann::json::array();
    for (const SearchHit& h : result.hits) {
      nlohmann::json hit = {{"path", h.path},         {"score", h.score},     {"line_start", h.line_start},
                            {"line_end", h.line_end}, {"heading", h.heading}, {"text", h.text}};
      if (h.page > 0) hit["page"] = h.page;
      hits.push_back(std::move(hit));
    }
    fmt::print("{}\n", hits.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return kExitOk;
  }
  if (result.hits.empty()) {
    fmt::print("{}", tr("nothing found in {0} for \"{1}\"\n", "{0} に「{1}」に当たる箇所はありません\n", db.string(), options.query));
    return kExitOk;
  }
  int rank = 0;
  for (const SearchHit& h : result.hits) {
    const std::string where = h.page > 0 ? tr("{0} p.{1}", "{0} {1} ページ", h.path, h.page)
                                         : fmt::format("{}:{}-{}", h.path, h.line_start, h.line_end);
    fmt::print("{}. {}{}  ({:.3f})\n   {}\n", ++rank, where, h.heading.empty() ? "" : "  [" + h.heading + "]", h.score,
               one_line_snippet(h.text, 160));
  }
  return kExitOk;
}

}  // namespace

CommandRunner define_search(CLI::App& command) {
  auto options = std::make_shared<SearchCommandOptions>();
  command.add_option("question", options->query, std::string(pick("what to look for, in plain words", "探したいこと (普通の文で)")))
      ->required();
  command.add_option("--db", options->db,
                     tr("index file (default {0})", "索引ファイル (既定 {0})", DocIndex::default_path().string()));
  command.add_option("-k", options->k, std::string(pick("number of passages (default 5)", "表示する断片の数 (既定 5)")))
      ->check(CLI::Range(1, 100));
  command.add_option("--embed-model", options->embed_model,
                     std::string(pick("the embedding model the index was embedded with: fuse keyword and vector rankings",
                                      "索引の埋め込みに使ったモデル: キーワードとベクトルの順位を融合")));
  command.add_flag("--json", options->json,
                   std::string(pick("print the hits as a JSON array, best first", "結果を JSON の配列で表示 (良い順)")));
  return [options] { return run_search(*options); };
}

}  // namespace koto::cli
