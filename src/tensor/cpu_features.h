// What the CPU this process runs on can execute, as far as the kernels care. Detected
// once (thread-safe) from CPUID; the OS's support for saving the wider registers
// (XGETBV) is part of the answer, so a feature reported here is safe to use.
#pragma once

namespace koto::kernels {

struct CpuFeatures {
  bool avx2;    // with FMA and F16C: what kernels_avx2.cpp is compiled for
  bool avx512;  // F, BW, VL, DQ and VNNI: what kernels_avx512.cpp needs
  bool avx512_bf16;
};

const CpuFeatures& cpu_features();

}  // namespace koto::kernels
