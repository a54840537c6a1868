#include "koto/quant_mix.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace koto {
namespace {

struct MixRow {
  std::string_view name;
  TensorType base;
  bool mixed;
  bool output_q6_k;
  uint32_t file_type;  // llama.cpp's LLAMA_FTYPE_* numbers
};

// Every target koto can write. Plain K types take the "_S" file type number.
constexpr MixRow kMixes[] = {
    {"F32", TensorType::kF32, false, false, 0},
    {"F16", TensorType::kF16, false, false, 1},
    {"BF16", TensorType::kBF16, false, false, 32},
    {"Q4_0", TensorType::kQ4_0, false, true, 2},
    {"Q4_1", TensorType::kQ4_1, false, true, 3},
    {"Q5_0", TensorType::kQ5_0, false, true, 8},
    {"Q5_1", TensorType::kQ5_1, false, true, 9},
    {"Q8_0", TensorType::kQ8_0, false, false, 7},
    {"Q2_K", TensorType::kQ2_K, false, true, 10},
    {"Q3_K", TensorType::kQ3_K, false, true, 11},
    {"Q4_K", TensorType::kQ4_K, false, true, 14},
    {"Q5_K", TensorType::kQ5_K, false, true, 16},
    {"Q6_K", TensorType::kQ6_K, false, false, 18},
    {"IQ4_NL", TensorType::kIQ4_NL, false, true, 25},
    {"IQ4_XS", TensorType::kIQ4_XS, false, true, 30},
    {"Q4_K_M", TensorType::kQ4_K, true, true, 15},
    {"Q5_K_M", TensorType::kQ5_K, true, true, 17},
};

struct FileTypeName {
  uint32_t id;
  std::string_view name;
};
constexpr FileTypeName kFileTypeNames[] = {
    {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},    {8, "Q5_0"},
    {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"},
    {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},   {25, "IQ4_NL"}, {30, "IQ4_XS"},
    {32, "BF16"},
};

bool same_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::optional<QuantMix> find_quant_mix(std::string_view name) {
  for (const MixRow& row : kMixes) {
    if (same_ignoring_case(row.name, name)) {
      return QuantMix{std::string(row.name), row.base, row.mixed, row.output_q6_k, row.file_type};
    }
  }
  return std::nullopt;
}

std::string quant_mix_names() {
  std::string names;
  for (const MixRow& row : kMixes) {
    if (!names.empty()) names += ", ";
    names += row.name;
  }
  return names;
}

bool more_bits_layer(int layer, int n_layer) {
  const int eighth = n_layer / 8;
  return layer < eighth || layer >= 7 * n_layer / 8 || (layer - eighth) % 3 == 2;
}

int tensor_layer_index(std::string_view tensor_name) {
  if (tensor_name.substr(0, 4) != "blk.") return -1;
  int layer = -1;
  const char* begin = tensor_name.data() + 4;
  const char* end = tensor_name.data() + tensor_name.size();
  const auto [ptr, ec] = std::from_chars(begin, end, layer);
  if (ec != std::errc() || ptr == end || *ptr != '.') return -1;
  return layer;
}

TensorType quant_mix_tensor_type(const QuantMix& mix, std::string_view tensor_name, const std::vector<int64_t>& shape,
                                 int n_layer, bool output_tied) {
  if (shape.size() < 2) return TensorType::kF32;
  const bool is_output = tensor_name == "output.weight" || (output_tied && tensor_name == "token_embd.weight");
  if (is_output) return mix.output_q6_k ? TensorType::kQ6_K : mix.base;
  if (mix.mixed && (ends_with(tensor_name, ".attn_v.weight") || ends_with(tensor_name, ".ffn_down.weight"))) {
    const int layer = tensor_layer_index(tensor_name);
    if (layer >= 0 && more_bits_layer(layer, n_layer)) return TensorType::kQ6_K;
  }
  return mix.base;
}

TensorType fallback_tensor_type(TensorType wanted, int64_t row_length) {
  auto fits = [row_length](TensorType t) { return row_length % tensor_type_info(t).block_size == 0; };
  if (fits(wanted)) return wanted;
  TensorType legacy = TensorType::kF16;
  switch (wanted) {
    case TensorType::kQ4_K: legacy = TensorType::kQ5_0; break;
    case TensorType::kQ5_K: legacy = TensorType::kQ5_1; break;
    case TensorType::kQ6_K: legacy = TensorType::kQ8_0; break;
    case TensorType::kQ2_K:
    case TensorType::kQ3_K:
    case TensorType::kIQ4_XS: legacy = TensorType::kIQ4_NL; break;
    default: break;
  }
  return fits(legacy) ? legacy : TensorType::kF16;
}

std::string_view file_type_name(uint32_t file_type) {
  for (const FileTypeName& row : kFileTypeNames) {
    if (row.id == file_type) return row.name;
  }
  return {};
}

}  // namespace koto
