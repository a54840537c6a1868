// `koto info MODEL [--ctx N] [--json]`: what a GGUF model is and what it needs. The
// facts come from the library (koto/gguf_summary.h); this file only prints them.
#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "koto/model_fit.h"
#include <nlohmann/json.hpp>
#include "cli/model_path.h"
#include "koto/gguf.h"
#include "koto/gguf_summary.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "koto/text.h"

namespace koto::cli {
namespace {

struct InfoOptions {
  std::string model;
  int64_t n_ctx = 0;  // 0: the library's default
  bool json = false;
  bool fit = false;
};

constexpr size_t kTemplateLineBytes = 72;

// One "label  value" line; fmt pads by display width, so Japanese labels line up too.
void row(std::string_view en, std::string_view ja, const std::string& value) {
  fmt::print("{:<22}{}\n", pick(en, ja), value);
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

template <typename T>
std::string or_dash(const std::optional<T>& v) {
  return v ? fmt::format("{}", *v) : "-";
}

// Floats stored as f32 print as their shortest f32 form (1e-05, not 9.99999974e-06).
std::string real(const std::optional<double>& v) {
  return v ? fmt::format("{:g}", static_cast<float>(*v)) : "-";
}

std::string dim(int64_t v) { return v > 0 ? fmt::format("{}", v) : "-"; }

void print_text(const GgufSummary& s) {
  row("file", "ファイル", fmt::format("{} ({})", s.path, format_byte_size(s.file_size)));
  row("format", "形式",
      tr("GGUF v{0}, alignment {1}, {2} tensors, {3} metadata keys", "GGUF v{0}、整列 {1}、テンソル {2} 個、メタデータ {3} 個",
         s.version, s.alignment, s.n_tensors, s.n_keys));
  row("name", "名前", or_dash(s.name));
  row("architecture", "アーキテクチャ", or_dash(s.architecture));
  row("parameters", "パラメータ数", fmt::format("{} ({})", format_parameter_count(s.parameters), s.parameters));
  for (size_t i = 0; i < s.types.size(); ++i) {
    const TensorTypeCount& c = s.types[i];
    const std::string value = tr("{0:<7} {1:>5} tensors  {2}", "{0:<7} {1:>5} 個  {2}", tensor_type_name(c.type), c.tensors,
                                 format_byte_size(c.bytes));
    if (i == 0) {
      row("tensor types", "テンソルの型", value);
    } else {
      row("", "", value);
    }
  }

  fmt::print("{}\n", pick("hyperparameters", "ハイパーパラメータ"));
  const ModelDimensions& d = s.dims;
  row("  context length", "  コンテキスト長", dim(d.context_length));
  row("  embedding length", "  埋め込み次元", dim(d.n_embd));
  row("  layers", "  層数", dim(d.n_layer));
  row("  feed-forward length", "  FFN 次元", dim(d.n_ff));
  row("  attention heads", "  アテンションヘッド", tr("{0} (KV {1})", "{0} (KV {1})", dim(d.n_head), dim(d.n_head_kv)));
  row("  key length", "  キー長", dim(d.key_length));
  row("  rope freq base", "  RoPE 基底周波数", real(s.rope_freq_base));
  row("  RMS norm epsilon", "  RMS 正規化 ε", real(s.rms_norm_epsilon));

  row("vocabulary", "語彙",
      tr("{0}, pre {1}, {2} tokens, BOS {3}, EOS {4}", "{0}、pre {1}、トークン {2} 個、BOS {3}、EOS {4}",
         or_dash(s.tokenizer_model), or_dash(s.tokenizer_pre), dim(d.n_vocab), or_dash(s.bos_id), or_dash(s.eos_id)));
  if (!s.has_chat_template) {
    row("chat template", "チャットテンプレート", std::string(pick("none", "なし")));
  } else {
    std::string line = s.chat_template_first_line;
    if (line.size() > kTemplateLineBytes) {
      line.resize(utf8_prefix(line, kTemplateLineBytes).size());
      line += "…";
    }
    row("chat template", "チャットテンプレート",
        fmt::format("{} — {}", s.chat_template_family.empty() ? std::string(pick("unknown family", "形式不明")) : s.chat_template_family,
                    line));
  }
  const MemoryEstimate& m = s.memory;
  const std::string memory_label = tr("memory (n_ctx {0})", "メモリ (n_ctx {0})", m.n_ctx);
  row(memory_label, memory_label,
      tr("{0} = weights {1} + KV cache {2} + scratch {3}", "{0} = 重み {1} + KV キャッシュ {2} + 作業領域 {3}",
         format_byte_size(m.total()), format_byte_size(m.weights), format_byte_size(m.kv_cache), format_byte_size(m.scratch)));
}

}  // namespace

CommandRunner define_info(CLI::App& command) {
  auto options = std::make_shared<InfoOptions>();
  command.add_option("model", options->model, std::string(pick("GGUF model file", "GGUF モデルファイル")))->required();
  command
      .add_option("-c,--ctx", options->n_ctx,
                  std::string(pick("context length for the memory estimate (default: min(trained context, 4096))",
                                   "メモリ見積もりのコンテキスト長 (既定: 学習時の長さと 4096 の小さい方)")))
      ->check(CLI::PositiveNumber);
  command.add_flag("--json", options->json, std::string(pick("print one JSON object", "JSON オブジェクトで出力")));
  command.add_flag("--fit", options->fit,
                   std::string(pick("only say whether it fits in memory now, and what to do if not",
                                    "今のメモリに収まるか、収まらない場合の対処だけを表示")));
  return [options] {
    const GgufFile file = GgufFile::open(resolve_model_path(options->model));
    if (options->fit) {
      const ModelFitSummary fit = summarize_fit(file, options->n_ctx);
      if (options->json) {
        fmt::print("{}\n", nlohmann::json{{"context", fit.context},
                                           {"weights_bytes", fit.weights_bytes},
                                           {"kv_bytes", fit.kv_bytes},
                                           {"scratch_bytes", fit.scratch_bytes},
                                           {"needed_bytes", fit.needed_bytes},
                                           {"available_bytes", fit.available_bytes},
                                           {"fits", fit.fits},
                                           {"context_that_fits", fit.context_that_fits}}
                                .dump());
      } else {
        fmt::print("{}", format_fit(fit));
      }
      return fit.fits ? kExitOk : kExitFailure;
    }
    const GgufSummary summary = summarize_gguf(file, options->n_ctx);
    if (options->json) {
      fmt::print("{}\n", gguf_summary_json(summary));
    } else {
      print_text(summary);
      // The disk a Q5_0 model's repacked weights take (Model::load's cache), when there are any.
      std::error_code ec;
      const std::string cache = repack_cache_path(file);
      const uintmax_t cache_bytes = std::filesystem::file_size(cache, ec);
      if (!ec) {
        row("repacked weights", "並べ替えた重み",
            tr("{0} ({1}; made at the first load for these kernels, removed with koto rm)",
               "{0} ({1}。初回の読み込みでこのカーネル向けに作成、koto rm で削除)", cache,
               format_byte_size(static_cast<uint64_t>(cache_bytes))));
      }
    }
    return kExitOk;
  };
}

}  // namespace koto::cli
