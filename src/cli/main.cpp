// koto's executable: the command table and the one place where errors become messages.
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <vector>
#include <string>

#include "cli/commands.h"
#include "cli/usage_error.h"
#include "koto/error.h"
#include "koto/i18n.h"

namespace koto::cli {
namespace {

constexpr Command kCommands[] = {
    {"pull", "Download a model into the local store (resumable, SHA-256 verified)",
     "モデルをローカルの保管場所にダウンロード (再開可能、SHA-256 を検証)", define_pull},
    {"models", "List the models in the local store, with whether each fits in memory now",
     "ローカルの保管場所のモデル一覧 (今のメモリに収まるかも表示)", define_models},
    {"rm", "Remove a model from the local store", "ローカルの保管場所からモデルを削除", define_rm},
    {"info", "Describe a GGUF model: architecture, sizes, tensor types, vocabulary, memory needed",
     "GGUF モデルの概要を表示 (アーキテクチャ、大きさ、テンソルの型、語彙、必要メモリ)", define_info},
    {"tokenize", "Turn text into token ids, or ids back into text (--decode)",
     "テキストをトークン ID に変換 (--decode で ID からテキストへ)", define_tokenize},
    {"run", "Answer one prompt with a model and stream the answer", "モデルで一つの質問に答え、回答を逐次表示", define_run},
    {"chat", "Talk with a model in the terminal (each turn reuses the conversation's cache)",
     "端末でモデルと会話する (各ターンは会話のキャッシュを再利用)", define_chat},
    {"serve", "Serve a model over an OpenAI-compatible HTTP API, to several clients at once",
     "モデルを OpenAI 互換の HTTP API で提供 (複数の利用者に同時に)", define_serve},
    {"index", "Index folders of documents (text, Markdown, HTML, PDF) for search and grounded answers",
     "文書のフォルダー (テキスト、Markdown、HTML、PDF) の索引を作る (検索と資料に基づく回答のため)", define_index},
    {"search", "Find the passages of the indexed documents that answer a question",
     "索引した文書から質問に答える箇所を探す", define_search},
    {"ask", "Answer a question from the indexed documents only, citing them (or say they do not say)",
     "索引した文書だけに基づいて出典付きで回答 (記載がなければそう答える)", define_ask},
    {"embed", "Print the sentence embedding of a text (an embedding model's pooled, normalised vector)",
     "テキストの文埋め込みを表示 (埋め込みモデルの集約・正規化したベクトル)", define_embed},
    {"logits", "Write the logits of every position for given token ids (float32 little-endian)",
     "指定したトークン列の全位置のロジットを書き出す (float32 リトルエンディアン)", define_logits},
    {"quantize", "Convert a model's weights to another type (Q8_0, Q4_K_M...) and report the error",
     "モデルの重みを別の型 (Q8_0, Q4_K_M など) に変換し、誤差を報告", define_quantize},
    {"synth", "Write a model of a real shape with random weights, for benchmarks",
     "実在モデルと同じ形でランダムな重みのモデルを書き出す (ベンチマーク用)", define_synth},
    {"bench", "Measure load time, prompt and generation speed, time to first token and memory",
     "読み込み時間、プロンプト処理と生成の速度、最初のトークンまでの時間、メモリを測定", define_bench},
};

// CLI11's parse errors in the user's language. CLI11 builds English sentences, so the
// common ones are recognised by their wording (CLI11 2.x) and said again; anything
// else keeps CLI11's text behind a translated lead.
std::string translate_parse_error(const CLI::ParseError& e) {
  const std::string what = e.what();
  std::smatch m;
  if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    if (what == "A subcommand") {
      return tr("a command is required (info, tokenize, run, ...)", "コマンドを指定してください (info、tokenize、run など)");
    }
    static const std::regex required("^(\\S+) is required$");
    if (std::regex_match(what, m, required)) return tr("{0} is required", "{0} を指定してください", m.str(1));
    return tr("missing option: {0}", "必要なオプションがありません: {0}", what);
  }
  if (dynamic_cast<const CLI::ConversionError*>(&e) != nullptr) {
    static const std::regex convert("^Could not convert: (\\S+) = (.*)$");
    static const std::regex not_allowed("^The value (.*) is not an allowed value for (\\S+)$");
    if (std::regex_match(what, m, convert)) {
      return tr("{0}: could not convert \"{1}\" (expected a number)", "{0}: 「{1}」を変換できません (数値を指定してください)",
                m.str(1), m.str(2));
    }
    if (std::regex_match(what, m, not_allowed)) {
      return tr("{0}: \"{1}\" is not an allowed value", "{0}: 「{1}」は使えない値です", m.str(2), m.str(1));
    }
    return tr("could not convert a value: {0}", "値を変換できません: {0}", what);
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    static const std::regex extras("^The following arguments? (?:was|were) not expected: (.*)$");
    if (!std::regex_match(what, m, extras)) return tr("unexpected argument(s): {0}", "不明な引数があります: {0}", what);
    // CLI11 lists them last first.
    std::vector<std::string> args;
    std::istringstream words(m.str(1));
    for (std::string word; words >> word;) args.insert(args.begin(), word);
    return tr("unexpected argument(s): {0}", "不明な引数があります: {0}", fmt::format("{}", fmt::join(args, " ")));
  }
  if (dynamic_cast<const CLI::ValidationError*>(&e) != nullptr) {
    static const std::regex range("^(\\S+): Value (\\S+) not in range (\\S+) to (\\S+)$");
    static const std::regex member("^(\\S+): (.*) not in \\{(.*)\\}$");
    static const std::regex validation("^(\\S+): (.*)$");
    if (std::regex_match(what, m, member)) {
      return tr("{0}: \"{1}\" is not one of {2}", "{0}: 「{1}」は使えません ({2} のいずれか)", m.str(1), m.str(2), m.str(3));
    }
    if (std::regex_match(what, m, range)) {
      // CLI11's Range also says "not in range" for text that is no number at all.
      const std::string value = m.str(2);
      char* end = nullptr;
      (void)std::strtod(value.c_str(), &end);
      if (value.empty() || end != value.c_str() + value.size()) {
        return tr("{0}: could not convert \"{1}\" (expected a number)", "{0}: 「{1}」を変換できません (数値を指定してください)",
                  m.str(1), value);
      }
      const double low = std::strtod(m.str(3).c_str(), nullptr);
      const double high = std::strtod(m.str(4).c_str(), nullptr);
      if (high >= 1e300 && std::strtod(m.str(2).c_str(), nullptr) >= low) {  // CLI::PositiveNumber: low excluded
        return tr("{0}: {1} must be greater than {2}", "{0}: {1} ではなく {2} より大きい値を指定してください", m.str(1),
                  m.str(2), low);
      }
      if (high >= 1e300) {
        return tr("{0}: {1} must be at least {2}", "{0}: {1} ではなく {2} 以上の値を指定してください", m.str(1), m.str(2), low);
      }
      return tr("{0}: {1} is out of range ({2} to {3})", "{0}: {1} は範囲外です ({2}〜{3})", m.str(1), m.str(2), low,
                high);
    }
    if (std::regex_match(what, m, validation)) {
      return tr("{0}: invalid value ({1})", "{0}: 値が正しくありません ({1})", m.str(1), m.str(2));
    }
    return tr("invalid value: {0}", "値が正しくありません: {0}", what);
  }
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
    static const std::regex exactly("^Expected exactly (\\d+) arguments? to (\\S+), got (\\d+)$");
    static const std::regex typed("^(\\S+): (\\d+) required (.*) missing$");
    if (std::regex_match(what, m, exactly)) {
      return tr("{1} takes {0} value(s) but got {2}", "{1} には値が {0} 個必要ですが {2} 個でした", m.str(1), m.str(2),
                m.str(3));
    }
    if (std::regex_match(what, m, typed)) return tr("{0} needs a value", "{0} に値を指定してください", m.str(1));
    return tr("wrong number of values: {0}", "値の数が正しくありません: {0}", what);
  }
  if (dynamic_cast<const CLI::ExcludesError*>(&e) != nullptr) {
    static const std::regex excludes("^(\\S+) excludes (\\S+)$");
    if (std::regex_match(what, m, excludes)) {
      return tr("{0} cannot be used together with {1}", "{0} と {1} は同時に指定できません", m.str(1), m.str(2));
    }
  }
  if (dynamic_cast<const CLI::RequiresError*>(&e) != nullptr) {
    static const std::regex requires_other("^(\\S+) requires (\\S+)$");
    if (std::regex_match(what, m, requires_other)) {
      return tr("{0} needs {1} as well", "{0} には {1} も必要です", m.str(1), m.str(2));
    }
  }
  return tr("bad command line: {0}", "コマンドラインの誤り: {0}", what);
}

