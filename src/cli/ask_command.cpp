// `koto ask -m MODEL "質問"`: answers a question from the indexed documents only. The
// passages are found first; when none covers the question well enough, the answer is
// 「資料には記載がありません。」 without loading the model. Otherwise the model gets the
// numbered passages through its chat template, the answer streams to stdout, and the
// passages it cited are listed after it (file, lines or page, heading, a snippet).
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/load_model.h"
#include "cli/chat_format_option.h"
#include "cli/commands.h"
#include "cli/interrupt_guard.h"
#include "cli/model_path.h"
#include "cli/usage_error.h"
#include "koto/chat_template.h"
#include "koto/doc_index.h"
#include "koto/embedding.h"
#include "koto/error.h"
#include "koto/generate.h"
#include "koto/grounded_answer.h"
#include "koto/i18n.h"
#include "koto/memory_check.h"
#include "koto/model.h"
#include "koto/run_stats.h"
#include "koto/text.h"

namespace koto::cli {
namespace {

struct AskOptions {
  std::string question;
  std::string model;
  std::string db;
  int k = 5;
  double min_coverage = DocIndex::kDefaultMinCoverage;
  int32_t max_tokens = 512;
  int32_t lookup = GenerateOptions::Lookup{}.max_draft;
  float temperature = 0.0f;
  int32_t n_ctx = 0;
  int threads = 0;
  std::string chat_template;
  bool show_context = false;
  bool stats = false;
  std::string embed_model;
};

void print_passages(const std::vector<SearchHit>& hits, const std::vector<int>& numbers) {
  for (int n : numbers) {
    const SearchHit& h = hits[static_cast<size_t>(n - 1)];
    std::cout << fmt::format("  [{}] {}\n      {}\n", n, passage_source(h), one_line_snippet(h.text, 120));
  }
}

int run_ask(const AskOptions& o) {
  const UsageMeter meter;
  const std::optional<ChatFamily> forced_family = chat_format_option(o.chat_template);
  const std::filesystem::path db = o.db.empty() ? DocIndex::default_path() : std::filesystem::path(o.db);
  DocIndex index(db, false);
  std::unique_ptr<Model> embed_model;
  std::unique_ptr<Embedder> embedder;
  if (!o.embed_model.empty()) {
    embed_model = Model::load(resolve_model_path(o.embed_model));
    embedder = std::make_unique<Embedder>(*embed_model);
  }
  const SearchResult found = index.search(o.question, o.k, embedder.get());

  if (o.show_context) {
    std::cerr << tr("koto ask: {0} passage(s) from {1} (coverage of the question {2:.2f}, refusal below {3:.2f}):\n",
                    "koto ask: {1} から {0} 件の資料 (質問の被覆率 {2:.2f}、{3:.2f} 未満なら回答しない):\n", found.hits.size(),
                    db.string(), found.coverage, o.min_coverage);
    for (size_t i = 0; i < found.hits.size(); ++i) {
      std::cerr << fmt::format("[{}] {}\n{}\n\n", i + 1, passage_source(found.hits[i]), found.hits[i].text);
    }
  }
  if (should_refuse(found, o.min_coverage)) {
    std::cout << kNotInDocuments << '\n';
    std::cout.flush();
    if (found.hits.empty()) {
      std::cerr << "koto ask: "
                << tr("nothing in the {0} indexed file(s) of {1} matches the question",
                      "{1} に索引された {0} 個のファイルに、質問に当たる箇所はありません", index.file_count(), db.string())
                << '\n';
    } else {
      std::cerr << "koto ask: "
                << tr("searched {0} file(s) in {1}; the closest passage ({2}) covers only {3:.0f} % of the question "
                      "(an answer needs {4:.0f} %), so the model was not asked",
                      "{1} の {0} 個のファイルを検索しました。最も近い箇所 ({2}) でも質問の {3:.0f} % しか含まれず "
                      "(回答には {4:.0f} % 必要)、モデルには問い合わせていません",
                      index.file_count(), db.string(), passage_source(found.hits.front()), 100 * found.coverage,
                      100 * o.min_coverage)
                << '\n';
    }
    return kExitOk;
  }

  LoadOptions load_options;
  load_options.n_threads = o.threads;
  const std::unique_ptr<Model> model = load_model(resolve_model_path(o.model), load_options);
  const double load_seconds = meter.wall_seconds();
  const Tokenizer& tokenizer = model->tokenizer();
  if (o.n_ctx > 0) require_memory(*model, o.n_ctx);
  SessionOptions session_options;
  session_options.n_ctx = o.n_ctx;
  const std::unique_ptr<Session> session = model->new_session(session_options);
  if (o.n_ctx == 0) require_memory(*model, session->n_ctx());

  ChatTemplate chat(ChatFamily::kPlain);
  if (forced_family) {
    chat = ChatTemplate(*forced_family);
  } else {
    chat = ChatTemplate::for_model(model->file(), tokenizer);
    if (!chat.note().empty()) std::cerr << "koto: " << chat.note() << '\n';
  }
  // The passages that fit: the lowest-ranked ones go first when the prompt and the
  // answer would not fit in the context.
  std::vector<SearchHit> passages = found.hits;
  ChatPrompt prompt;
  for (;;) {
    const GroundedPrompt grounded = build_grounded_prompt(o.question, passages);
    prompt = build_chat_prompt(chat, tokenizer, grounded.system, grounded.user);
    const int64_t room = static_cast<int64_t>(session->n_ctx()) - std::max<int32_t>(o.max_tokens, 64);
    if (static_cast<int64_t>(prompt.ids.size()) <= room || passages.size() <= 1) break;
    passages.pop_back();
  }
  if (passages.size() < found.hits.size()) {
    std::cerr << "koto ask: "
              << tr("only the best {0} of {1} passages fit in the context of {2} tokens (-c to enlarge it)",
                    "コンテキスト {2} トークンに入るのは {1} 件中の上位 {0} 件の資料だけでした (-c で広げられます)",
                    passages.size(), found.hits.size(), session->n_ctx())
              << '\n';
  }

  GenerateOptions options;
  options.max_tokens = o.max_tokens;
  options.lookup.max_draft = o.lookup;
  options.sampling.temperature = o.temperature;
  options.stop_strings = prompt.stop_strings;
  options.cancel = &InterruptGuard::flag();
  options.leading_space = LeadingSpace::kStrip;
  GenerateResult result;
  {
    const InterruptGuard interrupt_guard(/*second_ends_process=*/true);
    result = generate(*session, tokenizer, prompt.ids, options, [](std::string_view chunk) {
      std::fwrite(chunk.data(), 1, chunk.size(), stdout);
      std::fflush(stdout);
    });
  }
  if (result.text.empty() || result.text.back() != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);

  // The sources: those the answer cites, else (no citation) all that were given.
  if (!says_not_in_documents(result.text)) {
    const std::vector<int> cited = cited_passages(result.text, static_cast<int>(passages.size()));
    if (!cited.empty()) {
      std::cout << pick("\nSources:\n", "\n出典:\n");
      print_passages(passages, cited);
    } else {
      std::cout << pick("\nThe answer cites no passage; it was given these:\n", "\n回答は資料番号を示していません。渡した資料:\n");
      std::vector<int> all;
      for (size_t i = 0; i < passages.size(); ++i) all.push_back(static_cast<int>(i + 1));
      print_passages(passages, all);
    }
  }
  std::cout.flush();
  RunStats& stats = result.stats;
  stats.model = std::filesystem::path(o.model).filename().string();
  stats.load_seconds = load_seconds;
  stats.threads = model->n_threads();
  meter.fill(stats);
  const bool interrupted = result.stop_reason == StopReason::kCancelled;
  if (o.stats || interrupted) {
    if (interrupted) std::cerr << "koto: " << pick("interrupted", "中断しました") << '\n';
    std::cerr << tr("retrieval: {0:.1f} ms, {1} passage(s), coverage {2:.2f}\n", "検索: {0:.1f} ms、資料 {1} 件、被覆率 {2:.2f}\n",
                    1000 * found.seconds, passages.size(), found.coverage);
    std::cerr << format_run_stats(stats);
  }
  return interrupted ? kExitInterrupted : kExitOk;
}

}  // namespace

CommandRunner define_ask(CLI::App& command) {
  auto o = std::make_shared<AskOptions>();
  auto help = [](const char* en, const char* ja) { return std::string(pick(en, ja)); };
  command.add_option("question", o->question, help("the question", "質問"))->required();
  command.add_option("-m,--model", o->model, help("GGUF model file", "GGUF モデルファイル"))->required();
  command.add_option("--db", o->db, tr("index file (default {0})", "索引ファイル (既定 {0})", DocIndex::default_path().string()));
  command.add_option("-k", o->k, help("passages given to the model (default 5)", "モデルに渡す資料の数 (既定 5)"))
      ->check(CLI::Range(1, 20));
  command.add_option("--min-coverage", o->min_coverage,
                     tr("answer only when the best passage covers this share of the question (default {0})",
                        "最良の資料が質問のこの割合を含むときだけ回答する (既定 {0})", DocIndex::kDefaultMinCoverage))
      ->check(CLI::Range(0.0, 1.0));
  command.add_option("--lookup", o->lookup,
                     help("lookup decoding: most tokens guessed from the prompt and checked in one pass (0: off; "
                          "greedy output is unchanged, sampled output keeps its distribution)",
                          "先読み復号: プロンプトから推測して 1 回で確かめる最大トークン数 (0: 無効。"
                          "貪欲法の出力は変わらず、サンプリングの分布も変わらない)"))
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  command.add_option("-n,--max-tokens", o->max_tokens, help("most tokens of the answer (default 512)", "回答の最大トークン数 (既定 512)"))
      ->check(CLI::Range(1, 1 << 20));
  command.add_option("--temp", o->temperature, help("temperature (default 0: greedy)", "温度 (既定 0: 貪欲法)"));
  command.add_option("-c,--ctx", o->n_ctx, help("context size in tokens (0: the model's, at most 4096)",
                                                "コンテキスト長 (0: モデルの値、最大 4096)"))
      ->check(CLI::Range(0, 1 << 24));
  command.add_option("-t,--threads", o->threads, help("worker threads (0: one per physical core)", "ワーカースレッド数 (0: 物理コアごとに 1)"))
      ->check(CLI::Range(0, 1024));
  command.add_option("--template", o->chat_template,
                     tr("chat format instead of the model's: {0}", "モデルの代わりに使うチャット形式: {0}", chat_family_names()));
  command.add_option("--embed-model", o->embed_model,
                     help("the embedding model the index was embedded with (hybrid search)",
                          "索引の埋め込みに使ったモデル (ハイブリッド検索)"));
  command.add_flag("--show-context", o->show_context,
                   help("print the passages given to the model (stderr)", "モデルに渡す資料を表示 (標準エラー)"));
  command.add_flag("--stats", o->stats, help("print retrieval and generation cost after the answer (stderr)",
                                             "回答の後に検索と生成の費用を表示 (標準エラー)"));
  return [o] { return run_ask(*o); };
}

}  // namespace koto::cli
