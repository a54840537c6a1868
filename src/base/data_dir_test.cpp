#include "koto/data_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>

#include "test_support.h"

namespace koto {
namespace {

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
