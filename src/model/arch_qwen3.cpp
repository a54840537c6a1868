// qwen3: no biases, but an RMSNorm over every q and k head before RoPE; neox RoPE;
// head_dim comes from attention.key_length and may differ from n_embd / n_head.
#include "model/architecture.h"

namespace koto::model {

const Architecture kQwen3Architecture = {
    .name = "qwen3",
    .qkv_bias = false,
    .qk_norm = true,
    .rope_neox = true,
    .output_may_be_tied = true,
};

}  // namespace koto::model
