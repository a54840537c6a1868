#include "tensor/cpu_features.h"

namespace koto::kernels {
namespace {

CpuFeatures detect() {
  CpuFeatures features{};
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's detection reads CPUID and checks XCR0 for the AVX and AVX-512 state, so
  // these are false on an OS that does not save zmm registers.
  __builtin_cpu_init();
  features.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("f16c");
  features.avx512 = features.avx2 && __builtin_cpu_supports("avx512f") &&
                    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
  features.avx512_bf16 = features.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
  return features;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace koto::kernels
