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

// Trivial types on purpose (no default member initializers, hence no inline
// constructors); value-initialize them: KernelTable table{}.
struct TypeKernels {
  DequantizeRowFn dequantize;
  DotRowFn dot;
  MatvecFn matvec;
};

// Indexed by the ggml type id; null entries are types without kernels.
inline constexpr uint32_t kTypeSlots = 40;

struct KernelTable {
  Isa isa;
  TypeKernels types[kTypeSlots];
};

// Each ISA file fills in the entries it implements, over what is already there (the
// SIMD tables start as a copy of the generic one).
void add_generic_kernels(KernelTable& table);
void add_avx2_kernels(KernelTable& table);
void add_avx512_kernels(KernelTable& table);

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
