// LoadOptions::repack (koto/model.h, model/repack_cache.h) on the llama-gqa Q5_0
// fixture: the repacked model computes the same logits bit for bit, the cache file is
// built once and reused, a damaged cache is rebuilt, and a cache that cannot be written
// leaves the model running from its own weights with a clear note.
#include "model/repack_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "koto/gguf.h"
#include "koto/gguf_identity.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "test_support.h"

namespace koto {
namespace {

namespace fs = std::filesystem;

const std::string kModel = "arch/llama-gqa-Q5_0.gguf";
// Japanese text through the fixture's tokenizer: the ids the sessions evaluate.
const std::string kText = "今日は晴れです。明日は雨が降るでしょう。";

class RepackCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_language(Language::kEnglish);
    dir_ = ::testing::TempDir() + "koto_repack_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  void TearDown() override {
    detect_language_from_environment();
    fs::remove_all(dir_);
  }

  std::unique_ptr<Model> load(RepackMode mode, const std::string& model = kModel) const {
    LoadOptions options;
    options.repack = mode;
    options.cache_dir = dir_;
    options.n_threads = 2;
    return Model::load(fixture_path(model), options);
  }

  std::string cache_file() const {
    const GgufFile file = GgufFile::open(fixture_path(kModel));
    return (fs::path(dir_) / (gguf_identity(file) + ".q5_0r")).string();
  }

  // All logits of the prompt at once (prefill), then the last token's logits of each
  // step when the same tokens go one at a time (decoding).
  static std::vector<float> logits(const Model& model) {
    const std::vector<TokenId> tokens = model.tokenizer().encode(kText, true, false);
    EXPECT_GT(tokens.size(), 8u);
    auto batch = model.new_session();
    const std::span<const float> all = batch->eval(tokens, true);
    std::vector<float> out(all.begin(), all.end());
    auto steps = model.new_session();
    for (const TokenId id : tokens) {
      const std::span<const float> last = steps->eval(std::span<const TokenId>(&id, 1));
      out.insert(out.end(), last.begin(), last.end());
    }
    return out;
  }

  std::string dir_;
};

TEST_F(RepackCacheTest, RepackedModelGivesTheSameLogitsBitForBit) {
  const std::unique_ptr<Model> plain = load(RepackMode::kOff);
  EXPECT_TRUE(plain->repack_report().cache_path.empty());
  EXPECT_FALSE(fs::exists(dir_));

  const std::unique_ptr<Model> packed = load(RepackMode::kOn);
  const RepackReport& report = packed->repack_report();
  EXPECT_EQ(report.cache_path, cache_file());
  EXPECT_TRUE(report.built);
  EXPECT_TRUE(report.problem.empty()) << report.problem;
  // 2 layers x 7 matrices and output.weight; token_embd (not tied) is only looked up.
  EXPECT_EQ(report.n_tensors, 15);
  EXPECT_GT(report.bytes, 0u);
  ASSERT_NE(report.mapped, nullptr);
  EXPECT_EQ(report.mapped_bytes, fs::file_size(cache_file()));
  EXPECT_EQ(logits(*packed), logits(*plain));
}

TEST_F(RepackCacheTest, SecondLoadReusesTheCache) {
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  LoadOptions options;
  options.repack = RepackMode::kOn;
  options.cache_dir = dir_;
  options.progress = [&progress](uint64_t done, uint64_t total) { progress.emplace_back(done, total); };
  const std::unique_ptr<Model> first = Model::load(fixture_path(kModel), options);
  ASSERT_TRUE(first->repack_report().built);
  ASSERT_FALSE(progress.empty());
  for (size_t i = 1; i < progress.size(); ++i) EXPECT_GE(progress[i].first, progress[i - 1].first);
  EXPECT_EQ(progress.back().first, progress.back().second);
  EXPECT_EQ(progress.back().second, first->repack_report().bytes);
  const auto written = fs::last_write_time(cache_file());

  progress.clear();
  const std::unique_ptr<Model> second = Model::load(fixture_path(kModel), options);
  EXPECT_FALSE(second->repack_report().built);
  EXPECT_EQ(second->repack_report().cache_path, cache_file());
  EXPECT_TRUE(progress.empty());
  EXPECT_EQ(fs::last_write_time(cache_file()), written);
  // Only the cache file is left in the folder (no temporary files).
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

// Truncated, a flipped byte in the header (the source's identity), a flipped byte in
// the data's first sampled page: each is noticed and the file rebuilt.
TEST_F(RepackCacheTest, DamagedCacheIsRebuilt) {
  const std::vector<float> want = logits(*load(RepackMode::kOff));
  load(RepackMode::kOn);
  const uint64_t size = fs::file_size(cache_file());
  const auto flip = [this](uint64_t at) {
    std::fstream f(cache_file(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    const char c = static_cast<char>(f.get());
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(c ^ 0x10));
  };
  const std::vector<std::function<void()>> damages = {
      [&] { fs::resize_file(cache_file(), size - 4096); },
      [&] { flip(20); },
      [&] { flip(4096); },  // the header is 4 KiB for this model: the first data page
  };
  for (size_t i = 0; i < damages.size(); ++i) {
    SCOPED_TRACE("damage " + std::to_string(i));
    damages[i]();
    const std::unique_ptr<Model> model = load(RepackMode::kOn);
    EXPECT_TRUE(model->repack_report().built);
    EXPECT_EQ(fs::file_size(cache_file()), size);
    EXPECT_EQ(logits(*model), want);
  }
}

TEST_F(RepackCacheTest, UnwritableCacheLeavesTheWeightsAsTheyAre) {
  const std::vector<float> want = logits(*load(RepackMode::kOff));
  // The cache folder's parent is a file: nothing can be created there (even by root).
  fs::create_directories(dir_);
  std::ofstream(dir_ + "/not-a-folder") << "x";
  LoadOptions options;
  options.repack = RepackMode::kOn;
  options.cache_dir = dir_ + "/not-a-folder/cache";
  for (const Language language : {Language::kEnglish, Language::kJapanese}) {
    set_language(language);
    const std::unique_ptr<Model> model = Model::load(fixture_path(kModel), options);
    const RepackReport& report = model->repack_report();
    EXPECT_TRUE(report.cache_path.empty());
    EXPECT_NE(report.problem.find(options.cache_dir), std::string::npos) << report.problem;
    EXPECT_NE(report.problem.find(language == Language::kEnglish ? "cannot write" : "書き込めません"),
              std::string::npos)
        << report.problem;
    EXPECT_EQ(logits(*model), want);
  }
}

TEST_F(RepackCacheTest, AutoLeavesSmallModelsAndOtherTypesAlone) {
  // Auto: 1.2 MiB of Q5_0 is below the threshold (the weights fit in the caches anyway).
  if (std::getenv("KOTO_REPACK") == nullptr) {
    EXPECT_TRUE(load(RepackMode::kAuto)->repack_report().cache_path.empty());
  }
  // A file without Q5_0 matrices has nothing to repack, even when asked.
  const std::unique_ptr<Model> q4 = load(RepackMode::kOn, "arch/llama-gqa-Q4_0.gguf");
  EXPECT_TRUE(q4->repack_report().cache_path.empty());
  EXPECT_TRUE(q4->repack_report().problem.empty());
  EXPECT_FALSE(fs::exists(dir_));
}

}  // namespace
}  // namespace koto
