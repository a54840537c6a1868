#include "koto/data_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>

namespace koto {
namespace {

// Sets an environment variable for its lifetime (nullptr: unset), then puts it back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value != nullptr ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { old_ ? ::setenv(name_, old_->c_str(), 1) : ::unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(DataDir, KotoHomeThenXdgThenHome) {
  ScopedEnv home("HOME", "/home/利用者");
  {
    ScopedEnv koto("KOTO_HOME", "/srv/koto");
    ScopedEnv xdg("XDG_DATA_HOME", "/data");
    EXPECT_EQ(koto_data_dir(), "/srv/koto");
  }
  {
    ScopedEnv koto("KOTO_HOME", "");
    ScopedEnv xdg("XDG_DATA_HOME", "/data");
    EXPECT_EQ(koto_data_dir(), "/data/koto");
  }
  ScopedEnv koto("KOTO_HOME", nullptr);
  ScopedEnv xdg("XDG_DATA_HOME", nullptr);
  EXPECT_EQ(koto_data_dir(), "/home/利用者/.local/share/koto");
}

}  // namespace
}  // namespace koto
