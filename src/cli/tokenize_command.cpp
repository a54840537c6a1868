// `koto tokenize`: text to ids (TEXT, --file or stdin) or, with --decode, ids to text.
// Only parsing and printing here; the tokenizers are in the library.
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/utf8.h"
#include "cli/commands.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
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
  if (!options.file.empty()) {
    std::ifstream in(options.file, std::ios::binary);
    if (!in) {
      throw Error(ErrorCode::kNotFound, tr("{0}: cannot open the file", "{0}: ファイルを開けません", options.file));
    }
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (in.bad()) throw Error(ErrorCode::kIo, tr("{0}: read failed", "{0}: 読み込みに失敗しました", options.file));
    return bytes.str();
  }
  if (command.count("text") > 0) return options.text;
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// Ids written as a JSON array ("[1, 2, 3]") or separated by commas and/or white space.
std::vector<TokenId> parse_ids(std::string_view input) {
  const size_t first = input.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && input[first] == '[') {
    const nlohmann::json array = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
    if (!array.is_array()) {
      throw Error(ErrorCode::kInvalidArgument, tr("the ids are not a valid JSON array of integers",
                                                  "ID の並びが整数の JSON 配列になっていません"));
    }
    std::vector<TokenId> ids;
    for (const nlohmann::json& element : array) {
      if (!element.is_number_integer() || element.get<int64_t>() < INT32_MIN || element.get<int64_t>() > INT32_MAX) {
        throw Error(ErrorCode::kInvalidArgument, tr("{0} in the JSON array is not a token id",
                                                    "JSON 配列の {0} はトークン ID ではありません", element.dump()));
      }
      ids.push_back(element.get<TokenId>());
    }
    return ids;
  }
  std::vector<TokenId> ids;
  size_t pos = 0;
  while (pos < input.size()) {
    const size_t start = input.find_first_not_of(", \t\r\n", pos);
    if (start == std::string_view::npos) break;
    size_t end = input.find_first_of(", \t\r\n", start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view word = input.substr(start, end - start);
    TokenId id = 0;
    const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || ptr != word.data() + word.size()) {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("\"{0}\" is not a token id; give integers separated by commas or spaces, or a JSON array",
                     "「{0}」はトークン ID ではありません。カンマか空白で区切った整数、または JSON 配列で指定してください",
                     utf8::escape_for_message(word)));
    }
    ids.push_back(id);
    pos = end;
  }
  return ids;
}

// A one-line, printable form of token bytes: control characters and invalid UTF-8 as escapes.
std::string quote_bytes(std::string_view bytes) {
  std::string out = "\"";
  for (size_t pos = 0; pos < bytes.size();) {
    const size_t start = pos;
    const char32_t c = utf8::decode(bytes, pos);
    const bool invalid = c == 0xFFFD && bytes.substr(start, pos - start) != "\xEF\xBF\xBD";
    if (invalid) {
      out += fmt::format("\\x{:02X}", static_cast<unsigned>(static_cast<uint8_t>(bytes[start])));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02X}", static_cast<unsigned>(c));
    } else {
      out.append(bytes.substr(start, pos - start));
    }
  }
  out += '"';
  return out;
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
    const std::vector<TokenId> ids = parse_ids(input);
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
                     std::string(pick("Text to tokenize (or ids with --decode); read from stdin when absent",
                                      "トークン化するテキスト (--decode では ID)。省略時は標準入力から")));
  command.add_option("--file", options->file,
                     std::string(pick("Read the text (or ids) from this file", "テキスト (または ID) をこのファイルから読む")))
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
