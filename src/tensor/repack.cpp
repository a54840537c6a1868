#include "tensor/repack.h"

#include <cstring>
#include <vector>

#include "koto/tensor_type.h"
#include "tensor/quant_blocks.h"

namespace koto::kernels {
namespace {

constexpr int kBlockBytes = sizeof(BlockQ5_0);
static_assert(kRepackGroupBlocks * kBlockBytes == kRepackGroupBytes);

void repack_group(const uint8_t* src, uint8_t* dst) {
  uint64_t masks[8] = {};
  for (int j = 0; j < kRepackGroupBlocks; ++j) {
    const auto& block = *reinterpret_cast<const BlockQ5_0*>(src + j * kBlockBytes);
    std::memcpy(dst + 2 * j, block.d, 2);
    uint32_t qh;
    std::memcpy(&qh, block.qh, sizeof(qh));
    for (int k = 0; k < 8; ++k) masks[k] |= static_cast<uint64_t>((qh >> (4 * k)) & 15u) << (4 * j);
    for (int c = 0; c < 4; ++c) std::memcpy(dst + kRepackCodesAt + 64 * c + 4 * j, block.qs + 4 * c, 4);
  }
  std::memcpy(dst + kRepackMasksAt, masks, sizeof(masks));
}

void unpack_group(const uint8_t* src, uint8_t* dst) {
  uint64_t masks[8];
  std::memcpy(masks, src + kRepackMasksAt, sizeof(masks));
  for (int j = 0; j < kRepackGroupBlocks; ++j) {
    auto& block = *reinterpret_cast<BlockQ5_0*>(dst + j * kBlockBytes);
    std::memcpy(block.d, src + 2 * j, 2);
    uint32_t qh = 0;
    for (int k = 0; k < 8; ++k) qh |= static_cast<uint32_t>((masks[k] >> (4 * j)) & 15u) << (4 * k);
    std::memcpy(block.qh, &qh, sizeof(qh));
    for (int c = 0; c < 4; ++c) std::memcpy(block.qs + 4 * c, src + kRepackCodesAt + 64 * c + 4 * j, 4);
  }
}

// The whole groups of a row of n values, and the bytes of the plain blocks after them.
int64_t whole_groups(int64_t n) { return n / (32 * kRepackGroupBlocks); }
int64_t tail_bytes(int64_t n) { return (n / 32 - whole_groups(n) * kRepackGroupBlocks) * kBlockBytes; }

// ---- the unpacking entries, per ISA: they call that ISA's Q5_0 kernels ----

template <Isa kIsa>
const TypeKernels& q5_0() {
  return kernel_table(kIsa).types[static_cast<uint32_t>(TensorType::kQ5_0)];
}

template <Isa kIsa>
void dequantize_q5_0r(const void* row, float* dst, int64_t n) {
  const auto* src = static_cast<const uint8_t*>(row);
  uint8_t blocks[kRepackGroupBytes];
  const int64_t groups = whole_groups(n);
  for (int64_t g = 0; g < groups; ++g) {
    unpack_group(src + g * kRepackGroupBytes, blocks);
    q5_0<kIsa>().dequantize(blocks, dst + 512 * g, 512);
  }
  if (n > 512 * groups) q5_0<kIsa>().dequantize(src + groups * kRepackGroupBytes, dst + 512 * groups, n - 512 * groups);
}

template <Isa kIsa>
float dot_q5_0r(const void* row, const float* x, int64_t n) {
  const auto* src = static_cast<const uint8_t*>(row);
  uint8_t blocks[kRepackGroupBytes];
  const int64_t groups = whole_groups(n);
  float sum = 0.0f;
  for (int64_t g = 0; g < groups; ++g) {
    unpack_group(src + g * kRepackGroupBytes, blocks);
    sum += q5_0<kIsa>().dot(blocks, x + 512 * g, 512);
  }
  if (n > 512 * groups) sum += q5_0<kIsa>().dot(src + groups * kRepackGroupBytes, x + 512 * groups, n - 512 * groups);
  return sum;
}

template <Isa kIsa>
void matvec_q5_0r(const void* w, int64_t row_bytes, int64_t n, const float* x, float* y, int64_t n_rows) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = dot_q5_0r<kIsa>(static_cast<const uint8_t*>(w) + r * row_bytes, x, n);
}

template <Isa kIsa>
void matmul_q8_q5_0r(const void* w, int64_t row_bytes, const Q8Vectors& x, int64_t n_vectors, float* y,
                     int64_t y_stride, int64_t n_rows) {
  thread_local std::vector<uint8_t> row;
  row.resize(static_cast<size_t>(row_bytes));
  for (int64_t r = 0; r < n_rows; ++r) {
    unpack_q5_0r_row(static_cast<const uint8_t*>(w) + r * row_bytes, row.data(), x.n);
    q5_0<kIsa>().matmul_q8(row.data(), row_bytes, x, n_vectors, y + r, y_stride, 1);
  }
}

template <Isa kIsa>
TypeKernels unpacking_kernels() {
  return {&dequantize_q5_0r<kIsa>, &dot_q5_0r<kIsa>, &matvec_q5_0r<kIsa>, &matmul_q8_q5_0r<kIsa>};
}

}  // namespace

void repack_q5_0_row(const uint8_t* src, uint8_t* dst, int64_t n) {
  const int64_t groups = whole_groups(n);
  for (int64_t g = 0; g < groups; ++g) repack_group(src + g * kRepackGroupBytes, dst + g * kRepackGroupBytes);
  std::memcpy(dst + groups * kRepackGroupBytes, src + groups * kRepackGroupBytes, static_cast<size_t>(tail_bytes(n)));
}

void unpack_q5_0r_row(const uint8_t* src, uint8_t* dst, int64_t n) {
  const int64_t groups = whole_groups(n);
  for (int64_t g = 0; g < groups; ++g) unpack_group(src + g * kRepackGroupBytes, dst + g * kRepackGroupBytes);
  std::memcpy(dst + groups * kRepackGroupBytes, src + groups * kRepackGroupBytes, static_cast<size_t>(tail_bytes(n)));
}

void add_q5_0r_kernels(KernelTable& table) {
  TypeKernels& slot = table.types[static_cast<uint32_t>(TensorType::kQ5_0R)];
  switch (table.isa) {
    case Isa::kGeneric: slot = unpacking_kernels<Isa::kGeneric>(); break;
    case Isa::kAvx2: slot = unpacking_kernels<Isa::kAvx2>(); break;
    case Isa::kAvx512: slot = unpacking_kernels<Isa::kAvx512>(); break;
  }
}

}  // namespace koto::kernels
