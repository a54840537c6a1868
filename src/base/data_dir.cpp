#include "koto/data_dir.h"

#include <cstdlib>

namespace koto {

std::filesystem::path koto_data_dir() {
  auto set = [](const char* name) -> const char* {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : nullptr;
  };
  if (const char* home = set("KOTO_HOME")) return home;
  if (const char* data = set("XDG_DATA_HOME")) return std::filesystem::path(data) / "koto";
  const char* home = set("HOME");
  return std::filesystem::path(home != nullptr ? home : ".") / ".local" / "share" / "koto";
}

}  // namespace koto
