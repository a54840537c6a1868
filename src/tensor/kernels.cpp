// Dispatch: picks the kernel table once and checks arguments before handing the work
// to it.
#include "tensor/kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>
#include <string_view>

#include "koto/error.h"
#include "koto/i18n.h"
#include "tensor/cpu_features.h"
#include "tensor/kernel_table.h"
#include "tensor/repack.h"

namespace koto::kernels {
namespace {

KernelTable build_table(Isa isa) {
  KernelTable table{};
  table.isa = isa;
  add_generic_kernels(table);
  add_q8_generic_kernels(table);
  add_q5_0r_kernels(table);  // before the AVX-512 matmul_q8 entries that wrap it
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    add_avx2_kernels(table);
    add_q8_avx2_kernels(table);
  }
  if (isa == Isa::kAvx512) {
    add_avx512_kernels(table);
    add_q8_avx512_kernels(table);
  }
  return table;
}

Isa best_supported_isa() {
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kGeneric;
}

// KOTO_ISA may only lower the choice: an ISA the CPU lacks falls back to the best one.
Isa choose_isa() {
  const char* requested = std::getenv("KOTO_ISA");
  if (requested != nullptr) {
    const std::string_view name(requested);
    for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
      if (name == isa_name(isa) && isa_supported(isa)) return isa;
    }
  }
  return best_supported_isa();
}

const TypeKernels& kernels_for(TensorType type, int64_t n) {
  const uint32_t id = static_cast<uint32_t>(type);
  const TypeKernels* kernels = id < kTypeSlots ? &active_kernel_table().types[id] : nullptr;
  if (kernels == nullptr || kernels->dot == nullptr) {
    throw Error(ErrorCode::kUnsupported,
                tr("no compute kernels for tensor type {0} (supported: {1})",
                   "テンソル型 {0} の計算カーネルがありません（対応: {1}）", tensor_type_name(type),
                   supported_tensor_type_names()));
  }
  const int64_t block_size = tensor_type_info(type).block_size;
  if (n < 0 || n % block_size != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("row length {0} is not a multiple of the {1} block size {2}",
                   "行の長さ {0} が {1} のブロックサイズ {2} の倍数ではありません", n,
                   tensor_type_name(type), block_size));
  }
  return *kernels;
}

}  // namespace

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return true;
    case Isa::kAvx2:
      return cpu_features().avx2;
    case Isa::kAvx512:
      return cpu_features().avx512;
  }
  return false;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(isa)) isas.push_back(isa);
  }
  return isas;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return "generic";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "generic";
}

const KernelTable& kernel_table(Isa isa) {
  static const KernelTable generic = build_table(Isa::kGeneric);
  static const KernelTable avx2 = build_table(Isa::kAvx2);
  static const KernelTable avx512 = build_table(Isa::kAvx512);
  switch (isa) {
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvx512:
      return avx512;
    case Isa::kGeneric:
      break;
  }
  return generic;
}

const KernelTable& active_kernel_table() {
  static const KernelTable& table = kernel_table(choose_isa());
  return table;
}

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  kernels_for(type, n).dequantize(src, dst, n);
}

float dot_row(TensorType type, const void* row, const float* x, int64_t n) {
  return kernels_for(type, n).dot(row, x, n);
}

void matvec(TensorType type, const void* w, int64_t n, const float* x, float* y, int64_t row_begin,
            int64_t row_end) {
  const TypeKernels& kernels = kernels_for(type, n);
  if (row_end <= row_begin) return;
  const int64_t row_bytes = tensor_row_bytes(type, n);
  kernels.matvec(static_cast<const uint8_t*>(w) + row_begin * row_bytes, row_bytes, n, x, y,
                 row_end - row_begin);
}

Q8Layout q8_layout(TensorType type) {
  switch (type) {
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
    case TensorType::kQ6_K:
      return Q8Layout::kBlocks256;
    default:
      return Q8Layout::kBlocks32;
  }
}

