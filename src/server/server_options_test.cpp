#include "server/server_options.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

namespace koto::server {
namespace {

TEST(ServerOptions, EveryRowHasHelpInBothLanguagesAndUniqueNames) {
  std::set<std::string> flags, envs;
  for (const ServerOptionRow& row : server_option_rows()) {
    EXPECT_TRUE(flags.insert(row.flags).second) << row.flags;
    if (row.env != nullptr) {
      EXPECT_TRUE(envs.insert(row.env).second) << row.env;
    }
    EXPECT_GT(std::string(row.help_en).size(), 5u) << row.flags;
    EXPECT_GT(std::string(row.help_ja).size(), 5u) << row.flags;
  }
  EXPECT_EQ(envs.count("KOTO_API_KEY"), 0u);  // a key is read from the environment directly, never an option
}

TEST(ServerOptions, SafeDefaults) {
  const ServerOptions defaults;
  EXPECT_EQ(defaults.host, "127.0.0.1");
  EXPECT_EQ(defaults.port, 8080);
  EXPECT_EQ(defaults.parallel, 4);
  EXPECT_TRUE(defaults.cors_origin.empty());
  EXPECT_FALSE(defaults.log_prompts);
  EXPECT_FALSE(defaults.insecure_no_api_key);
  EXPECT_EQ(defaults.max_body_bytes, 4u << 20);
}

TEST(ServerOptions, CommandLineBeatsEnvironmentBeatsDefault) {
  ::setenv("KOTO_PORT", "9090", 1);
  ::setenv("KOTO_PARALLEL", "2", 1);
  ServerOptions options;
  CLI::App app;
  add_server_options(app, options);
  const char* argv[] = {"koto", "-m", "model.gguf", "--parallel", "3", "--max-body", "512KB"};
  app.parse(7, const_cast<char**>(argv));
  EXPECT_EQ(options.port, 9090);
  EXPECT_EQ(options.parallel, 3);
  EXPECT_EQ(options.max_body_bytes, 512u * 1024);  // KB = 1024 bytes, as CLI11's AsSizeValue reads it
  EXPECT_EQ(options.model, "model.gguf");
  ::unsetenv("KOTO_PORT");
  ::unsetenv("KOTO_PARALLEL");
}

TEST(ServerOptions, LoopbackAddresses) {
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("127.1.2.3"));
  EXPECT_TRUE(is_loopback_host("::1"));
  EXPECT_TRUE(is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(is_loopback_host("::"));
  EXPECT_FALSE(is_loopback_host("192.168.1.10"));
  EXPECT_FALSE(is_loopback_host("example.com"));
}

}  // namespace
}  // namespace koto::server
