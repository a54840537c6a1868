// Compute kernels on tensor rows, for every supported TensorType. Weights are read in
// place (from the model's mapping): blocks are decoded in registers, never expanded
// into float copies of whole tensors.
//
// Each kernel has a scalar reference (kernels_generic.cpp) and SIMD variants
// (kernels_avx2.cpp, kernels_avx512.cpp); one set is chosen once at start-up from the
// CPU's features (override with KOTO_ISA=generic|avx2|avx512 for tests and
// benchmarks). All functions are thread-safe; they only read their inputs.
#pragma once

#include <cstdint>
#include <string_view>

#include "koto/tensor_type.h"

namespace koto::kernels {

// Decodes n values of `type` (n a multiple of the block size) from src into dst.
void dequantize_row(TensorType type, const void* src, float* dst, int64_t n);

// Returns sum_i row[i] * x[i] over n values; `row` is in `type`, x is float32.
float dot_row(TensorType type, const void* row, const float* x, int64_t n);

// y[r - row_begin] = dot(W row r, x) for r in [row_begin, row_end). W holds rows of n
// values of `type` back to back. Threads split work by giving disjoint row ranges.
void matvec(TensorType type, const void* w, int64_t n, const float* x, float* y,
            int64_t row_begin, int64_t row_end);

// The instruction set of the active kernels: "avx512", "avx2" or "generic".
std::string_view active_isa();

}  // namespace koto::kernels
