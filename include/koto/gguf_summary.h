// What a GGUF model is, in facts a person or a front end can show: sizes, tensor types,
// hyperparameters, vocabulary, chat template and the memory a run would need. Built
// from an open GgufFile without touching tensor data; `koto info` prints it, a server
// can return the same JSON. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "koto/gguf.h"
#include "koto/tensor_type.h"

namespace koto {

// Memory a run needs, in bytes. An estimate: weights are used in place from the
// mapping; the KV cache is F16; scratch is the per-token activation buffers.
struct MemoryEstimate {
  int64_t n_ctx = 0;            // the context length the estimate is for
  uint64_t weights = 0;         // sum of tensor data bytes (mapped, not copied)
  uint64_t kv_cache = 0;        // n_layer × n_ctx × n_head_kv × (key_length + value_length) × 2
  uint64_t scratch = 0;         // 4 × (6·n_embd + 2·n_ff + n_vocab + n_head·n_ctx)
  uint64_t total() const { return weights + kv_cache + scratch; }
};

// The shape facts the estimate uses (0 when unknown).
struct ModelDimensions {
  int64_t n_layer = 0;
  int64_t n_embd = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;   // defaults to n_head
  int64_t key_length = 0;  // per head; defaults to n_embd / n_head
  int64_t value_length = 0;
  int64_t n_vocab = 0;
  int64_t context_length = 0;  // trained context
};

// Reads <arch>.block_count, embedding_length, ... from the file. Values that are
// absent stay 0 (or take the documented defaults); a key with an unreadable type
// throws kCorruptFile naming it.
ModelDimensions model_dimensions(const GgufFile& file);

// n_ctx <= 0 means the default: min(context_length, 4096), or 4096 when unknown.
MemoryEstimate estimate_memory(const ModelDimensions& dims, uint64_t weight_bytes, int64_t n_ctx);

struct TensorTypeCount {
  TensorType type;
  int64_t tensors = 0;
  uint64_t bytes = 0;
};

// Chat template families recognised by a marker in the template text.
std::string_view chat_template_family(std::string_view chat_template);  // "llama2", "chatml", "llama3", "gemma" or ""

struct GgufSummary {
  std::string path;
  uint64_t file_size = 0;
  uint32_t version = 0;
  uint64_t alignment = 0;
  uint64_t n_tensors = 0;
  uint64_t n_keys = 0;
  std::string name;          // general.name
  std::string architecture;  // general.architecture
  int64_t parameters = 0;    // sum of tensor elements
  std::vector<TensorTypeCount> types;  // by type id, only types present
  ModelDimensions dims;
  std::optional<double> rope_freq_base;
  std::optional<double> rms_norm_epsilon;
  std::string tokenizer_model;  // tokenizer.ggml.model
  std::string tokenizer_pre;    // tokenizer.ggml.pre
  std::optional<int64_t> bos_id;
  std::optional<int64_t> eos_id;
  bool has_chat_template = false;
  std::string chat_template_first_line;
  std::string chat_template_family;
  MemoryEstimate memory;
};

// n_ctx as for estimate_memory(). Throws kCorruptFile when a key it reads has a type
// that cannot be read as expected.
GgufSummary summarize_gguf(const GgufFile& file, int64_t n_ctx = 0);

// The summary as one JSON object (UTF-8, compact).
std::string gguf_summary_json(const GgufSummary& summary);

// "292.8 K", "124.4 M", "1.54 B".
std::string format_parameter_count(int64_t n);
// "512 bytes", "12.5 KiB", "1.1 MiB", "4.25 GiB".
std::string format_byte_size(uint64_t n);

}  // namespace koto
