// Model::load as the commands do it: a progress line while the repacked weights' cache
// is built (the first load of a Q5_0 model on an AVX-512 CPU), and a note when it
// could not be (the model then runs from its own weights, more slowly).
#pragma once

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "cli/progress_line.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "koto/model.h"

namespace koto::cli {

inline std::unique_ptr<Model> load_model(const std::string& path, LoadOptions options) {
  std::optional<ProgressLine> progress;
  options.progress = [&progress](uint64_t done, uint64_t total) {
    if (!progress) {
      progress.emplace("Repacking the Q5_0 weights for this CPU (first load only)",
                       "Q5_0 の重みをこの CPU 向けに並べ替えています (初回のみ)");
    }
    progress->update(done, total);
  };
  std::unique_ptr<Model> model = Model::load(path, options);
  const RepackReport& report = model->repack_report();
  if (!report.problem.empty()) {
    std::fprintf(stderr, "%s\n",
                 tr("note: {0}; the model runs from its own weights, more slowly (KOTO_REPACK=off skips repacking)",
                    "注意: {0}。モデルの重みをそのまま使うので遅くなります (KOTO_REPACK=off で並べ替えをしません)",
                    report.problem)
                     .c_str());
  }
  return model;
}

// The pages a model's answers stream, for the timeline's residency curve: the repacked
// weights' cache when there is one (the model file's Q5_0 pages are then never read),
// else the model file.
inline std::pair<const void*, size_t> weight_pages(const Model& model) {
  const RepackReport& repack = model.repack_report();
  if (repack.mapped != nullptr) return {repack.mapped, static_cast<size_t>(repack.mapped_bytes)};
  return {model.file().bytes().data(), model.file().bytes().size()};
}

}  // namespace koto::cli
