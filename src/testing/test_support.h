// Helpers shared by the unit tests: where the fixtures are, reading whole files.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
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

// Sets an environment variable for its lifetime (nullptr: unset), then puts it back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value != nullptr ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { old_ ? ::setenv(name_, old_->c_str(), 1) : ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

inline std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace koto
