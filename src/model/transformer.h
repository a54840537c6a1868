// The forward pass shared by every supported architecture, and the Session that runs
// it with a KV cache.
#pragma once

#include <cstdint>
#include <memory>

#include "koto/model.h"
#include "model/loaded_model.h"

namespace koto::model {

// Tokens per forward pass; longer inputs to Session::eval are run in slices of this.
inline constexpr int32_t kMaxBatch = 64;

// A session over `model` (which must outlive it) with room for n_ctx positions.
// kv_type is kF16 or kF32 (the caller checked).
std::unique_ptr<Session> new_transformer_session(const LoadedModel& model, int32_t n_ctx, TensorType kv_type);

// The bytes new_transformer_session allocates for n_ctx positions (KV cache and
// scratch), approximately.
uint64_t transformer_session_bytes(const ModelParams& params, int32_t n_ctx, TensorType kv_type, int n_threads);

}  // namespace koto::model
