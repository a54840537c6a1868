// qwen2 (Qwen2, Qwen2.5): biases on the q, k and v projections, neox RoPE, and the
// small models tie the output projection to the embeddings.
#include "model/architecture.h"

namespace koto::model {

const Architecture kQwen2Architecture = {
    .name = "qwen2",
    .qkv_bias = true,
    .qk_norm = false,
    .rope_neox = true,
    .output_may_be_tied = true,
};

}  // namespace koto::model
