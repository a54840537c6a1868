// Synthetic models of real shapes: complete GGUF files (metadata, vocabulary, every
// tensor the loader reads) whose weights are random. They load, run and cost exactly
// what the real model costs — same tensor shapes, types and bytes, so the same speed
// and memory — while the text they produce is meaningless. Used to benchmark models
// we cannot ship (`koto synth`, then `koto bench`).
//
// Weights:
//   - matrices: random values N(0, 0.02²) with one value in 1000 an outlier of 4-10×,
//     quantized to the tensor's type by quantize_row. To write gigabytes quickly a
//     pool of 8192 quantized blocks (units of 32 values for F16/BF16) is made once per
//     type and every row is assembled from pool blocks picked at random, so the file
//     holds valid blocks with finite f16 scales and no two rows look alike;
//   - norm weights (attn_norm, ffn_norm, output_norm, qwen3's q/k norms): F32,
//     1 + N(0, 0.02²); qwen2's q/k/v biases: F32, N(0, 0.02²).
// Tensor types follow the QuantMix rule (koto/quant_mix.h).
//
// Vocabulary:
//   - from a file (SynthOptions::vocab_path): every tokenizer.* key is copied. When
//     the file has fewer tokens than the shape's n_vocab (Qwen's tokenizer has 151669
//     tokens, the embedding 151936 rows), the list is padded with unused tokens
//     "[PAD<id>]" (token type 5, score 0), as the published GGUF files are; a file
//     with more tokens than the shape's n_vocab is refused (kInvalidArgument).
//   - otherwise a minimal SentencePiece-style vocabulary of n_vocab tokens: <unk>,
//     <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then filler pieces "▁a", "▁b", …
//
// All functions are thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "koto/quant_mix.h"
#include "koto/tensor_type.h"

namespace koto {

// One real model's shape. Numbers are the published config.json values.
struct ModelShape {
  std::string_view name;          // "llama2-7b"
  std::string_view architecture;  // "llama", "qwen2", "qwen3"
  std::string_view mirrors;       // the real model(s) of this shape
  int32_t n_embd;
  int32_t n_layer;
  int32_t n_head;
  int32_t n_head_kv;
  int32_t head_dim;               // 0: n_embd / n_head (no key_length key written)
  int32_t n_ff;
  int32_t n_vocab;
  int32_t n_ctx;                  // context_length
  float rms_eps;
  float rope_freq_base;
  bool tied_embeddings;           // no output.weight
};

// The table of shapes, in a fixed order.
std::span<const ModelShape> model_shapes();
// nullptr when unknown.
const ModelShape* find_model_shape(std::string_view name);
// "llama2-7b, llama3-8b, ...", for messages.
std::string model_shape_names();

// One tensor of a synthetic model, in file order.
struct SynthTensor {
  enum class Kind { kMatrix, kNorm, kBias };
  std::string name;            // llama.cpp's names: "blk.3.attn_v.weight"
  std::vector<int64_t> shape;  // shape[0] = row length
  TensorType type;             // after the QuantMix rule and its fallback
  Kind kind;
  uint64_t bytes() const;
};

// The tensors synth_model writes for `shape` in `mix` (no data: sizes and types only).
std::vector<SynthTensor> synth_tensors(const ModelShape& shape, const QuantMix& mix);

struct SynthOptions {
  std::string shape;       // a model_shapes() name
  std::string type = "Q4_K_M";  // a quant_mix name
  std::string vocab_path;  // "" → minimal synthetic vocabulary
  uint64_t seed = 1;
  // Called after each chunk written (a few MB) with bytes done and the file's total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct SynthReport {
  uint64_t file_bytes = 0;
  int64_t n_params = 0;
  int32_t n_vocab = 0;       // rows of token_embd
  int32_t vocab_tokens = 0;  // tokens in the vocabulary as written
  int32_t padded_tokens = 0; // "[PAD…]" tokens added to reach n_vocab
  double seconds = 0.0;
};

// Writes the model to `path` (atomically, see GgufWriter). Throws koto::Error:
// kInvalidArgument for an unknown shape or type (listing the known ones) or a
// vocabulary that does not fit the shape; kNotFound/kCorruptFile for the vocabulary
// file; kIo when the file cannot be written.
SynthReport synth_model(const SynthOptions& options, const std::string& path);

}  // namespace koto
