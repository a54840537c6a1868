// Quantizing a whole GGUF model to another type (`koto quantize`).
//
// Every metadata key is copied (general.file_type is set to the target's number and
// general.quantization_version to 2 when the output is quantized); the tensor
// directory keeps its order. Each tensor's type follows the QuantMix rule
// (koto/quant_mix.h), including its fallback for rows that do not fit the block size;
// one-dimensional tensors become (or stay) F32. A tensor already in its target type
// is copied byte for byte. Sources in F32, F16 or BF16 are quantized directly; sources
// in a quantized type are dequantized first ("requantized": the error adds up, so the
// report flags them). Tensors of types that are not floating point (I32...) are copied.
//
// Work is split by rows over a thread pool; the output is streamed to disk (the
// writer's temporary file is renamed over the destination only when complete), so
// memory use stays at a few slabs per thread, not the model's size.
//
// The error of every quantized tensor is measured on the fly: each quantized row is
// dequantized again and compared with its source: relative RMS error =
// sqrt(sum (x - q)²  /  sum x²).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "koto/quant_mix.h"
#include "koto/tensor_type.h"

namespace koto {

struct QuantizeOptions {
  std::string type;  // a quant_mix name: "Q8_0", "Q4_K_M"...
  int n_threads = 0; // 0: one per physical core
  // Called after each slab with source bytes done and the source's total tensor bytes.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct QuantizedTensor {
  std::string name;
  TensorType from = TensorType::kF32;
  TensorType to = TensorType::kF32;
  TensorType wanted = TensorType::kF32;  // before the fallback; != to when it fell back
  int64_t n_elements = 0;
  int64_t row_length = 0;
  uint64_t bytes = 0;                     // in the output
  bool copied = false;                    // bytes copied unchanged (same type, or not a float type)
  bool requantized = false;               // source was already quantized
  double sum_sq_error = 0.0;              // over all elements (0 when copied)
  double sum_sq_source = 0.0;
  double relative_rms_error() const;      // 0 when the source is all zeros
};

struct QuantizeTypeTotal {
  TensorType type = TensorType::kF32;
  int tensors = 0;
  int64_t n_elements = 0;
  uint64_t bytes = 0;
  double sum_sq_error = 0.0;
  double sum_sq_source = 0.0;
  double relative_rms_error() const;
};

struct QuantizeReport {
  QuantMix mix;
  std::vector<QuantizedTensor> tensors;  // in file order
  uint64_t input_bytes = 0;              // file sizes
  uint64_t output_bytes = 0;
  int threads = 0;
  double seconds = 0.0;
  int fallbacks() const;
  int requantized() const;
  std::vector<QuantizeTypeTotal> totals_by_type() const;  // by output type, in type-id order
  double total_relative_rms_error() const;                // over all quantized tensors
};

// Reads `input`, writes `output`. Throws koto::Error: kInvalidArgument for an unknown
// type (listing the known ones) or output == input; kNotFound/kIo/kCorruptFile/
// kUnsupported from reading the source (a tensor type koto cannot decode); kIo from
// writing.
QuantizeReport quantize_model(const std::string& input, const std::string& output, const QuantizeOptions& options);

}  // namespace koto
