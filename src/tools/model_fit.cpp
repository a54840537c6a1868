#include "koto/model_fit.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "koto/gguf_summary.h"
#include "koto/i18n.h"
#include "koto/run_stats.h"

namespace koto {
namespace {

std::string gb(uint64_t bytes) { return fmt::format("{:.2f} GB", static_cast<double>(bytes) / 1e9); }

uint64_t read_number(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

uint64_t memory_available_now() {
  uint64_t available = available_memory_bytes();
  const uint64_t limit = read_number("/sys/fs/cgroup/memory.max");
  if (limit > 0) {
    const uint64_t used = read_number("/sys/fs/cgroup/memory.current");
    const uint64_t room = limit > used ? limit - used : 0;
    if (available == 0 || room < available) available = room;
  }
  return available;
}

ModelFitSummary summarize_fit(const GgufFile& file, int64_t n_ctx, uint64_t available_bytes) {
  const GgufSummary summary = summarize_gguf(file, n_ctx);
  ModelFitSummary fit;
  fit.architecture = summary.architecture;
  fit.parameters = summary.parameters;
  uint64_t most = 0;
  for (const TensorTypeCount& t : summary.types) {
    if (t.bytes > most) {
      most = t.bytes;
      fit.quantization = std::string(tensor_type_name(t.type));
    }
  }
  fit.context = summary.memory.n_ctx;
  fit.weights_bytes = summary.memory.weights;
  fit.kv_bytes = summary.memory.kv_cache;
  fit.scratch_bytes = summary.memory.scratch;
  fit.needed_bytes = summary.memory.total();
  fit.available_bytes = available_bytes;
  fit.fits = available_bytes == 0 || fit.needed_bytes <= available_bytes;
  if (!fit.fits) {
    for (int64_t c = fit.context / 2; c >= 256; c /= 2) {
      if (estimate_memory(summary.dims, summary.memory.weights, c).total() <= available_bytes) {
        fit.context_that_fits = c;
        break;
      }
    }
  }
  return fit;
}

std::string format_fit(const ModelFitSummary& f) {
  std::string out = tr("memory for context {0}: weights {1} (mapped) + KV cache {2} + scratch {3} = {4}\n",
                       "コンテキスト {0} に必要なメモリ: 重み {1} (マップ) + KV キャッシュ {2} + 作業領域 {3} = {4}\n", f.context,
                       gb(f.weights_bytes), gb(f.kv_bytes), gb(f.scratch_bytes), gb(f.needed_bytes));
  if (f.available_bytes == 0) {
    out += pick("available now: unknown\n", "現在の空き: 不明\n");
    return out;
  }
  out += tr("available now: {0} — {1}\n", "現在の空き: {0} — {1}\n", gb(f.available_bytes),
            f.fits ? std::string(pick("it fits", "収まります")) : std::string(pick("it does NOT fit", "収まりません")));
  if (!f.fits) {
    if (f.context_that_fits > 0) {
      out += tr("way out: a context of {0} fits (-c {0}), or a smaller quantization of the same model\n",
                "対処: コンテキスト {0} なら収まります (-c {0})。または同じモデルのより小さい量子化を使ってください\n", f.context_that_fits);
    } else {
      out += tr("way out: the weights alone need {0}; use a smaller quantization or a smaller model, or free memory\n",
                "対処: 重みだけで {0} 必要です。より小さい量子化か小さいモデルを使うか、メモリを空けてください\n", gb(f.weights_bytes));
    }
  }
  return out;
}

std::string format_fit_line(const GgufFile& file, int64_t n_ctx) {
  const ModelFitSummary f = summarize_fit(file, n_ctx);
  if (f.available_bytes == 0) {
    return tr("needs about {0} (context {1}); available memory unknown\n", "必要なメモリ 約 {0} (コンテキスト {1})。空きメモリは不明\n",
              gb(f.needed_bytes), f.context);
  }
  return f.fits ? tr("fits: needs {0} of {1} available (context {2})\n", "収まります: 空き {1} のうち {0} を使用 (コンテキスト {2})\n",
                     gb(f.needed_bytes), gb(f.available_bytes), f.context)
                : tr("does NOT fit: needs {0}, {1} available (context {2}){3}\n", "収まりません: {0} 必要、空きは {1} (コンテキスト {2}){3}\n",
                     gb(f.needed_bytes), gb(f.available_bytes), f.context,
                     f.context_that_fits > 0 ? tr("; -c {0} fits", "。-c {0} なら収まります", f.context_that_fits) : std::string());
}

}  // namespace koto
