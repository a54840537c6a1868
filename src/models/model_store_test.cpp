// `koto pull` against a local hub on a loopback port (cpp-httplib, in the test): the
// hub's redirect with X-Linked-Size / X-Linked-ETag, ranges (206) and a cut connection
// resumed, a wrong checksum, a gated repo, an unknown one, a listing with several
// quantizations. Nothing reaches the internet.
#include "koto/gguf.h"
#include "koto/model.h"
#include "koto/model_store.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "koto/error.h"

namespace koto {
namespace {

namespace fs = std::filesystem;

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[32];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &n, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", digest[i]);
    hex += b;
  }
  return hex;
}

class LocalHub {
 public:
  LocalHub() {
    std::mt19937 rng(7);
    file_.resize(300000);
    for (char& c : file_) c = static_cast<char>(rng());
    sha_ = sha256_hex(file_);
    server_.Get(R"(/([^/]+)/([^/]+)/resolve/main/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string repo = req.matches[2];
      if (repo == "gated-GGUF") {
        res.status = 401;
        return;
      }
      if (repo != "tiny-GGUF" && repo != "badsum-GGUF" && repo != "stale-GGUF") {
        res.status = 404;
        return;
      }
      res.status = 302;
      res.set_header("Location", repo == "stale-GGUF" ? "/stale/" + std::string(req.matches[3]) : "/cdn/" + std::string(req.matches[3]));
      res.set_header("X-Linked-Size", std::to_string(file_.size()));
      res.set_header("X-Linked-ETag", "\"" + (repo == "badsum-GGUF" ? std::string(64, 'a') : sha_) + "\"");
    });
    server_.Get(R"(/cdn/(.+))", [this](const httplib::Request&, httplib::Response& res) {
      res.set_header("ETag", "\"cdn-etag-1\"");
      res.set_content_provider(file_.size(), "application/octet-stream",
                               [this](size_t offset, size_t length, httplib::DataSink& sink) {
                                 const int64_t cut = cut_at_.load();
                                 if (cut >= 0 && offset + length > static_cast<size_t>(cut)) {
                                   if (static_cast<size_t>(cut) > offset) sink.write(file_.data() + offset, static_cast<size_t>(cut) - offset);
                                   served_ += static_cast<size_t>(cut) > offset ? static_cast<size_t>(cut) - offset : 0;
                                   cut_at_ = -1;
                                   return false;  // the connection drops mid-body
                                 }
                                 sink.write(file_.data() + offset, length);
                                 served_ += length;
                                 return true;
                               });
    });
    // A file whose server refuses any range (416), as when a partial download no longer
    // matches what the hub serves.
    server_.Get(R"(/stale/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.has_header("Range")) {
        res.status = 416;
        return;
      }
      res.set_content(file_, "application/octet-stream");
    });
    server_.Get("/api/models/test/tiny-GGUF/tree/main", [](const httplib::Request&, httplib::Response& res) {
      const nlohmann::json files = nlohmann::json::array(
          {{{"type", "file"}, {"path", "README.md"}, {"size", 10}},
           {{"type", "file"}, {"path", "tiny-Q4_K_M.gguf"}, {"size", 300000}, {"lfs", {{"oid", "x"}, {"size", 300000}}}},
           {{"type", "file"}, {"path", "tiny-Q8_0.gguf"}, {"size", 300000}},
           {{"type", "file"}, {"path", "tiny-Q8_0-v2.gguf"}, {"size", 300000}}});
      res.set_content(files.dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LocalHub() {
    server_.stop();
    thread_.join();
  }
  LocalHub(const LocalHub&) = delete;
  LocalHub& operator=(const LocalHub&) = delete;
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& file() const { return file_; }
  const std::string& sha() const { return sha_; }
  void cut_next_body_at(int64_t byte) { cut_at_ = byte; }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::string file_;
  std::string sha_;
  std::atomic<int64_t> cut_at_{-1};
  std::atomic<size_t> served_{0};
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("koto-store-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  PullOptions options() const {
    PullOptions o;
    o.endpoint = hub_.endpoint();
    o.max_retries = 0;
    return o;
  }
  LocalHub hub_;
  fs::path root_;
};

TEST_F(PullTest, DownloadsVerifiesAndKeepsTheModelUnderItsHubName) {
  ModelStore store(root_);
  const PullResult r = store.pull("hf.co/test/tiny-GGUF/tiny-Q4_K_M.gguf", options());
  EXPECT_EQ(r.model.name, "test/tiny-GGUF/tiny-Q4_K_M.gguf");
  EXPECT_EQ(r.model.sha256, hub_.sha());
  EXPECT_EQ(r.model.size, hub_.file().size());
  EXPECT_EQ(r.transferred, hub_.file().size());
  EXPECT_EQ(read_file(root_ / "test" / "tiny-GGUF" / "tiny-Q4_K_M.gguf"), hub_.file());
  EXPECT_FALSE(fs::exists(root_ / "test" / "tiny-GGUF" / "tiny-Q4_K_M.gguf.part"));
  ASSERT_EQ(store.list().size(), 1u);
  EXPECT_EQ(store.find("tiny-Q4_K_M")->name, r.model.name);
  EXPECT_EQ(store.find("tiny-GGUF/tiny-Q4_K_M.gguf")->name, r.model.name);
  EXPECT_TRUE(store.pull(hub_.endpoint() + "/test/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf", options()).already_present);
  // Removing the model removes its repacked weights (Model::load's cache) too.
  const ScopedEnv koto_home("KOTO_HOME", (root_ / "home").c_str());
  // (The hub's file is random bytes; a real model in its place has an identity.)
  fs::copy_file(fixture_path("arch/llama-gqa-Q5_0.gguf"), r.model.path, fs::copy_options::overwrite_existing);
  const fs::path cache = repack_cache_path(GgufFile::open(r.model.path));
  EXPECT_EQ(cache.parent_path(), root_ / "home" / "cache");
  fs::create_directories(cache.parent_path());
  std::ofstream(cache) << "repacked";
  EXPECT_TRUE(store.remove("tiny-Q4_K_M.gguf"));
  EXPECT_FALSE(fs::exists(cache));
  EXPECT_TRUE(store.list().empty());
  EXPECT_FALSE(fs::exists(r.model.path));
}

TEST_F(PullTest, ACutConnectionIsResumedFetchingOnlyTheRest) {
  ModelStore store(root_);
  const int64_t cut = 100000;
  hub_.cut_next_body_at(cut);
  try {
    store.pull("hf.co/test/tiny-GGUF/tiny-Q4_K_M.gguf", options());
    FAIL() << "a cut download succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("koto pull"), std::string::npos);
  }
  EXPECT_EQ(fs::file_size(root_ / "test" / "tiny-GGUF" / "tiny-Q4_K_M.gguf.part"), static_cast<uintmax_t>(cut));
  const PullResult r = store.pull("hf.co/test/tiny-GGUF/tiny-Q4_K_M.gguf", options());
  EXPECT_EQ(r.transferred, hub_.file().size() - static_cast<size_t>(cut));  // only the rest
  EXPECT_EQ(read_file(r.model.path), hub_.file());

  // Within one run, retries resume too.
  fs::remove_all(root_);
  ModelStore again(root_);
  hub_.cut_next_body_at(cut);
  PullOptions retrying = options();
  retrying.max_retries = 2;
  const PullResult r2 = again.pull("hf.co/test/tiny-GGUF/tiny-Q4_K_M.gguf", retrying);
  EXPECT_EQ(r2.transferred, hub_.file().size());
  EXPECT_EQ(read_file(r2.model.path), hub_.file());
}

TEST_F(PullTest, APartTheServerRefusesWith416IsStartedAgain) {
  ModelStore store(root_);
  fs::create_directories(root_ / "test" / "stale-GGUF");
  std::ofstream(root_ / "test" / "stale-GGUF" / "m.gguf.part", std::ios::binary) << std::string(1000, 'x');
  PullOptions retrying = options();
  retrying.max_retries = 1;
  const PullResult r = store.pull("hf.co/test/stale-GGUF/m.gguf", retrying);
  EXPECT_EQ(read_file(r.model.path), hub_.file());
  EXPECT_EQ(r.transferred, hub_.file().size());
}

TEST_F(PullTest, WrongChecksumGatedUnknownAndCancelled) {
  ModelStore store(root_);
  try {
    store.pull("hf.co/test/badsum-GGUF/tiny-Q4_K_M.gguf", options());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
    EXPECT_NE(std::string(e.what()).find(hub_.sha()), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(root_ / "test" / "badsum-GGUF" / "tiny-Q4_K_M.gguf"));
  EXPECT_FALSE(fs::exists(root_ / "test" / "badsum-GGUF" / "tiny-Q4_K_M.gguf.part"));
  EXPECT_TRUE(store.list().empty());
  try {
    store.pull("hf.co/test/gated-GGUF/model.gguf", options());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("HF_TOKEN"), std::string::npos);
  }
  try {
    store.pull("hf.co/test/missing-GGUF/model.gguf", options());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  const std::atomic<bool> stop{true};
  PullOptions cancelled = options();
  cancelled.cancel = &stop;
  try {
    store.pull("hf.co/test/tiny-GGUF/tiny-Q4_K_M.gguf", cancelled);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCancelled);
  }
  EXPECT_THROW(store.pull("not a reference", options()), Error);
}

TEST_F(PullTest, QuantizationIsPickedFromTheListing) {
  ModelStore store(root_);
  EXPECT_EQ(store.pull("test/tiny-GGUF:q4_k_m", options()).model.name, "test/tiny-GGUF/tiny-Q4_K_M.gguf");
  for (const char* ambiguous : {"test/tiny-GGUF:Q8_0", "test/tiny-GGUF:IQ2_XS"}) {
    try {
      store.pull(ambiguous, options());
      FAIL() << ambiguous;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kNotFound);
      const std::string message = e.what();
      EXPECT_NE(message.find("tiny-Q8_0-v2.gguf"), std::string::npos) << message;  // the files are listed
      EXPECT_NE(message.find("tiny-Q4_K_M.gguf"), std::string::npos) << message;
    }
  }
}

}  // namespace
}  // namespace koto

