// `koto quantize IN OUT TYPE`: converts a model's weights to another type
// (koto/quantize_model.h) and reports the error per tensor and per type.
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/progress_line.h"
#include "cli/usage_error.h"
#include "koto/error.h"
#include "koto/i18n.h"
#include "koto/quantize_model.h"

namespace koto::cli {
namespace {

struct QuantizeCommandOptions {
  std::string input;
  std::string output;
  QuantizeOptions quantize;
  bool json = false;
};

std::string percent(double relative) { return fmt::format("{:.3f}%", 100.0 * relative); }

void print_json(const QuantizeReport& report) {
  nlohmann::json j;
  j["type"] = report.mix.name;
  j["input_bytes"] = report.input_bytes;
  j["output_bytes"] = report.output_bytes;
  j["threads"] = report.threads;
  j["seconds"] = report.seconds;
  j["relative_rms_error"] = report.total_relative_rms_error();
  for (const QuantizedTensor& t : report.tensors) {
    j["tensors"].push_back({{"name", t.name},
                            {"from", tensor_type_name(t.from)},
                            {"to", tensor_type_name(t.to)},
                            {"wanted", tensor_type_name(t.wanted)},
                            {"copied", t.copied},
                            {"requantized", t.requantized},
                            {"bytes", t.bytes},
                            {"relative_rms_error", t.relative_rms_error()}});
  }
  for (const QuantizeTypeTotal& t : report.totals_by_type()) {
    j["by_type"].push_back({{"type", tensor_type_name(t.type)},
                            {"tensors", t.tensors},
                            {"bytes", t.bytes},
                            {"relative_rms_error", t.relative_rms_error()}});
  }
  fmt::print("{}\n", j.dump(2));
}

int run_quantize(QuantizeCommandOptions& options) {
  if (!find_quant_mix(options.quantize.type)) {
    throw UsageError(tr("unknown type \"{0}\" (known: {1})", "不明な型 \"{0}\" です (既知: {1})", options.quantize.type,
                        quant_mix_names()));
  }
  ProgressLine progress("quantize", "量子化");
  options.quantize.progress = [&progress](uint64_t done, uint64_t total) { progress.update(done, total); };
  const QuantizeReport report = quantize_model(options.input, options.output, options.quantize);

  for (const QuantizedTensor& t : report.tensors) {
    if (t.to != t.wanted) {
      std::fprintf(stderr, "%s\n",
                   tr("koto: note: {0}: rows of {1} values do not fit {2} blocks; wrote {3} instead",
                      "koto: 注意: {0}: {1} 個の値の行は {2} のブロックに収まらないため {3} で書きました", t.name,
                      t.row_length, tensor_type_name(t.wanted), tensor_type_name(t.to))
                       .c_str());
    }
  }
  if (report.requantized() > 0) {
    std::fprintf(stderr, "%s\n",
                 tr("koto: warning: {0} tensors were already quantized and were dequantized and quantized again; "
                    "their error adds to the original one — quantize from an F32/F16/BF16 file when you can",
                    "koto: 警告: {0} 個のテンソルは量子化済みだったため、復元してから再量子化しました。誤差が重なります。"
                    "できれば F32/F16/BF16 のファイルから量子化してください",
                    report.requantized())
                     .c_str());
  }
  if (options.json) {
    print_json(report);
    return kExitOk;
  }
  fmt::print("{}\n", pick("tensor                           from   → to       rel. RMS error",
                          "テンソル                         元     → 先       相対 RMS 誤差"));
  for (const QuantizedTensor& t : report.tensors) {
    fmt::print("{:<32} {:<6} → {:<8} {}\n", t.name, tensor_type_name(t.from), tensor_type_name(t.to),
               t.copied ? std::string(pick("(copied)", "(コピー)")) : percent(t.relative_rms_error()));
  }
  fmt::print("\n{}\n", pick("type      tensors        bytes   rel. RMS error", "型        テンソル数     バイト数 相対 RMS 誤差"));
  for (const QuantizeTypeTotal& t : report.totals_by_type()) {
    fmt::print("{:<8} {:>8} {:>12}   {}\n", tensor_type_name(t.type), t.tensors, t.bytes, percent(t.relative_rms_error()));
  }
  fmt::print("{}\n", tr("{0} → {1}: {2}, {3:.1f} MB → {4:.1f} MB, relative RMS error {5} over all quantized tensors, "
                        "{6} threads, {7:.1f} s",
                        "{0} → {1}: {2}、{3:.1f} MB → {4:.1f} MB、量子化したテンソル全体の相対 RMS 誤差 {5}、"
                        "{6} スレッド、{7:.1f} 秒",
                        options.input, options.output, report.mix.name, report.input_bytes / 1e6,
                        report.output_bytes / 1e6, percent(report.total_relative_rms_error()), report.threads,
                        report.seconds));
  return kExitOk;
}

}  // namespace

CommandRunner define_quantize(CLI::App& command) {
  auto options = std::make_shared<QuantizeCommandOptions>();
  command.add_option("input", options->input, std::string(pick("GGUF model to read", "読み込む GGUF モデル")))
      ->required();
  command.add_option("output", options->output, std::string(pick("GGUF file to write", "書き出す GGUF ファイル")))
      ->required();
  command.add_option("type", options->quantize.type, tr("target type: {0}", "変換先の型: {0}", quant_mix_names()))
      ->required();
  command.add_option("-t,--threads", options->quantize.n_threads,
                     std::string(pick("threads (default: one per physical core)", "スレッド数 (既定: 物理コア数)")))
      ->check(CLI::Range(0, 1024));
  command.add_flag("--json", options->json, std::string(pick("print the report as JSON", "結果を JSON で表示")));
  return [options] { return run_quantize(*options); };
}

}  // namespace koto::cli
