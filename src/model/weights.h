// The weights of a loaded model, as the forward pass uses them. Matrices stay in the
// file's mapping in their stored type; the small vectors (norms, biases) are decoded
// to float32 once at load time.
#pragma once

#include <cstdint>
#include <vector>

#include "koto/tensor_type.h"

namespace koto::model {

// A weight matrix: n_out rows of n_in values of `type`, back to back. The layer
// computes y[r] = dot(row r, x) for an input x of n_in values.
struct Matrix {
  const uint8_t* data = nullptr;  // in the model's mapping
  TensorType type = TensorType::kF32;
  int64_t n_in = 0;       // row length (GGUF ne[0])
  int64_t n_out = 0;      // number of rows (GGUF ne[1])
  int64_t row_bytes = 0;  // bytes of one row

  const uint8_t* row(int64_t r) const { return data + r * row_bytes; }
};

// Shapes: E = n_embd, Q = n_head * head_dim, K = n_head_kv * head_dim, F = n_ff,
// D = head_dim. "[rows][row length]".
struct LayerWeights {
  std::vector<float> attn_norm;  // [E]
  Matrix wq;                     // [Q][E]
  Matrix wk;                     // [K][E]
  Matrix wv;                     // [K][E]
  std::vector<float> bq;         // [Q], qwen2 only (empty otherwise)
  std::vector<float> bk;         // [K], qwen2 only
  std::vector<float> bv;         // [K], qwen2 only
  std::vector<float> q_norm;     // [D], qwen3 only: RMSNorm weight of every q head
  std::vector<float> k_norm;     // [D], qwen3 only
  Matrix wo;                     // [E][Q]
  std::vector<float> ffn_norm;   // [E]
  Matrix w_gate;                 // [F][E]
  Matrix w_up;                   // [F][E]
  Matrix w_down;                 // [E][F]
};

struct Weights {
  Matrix token_embd;               // [n_vocab][E]: row t is the embedding of token t
  std::vector<LayerWeights> layers;
  std::vector<float> output_norm;  // [E]
  Matrix output;                   // [n_vocab][E]: output.weight, or token_embd when tied
  bool tied_output = false;
  // [D/2]: the rotation speed of RoPE pair i, base^(-2i/D) * freq_scale / rope_freqs[i]
  // (rope_freqs.weight, Llama 3.1; 1 when absent), in radians per position.
  std::vector<double> rope_inv_freq;
};

}  // namespace koto::model
