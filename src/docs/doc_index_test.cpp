#include "koto/doc_index.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "koto/embedding.h"
#include "koto/error.h"
#include "koto/model.h"

namespace koto {
namespace {

namespace fs = std::filesystem;

class DocIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("koto-docindex-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "docs" / "sub");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const fs::path& rel, const std::string& bytes) {
    std::ofstream out(dir_ / "docs" / rel, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  fs::path docs() const { return dir_ / "docs"; }
  fs::path db() const { return dir_ / "index.db"; }

  fs::path dir_;
};

// Shift_JIS bytes of 「経費精算の締め日は毎月二十五日です。」.
std::string sjis_text() {
  return std::string("\x8c\x6f\x94\xef\x90\xb8\x8e\x5a\x82\xcc\x92\xf7\x82\xdf\x93\xfa\x82\xcd\x96\x88\x8c\x8e\x93\xf1"
                     "\x8f\x5c\x8c\xdc\x93\xfa\x82\xc5\x82\xb7\x81\x42\n");
}

TEST_F(DocIndexTest, IndexesFormatsAndEncodingsAndFindsThePassage) {
  write("ls.1.txt", "名前\n       ls - ディレクトリの内容を一覧表示する\n\n説明\n       -a, --all\n              . で始まる隠しファイルも表示する。\n");
  write("sub/経費.txt", sjis_text());
  write("guide.md", "# 休暇の申請\n\n有給休暇は三日前までに上司へ申請してください。\n\n## 病気の場合\n\n当日の朝に連絡すれば構いません。\n");
  write("page.html", "<html><head><title>x</title><script>var 秘密 = 1;</script></head><body><h1>会議室の予約</h1>"
                     "<p>会議室は社内ポータルから予約します。</p></body></html>");
  write("binary.txt", std::string("\x00\x01\x02\xff\xfe\x00garbage", 14));
  write("notes.csv", "a,b\n");

  DocIndex index(db(), true);
  const IndexReport report = index.index({docs()});
  EXPECT_EQ(report.files_indexed, 4);
  EXPECT_EQ(report.files_ignored, 1);
  ASSERT_EQ(report.skipped.size(), 1u);
  EXPECT_NE(report.skipped[0].path.find("binary.txt"), std::string::npos);
  EXPECT_EQ(report.indexed_by_format.at("text"), 2);
  EXPECT_EQ(report.indexed_by_format.at("markdown"), 1);
  EXPECT_EQ(report.indexed_by_format.at("html"), 1);

  SearchResult r = index.search("隠しファイルを表示するオプションは？", 3);
  ASSERT_FALSE(r.hits.empty());
  EXPECT_EQ(r.hits[0].path, "ls.1.txt");
  EXPECT_NE(r.hits[0].text.find("--all"), std::string::npos);
  EXPECT_EQ(r.hits[0].heading, "説明");

  r = index.search("経費精算の締め日はいつですか", 3);
  ASSERT_FALSE(r.hits.empty());
  EXPECT_EQ(r.hits[0].path, "sub/経費.txt");
  EXPECT_EQ(r.hits[0].text, "経費精算の締め日は毎月二十五日です。");
  EXPECT_EQ(r.hits[0].line_start, 1);

  r = index.search("病気で休むときの連絡", 3);
  ASSERT_FALSE(r.hits.empty());
  EXPECT_EQ(r.hits[0].path, "guide.md");
  EXPECT_EQ(r.hits[0].heading, "休暇の申請 > 病気の場合");

  r = index.search("会議室の予約方法", 3);
  ASSERT_FALSE(r.hits.empty());
  EXPECT_EQ(r.hits[0].path, "page.html");
  EXPECT_EQ(index.search("秘密", 3).hits.size(), 0u);  // script text is not indexed
}

TEST_F(DocIndexTest, ReindexSkipsUnchangedReplacesChangedRemovesDeleted) {
  write("a.txt", "りんごは赤い果物です。\n");
  write("b.txt", "みかんは冬の果物です。\n");
  write("c.txt", "ぶどうは秋の果物です。\n");
  DocIndex index(db(), true);
  EXPECT_EQ(index.index({docs()}).files_indexed, 3);

  IndexReport again = index.index({docs()});
  EXPECT_EQ(again.files_indexed, 0);
  EXPECT_EQ(again.files_unchanged, 3);

  write("a.txt", "バナナは黄色い果物です。\n");
  fs::last_write_time(docs() / "a.txt", fs::last_write_time(docs() / "a.txt") + std::chrono::seconds(5));
  fs::remove(docs() / "c.txt");
  again = index.index({docs()});
  EXPECT_EQ(again.files_indexed, 1);
  EXPECT_EQ(again.files_unchanged, 1);
  EXPECT_EQ(again.files_removed, 1);
  EXPECT_EQ(index.file_count(), 2);
  EXPECT_TRUE(index.search("りんご", 5).hits.empty());
  EXPECT_TRUE(index.search("ぶどう", 5).hits.empty());
  const SearchResult banana = index.search("バナナ", 5);
  ASSERT_EQ(banana.hits.size(), 1u);
  EXPECT_EQ(banana.hits[0].path, "a.txt");

  // Touched without a change: the content hash keeps it.
  fs::last_write_time(docs() / "b.txt", fs::last_write_time(docs() / "b.txt") + std::chrono::seconds(5));
  again = index.index({docs()});
  EXPECT_EQ(again.files_indexed, 0);
  EXPECT_EQ(again.files_unchanged, 2);
}

TEST_F(DocIndexTest, MissingIndexAndMissingFolderAreClearErrors) {
  try {
    DocIndex index(dir_ / "none.db", false);
    FAIL() << "opened a missing index";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("koto index"), std::string::npos);
  }
  DocIndex index(db(), true);
  try {
    index.index({dir_ / "no-such-folder"});
    FAIL() << "indexed a missing folder";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  {
    std::ofstream(dir_ / "not-an-index.db") << "this is not sqlite, just text that is long enough to be read as a header";
  }
  try {
    DocIndex bad(dir_ / "not-an-index.db", false);
    FAIL() << "opened a text file as an index";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  }
}

// Counts rows and checks both full-text indexes against the passages table.
void expect_consistent(const fs::path& db_path, int64_t* files, int64_t* chunks) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto count = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    int64_t n = -1;
    if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
  };
  *files = count("SELECT count(*) FROM files");
  *chunks = count("SELECT count(*) FROM chunks");
  EXPECT_EQ(count("SELECT coalesce(sum(n_chunks), 0) FROM files"), *chunks);
  EXPECT_EQ(count("SELECT count(*) FROM chunks WHERE file_id NOT IN (SELECT id FROM files)"), 0);
  sqlite3_close(db);
}

TEST_F(DocIndexTest, KilledWhileIndexingLeavesAnIndexThatOpensAndIsCompletedNextTime) {
  // Enough files that indexing takes a while.
  constexpr int kFiles = 400;
  for (int i = 0; i < kFiles; ++i) {
    std::string body = "# 文書" + std::to_string(i) + "\n\n";
    for (int j = 0; j < 40; ++j) {
      body += "第" + std::to_string(j) + "項では、社内規程" + std::to_string(i) + "の運用について説明します。\n\n";
    }
    write("doc" + std::to_string(i) + ".md", body);
  }
  for (int delay_ms : {30, 150, 400}) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        DocIndex index(db(), true);
        IndexOptions options;
        options.threads = 2;
        index.index({docs()}, options);
      } catch (...) {
        ::_exit(3);
      }
      ::_exit(0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    int64_t files = 0;
    int64_t chunks = 0;
    expect_consistent(db(), &files, &chunks);
    EXPECT_LE(files, kFiles);
    // It opens and answers with what it has.
    DocIndex index(db(), false);
    EXPECT_EQ(index.file_count(), files);
    if (files > 0) {
      EXPECT_FALSE(index.search("社内規程の運用", 3).hits.empty());
    }
  }
  DocIndex index(db(), true);
  const IndexReport report = index.index({docs()});
  EXPECT_EQ(report.files_indexed + report.files_unchanged, kFiles);
  EXPECT_TRUE(report.skipped.empty());
  int64_t files = 0;
  int64_t chunks = 0;
  expect_consistent(db(), &files, &chunks);
  EXPECT_EQ(files, kFiles);
  const SearchResult r = index.search("文書123 社内規程123", 1);
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].path, "doc123.md");
}

}  // namespace
}  // namespace koto

