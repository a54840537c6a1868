// `koto embed -m MODEL "テキスト"`: the sentence embedding of a text (koto/embedding.h),
// as numbers on one line or as JSON.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/load_model.h"
#include "cli/cli_io.h"
#include "cli/commands.h"
#include "cli/model_path.h"
#include "cli/usage_error.h"
#include "koto/embedding.h"
#include "koto/i18n.h"
#include "koto/model.h"

namespace koto::cli {
namespace {

struct EmbedOptions {
  std::string model;
  std::string text;
  std::string file;
  bool query = false;
  bool json = false;
  int threads = 0;
};

int run_embed(const EmbedOptions& o, const CLI::App& command) {
  std::string text;
  if (!o.file.empty()) {
    text = read_file_or_stdin(o.file);
  } else if (command.count("text") > 0) {
    text = o.text == "-" ? read_all(std::cin, "stdin") : o.text;
  } else if (!stdin_is_terminal()) {
    text = read_all(std::cin, "stdin");
  } else {
    throw UsageError(tr("no text: give it as an argument, with --file, or on stdin",
                        "テキストがありません。引数、--file、標準入力のいずれかで渡してください"));
  }
  LoadOptions load_options;
  load_options.n_threads = o.threads;
  const std::unique_ptr<Model> model = load_model(resolve_model_path(o.model), load_options);
  Embedder embedder(*model);
  const std::vector<float> v = embedder.embed_text(text, o.query);
  if (o.json) {
    const nlohmann::json out = {{"model", o.model}, {"pooling", pooling_name(embedder.pooling())},
                                {"dimensions", v.size()}, {"embedding", v}};
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("{}\n", fmt::join(v, " "));
  }
  return kExitOk;
}

}  // namespace

CommandRunner define_embed(CLI::App& command) {
  auto o = std::make_shared<EmbedOptions>();
  command.add_option("-m,--model", o->model, std::string(pick("GGUF model file (an embedding model such as Qwen3-Embedding)",
                                                              "GGUF モデルファイル (Qwen3-Embedding などの埋め込みモデル)")))
      ->required();
  command.add_option("text", o->text, std::string(pick("the text (\"-\": stdin)", "テキスト (\"-\" なら標準入力)")));
  command.add_option("--file", o->file, std::string(pick("read the text from this file", "テキストをこのファイルから読む")));
  command.add_flag("--query", o->query, std::string(pick("embed as a search query (the model's query instruction is added)",
                                                         "検索の質問として埋め込む (モデルの質問用の指示を付ける)")));
  command.add_flag("--json", o->json, std::string(pick("print JSON (model, pooling, dimensions, embedding)",
                                                       "JSON で表示 (model、pooling、dimensions、embedding)")));
  command.add_option("-t,--threads", o->threads, std::string(pick("worker threads (0: one per physical core)",
                                                                  "ワーカースレッド数 (0: 物理コアごとに 1)")));
  return [o, &command] { return run_embed(*o, command); };
}

}  // namespace koto::cli
