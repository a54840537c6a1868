#include "koto/tensor_type.h"

#include <array>
#include <cctype>

namespace koto {
namespace {

using T = TensorType;

// Block geometry from the published block layouts. Sizes of the unsupported types are
// kept so a file using them can still be checked for consistency and described.
constexpr std::array<TensorTypeInfo, 33> kTypes = {{
    {T::kF32, "F32", 1, 4, true, false},
    {T::kF16, "F16", 1, 2, true, false},
    {T::kQ4_0, "Q4_0", 32, 18, true, false},
    {T::kQ4_1, "Q4_1", 32, 20, true, false},
    {T::kQ5_0, "Q5_0", 32, 22, true, false},
    {T::kQ5_1, "Q5_1", 32, 24, true, false},
    {T::kQ8_0, "Q8_0", 32, 34, true, false},
    {T::kQ8_1, "Q8_1", 32, 36, false, false},
    {T::kQ2_K, "Q2_K", 256, 84, true, false},
    {T::kQ3_K, "Q3_K", 256, 110, true, false},
    {T::kQ4_K, "Q4_K", 256, 144, true, false},
    {T::kQ5_K, "Q5_K", 256, 176, true, false},
    {T::kQ6_K, "Q6_K", 256, 210, true, false},
    {T::kQ8_K, "Q8_K", 256, 292, false, false},
    {T::kIQ2_XXS, "IQ2_XXS", 256, 66, false, false},
    {T::kIQ2_XS, "IQ2_XS", 256, 74, false, false},
    {T::kIQ3_XXS, "IQ3_XXS", 256, 98, false, false},
    {T::kIQ1_S, "IQ1_S", 256, 50, false, false},
    {T::kIQ4_NL, "IQ4_NL", 32, 18, true, false},
    {T::kIQ3_S, "IQ3_S", 256, 110, false, false},
    {T::kIQ2_S, "IQ2_S", 256, 82, false, false},
    {T::kIQ4_XS, "IQ4_XS", 256, 136, true, false},
    {T::kI8, "I8", 1, 1, false, false},
    {T::kI16, "I16", 1, 2, false, false},
    {T::kI32, "I32", 1, 4, false, false},
    {T::kI64, "I64", 1, 8, false, false},
    {T::kF64, "F64", 1, 8, false, false},
    {T::kIQ1_M, "IQ1_M", 256, 56, false, false},
    {T::kBF16, "BF16", 1, 2, true, false},
    {T::kTQ1_0, "TQ1_0", 256, 54, false, false},
    {T::kTQ2_0, "TQ2_0", 256, 66, false, false},
    {T::kMXFP4, "MXFP4", 32, 17, false, false},
    // Same bytes per 32 values as Q5_0, in another order (tensor/repack.h).
    {T::kQ5_0R, "Q5_0R", 32, 22, true, true},
}};

}  // namespace

std::optional<TensorTypeInfo> tensor_type_info(uint32_t type_id) {
  for (const TensorTypeInfo& info : kTypes) {
    if (static_cast<uint32_t>(info.type) == type_id && !info.internal) return info;
  }
  return std::nullopt;
}

const TensorTypeInfo& tensor_type_info(TensorType type) {
  for (const TensorTypeInfo& info : kTypes) {
    if (info.type == type) return info;
  }
  return kTypes[0];  // unreachable for a valid enum value
}

std::string_view tensor_type_name(TensorType type) { return tensor_type_info(type).name; }

std::optional<TensorType> tensor_type_from_name(std::string_view name) {
  for (const TensorTypeInfo& info : kTypes) {
    if (info.internal || info.name.size() != name.size()) continue;
    bool equal = true;
    for (size_t i = 0; i < name.size() && equal; ++i) {
      equal = std::toupper(static_cast<unsigned char>(name[i])) == info.name[i];
    }
    if (equal) return info.type;
  }
  return std::nullopt;
}

std::string_view supported_tensor_type_names() {
  return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS";
}

}  // namespace koto
