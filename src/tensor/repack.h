// Q5_0R: Q5_0 weights in the order koto's AVX-512 kernels read them, the same 22 bytes
// per 32 values (so rows keep their size and offsets). A row's whole groups of 16 blocks
// (512 values) are repacked; the blocks past the last whole group stay plain Q5_0.
//
// A group of 16 blocks, 352 bytes:
//   [0, 32)    the 16 f16 scales d, block j at bytes 2j
//   [32, 96)   8 u64 masks of fifth bits: bit 4j + i of mask k = the fifth bit of value
//              4k + i of block j (bits 4k..4k+3 of its qh)
//   [96, 352)  4 runs of 64 code bytes: byte 64c + 4j + i = qs byte 4c + i of block j
//              (value 4c + i in the low nibble, 16 + 4c + i in the high one)
// so one 64-byte load gives 128 codes of 16 blocks, lane j holding block j: with the
// activations laid out to match once per call, eight vpdpbusd leave each block's dot
// product whole in its lane, with no gathers, inserts or lane shuffles per group
// (matvec_q8_avx512_blocks.cpp), and the prefill tiles decode a group with one lane
// permute per register (matmul_q8_avx512_tiles.cpp). Results are bit for bit those
// of Q5_0.
//
// Plain declarations only (see the ODR rule in kernel_table.h).
#pragma once

#include <cstdint>

#include "tensor/kernel_table.h"

namespace koto::kernels {

inline constexpr int kRepackGroupBlocks = 16;
inline constexpr int kRepackGroupBytes = 352;  // 16 blocks of 22 bytes
inline constexpr int kRepackMasksAt = 32;
inline constexpr int kRepackCodesAt = 96;

// One row of n values (n a multiple of 32): Q5_0 blocks at src into Q5_0R at dst (the
// same number of bytes; src and dst must not overlap).
void repack_q5_0_row(const uint8_t* src, uint8_t* dst, int64_t n);
// The inverse: a Q5_0R row back into its Q5_0 blocks, byte for byte.
void unpack_q5_0r_row(const uint8_t* src, uint8_t* dst, int64_t n);

// The Q5_0R entries of a table that has its Q5_0 entries: each unpacks and calls the
// Q5_0 kernel of the same ISA (correct everywhere, fast nowhere); the AVX-512 files
// replace matmul_q8 with kernels that read Q5_0R directly.
void add_q5_0r_kernels(KernelTable& table);

}  // namespace koto::kernels
