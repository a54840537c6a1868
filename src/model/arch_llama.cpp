// llama (Llama 1-3, Mistral, TinyLlama, stories260K...): no biases, "normal" RoPE on
// adjacent pairs. Llama 3.1 files may carry rope_freqs.weight (handled for every
// architecture by the loader). Some conversions leave out output.weight.
#include "model/architecture.h"

namespace koto::model {

const Architecture kLlamaArchitecture = {
    .name = "llama",
    .qkv_bias = false,
    .qk_norm = false,
    .rope_neox = false,
    .output_may_be_tied = true,
};

}  // namespace koto::model
