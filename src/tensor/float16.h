// Scalar conversions between float32 and the two 16-bit float formats of GGUF files:
// IEEE-754 binary16 ("F16": 1 sign, 5 exponent, 10 mantissa bits) and bfloat16
// ("BF16": the upper 16 bits of a float32). Widening is exact for every input,
// subnormals, infinities and NaNs included; narrowing rounds to nearest, ties to even.
// Pure functions, usable from any thread and in constant expressions.
//
// Do not include this header from the SIMD translation units (kernels_avx2.cpp,
// kernels_avx512.cpp): their copies of these inline functions would be compiled for
// the wider ISA and the linker could pick one of them for the baseline code.
#pragma once

#include <bit>
#include <cstdint>

namespace koto {

inline constexpr float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F) {  // infinity or NaN; the payload is kept
    return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  }
  if (exponent != 0) {
    return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }
  if (mantissa == 0) return std::bit_cast<float>(sign);
  // Subnormal: shift the leading one into the implicit-bit position; every binary16
  // subnormal is a normal float32.
  uint32_t shift = 0;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    ++shift;
  }
  return std::bit_cast<float>(sign | ((113 - shift) << 23) | ((mantissa & 0x3FFu) << 13));
}

inline constexpr uint16_t fp32_to_fp16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) {  // NaN: keep it quiet and keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs_bits >> 13) & 0x3FFu));
  }
  if (abs_bits >= 0x47800000u) {  // >= 65536 rounds to infinity at any mantissa
    return static_cast<uint16_t>(sign | 0x7C00u);
  }
  if (abs_bits < 0x38800000u) {               // below the smallest normal binary16 (2^-14)
    if (abs_bits < 0x33000000u) return sign;  // <= 2^-25 rounds to zero (tie goes to even 0)
    const uint32_t exponent = abs_bits >> 23;
    const uint32_t mantissa = (abs_bits & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // 14..24: result unit is 2^-24
    uint32_t result = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (result & 1))) ++result;
    return static_cast<uint16_t>(sign | result);
  }
  // Normal: rebias the exponent, round the 13 dropped bits; a carry out of the
  // mantissa correctly bumps the exponent (up to infinity).
  uint32_t result = ((abs_bits >> 13) - (112u << 10));
  const uint32_t rest = abs_bits & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1))) ++result;
  return static_cast<uint16_t>(sign | result);
}

inline constexpr float bf16_to_fp32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

inline constexpr uint16_t fp32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: truncating could turn it into infinity
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

}  // namespace koto
