// The forward pass shared by every supported architecture, and the Session that runs
// it with a KV cache.
#pragma once

#include <cstdint>
#include <memory>

#include <span>

#include "koto/model.h"
#include "model/forward_scratch.h"
#include "model/loaded_model.h"

namespace koto::model {

// A session over `model` (which must outlive it) with room for n_ctx positions.
// kv_type is kF16 or kF32 (the caller checked).
std::unique_ptr<Session> new_transformer_session(const LoadedModel& model, int32_t n_ctx, TensorType kv_type);

// Model::eval_batch for transformer sessions, with `scratch` (which the caller holds
// exclusively for the call).
void eval_transformer_batch(const LoadedModel& model, ForwardScratch& scratch, std::span<BatchEntry> entries);

// The bytes new_transformer_session allocates for n_ctx positions (KV cache and
// scratch), approximately.
uint64_t transformer_session_bytes(const ModelParams& params, int32_t n_ctx, TensorType kv_type, int n_threads);

}  // namespace koto::model
