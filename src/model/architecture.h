// What distinguishes the supported architectures. They share one forward pass
// (transformer.cpp) and llama.cpp's tensor names; an architecture only says which of
// the optional pieces its files carry. Adding an architecture is adding one small
// arch_<name>.cpp with its description and a row in kArchitectures (architecture.cpp).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace koto::model {

struct Architecture {
  std::string_view name;  // general.architecture, also the prefix of its hyperparameter keys
  bool qkv_bias;          // blk.N.attn_{q,k,v}.bias are required (qwen2)
  bool qk_norm;           // blk.N.attn_{q,k}_norm.weight: RMSNorm per head before RoPE (qwen3)
  bool rope_neox;         // RoPE pairs (i, i + d/2) instead of (2i, 2i + 1)
  // output.weight may be absent, the logits then use token_embd.weight (tied embeddings).
  bool output_may_be_tied;
};

extern const Architecture kLlamaArchitecture;
extern const Architecture kQwen2Architecture;
extern const Architecture kQwen3Architecture;

// The architecture called `name`, or nullptr.
const Architecture* find_architecture(std::string_view name);
// "llama, qwen2, qwen3", for error messages.
std::string supported_architecture_names();

// Tensor names (llama.cpp's), so that the loader and its messages agree.
std::string layer_tensor_name(int layer, std::string_view suffix);  // "blk.3.attn_q.weight"

}  // namespace koto::model
