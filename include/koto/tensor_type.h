// Tensor element types, numbered as in the GGUF format (the ggml type ids), with
// their block geometry. A quantized row of n values is n / block_size consecutive
// blocks of block_bytes each; a tensor is its rows back to back.
//
// Types koto can read and compute with are "supported"; the others are known by
// name only, so files that use them can be described (koto info) and refused with a
// clear message. All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace koto {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  // koto's own: Q5_0 repacked for its kernels (tensor/repack.h), never read from a
  // file; the id is one ggml no longer uses, and tensor_type_info(uint32_t) skips it.
  kQ5_0R = 4,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct TensorTypeInfo {
  TensorType type;
  std::string_view name;  // as llama.cpp prints it: "Q4_K", "BF16"
  int64_t block_size;     // values per block
  int64_t block_bytes;    // bytes per block
  bool supported;         // koto can dequantize it and compute with it
  bool internal;          // koto's own layout (kQ5_0R): never in a file, never parsed from a name
};

// The description of a type id, or nullopt when the id is not a ggml type at all.
std::optional<TensorTypeInfo> tensor_type_info(uint32_t type_id);
const TensorTypeInfo& tensor_type_info(TensorType type);

std::string_view tensor_type_name(TensorType type);
// Parses a name such as "q4_k" or "Q4_K" (case-insensitive).
std::optional<TensorType> tensor_type_from_name(std::string_view name);

// Bytes of n values of `type`; n must be a multiple of the block size.
inline int64_t tensor_row_bytes(TensorType type, int64_t n) {
  const TensorTypeInfo& info = tensor_type_info(type);
  return n / info.block_size * info.block_bytes;
}

// The supported types, comma-separated, for error messages.
std::string_view supported_tensor_type_names();

}  // namespace koto
