#include "koto/memory_check.h"

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_summary.h"
#include "koto/i18n.h"
#include "koto/run_stats.h"

namespace koto {

MemoryFit check_memory(const Model& model, int32_t n_ctx) { return check_memory(model, n_ctx, available_memory_bytes()); }

MemoryFit check_memory(const Model& model, int32_t n_ctx, uint64_t available_bytes) {
  MemoryFit fit;
  fit.available_bytes = available_bytes;
  fit.weights_bytes = model.file().file_size();
  fit.session_bytes = model.session_bytes(n_ctx);
  if (available_bytes == 0) return fit;  // unknown: do not guess
  fit.fits = fit.weights_bytes + fit.session_bytes <= available_bytes;
  if (fit.fits) return fit;
  for (int32_t c = n_ctx / 2; c >= 256; c /= 2) {
    if (fit.weights_bytes + model.session_bytes(c) <= available_bytes) {
      fit.suggested_n_ctx = c;
      break;
    }
  }
  return fit;
}

void require_memory(const Model& model, int32_t n_ctx) {
  const MemoryFit fit = check_memory(model, n_ctx);
  if (fit.fits) return;
  const std::string need = tr("needs {0} ({1} weights + {2} for a context of {3} tokens) but {4} is available",
                              "必要量 {0} (重み {1} + コンテキスト {3} トークン分 {2}) に対して空きは {4} です",
                              format_byte_size(fit.weights_bytes + fit.session_bytes), format_byte_size(fit.weights_bytes),
                              format_byte_size(fit.session_bytes), n_ctx, format_byte_size(fit.available_bytes));
  if (fit.suggested_n_ctx > 0) {
    throw Error(ErrorCode::kOutOfMemory, tr("not enough memory: {0} — try a smaller context: -c {1}",
                                            "メモリが足りません: {0}。コンテキストを小さくしてください: -c {1}", need,
                                            fit.suggested_n_ctx));
  }
  throw Error(ErrorCode::kOutOfMemory,
              tr("not enough memory: {0} — the model does not fit even with a small context; close other programs "
                 "or use a smaller (more quantized) model",
                 "メモリが足りません: {0}。小さいコンテキストでも入りません。他のプログラムを閉じるか、より小さい "
                 "(量子化の強い) モデルを使ってください",
                 need));
}

}  // namespace koto
