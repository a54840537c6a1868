// The prefix cache on its own, with real sessions of stories260K providing the KV bytes.
#include "koto/prefix_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "koto/error.h"
#include "koto/model.h"
#include "test_support.h"

namespace koto {
namespace {

namespace fs = std::filesystem;

class PrefixCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(fixture_path("models/stories260K.gguf"));
    bytes_ = model_->new_session()->kv_bytes_per_position();
  }

  std::unique_ptr<Session> evaluated(const std::vector<TokenId>& tokens) const {
    auto session = model_->new_session();
    session->eval(tokens);
    return session;
  }

  std::vector<uint8_t> kv_of(const Session& session, int32_t n) const {
    std::vector<uint8_t> out(static_cast<size_t>(n) * bytes_);
    session.read_kv(0, n, out);
    return out;
  }

  // 1, then n tokens from `start`, distinct enough to be a sequence of its own.
  static std::vector<TokenId> sequence(size_t n, TokenId start) {
    std::vector<TokenId> tokens{1};
    for (size_t i = 0; i < n; ++i) tokens.push_back(static_cast<TokenId>((start + i * 7) % 500 + 3));
    return tokens;
  }

  static std::string folder(const std::string& name) {
    const fs::path path = fs::path(::testing::TempDir()) / ("koto_prefix_cache_" + name);
    fs::remove_all(path);
    return path.string();
  }

  std::unique_ptr<Model> model_;
  size_t bytes_ = 0;
};

TEST_F(PrefixCacheTest, RestoresTheLongestPrefixToTheToken) {
  PrefixCacheOptions options;
  options.block_tokens = 4;
  PrefixCache cache("stories", bytes_, options);
  const std::vector<TokenId> stored = sequence(13, 10);  // 14 tokens: 3 whole blocks and a leaf of 2
  auto source = evaluated(stored);
  cache.store("", stored, *source);
  EXPECT_EQ(cache.stats().memory_blocks, 4u);
  EXPECT_EQ(cache.stats().memory_bytes, 14 * bytes_);

  // Diverges inside the third block: 9 tokens in common.
  std::vector<TokenId> asked = stored;
  asked[9] = 499;
  PrefixCache::Match match = cache.find("", asked, 100);
  EXPECT_EQ(match.tokens(), 9);
  auto target = model_->new_session();
  cache.restore(match, 0, *target);
  EXPECT_EQ(target->n_past(), 9);
  EXPECT_EQ(kv_of(*target, 9), kv_of(*source, 9));

  // The whole stored sequence and more: limited by max_tokens, then by what is stored.
  std::vector<TokenId> longer = stored;
  longer.push_back(42);
  EXPECT_EQ(cache.find("", longer, 12).tokens(), 12);
  EXPECT_EQ(cache.find("", longer, 100).tokens(), 14);
  // Restoring from a position the session already holds appends only the rest.
  auto partial = evaluated(std::vector<TokenId>(stored.begin(), stored.begin() + 6));
  cache.restore(cache.find("", longer, 100), 6, *partial);
  EXPECT_EQ(kv_of(*partial, 14), kv_of(*source, 14));
  EXPECT_EQ(cache.stats().hit_tokens, 9u + 8u);

  // A different first token shares nothing.
  std::vector<TokenId> other = stored;
  other[0] = 2;
  EXPECT_EQ(cache.find("", other, 100).tokens(), 0);
}

TEST_F(PrefixCacheTest, PartitionsShareNothing) {
  PrefixCache cache("stories", bytes_, {});
  const std::vector<TokenId> tokens = sequence(40, 3);
  cache.store("key-a", tokens, *evaluated(tokens));
  EXPECT_EQ(cache.find("key-a", tokens, 100).tokens(), 41);
  EXPECT_EQ(cache.find("key-b", tokens, 100).tokens(), 0);
  EXPECT_EQ(cache.find("", tokens, 100).tokens(), 0);
}

