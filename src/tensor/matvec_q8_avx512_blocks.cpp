// (placeholder: filled in by the kernel work of issue 4)
#include "tensor/kernel_table.h"

namespace koto::kernels {

void add_q8_avx512_block_decode_kernels(KernelTable& table) { (void)table; }

}  // namespace koto::kernels
