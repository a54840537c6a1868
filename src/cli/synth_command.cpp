// `koto synth`: writes a model of a real shape with random weights (koto/synth.h).
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/progress_line.h"
#include "cli/usage_error.h"
#include "koto/error.h"
#include "koto/i18n.h"
#include "koto/synth.h"

namespace koto::cli {
namespace {

struct SynthCommandOptions {
  SynthOptions synth;
  std::string output;
  bool list = false;
};

int list_shapes() {
  fmt::print("{}\n", pick("shape          arch   n_embd layers heads/kv head_dim  n_ff  n_vocab   n_ctx  mirrors",
                          "形             arch   n_embd 層数   ヘッド   head_dim  n_ff  語彙数    n_ctx  元のモデル"));
  for (const ModelShape& s : model_shapes()) {
    fmt::print("{:<14} {:<6} {:>6} {:>6} {:>5}/{:<3} {:>6} {:>6} {:>8} {:>7}  {}\n", s.name, s.architecture, s.n_embd,
               s.n_layer, s.n_head, s.n_head_kv, s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head, s.n_ff, s.n_vocab,
               s.n_ctx, s.mirrors);
  }
  return kExitOk;
}

int run_synth(SynthCommandOptions& options) {
  if (options.list) return list_shapes();
  if (options.synth.shape.empty() || options.output.empty()) {
    throw UsageError(tr("give --shape NAME and -o FILE (shapes: {0})", "--shape 名前 と -o ファイル を指定してください (形: {0})",
                        model_shape_names()));
  }
  if (find_model_shape(options.synth.shape) == nullptr) {
    throw UsageError(tr("--shape: unknown shape \"{0}\" (known: {1})", "--shape: 不明な形 \"{0}\" です (既知: {1})",
                        options.synth.shape, model_shape_names()));
  }
  if (!find_quant_mix(options.synth.type)) {
    throw UsageError(tr("--type: unknown type \"{0}\" (known: {1})", "--type: 不明な型 \"{0}\" です (既知: {1})",
                        options.synth.type, quant_mix_names()));
  }
  ProgressLine progress("synth", "生成");
  options.synth.progress = [&progress](uint64_t done, uint64_t total) { progress.update(done, total); };
  const SynthReport report = synth_model(options.synth, options.output);
  fmt::print("{}\n", tr("{0}: {1} {2}, {3:.3f} B parameters, {4} tokens ({5} padding), {6:.3f} GB in {7:.1f} s "
                        "({8:.0f} MB/s)",
                        "{0}: {1} {2}、パラメータ {3:.3f} B、トークン {4} 個 (うち埋め草 {5})、{6:.3f} GB、{7:.1f} 秒 "
                        "({8:.0f} MB/秒)",
                        options.output, options.synth.shape, options.synth.type, report.n_params / 1e9,
                        report.vocab_tokens, report.padded_tokens, report.file_bytes / 1e9, report.seconds,
                        report.seconds > 0 ? report.file_bytes / 1e6 / report.seconds : 0.0));
  return kExitOk;
}

}  // namespace

CommandRunner define_synth(CLI::App& command) {
  auto options = std::make_shared<SynthCommandOptions>();
  command.add_option("--shape", options->synth.shape,
                     tr("model shape: {0}", "モデルの形: {0}", model_shape_names()));
  command.add_option("--type", options->synth.type,
                     tr("weight type (default Q4_K_M): {0}", "重みの型 (既定 Q4_K_M): {0}", quant_mix_names()));
  command.add_option("--vocab", options->synth.vocab_path,
                     std::string(pick("GGUF file whose tokenizer.* keys to copy (default: a minimal synthetic vocabulary)",
                                      "tokenizer.* キーをコピーする GGUF ファイル (既定: 最小限の合成語彙)")));
  command.add_option("--seed", options->synth.seed, std::string(pick("random seed (default 1)", "乱数の種 (既定 1)")));
  command.add_option("-o,--output", options->output, std::string(pick("output GGUF file", "出力する GGUF ファイル")));
  command.add_flag("--list", options->list, std::string(pick("list the shapes and exit", "形の一覧を表示して終了")));
  return [options] { return run_synth(*options); };
}

}  // namespace koto::cli
