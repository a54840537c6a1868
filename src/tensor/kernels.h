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
// / 127 over its activation block) up to float rounding (relative 1e-5 of sum |w_i x_i|).
// The block is 32 values for the 32-value types and 256 values for the K-quants read
// in the kBlocks256 layout (one scale per super-block keeps their sums integer). That
// is the "8-bit activations" numerics of common engines; callers who need float
// activations use matvec.

// How a weight type wants its activations laid out (see Q8Vectors in kernel_table.h).
enum class Q8Layout { kBlocks32, kBlocks256 };

// Activation vectors quantized to 8 bits. Reused across calls to keep its buffers; not
// thread-safe to fill while it is being read.
struct Q8Activations {
  int64_t n = 0;           // values per vector, a multiple of the block
  int64_t n_vectors = 0;
  Q8Layout layout = Q8Layout::kBlocks32;
  std::vector<int8_t> q;   // [n_vectors][n]
  std::vector<float> d;    // [n_vectors][n / block]: x ~= d * q in each block of 32 or 256
  std::vector<float> dsum; // kBlocks32: [n_vectors][n / 16], d * (sum of q) per 16 values
  std::vector<int16_t> sums;  // kBlocks256: [n_vectors][n / 16], sum of q per 16 values
};

// The layout matmul_q8 reads for `type` (kBlocks32 for types without integer kernels).
Q8Layout q8_layout(TensorType type);

// Quantizes x ([n_vectors][n], row-major) into out; n must be a multiple of the block
// (32 or 256), else kInvalidArgument.
void quantize_activations(const float* x, int64_t n_vectors, int64_t n, Q8Activations& out,
                          Q8Layout layout = Q8Layout::kBlocks32);
// The same in two steps, so threads can quantize disjoint ranges of vectors: size `out`
// for n_vectors vectors of n values (throws like quantize_activations), then fill
// vectors [v_begin, v_end) from x (x points at vector 0).
void resize_activations(int64_t n_vectors, int64_t n, Q8Layout layout, Q8Activations& out);
void quantize_activation_vectors(const float* x, int64_t v_begin, int64_t v_end,
                                 Q8Activations& out);

// Whether matmul_q8 supports `type` (the block-quantized types; not F32, F16, BF16).
bool has_q8_kernels(TensorType type);

// y[v * y_stride + (r - row_begin)] = dot(W row r, vector v of x) for r in
// [row_begin, row_end) and every vector v of x. W holds rows of x.n values of `type`.
// Threads split work by giving disjoint row ranges. x must be in q8_layout(type), else
// kInvalidArgument.
void matmul_q8(TensorType type, const void* w, const Q8Activations& x, float* y,
               int64_t y_stride, int64_t row_begin, int64_t row_end);

// Causal attention of a block of query rows of one sequence over one KV head's F16
// cache, tiled with an online softmax (see AttentionBlock in kernel_table.h). A query's
// result does not depend on the other rows of the block.
struct AttentionBlock;
void attention_f16(const AttentionBlock& block);

// dst[i] = binary16 of src[i], round to nearest even (the same bits as fp32_to_fp16).
void floats_to_halves(const float* src, uint16_t* dst, int64_t n);

// gate[i] = silu(gate[i]) * up[i] (SwiGLU's activation); SIMD versions within 2e-7
// relative of the scalar std::exp reference, plus one rounding of the product.
void silu_mul(float* gate, const float* up, int64_t n);

// Operations per second (2 per 8-bit multiply-add) the active ISA's integer
// multiply-add instruction reaches on `threads` threads at once, best of a few short
// runs: the peak matrix-product throughput is measured against (`koto bench --profile`).
double int8_peak_ops_per_second(int threads);

// The most vectors one matmul_q8 call on `type` takes with each vector's results
// bit-identical to a call with that vector alone, for the active kernels: 4 for the
// 32-value block types on AVX-512 (more go to the prefill tile kernels, which sum in
// another order), 8 otherwise (tested up to 8). 1 for types without integer kernels.
int64_t exact_vectors(TensorType type);

// The instruction set of the active kernels: "avx512", "avx2" or "generic".
std::string_view active_isa();

// The instruction sets this CPU runs (isa_supported in kernel_table.h), generic first:
// tests run each of them against the scalar reference.
enum class Isa;
std::vector<Isa> supported_isas();

}  // namespace koto::kernels