namespace koto {
namespace {

TEST(Catalogue, RowsAreCompleteUniqueAndCoverTheJapaneseModelsAsked) {
  std::set<std::string> names;
  for (const CatalogueEntry& e : model_catalogue()) {
    EXPECT_TRUE(names.insert(e.name).second) << "duplicate " << e.name;
    const std::string repo = e.repo;
    EXPECT_EQ(std::count(repo.begin(), repo.end(), '/'), 1) << e.name;
    const std::string file = e.file;
    EXPECT_TRUE(file.size() > 5 && file.substr(file.size() - 5) == ".gguf") << e.name;
    EXPECT_GT(std::string(e.license).size(), 0u) << e.name;
    EXPECT_GT(std::string(e.about_en).size(), 10u) << e.name;
    EXPECT_GT(std::string(e.about_ja).size(), 10u) << e.name;
    EXPECT_EQ(find_in_catalogue(e.name), &e);
  }
  for (const char* required : {"elyza-7b", "tinyswallow-1.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen3-1.7b", "qwen3-4b",
                               "llm-jp-3-1.8b", "sarashina2.2-3b", "qwen3-embedding-0.6b"}) {
    EXPECT_NE(find_in_catalogue(required), nullptr) << required;
  }
  EXPECT_EQ(find_in_catalogue("no-such-model"), nullptr);
}

}  // namespace
}  // namespace koto
