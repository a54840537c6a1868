// `koto logits`: runs a token sequence through a model and writes the logits of every
// position as float32 little-endian [n_tokens][n_vocab], for comparing engines.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/load_model.h"
#include "cli/commands.h"
#include "cli/usage_error.h"
#include "koto/error.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "koto/token_id_list.h"

namespace koto::cli {
namespace {

struct LogitsOptions {
  std::string model;
  std::string tokens;
  std::string text;
  std::string output;
  std::string kv = "f16";
  int threads = 0;
};

// --tokens in the one id-list syntax; a bad list is a bad command line.
std::vector<TokenId> parse_tokens_option(const std::string& list) {
  try {
    return parse_token_id_list(list);
  } catch (const Error& e) {
    throw UsageError(tr("--tokens: {0}", "--tokens: {0}", e.what()));
  }
}

int run_logits(const LogitsOptions& options) {
  // A bad --tokens is reported before the model load.
  std::vector<TokenId> tokens;
  if (options.text.empty()) tokens = parse_tokens_option(options.tokens);
  LoadOptions load_options;
  load_options.n_threads = options.threads;
  const std::unique_ptr<Model> model = load_model(options.model, load_options);
  if (!options.text.empty()) {
    tokens = model->tokenizer().encode(options.text, model->tokenizer().add_bos_by_default(), false);
  }
  if (tokens.empty()) {
    throw UsageError(tr("no tokens: give --tokens 1,2,3 or --text", "トークンがありません。--tokens 1,2,3 か --text を指定してください"));
  }

  SessionOptions session_options;
  session_options.kv_type = options.kv == "f32" ? TensorType::kF32 : TensorType::kF16;
  session_options.n_ctx = static_cast<int32_t>(tokens.size());
  const std::unique_ptr<Session> session = model->new_session(session_options);

  const auto start = std::chrono::steady_clock::now();
  const std::span<const float> logits = session->eval(tokens, /*all_logits=*/true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::ofstream out(options.output, std::ios::binary | std::ios::trunc);
  // x86-64 and ARM64 are little-endian: the floats go out as they are in memory.
  out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size_bytes()));
  out.close();
  if (!out) {
    throw Error(ErrorCode::kIo, tr("{0}: cannot write the logits", "{0}: ロジットを書き込めません", options.output));
  }

  const int32_t n_vocab = model->params().n_vocab;
  const float* last = logits.data() + (tokens.size() - 1) * n_vocab;
  const TokenId next = static_cast<TokenId>(std::max_element(last, last + n_vocab) - last);
  fmt::print("{}\n", tr("{0}: {1} tokens × {2} logits → {3} ({4} bytes, float32 LE) in {5:.1f} ms, {6:.1f} tokens/s; "
                        "next token {7}",
                        "{0}: {1} トークン × {2} ロジット → {3} ({4} バイト, float32 LE)、{5:.1f} ms、毎秒 {6:.1f} トークン。"
                        "次のトークン {7}",
                        options.model, tokens.size(), n_vocab, options.output, logits.size_bytes(), seconds * 1e3,
                        static_cast<double>(tokens.size()) / seconds, next));
  return kExitOk;
}

}  // namespace

CommandRunner define_logits(CLI::App& command) {
  auto options = std::make_shared<LogitsOptions>();
  command.add_option("-m,--model", options->model, std::string(pick("GGUF model file", "GGUF モデルファイル")))
      ->required();
  auto* tokens = command.add_option("--tokens", options->tokens,
                                    std::string(pick("token ids: \"1,2,3\", \"1 2 3\" or a JSON array",
                                                     "トークン ID: \"1,2,3\"、\"1 2 3\" または JSON 配列")));
  auto* text = command.add_option("--text", options->text,
                                  std::string(pick("text to tokenize instead of --tokens (BOS added as the model says)",
                                                   "--tokens の代わりにトークン化するテキスト (BOS はモデルの設定どおり)")));
  tokens->excludes(text);
  command.add_option("-o,--output", options->output,
                     std::string(pick("file for the logits, float32 LE [n_tokens][n_vocab]",
                                      "ロジットの出力先 (float32 LE [n_tokens][n_vocab])")))
      ->required();
  command.add_option("-t,--threads", options->threads,
                     std::string(pick("threads (default: one per physical core)", "スレッド数 (既定: 物理コア数)")))
      ->check(CLI::Range(0, 1024));
  command.add_option("--kv", options->kv, std::string(pick("KV cache type: f16 (default) or f32", "KV キャッシュの型: f16 (既定) か f32")))
      ->check(CLI::IsMember({"f16", "f32"}));
  return [options, &command] {
    if (command.count("--tokens") == 0 && command.count("--text") == 0) {
      throw UsageError(tr("give --tokens 1,2,3 or --text", "--tokens 1,2,3 か --text を指定してください"));
    }
    return run_logits(*options);
  };
}

}  // namespace koto::cli
