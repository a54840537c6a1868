// The activations of one forward pass of up to kMaxBatch rows (transformer.cpp). One
// per model, lent to one pass at a time (LoadedModel::eval_batch), so sessions carry
// only their KV cache and logits.
#pragma once

#include <vector>

#include "koto/model.h"

namespace koto::model {

// Tokens per forward pass; longer inputs are run in passes of this many rows.
inline constexpr int32_t kMaxBatch = 64;

// Row-major [row][...]; sizes: E = n_embd, Q = n_head * head_dim, K = n_head_kv *
// head_dim, F = n_ff, D = head_dim.
struct ForwardScratch {
  explicit ForwardScratch(const ModelParams& params);

  std::vector<float> x;     // [B][E]  the residual stream
  std::vector<float> h;     // [B][E]  normalized input of the current block
  std::vector<float> q;     // [B][Q]
  std::vector<float> k;     // [B][K]
  std::vector<float> v;     // [B][K]
  std::vector<float> att;   // [B][Q]  attention output, heads concatenated
  std::vector<float> proj;  // [B][E]  a block's output before it is added to x
  std::vector<float> gate;  // [B][F]
  std::vector<float> up;    // [B][F]
  std::vector<float> cos;   // [B][D/2] RoPE rotation of each row's position
  std::vector<float> sin;   // [B][D/2]
  std::vector<float> logits;  // [rows that want logits][n_vocab], before they go to their sessions
};

}  // namespace koto::model