// Over budget, the least recently used leaves go first; a shared prefix stays while
// its blocks are in use.
TEST_F(PrefixCacheTest, EvictsLeastRecentlyUsedLeavesFirst) {
  PrefixCacheOptions options;
  options.block_tokens = 4;
  options.memory_bytes = 20 * bytes_;
  PrefixCache cache("stories", bytes_, options);
  const std::vector<TokenId> a = sequence(11, 10);                  // 12 tokens: 3 blocks
  std::vector<TokenId> b(a.begin(), a.begin() + 8);                 // shares 2 blocks with a
  for (TokenId t : sequence(3, 200)) b.push_back(t + 1);             // then 4 of its own: 12 tokens
  const std::vector<TokenId> c = sequence(7, 300);                  // 8 tokens, nothing shared
  cache.store("", a, *evaluated(a));
  cache.store("", b, *evaluated(b));  // 16 positions held: a's 3 blocks + b's last
  EXPECT_EQ(cache.stats().memory_bytes, 16 * bytes_);
  cache.find("", a, 100);             // a is now the most recent
  cache.store("", c, *evaluated(c));  // 24 > 20: b's own block (the oldest leaf) goes
  EXPECT_EQ(cache.stats().memory_bytes, 20 * bytes_);
  EXPECT_EQ(cache.find("", a, 100).tokens(), 12);
  EXPECT_EQ(cache.find("", b, 100).tokens(), 8);  // its shared prefix is still there
  EXPECT_EQ(cache.find("", c, 100).tokens(), 8);
}

TEST_F(PrefixCacheTest, OffMeansNothingIsKept) {
  PrefixCacheOptions options;
  options.memory_bytes = 0;
  PrefixCache cache("stories", bytes_, options);
  const std::vector<TokenId> tokens = sequence(20, 3);
  cache.store("", tokens, *evaluated(tokens));
  EXPECT_EQ(cache.find("", tokens, 100).tokens(), 0);
  EXPECT_EQ(cache.stats().memory_blocks, 0u);
}

TEST_F(PrefixCacheTest, DiskBlocksAreFoundByTheNextInstance) {
  PrefixCacheOptions options;
  options.block_tokens = 8;
  options.disk_dir = folder("restart");
  const std::vector<TokenId> tokens = sequence(30, 5);  // 31 tokens: 3 blocks and a leaf
  auto source = evaluated(tokens);
  {
    PrefixCache cache("stories", bytes_, options);
    cache.store("", tokens, *source);
    cache.flush();
    EXPECT_EQ(cache.stats().disk_blocks, 4u);
    EXPECT_EQ(cache.stats().disk_writes, 4u);
  }
  PrefixCache again("stories", bytes_, options);
  EXPECT_EQ(again.stats().disk_blocks, 4u);
  EXPECT_EQ(again.stats().memory_blocks, 0u);  // only headers were read
  const PrefixCache::Match match = again.find("", tokens, 100);
  EXPECT_EQ(match.tokens(), 31);
  auto target = model_->new_session();
  EXPECT_EQ(again.restore(match, 0, *target), 31);
  EXPECT_EQ(again.stats().disk_loads, 4u);  // read straight into the session
  EXPECT_EQ(again.stats().memory_blocks, 0u);
  EXPECT_EQ(kv_of(*target, 31), kv_of(*source, 31));

  // A file damaged between the look-up and the restore: the restore stops before it.
  const PrefixCache::Match second = again.find("", tokens, 100);
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(again.model_folder())) files.push_back(entry.path());
  ASSERT_EQ(files.size(), 4u);
  for (const auto& file : files) {  // the third block's file: its header holds 8 tokens from position 16
    if (read_file_bytes(file.string()).find(std::string(reinterpret_cast<const char*>(&tokens[16]), 4 * sizeof(TokenId))) !=
        std::string::npos) {
      std::filesystem::resize_file(file, std::filesystem::file_size(file) - 10);
    }
  }
  auto partial = model_->new_session();
  EXPECT_EQ(again.restore(second, 0, *partial), 16);
  EXPECT_EQ(partial->n_past(), 16);
  EXPECT_EQ(kv_of(*partial, 16), kv_of(*source, 16));
  EXPECT_EQ(again.stats().rejected_files, 1u);

  // Another model's files live in another folder: nothing is found, nothing deleted.
  PrefixCache other("another model", bytes_, options);
  EXPECT_EQ(other.find("", tokens, 100).tokens(), 0);
  EXPECT_NE(other.model_folder(), again.model_folder());
  EXPECT_EQ(again.stats().disk_blocks, 3u);  // the damaged one is gone, the rest untouched
}

