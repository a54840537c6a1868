// Helpers shared by the unit tests: where the fixtures are, reading whole files.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "koto/i18n.h"

namespace koto {

// Unit tests check English messages unless they choose Japanese themselves (and set
// English back afterwards), so the locale of the machine running them does not matter.
inline const bool kTestsStartInEnglish = [] {
  set_language(Language::kEnglish);
  return true;
}();

// Absolute path of a file under the fixtures folder (CMake cache variable
// KOTO_FIXTURES_DIR). A missing fixture fails the calling test; it never skips.
inline std::string fixture_path(const std::string& relative) {
  const std::filesystem::path path = std::filesystem::path(KOTO_FIXTURES_DIR) / relative;
  EXPECT_TRUE(std::filesystem::exists(path)) << "fixture missing: " << path
                                             << " (set -DKOTO_FIXTURES_DIR=...)";
  return path.string();
}

inline std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace koto
