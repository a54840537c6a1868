// koto's executable: the command table and the one place where errors become messages.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "koto/error.h"
#include "koto/i18n.h"

namespace koto::cli {
namespace {

constexpr Command kCommands[] = {
    {"info", "Describe a GGUF model: architecture, sizes, tensor types, vocabulary, memory needed",
     "GGUF モデルの概要を表示 (アーキテクチャ、大きさ、テンソルの型、語彙、必要メモリ)", define_info},
    {"tokenize", "Turn text into token ids, or ids back into text (--decode)",
     "テキストをトークン ID に変換 (--decode で ID からテキストへ)", define_tokenize},
    {"run", "Answer one prompt with a model and stream the answer", "モデルで一つの質問に答え、回答を逐次表示", define_run},
    {"logits", "Write the logits of every position for given token ids (float32 little-endian)",
     "指定したトークン列の全位置のロジットを書き出す (float32 リトルエンディアン)", define_logits},
};

int run_main(int argc, char** argv) {
  CLI::App app{std::string(pick("koto — fast local LLMs on your CPU, Japanese first",
                                "koto — CPU で速く動くローカル LLM (日本語優先)"))};
  app.require_subcommand(1);
  app.set_version_flag("--version", "koto 0.1.0");
  CommandRunner chosen;
  for (const Command& command : kCommands) {
    CLI::App* sub = app.add_subcommand(command.name, std::string(pick(command.help_en, command.help_ja)));
    CommandRunner runner = command.define(*sub);
    sub->callback([&chosen, runner] { chosen = runner; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    return chosen ? chosen() : kExitUsage;
  } catch (const Error& e) {
    std::fflush(stdout);
    std::cerr << "koto: " << e.what() << '\n';
    return e.code() == ErrorCode::kCancelled ? kExitInterrupted
           : e.code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailure;
  } catch (const std::bad_alloc&) {
    std::cerr << "koto: " << pick("out of memory", "メモリが足りません") << '\n';
    return kExitFailure;
  }
}

}  // namespace
}  // namespace koto::cli

int main(int argc, char** argv) { return koto::cli::run_main(argc, argv); }