namespace koto {
namespace {

TEST_F(DocIndexTest, PassageVectorsAreMadeOnceFusedInSearchAndTiedToTheirModel) {
  write("a.md", "# 経費\n\n経費精算の締め日は毎月二十五日です。\n\n# 休暇\n\n有給休暇は三日前までに申請します。\n");
  write("b.txt", "会議室は社内ポータルから予約します。\n");
  DocIndex index(db(), true);
  index.index({docs()});
  const auto model = Model::load(std::string(KOTO_FIXTURES_DIR) + "/arch/qwen3-F32.gguf");
  Embedder embedder(*model);
  EXPECT_EQ(index.embedding_model(), "");
  EXPECT_EQ(index.embed_passages(embedder), index.chunk_count());
  EXPECT_NE(index.embedding_model().find("qwen3-F32.gguf "), std::string::npos);
  EXPECT_EQ(index.embed_passages(embedder), 0);  // nothing missing

  // A passage's own text as the question: the vector ranking puts it first.
  SearchResult r = index.search("休暇\n有給休暇は三日前までに申請します。", 3, &embedder);
  ASSERT_FALSE(r.hits.empty());
  EXPECT_EQ(r.hits[0].text, "有給休暇は三日前までに申請します。");
  // Words that are nowhere: keywords find nothing, vectors still rank every passage.
  EXPECT_TRUE(index.search("zzqx vvwy", 3).hits.empty());
  EXPECT_EQ(index.search("zzqx vvwy", 3, &embedder).hits.size(), 3u);

  // A changed file: only its passages are embedded again.
  write("b.txt", "会議室は社内ポータルから予約します。\n\n備品は総務に申請します。\n");
  fs::last_write_time(docs() / "b.txt", fs::last_write_time(docs() / "b.txt") + std::chrono::seconds(5));
  index.index({docs()});
  EXPECT_EQ(index.embed_passages(embedder), 1);

  // Another model's vectors would not be comparable: refused, naming both.
  const auto other = Model::load(std::string(KOTO_FIXTURES_DIR) + "/arch/llama-gqa-F32.gguf");
  Embedder wrong(*other);
  try {
    index.search("経費", 3, &wrong);
    FAIL() << "searched with another model's embedder";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("qwen3-F32.gguf"), std::string::npos);
  }
}

}  // namespace
}  // namespace koto
