// What `-m` accepts: a path to a GGUF file, or the name of a model in the local store
// (OWNER/REPO/FILE.gguf, REPO/FILE.gguf, FILE.gguf or FILE, as `koto models` shows them).
// A store hit records its last use. Header-only, shared by the commands that load models.
#pragma once

#include <filesystem>
#include <string>

#include "koto/error.h"
#include "koto/i18n.h"
#include "koto/model_store.h"

namespace koto::cli {

inline std::string resolve_model_path(const std::string& given) {
  std::error_code ec;
  if (given.empty() || std::filesystem::exists(given, ec)) return given;
  try {
    ModelStore store;
    std::optional<StoredModel> m = store.find(given);
    const CatalogueEntry* entry = find_in_catalogue(given);
    if (!m && entry != nullptr) m = store.find(std::string(entry->repo) + "/" + entry->file);
    if (m) {
      store.touch(m->name);
      return m->path;
    }
  } catch (const Error&) {
    // A damaged store index: the message below still says what to do.
  }
  if (const CatalogueEntry* entry = find_in_catalogue(given)) {
    throw Error(ErrorCode::kNotFound, tr("{0} is not downloaded yet: run koto pull {0} ({1}, {2:.2f} GB)",
                                         "{0} はまだダウンロードされていません。koto pull {0} を実行してください ({1}、{2:.2f} GB)",
                                         given, entry->repo, static_cast<double>(entry->size) / 1e9));
  }
  // Neither a file nor a stored model: Model::load's own message names the path; add how
  // to get a model by name when it looks like one.
  if (given.find('/') == std::string::npos && given.find(".gguf") == std::string::npos) {
    throw Error(ErrorCode::kNotFound,
                tr("{0}: no such file, and no model of that name in the store (koto models lists them; "
                   "koto pull OWNER/REPO:QUANT downloads one)",
                   "{0}: そのファイルはなく、保管場所にもその名前のモデルはありません (koto models で一覧、"
                   "koto pull 所有者/リポジトリ:量子化 でダウンロード)",
                   given));
  }
  return given;
}

}  // namespace koto::cli
