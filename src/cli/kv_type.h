// `--kv-type f16|q8_0` of run, chat, serve and bench: the KV cache's element type.
#pragma once

#include <string>

#include "koto/error.h"
#include "koto/i18n.h"
#include "koto/tensor_type.h"

namespace koto::cli {

inline const char* kv_type_help_en() {
  return "KV cache type: f16, or q8_0 (about half the memory of f16, logits within the quantized tolerance)";
}
inline const char* kv_type_help_ja() {
  return "KV キャッシュの型: f16、または q8_0 (f16 の約半分のメモリ、ロジットは量子化の許容誤差内)";
}

inline TensorType parse_kv_type(const std::string& name) {
  if (name == "f16" || name == "F16") return TensorType::kF16;
  if (name == "q8_0" || name == "Q8_0") return TensorType::kQ8_0;
  throw Error(ErrorCode::kInvalidArgument,
              tr("unknown KV cache type \"{0}\" (use f16 or q8_0)", "KV キャッシュの型「{0}」は不明です (f16 か q8_0)", name));
}

}  // namespace koto::cli
