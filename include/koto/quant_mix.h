// Quantization targets ("mixes"): which tensor type each tensor of a model gets when a
// whole model is quantized (`koto quantize`) or synthesized (`koto synth`).
//
// A target is either a plain tensor type (any type koto can quantize to: F16, BF16,
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS) or one of the mixes
// Q4_K_M and Q5_K_M. The per-tensor rule, applied in this order:
//
//   1. Tensors with one dimension (norms, biases, rope_freqs) stay F32.
//   2. The output projection — output.weight, or token_embd.weight when there is no
//      output.weight (tied embeddings) — gets Q6_K when the target has fewer bits
//      than Q6_K (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q5_K, IQ4_NL, IQ4_XS and both mixes);
//      F16, BF16, Q8_0 and Q6_K keep their own type. (Logits are the most
//      quantization-sensitive product; the common llama.cpp files do the same.)
//   3. Mixes only: blk.N.attn_v.weight and blk.N.ffn_down.weight get Q6_K in the
//      layers where more_bits_layer(N, n_layer) holds — the first and last eighth of
//      the layers and every third layer in between (N - n_layer/8) % 3 == 2; about
//      half of the layers (16 of 32 for a 7B). Every other matrix gets the base type:
//      Q4_K for Q4_K_M, Q5_K for Q5_K_M.
//   4. Every other matrix gets the target type.
//   5. Fallback: when a tensor's row length is not a multiple of the chosen type's
//      block size, the type is replaced by the nearest legacy type of similar size
//      (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, Q2_K/Q3_K/IQ4_XS → IQ4_NL); if that
//      does not fit either (row length not a multiple of 32), F16. Qwen2.5-0.5B's
//      n_embd of 896 is the usual case.
//
// With this rule a Llama-2-7B comes to 4.08 GB in Q4_K_M and 4.65 GB in Q5_0, as the
// published files do. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "koto/tensor_type.h"

namespace koto {

struct QuantMix {
  std::string name;            // "Q4_K_M", "Q8_0", "F16"
  TensorType base;             // type of most matrices
  bool mixed = false;          // rule 3 applies (Q4_K_M, Q5_K_M)
  bool output_q6_k = false;    // rule 2 applies
  uint32_t file_type = 0;      // general.file_type (llama.cpp's ftype numbering)
};

// The target called `name` (case-insensitive: "q4_k_m", "Q8_0"), or nullopt when koto
// cannot produce it.
std::optional<QuantMix> find_quant_mix(std::string_view name);
// "F16, BF16, Q4_0, ..., Q4_K_M, Q5_K_M", for messages.
std::string quant_mix_names();

// Rule 3's layer choice.
bool more_bits_layer(int layer, int n_layer);

// The type a tensor gets under rules 1-4 (before the fallback). `shape` as in
// GgufTensor (shape[0] = row length); `n_layer` is the model's block count;
// `output_tied` says the model has no output.weight.
TensorType quant_mix_tensor_type(const QuantMix& mix, std::string_view tensor_name,
                                 const std::vector<int64_t>& shape, int n_layer, bool output_tied);

// Rule 5: `wanted` when row_length is a multiple of its block size, else the fallback.
TensorType fallback_tensor_type(TensorType wanted, int64_t row_length);

// The layer number of "blk.N.…", or -1.
int tensor_layer_index(std::string_view tensor_name);

// A name for a general.file_type value ("Q4_K_M"), "" when unknown.
std::string_view file_type_name(uint32_t file_type);

}  // namespace koto
