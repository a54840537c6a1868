#include "server/api_keys.h"

#include <gtest/gtest.h>

#include <fstream>

#include "koto/error.h"

namespace koto::server {
namespace {

std::string key_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "koto_keys_" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ApiKeys, NoKeysMeansEmpty) {
  const ApiKeys keys = ApiKeys::load("", nullptr);
  EXPECT_TRUE(keys.empty());
  EXPECT_FALSE(keys.check("Bearer anything-at-all"));
}

TEST(ApiKeys, FileAndEnvironmentKeysAreAccepted) {
  const ApiKeys keys = ApiKeys::load(key_file("two", "# 社内用\n  first-key-1234  \n\nsecond-key-5678\r\n"), "env-key-abcdef");
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys.check("Bearer first-key-1234"), ApiKeys::partition_of("first-key-1234"));
  EXPECT_EQ(keys.check("Bearer second-key-5678"), ApiKeys::partition_of("second-key-5678"));
  EXPECT_EQ(keys.check("Bearer env-key-abcdef"), ApiKeys::partition_of("env-key-abcdef"));
  EXPECT_FALSE(keys.check("Bearer first-key-123"));
  EXPECT_FALSE(keys.check("Bearer first-key-12345"));
  EXPECT_FALSE(keys.check("first-key-1234"));
  EXPECT_FALSE(keys.check("Basic first-key-1234"));
  EXPECT_FALSE(keys.check("Bearer "));
  EXPECT_FALSE(keys.check(""));
}

TEST(ApiKeys, PartitionsAreStableAndDistinct) {
  EXPECT_EQ(ApiKeys::partition_of("a-key-of-alice"), ApiKeys::partition_of("a-key-of-alice"));
  EXPECT_NE(ApiKeys::partition_of("a-key-of-alice"), ApiKeys::partition_of("a-key-of-bob"));
  EXPECT_EQ(ApiKeys::partition_of("a-key-of-alice").find("alice"), std::string::npos);  // never the key itself
}

TEST(ApiKeys, UnsafeKeysAndFilesAreRefused) {
  EXPECT_THROW(ApiKeys::load(key_file("short", "abc\n"), nullptr), Error);
  EXPECT_THROW(ApiKeys::load(key_file("space", "has a space in it\n"), nullptr), Error);
  EXPECT_THROW(ApiKeys::load(key_file("empty", "# nothing\n\n"), nullptr), Error);
  EXPECT_THROW(ApiKeys::load(::testing::TempDir() + "koto_keys_missing", nullptr), Error);
  EXPECT_THROW(ApiKeys::load("", "short"), Error);
}

}  // namespace
}  // namespace koto::server