TEST_F(PrefixCacheTest, DamagedOrForeignFilesAreIgnoredWithAWarning) {
  PrefixCacheOptions options;
  options.block_tokens = 8;
  options.disk_dir = folder("damage");
  const std::vector<TokenId> tokens = sequence(23, 5);  // 3 whole blocks
  std::string model_folder;
  {
    PrefixCache cache("stories", bytes_, options);
    cache.store("", tokens, *evaluated(tokens));
    cache.flush();
    model_folder = cache.model_folder();
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(model_folder)) files.push_back(entry.path());
  ASSERT_EQ(files.size(), 3u);
  std::sort(files.begin(), files.end());
  fs::resize_file(files[0], fs::file_size(files[0]) - 1);                       // truncated
  std::ofstream(model_folder + "/" + std::string(32, 'a') + ".kvb") << "not a cache file";  // foreign
  std::ofstream(model_folder + "/leftover.kvb.tmp") << "an interrupted write";

  std::vector<std::string> warnings;
  PrefixCache cache("stories", bytes_, options, [&warnings](const std::string& w) { warnings.push_back(w); });
  EXPECT_EQ(cache.stats().rejected_files, 2u);
  EXPECT_EQ(cache.stats().disk_blocks, 2u);
  ASSERT_EQ(warnings.size(), 2u);
  for (const std::string& w : warnings) EXPECT_NE(w.find("ignored and deleted"), std::string::npos) << w;
  EXPECT_FALSE(fs::exists(files[0]));
  EXPECT_FALSE(fs::exists(model_folder + "/leftover.kvb.tmp"));
  // Whatever is left is either whole or not used: the match never covers a lost block.
  const int32_t found = cache.find("", tokens, 100).tokens();
  EXPECT_TRUE(found == 0 || found == 8 || found == 16) << found;
}

TEST_F(PrefixCacheTest, DiskBudgetDeletesTheOldestFiles) {
  PrefixCacheOptions options;
  options.block_tokens = 8;
  options.disk_dir = folder("budget");
  const uint64_t file_bytes = 88 + 8 * sizeof(TokenId) + 8 * bytes_;
  options.disk_bytes = 5 * file_bytes;
  PrefixCache cache("stories", bytes_, options);
  const std::vector<TokenId> first = sequence(23, 5);   // 3 blocks
  const std::vector<TokenId> second = sequence(23, 77);  // 3 other blocks
  cache.store("", first, *evaluated(first));
  cache.flush();
  cache.store("", second, *evaluated(second));
  cache.flush();
  EXPECT_EQ(cache.stats().disk_blocks, 5u);
  EXPECT_EQ(cache.stats().disk_bytes, 5 * file_bytes);
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(cache.model_folder())) files += entry.path().extension() == ".kvb";
  EXPECT_EQ(files, 5u);
}

TEST_F(PrefixCacheTest, BadBlockSizeIsRefused) {
  PrefixCacheOptions options;
  options.block_tokens = 0;
  EXPECT_THROW(PrefixCache("stories", bytes_, options), Error);
}

}  // namespace
}  // namespace koto
