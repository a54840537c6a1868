// The kernel tables behind koto/kernels: one row of function pointers per tensor
// type, one table per instruction set. kernels.cpp picks the active table once; tests
// and benchmarks use kernel_table(Isa) to run a particular ISA against the scalar
// reference.
//
// ODR rule for this folder: kernels_avx2.cpp and kernels_avx512.cpp are compiled with
// wider -m flags, so they keep all their code in anonymous namespaces and export only
// their add_*_kernels function. Headers they include (this one, quant_blocks.h) define
// plain data and declarations only, never inline functions or templates, so no
// AVX-512 copy of a shared function can be linked into the baseline code.
#pragma once

#include <cstdint>

namespace koto::kernels {

enum class Isa { kGeneric, kAvx2, kAvx512 };

// n values of `row` (n a multiple of the type's block size) decoded into dst.
using DequantizeRowFn = void (*)(const void* row, float* dst, int64_t n);
// sum_i row[i] * x[i] over n values.
using DotRowFn = float (*)(const void* row, const float* x, int64_t n);
// y[r] = dot(row r, x) for r in [0, n_rows), rows row_bytes apart starting at w.
using MatvecFn = void (*)(const void* w, int64_t row_bytes, int64_t n, const float* x, float* y,
                          int64_t n_rows);

// Vectors quantized to 8 bits (see Q8Activations in kernels.h), as plain pointers, in
// the layout the weight type reads (q8_layout in kernels.h):
//   kBlocks32:  vector v at q + v * n, d + v * n / 32, dsum + v * n / 16 (sums unused)
//   kBlocks256: vector v at q + v * n, d + v * n / 256, sums + v * n / 16 (dsum unused)
struct Q8Vectors {
  const int8_t* q;       // [n_vectors][n]
  const float* d;        // [n_vectors][n / block]: x ~= d * q per block of 32 or 256
  const float* dsum;     // kBlocks32: [n_vectors][n / 16], d * sum of q over each 16 values
  const int16_t* sums;   // kBlocks256: [n_vectors][n / 16], sum of q over each 16 values
  int64_t n;             // values per vector, a multiple of the weight type's block size
};
// y[v * y_stride + r] = dot(row r, vector v) for r in [0, n_rows), v in [0, n_vectors):
// integer dot products of the weights' integer codes with the 8-bit vectors, scaled in
// float per group of 32 values (kBlocks32) or per super-block of 256 (kBlocks256).
using MatmulQ8Fn = void (*)(const void* w, int64_t row_bytes, const Q8Vectors& x,
                            int64_t n_vectors, float* y, int64_t y_stride, int64_t n_rows);

// Trivial types on purpose (no default member initializers, hence no inline
// constructors); value-initialize them: KernelTable table{}.
struct TypeKernels {
  DequantizeRowFn dequantize;
  DotRowFn dot;
  MatvecFn matvec;
  MatmulQ8Fn matmul_q8;  // null for the float types (F32, F16, BF16)
};

// Indexed by the ggml type id; null entries are types without kernels.
inline constexpr uint32_t kTypeSlots = 40;

// One activation vector of n floats into the Q8Vectors form (see quantize_activations_row
// below for the exact arithmetic every implementation must reproduce bit for bit).
using QuantizeQ8RowFn = void (*)(const float* x, int64_t n, int8_t* q, float* d, float* dsum);
using QuantizeQ8Row256Fn = void (*)(const float* x, int64_t n, int8_t* q, float* d,
                                    int16_t* sums);

// gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i].
using SiluMulFn = void (*)(float* gate, const float* up, int64_t n);
// A dependency-free run of the ISA's fastest 8-bit multiply-add instruction (VNNI
// vpdpbusd on AVX-512) on one thread; returns the operations done (2 per multiply-add),
// so ops / seconds is the core's integer peak the matrix products are measured against.
using Int8PeakFn = int64_t (*)(int64_t iterations);

// Causal attention of a block of query vectors over one KV head's cache (F16 or Q8_0): rows r at
// positions first_position + r, each with n_heads query heads that read this KV head;
// row r sees positions 0 .. first_position + r. out = softmax(scale * q K^T) V per query.
// With a Q8_0 cache each query is quantized like the matrix products' activations
// (quantize_activations_row: per 32 values d = max |q| / 127, code = round(q * 127 /
// max)) and a score is the blocks' exact integer dot products, each
// times its two scales; a tile's weights of each value block (softmax weight times the
// block's scale) are quantized to 15 bits of their largest and summed in integers
// (AVX-512; the plain loops of the other ISAs sum the same codes in float).
struct AttentionBlock {
  const float* q;          // query (r, j) at q + r * q_row_stride + j * head_dim
  int64_t q_row_stride;
  float* out;              // output (r, j) at out + r * out_row_stride + j * head_dim
  int64_t out_row_stride;
  int32_t n_rows;
  int32_t n_heads;
  int32_t head_dim;
  int32_t first_position;
  // F16: values rows [n_ctx][head_dim]; keys rows like the values, or (keys_tiled) a
  // tile of 64 positions at a time, transposed: [n_ctx / 64 rounded up][head_dim][64].
  // Q8_0 (q8_0 true; blocks of 32 values, int8 codes and an F16 scale): keys and values
  // always in tiles of 64 positions (64 * head_dim * 34 / 32 bytes each): keys the codes
  // + 128 as bytes [head_dim / 4][64][4], values the codes [32][head_dim][2] (positions
  // 2p and 2p + 1 side by side), each then the blocks' F16 scales [head_dim / 32][64].
  const uint8_t* keys;
  const uint8_t* values;
  int64_t n_ctx;
  float scale;
  bool q8_0;
  bool keys_tiled;
};
using AttentionF16Fn = void (*)(const AttentionBlock& block);
// dst[i] = binary16 of src[i], rounded to nearest even (NaN stays NaN, quiet).
using FloatsToHalvesFn = void (*)(const float* src, uint16_t* dst, int64_t n);

struct KernelTable {
  Isa isa;
  TypeKernels types[kTypeSlots];
  QuantizeQ8RowFn quantize_q8_row;         // kBlocks32
  QuantizeQ8Row256Fn quantize_q8_row_256;  // kBlocks256
  SiluMulFn silu_mul;
  Int8PeakFn int8_peak;
  AttentionF16Fn attention_f16;
  FloatsToHalvesFn floats_to_halves;
};

// Each ISA file fills in the entries it implements, over what is already there (the
// SIMD tables start as a copy of the generic one).
void add_generic_kernels(KernelTable& table);
void add_avx2_kernels(KernelTable& table);
void add_avx512_kernels(KernelTable& table);
// The matmul_q8 entries (matmul_q8_generic.cpp, matmul_q8_avx2.cpp, matmul_q8_avx512.cpp).
void add_q8_generic_kernels(KernelTable& table);
void add_q8_avx2_kernels(KernelTable& table);
void add_q8_avx512_kernels(KernelTable& table);
// AVX-512 specialisations over the matmul_q8 entries add_q8_avx512_kernels put there
// first: each keeps the entry it replaces and calls it for the cases it does not take.
//   matmul_q8_avx512_tiles.cpp: several vectors (prefill), decoded row tiles
//   matvec_q8_avx512_blocks.cpp: one vector (decode), the 32-value block types
//   matvec_q8_avx512_k.cpp: one vector (decode), the K-quants
void add_q8_avx512_tile_kernels(KernelTable& table);
void add_q8_avx512_block_decode_kernels(KernelTable& table);
void add_q8_avx512_k_decode_kernels(KernelTable& table);

// The scalar reference of the activation quantizers (the generic table's entries): one
// vector of n floats (n a multiple of 32) into Q8Vectors form. Per block of 32:
// amax = max |x| (fmax, so NaNs are skipped), d = amax / 127, q = nearbyint(x * (127 /
// amax)) (0 when amax is 0), dsum = d * (sum of q) per 16 values. The SIMD versions
// give the same bytes and floats: prefill spends several % of its time here.
void quantize_activations_row(const float* x, int64_t n, int8_t* q, float* d, float* dsum);
// The same in blocks of 256 (n a multiple of 256): one scale d per block, integer sums
// of q per 16 values.
void quantize_activations_row_256(const float* x, int64_t n, int8_t* q, float* d, int16_t* sums);

// Whether this CPU (and OS) can run the kernels of `isa`.
bool isa_supported(Isa isa);
// "generic", "avx2" or "avx512".
const char* isa_name(Isa isa);

// The complete table of `isa`, built on first use (thread-safe). The caller checks
// isa_supported first; calling a SIMD kernel the CPU lacks raises SIGILL.
const KernelTable& kernel_table(Isa isa);
// The table chosen at start-up: the best supported ISA, or KOTO_ISA when it names a
// supported one.
const KernelTable& active_kernel_table();

}  // namespace koto::kernels
