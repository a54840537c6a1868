// `koto tokenize`: text to ids (TEXT, --file or stdin) or, with --decode, ids to text.
// Only parsing and printing here; the tokenizers are in the library.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli_io.h"
#include "cli/commands.h"
#include "cli/usage_error.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "koto/text.h"
#include "koto/token_id_list.h"
#include "koto/tokenizer.h"

namespace koto::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  std::string file;
  bool bos = false;
  bool json = false;
  bool special = false;
  bool decode = false;
  bool pieces = false;
};

std::string read_input(const TokenizeOptions& options, const CLI::App& command) {
  if (!options.file.empty()) return read_file_or_stdin(options.file);
  if (command.count("text") > 0) return options.text == "-" ? read_all(std::cin, "stdin") : options.text;
  if (!stdin_is_terminal()) return read_all(std::cin, "stdin");
  throw UsageError(tr("no text: give it as an argument (koto tokenize -m MODEL \"text\"), with --file, or on stdin",
                      "テキストがありません。引数 (koto tokenize -m MODEL \"テキスト\")、--file、標準入力のいずれかで"
                      "渡してください"));
}

nlohmann::json json_text(const std::string& bytes) {
  return nlohmann::json(bytes);  // dumped with error_handler_t::replace below
}

void print_pieces(const Tokenizer& tokenizer, const std::vector<TokenId>& ids, bool json, bool special) {
  if (json) {
    nlohmann::json array = nlohmann::json::array();
    for (TokenId id : ids) {
      array.push_back({{"id", id},
                       {"piece", json_text(std::string(tokenizer.piece(id)))},
                       {"text", json_text(tokenizer.token_bytes(id, special))}});
    }
    fmt::print("{}\n", array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  for (TokenId id : ids) {
    fmt::print("{}\t{}\t{}\n", id, quote_bytes(tokenizer.piece(id)), quote_bytes(tokenizer.token_bytes(id, special)));
  }
}

int run_tokenize(const TokenizeOptions& options, const CLI::App& command) {
  const GgufFile file = GgufFile::open(options.model);
  const std::unique_ptr<Tokenizer> tokenizer = Tokenizer::from_gguf(file);
  const std::string input = read_input(options, command);

  if (options.decode) {
    const std::vector<TokenId> ids = parse_token_id_list(input);
    for (TokenId id : ids) (void)tokenizer->piece(id);  // a bad id fails before any output
    if (options.pieces) {
      print_pieces(*tokenizer, ids, options.json, options.special);
      return kExitOk;
    }
    const std::string text = tokenizer->decode(ids, options.special);
    if (options.json) {
      fmt::print("{}\n", json_text(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);
      // The exact bytes for pipes; a newline only so a terminal prompt is not glued on.
      if (isatty(fileno(stdout))) std::fputc('\n', stdout);
    }
    return kExitOk;
  }

  const std::vector<TokenId> ids = tokenizer->encode(input, options.bos, options.special);
  if (options.pieces) {
    print_pieces(*tokenizer, ids, options.json, options.special);
  } else if (options.json) {
    fmt::print("{}\n", nlohmann::json(ids).dump());
  } else {
    fmt::print("{}\n", fmt::join(ids, " "));
  }
  return kExitOk;
}

}  // namespace

CommandRunner define_tokenize(CLI::App& command) {
  auto options = std::make_shared<TokenizeOptions>();
  command.add_option("-m,--model", options->model, std::string(pick("GGUF model file", "GGUF モデルファイル")))
      ->required();
  command.add_option("text", options->text,
                     std::string(pick("Text to tokenize (or ids with --decode); \"-\" or absent: read stdin",
                                      "トークン化するテキスト (--decode では ID)。\"-\" か省略時は標準入力から")));
  command.add_option("--file", options->file,
                     std::string(pick("Read the text (or ids) from this file (\"-\": stdin)",
                                      "テキスト (または ID) をこのファイルから読む (\"-\" なら標準入力)")))
      ->excludes("text");
  command.add_flag("--bos", options->bos, std::string(pick("Put the BOS token first", "先頭に BOS トークンを付ける")));
  command.add_flag("--json", options->json, std::string(pick("Print JSON", "JSON で出力")));
  command.add_flag("--special", options->special,
                   std::string(pick("Recognize special-token text such as <|im_start|> (with --decode: show them)",
                                    "<|im_start|> などの特殊トークンの文字列を認識する (--decode では表示する)")));
  command.add_flag("--decode", options->decode,
                   std::string(pick("Turn ids (\"1,2,3\", \"1 2 3\" or a JSON array) back into text; output is the "
                                    "exact bytes",
                                    "ID (\"1,2,3\"、\"1 2 3\" または JSON 配列) をテキストに戻す。出力はそのままのバイト列")));
  command.add_flag("--pieces", options->pieces,
                   std::string(pick("Show each id with its piece and its text", "ID ごとにピースとテキストを表示")));
  return [options, &command] { return run_tokenize(*options, command); };
}

}  // namespace koto::cli
