#include "model/loaded_model.h"

#include <algorithm>
#include <new>
#include <utility>

#include "koto/error.h"
#include "koto/i18n.h"
#include "model/transformer.h"

namespace koto::model {
namespace {

constexpr int32_t kDefaultContextLimit = 4096;
constexpr int32_t kMaxContext = 1 << 24;

}  // namespace

LoadedModel::LoadedModel(GgufFile file, const Architecture& architecture, ModelParams params, Weights weights,
                         std::unique_ptr<Tokenizer> tokenizer, int n_threads, std::unique_ptr<MappedFile> repacked,
                         RepackReport repack_report)
    : file_(std::move(file)),
      repacked_(std::move(repacked)),
      repack_report_(std::move(repack_report)),
      architecture_(architecture),
      params_(std::move(params)),
      weights_(std::move(weights)),
      tokenizer_(std::move(tokenizer)),
      pool_(n_threads) {}

LoadedModel::~LoadedModel() = default;

void LoadedModel::eval_batch(std::span<BatchEntry> entries) const {
  const std::lock_guard<std::mutex> lock(scratch_mutex_);
  if (scratch_ == nullptr) scratch_ = std::make_unique<ForwardScratch>(params_);
  eval_transformer_batch(*this, *scratch_, entries);
}

uint64_t LoadedModel::session_bytes(int32_t n_ctx) const {
  return transformer_session_bytes(params_, n_ctx, SessionOptions{}.kv_type, pool_.size());
}

std::unique_ptr<Session> LoadedModel::new_session(const SessionOptions& options) const {
  const int32_t n_ctx = options.n_ctx > 0 ? options.n_ctx : std::min(params_.n_ctx_train, kDefaultContextLimit);
  if (n_ctx > kMaxContext) {
    throw Error(ErrorCode::kInvalidArgument, tr("context of {0} positions is too large (at most {1})",
                                                "コンテキスト長 {0} は大きすぎます (最大 {1})", n_ctx, kMaxContext));
  }
  if (options.kv_type != TensorType::kF16 && options.kv_type != TensorType::kF32 &&
      options.kv_type != TensorType::kQ8_0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("KV cache type {0} is not supported (supported: F16, Q8_0, F32)",
                   "KV キャッシュの型 {0} には対応していません (対応: F16, Q8_0, F32)", tensor_type_name(options.kv_type)));
  }
  if (options.kv_type == TensorType::kQ8_0 && params_.head_dim % 32 != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("a Q8_0 KV cache needs a head size that is a multiple of 32 (this model's is {0}); use F16",
                   "Q8_0 の KV キャッシュにはヘッドの次元が 32 の倍数である必要があります (このモデルは {0})。F16 を使ってください",
                   params_.head_dim));
  }
  try {
    return new_transformer_session(*this, n_ctx, options.kv_type);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kOutOfMemory,
                tr("not enough memory for a context of {0} positions (needs about {1} MiB); use a smaller context",
                   "コンテキスト長 {0} に必要なメモリ (約 {1} MiB) が足りません。コンテキストを小さくしてください", n_ctx,
                   transformer_session_bytes(params_, n_ctx, options.kv_type, pool_.size()) >> 20));
  }
}

}  // namespace koto::model