// "koto run" when the error happened inside `run`'s options, else "koto".
std::string command_path(const CLI::App& app) {
  std::string path = "koto";
  for (const CLI::App* sub : app.get_subcommands()) path += " " + sub->get_name();
  return path;
}

void print_usage_error(const std::string& message, const std::string& command) {
  std::fflush(stdout);
  std::cerr << "koto: " << message << '\n'
            << tr("run `{0} --help` for the options", "オプションは `{0} --help` で確認できます", command) << '\n';
}

int run_main(int argc, char** argv) {
  // A closed pipe (`koto run ... | head`) must show up as a failed write that the
  // command handles, not kill the process silently.
  std::signal(SIGPIPE, SIG_IGN);
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
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version: CLI11's own output
  } catch (const CLI::ParseError& e) {
    print_usage_error(translate_parse_error(e), command_path(app));
    return kExitUsage;
  }
  try {
    return chosen ? chosen() : kExitUsage;
  } catch (const UsageError& e) {
    print_usage_error(e.what(), command_path(app));
    return kExitUsage;
  } catch (const CLI::ParseError& e) {  // a command validating its options the CLI11 way
    print_usage_error(translate_parse_error(e), command_path(app));
    return kExitUsage;
  } catch (const Error& e) {
    std::fflush(stdout);
    std::cerr << "koto: " << e.what() << '\n';
    return e.code() == ErrorCode::kCancelled ? kExitInterrupted : kExitFailure;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::cerr << "koto: " << pick("out of memory", "メモリが足りません") << '\n';
    return kExitFailure;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "koto: "
              << tr("internal error: {0} — please report it with the command line you ran",
                    "内部エラー: {0}。実行したコマンドラインを添えて報告してください", e.what())
              << '\n';
    return kExitFailure;
  }
}

}  // namespace
}  // namespace koto::cli

int main(int argc, char** argv) { return koto::cli::run_main(argc, argv); }