void resize_activations(int64_t n_vectors, int64_t n, Q8Layout layout, Q8Activations& out) {
  const int64_t block = layout == Q8Layout::kBlocks256 ? 256 : 32;
  if (n % block != 0 || n < 0 || n_vectors < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("activation length {0} is not a multiple of {1}",
                   "活性化の長さ {0} が {1} の倍数ではありません", n, block));
  }
  out.n = n;
  out.n_vectors = n_vectors;
  out.layout = layout;
  out.q.resize(static_cast<size_t>(n * n_vectors));
  out.d.resize(static_cast<size_t>(n / block * n_vectors));
  if (layout == Q8Layout::kBlocks256) {
    out.dsum.clear();
    out.sums.resize(static_cast<size_t>(n / 16 * n_vectors));
  } else {
    out.sums.clear();
    out.dsum.resize(static_cast<size_t>(n / 16 * n_vectors));
  }
}

void quantize_activation_vectors(const float* x, int64_t v_begin, int64_t v_end,
                                 Q8Activations& out) {
  const int64_t n = out.n;
  const KernelTable& table = active_kernel_table();
  for (int64_t v = v_begin; v < v_end; ++v) {
    if (out.layout == Q8Layout::kBlocks256) {
      table.quantize_q8_row_256(x + v * n, n, out.q.data() + v * n,
                                out.d.data() + v * (n / 256), out.sums.data() + v * (n / 16));
    } else {
      table.quantize_q8_row(x + v * n, n, out.q.data() + v * n, out.d.data() + v * (n / 32),
                            out.dsum.data() + v * (n / 16));
    }
  }
}

void quantize_activations(const float* x, int64_t n_vectors, int64_t n, Q8Activations& out,
                          Q8Layout layout) {
  resize_activations(n_vectors, n, layout, out);
  quantize_activation_vectors(x, 0, n_vectors, out);
}

bool has_q8_kernels(TensorType type) {
  const uint32_t id = static_cast<uint32_t>(type);
  return id < kTypeSlots && active_kernel_table().types[id].matmul_q8 != nullptr;
}

void matmul_q8(TensorType type, const void* w, const Q8Activations& x, float* y,
               int64_t y_stride, int64_t row_begin, int64_t row_end) {
  const TypeKernels& kernels = kernels_for(type, x.n);
  if (kernels.matmul_q8 == nullptr) {
    throw Error(ErrorCode::kUnsupported,
                tr("no 8-bit activation kernels for tensor type {0}",
                   "テンソル型 {0} の 8 ビット活性化カーネルがありません", tensor_type_name(type)));
  }
  if (x.layout != q8_layout(type)) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("activations for {0} must be quantized in its layout (q8_layout)",
                   "{0} の活性化はその配置 (q8_layout) で量子化してください", tensor_type_name(type)));
  }
  if (row_end <= row_begin || x.n_vectors == 0) return;
  const int64_t row_bytes = tensor_row_bytes(type, x.n);
  const Q8Vectors vectors{x.q.data(), x.d.data(), x.dsum.data(), x.sums.data(), x.n};
  kernels.matmul_q8(static_cast<const uint8_t*>(w) + row_begin * row_bytes, row_bytes, vectors,
                    x.n_vectors, y, y_stride, row_end - row_begin);
}

int64_t exact_vectors(TensorType type) {
  if (!has_q8_kernels(type)) return 1;
  if (active_kernel_table().isa == Isa::kAvx512 && q8_layout(type) == Q8Layout::kBlocks32) return 4;
  return 8;
}

void attention_f16(const AttentionBlock& block) { active_kernel_table().attention_f16(block); }

void floats_to_halves(const float* src, uint16_t* dst, int64_t n) {
  active_kernel_table().floats_to_halves(src, dst, n);
}

void silu_mul(float* gate, const float* up, int64_t n) { active_kernel_table().silu_mul(gate, up, n); }

double int8_peak_ops_per_second(int threads) {
  const Int8PeakFn peak = active_kernel_table().int8_peak;
  threads = std::max(1, threads);
  // About 20 ms per thread and run on a 3 GHz core; best of five runs.
  constexpr int64_t kIterations = 1 << 20;
  double best = 0.0;
  for (int run = 0; run < 5; ++run) {
    std::atomic<int64_t> ops{0};
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 1; t < threads; ++t) workers.emplace_back([&] { ops += peak(kIterations); });
    ops += peak(kIterations);
    for (std::thread& w : workers) w.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 0) best = std::max(best, static_cast<double>(ops.load()) / seconds);
  }
  return best;
}

std::string_view active_isa() { return isa_name(active_kernel_table().isa); }

}  // namespace koto::kernels
