// Quantizers: float32 rows into each supported tensor type, the inverse of the
// dequantizers in kernels.h. Used by `koto quantize` and `koto synth`.
//
// The block layouts are fixed by the format; how values are rounded into them is ours:
// each (sub-)block's scale (and min) is chosen by a small search over candidate scales
// followed by a least-squares refit, minimising the squared error of the block. Pure
// functions, thread-safe; callers split large tensors by rows across threads.
#pragma once

#include <cstdint>

#include "koto/tensor_type.h"

namespace koto {

// Writes tensor_row_bytes(type, n) bytes to dst. n must be a multiple of the type's
// block size (kInvalidArgument otherwise); kUnsupported for types koto cannot write.
void quantize_row(TensorType type, const float* src, void* dst, int64_t n);

}  // namespace koto
