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
#include <vector>

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

// ---- Integer kernels: weights times activations quantized to 8 bits ----
//
// For quantized weight types, matmul_q8 multiplies the weights' integer codes with
// activations rounded to 8 bits (VNNI dot products where the CPU has them). Accuracy
// contract: the result is the exact dot product of the dequantized weights with the
// quantized activations (each x[i] replaced by d * q[i], |error| <= d / 2 with d = max|x|
// / 127 over its block of 32) up to float rounding (relative 1e-5 of sum |w_i x_i|).
// That is the "8-bit activations" numerics of common engines; callers who need float
// activations use matvec.

// Activation vectors quantized to 8 bits, in blocks of 32 values. Reused across calls
// to keep its buffers; not thread-safe to fill while it is being read.
struct Q8Activations {
  int64_t n = 0;           // values per vector, a multiple of 32
  int64_t n_vectors = 0;
  std::vector<int8_t> q;   // [n_vectors][n]
  std::vector<float> d;    // [n_vectors][n / 32]: x ~= d * q in each block
  std::vector<float> dsum; // [n_vectors][n / 16]: d * (sum of q) over each 16 values
};

// Quantizes x ([n_vectors][n], row-major) into out; n must be a multiple of 32.
void quantize_activations(const float* x, int64_t n_vectors, int64_t n, Q8Activations& out);

// Whether matmul_q8 supports `type` (the block-quantized types; not F32, F16, BF16).
bool has_q8_kernels(TensorType type);

// y[v * y_stride + (r - row_begin)] = dot(W row r, vector v of x) for r in
// [row_begin, row_end) and every vector v of x. W holds rows of x.n values of `type`.
// Threads split work by giving disjoint row ranges.
void matmul_q8(TensorType type, const void* w, const Q8Activations& x, float* y,
               int64_t y_stride, int64_t row_begin, int64_t row_end);

// The instruction set of the active kernels: "avx512", "avx2" or "generic".
std::string_view active_isa();

}  // namespace koto::kernels
