// `koto pull REF`, `koto models`, `koto rm NAME`: the local model store (koto/model_store.h).
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/interrupt_guard.h"
#include "cli/usage_error.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "koto/model_fit.h"
#include "koto/model_store.h"

namespace koto::cli {
namespace {

struct PullCommandOptions {
  std::string reference;
  std::string endpoint;
};

std::string gb(uint64_t bytes) { return fmt::format("{:.2f} GB", static_cast<double>(bytes) / 1e9); }

int run_pull(const PullCommandOptions& o) {
  ModelStore store;
  PullOptions options;
  options.endpoint = o.endpoint;
  options.cancel = &InterruptGuard::flag();
  // Before the bytes: will the weights alone fit in memory now?
  options.before_download = [](const std::string& name, uint64_t size) {
    const uint64_t free_memory = memory_available_now();
    std::fprintf(stderr, "%s", tr("{0}: {1}; memory available now {2}{3}\n", "{0}: {1}、現在の空きメモリ {2}{3}\n", name, gb(size),
                                  free_memory > 0 ? gb(free_memory) : std::string("?"),
                                  free_memory > 0 && size > free_memory
                                      ? std::string(pick(" — the weights alone will NOT fit: choose a smaller quantization",
                                                         " — 重みだけで収まりません。より小さい量子化を選んでください"))
                                      : std::string())
                                   .c_str());
  };
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  int last_decile = -1;
  options.progress = [&](const PullProgress& p) {
    const double share = p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 0;
    const bool done = p.total > 0 && p.done >= p.total;
    if (!tty) {
      const int decile = static_cast<int>(share * 10);
      if (decile == last_decile && !done) return;
      last_decile = decile;
    }
    const double rate = p.seconds > 0 ? static_cast<double>(p.transferred) / 1e6 / p.seconds : 0;
    const double eta = rate > 0 && p.total > p.done ? static_cast<double>(p.total - p.done) / 1e6 / rate : 0;
    const std::string line = tr("downloading: {0:.0f} %  {1:.1f} / {2:.1f} MB  {3:.1f} MB/s  {4}",
                                "ダウンロード中: {0:.0f} %  {1:.1f} / {2:.1f} MB  毎秒 {3:.1f} MB  {4}", 100 * share,
                                static_cast<double>(p.done) / 1e6, static_cast<double>(p.total) / 1e6, rate,
                                done ? std::string(pick("verifying…", "検証中…")) : tr("about {0:.0f} s left", "残り約 {0:.0f} 秒", eta));
    std::fprintf(stderr, "%s%s%s", tty ? "\r\x1b[K" : "", line.c_str(), tty && !done ? "" : "\n");
    std::fflush(stderr);
  };
  PullResult result;
  try {
    const InterruptGuard interrupt_guard(/*second_ends_process=*/true);
    result = store.pull(o.reference, options);
  } catch (...) {
    if (tty) std::fputc('\n', stderr);
    throw;
  }
  const StoredModel& m = result.model;
  if (result.already_present) {
    fmt::print("{}", tr("{0} is already in the store: {1}\n", "{0} はすでにあります: {1}\n", m.name, m.path));
  } else {
    fmt::print("{}", tr("{0}: {1}, SHA-256 verified, saved to {2}\n", "{0}: {1}、SHA-256 を確認し、{2} に保存しました\n", m.name,
                        gb(m.size), m.path));
  }
  // The file is opened as koto opens every model: a damaged one is reported now.
  const GgufFile file = GgufFile::open(m.path);
  fmt::print("{}", format_fit_line(file, 0));
  fmt::print("{}", tr("run it with: koto run -m {0} \"質問\"\n", "実行: koto run -m {0} \"質問\"\n", std::filesystem::path(m.name).stem().string()));
  return kExitOk;
}

struct ModelsCommandOptions {
  bool json = false;
  bool available = false;
};

// The built-in catalogue: what `koto pull NAME` knows.
int print_catalogue(bool json) {
  nlohmann::json out = nlohmann::json::array();
  const uint64_t free_memory = memory_available_now();
  if (!json) fmt::print("{}", pick("models koto pull knows by name:\n", "koto pull で名前で取得できるモデル:\n"));
  for (const CatalogueEntry& e : model_catalogue()) {
    if (json) {
      out.push_back({{"name", e.name}, {"repo", e.repo}, {"file", e.file}, {"size", e.size}, {"license", e.license},
                     {"about", std::string(pick(e.about_en, e.about_ja))}, {"verified", e.verified}});
      continue;
    }
    const std::string size = e.size > 0 ? gb(e.size) : std::string("?");
    const bool fits = e.size == 0 || free_memory == 0 || e.size < free_memory;
    fmt::print("  {:<22} {:>9}  {}{}\n      {}/{}  ({}){}\n", e.name, size, pick(e.about_en, e.about_ja),
               fits ? "" : std::string(pick("  [larger than the free memory]", "  [空きメモリより大きい]")), e.repo, e.file, e.license,
               e.verified ? "" : std::string(pick("  [not checked on the hub's page]", "  [ハブのページで未確認]")));
  }
  if (json) fmt::print("{}\n", out.dump(2));
  return kExitOk;
}

std::string date_text(int64_t seconds) {
  if (seconds <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm {};
  localtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M", &tm);
  return buffer;
}

int run_models(const ModelsCommandOptions& o) {
  if (o.available) return print_catalogue(o.json);
  ModelStore store;
  nlohmann::json out = nlohmann::json::array();
  if (!o.json) {
    fmt::print("{}", tr("models in {0}:\n", "{0} のモデル:\n", store.root().string()));
  }
  for (const StoredModel& m : store.list()) {
    ModelFitSummary summary;
    std::string problem;
    try {
      summary = summarize_fit(GgufFile::open(m.path), 0);
    } catch (const Error& e) {
      problem = e.what();
    }
    if (o.json) {
      out.push_back({{"name", m.name},
                     {"path", m.path},
                     {"size", m.size},
                     {"architecture", summary.architecture},
                     {"quantization", summary.quantization},
                     {"parameters", summary.parameters},
                     {"context", summary.context},
                     {"fits", problem.empty() && summary.fits},
                     {"needed_bytes", summary.needed_bytes},
                     {"available_bytes", summary.available_bytes},
                     {"sha256", m.sha256},
                     {"source", m.source},
                     {"downloaded", m.downloaded},
                     {"last_used", m.last_used},
                     {"error", problem}});
      continue;
    }
    if (!problem.empty()) {
      fmt::print("  {}  {}\n", m.name, problem);
      continue;
    }
    fmt::print("  {}\n    {}  {}  {}  {:.2f} B  ctx {}  {}  {}\n", m.name, gb(m.size), summary.architecture, summary.quantization,
               static_cast<double>(summary.parameters) / 1e9, summary.context,
               tr("last used {0}", "最終使用 {0}", date_text(m.last_used)),
               summary.fits ? std::string(pick("fits now", "今のメモリに収まる")) : std::string(pick("does NOT fit now", "今のメモリには収まらない")));
  }
  if (o.json) fmt::print("{}\n", out.dump(2));
  return kExitOk;
}

struct RmCommandOptions {
  std::string name;
};

int run_rm(const RmCommandOptions& o) {
  ModelStore store;
  if (!store.remove(o.name)) {
    throw Error(ErrorCode::kNotFound, tr("{0}: no such model in the store (koto models lists them)",
                                         "{0}: そのモデルはありません (koto models で一覧できます)", o.name));
  }
  fmt::print("{}", tr("removed {0}\n", "{0} を削除しました\n", o.name));
  return kExitOk;
}

}  // namespace

CommandRunner define_pull(CLI::App& command) {
  auto o = std::make_shared<PullCommandOptions>();
  command.add_option("reference", o->reference,
                     std::string(pick("a catalogue name (koto models --available), hf.co/OWNER/REPO/FILE.gguf, an https URL, or OWNER/REPO:QUANT",
                                      "カタログの名前 (koto models --available)、hf.co/所有者/リポジトリ/ファイル.gguf、https URL、または 所有者/リポジトリ:量子化")))
      ->required();
  command.add_option("--endpoint", o->endpoint,
                     std::string(pick("hub address (default KOTO_HF_ENDPOINT, HF_ENDPOINT or https://huggingface.co)",
                                      "ハブのアドレス (既定: KOTO_HF_ENDPOINT、HF_ENDPOINT、または https://huggingface.co)")));
  return [o] { return run_pull(*o); };
}

CommandRunner define_models(CLI::App& command) {
  auto o = std::make_shared<ModelsCommandOptions>();
  command.add_flag("--json", o->json, std::string(pick("print JSON", "JSON で表示")));
  command.add_flag("--available", o->available,
                   std::string(pick("list the models koto pull knows by name", "koto pull で名前で取得できるモデルを一覧")));
  return [o] { return run_models(*o); };
}

CommandRunner define_rm(CLI::App& command) {
  auto o = std::make_shared<RmCommandOptions>();
  command.add_option("name", o->name, std::string(pick("the model's name (as koto models shows it)", "モデルの名前 (koto models の表示)")))
      ->required();
  return [o] { return run_rm(*o); };
}

}  // namespace koto::cli
