#include "model/architecture.h"

#include <fmt/format.h>

namespace koto::model {
namespace {

const Architecture* const kArchitectures[] = {
    &kLlamaArchitecture,
    &kQwen2Architecture,
    &kQwen3Architecture,
};

}  // namespace

const Architecture* find_architecture(std::string_view name) {
  for (const Architecture* arch : kArchitectures) {
    if (arch->name == name) return arch;
  }
  return nullptr;
}

std::string supported_architecture_names() {
  std::string names;
  for (const Architecture* arch : kArchitectures) {
    if (!names.empty()) names += ", ";
    names += arch->name;
  }
  return names;
}

std::string layer_tensor_name(int layer, std::string_view suffix) {
  return fmt::format("blk.{}.{}", layer, suffix);
}

}  // namespace koto::model
