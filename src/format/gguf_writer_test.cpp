#include "koto/gguf_writer.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "test_support.h"

namespace koto {
namespace {

namespace fs = std::filesystem;

template <typename F>
void expect_error(F&& f, ErrorCode code, std::initializer_list<std::string_view> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing " << *parts.begin();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.code(), code) << message;
    for (std::string_view part : parts) EXPECT_NE(message.find(part), std::string::npos) << "missing \"" << part << "\" in: " << message;
  }
}

// A fresh folder under the system temp folder, removed afterwards.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("koto_gguf_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(path_), fs::directory_iterator())); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string float_bytes(std::initializer_list<float> values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.begin(), out.size());
  return out;
}

TEST(GgufWriter, RoundTripsEveryValueType) {
  GgufWriter w;
  w.set_alignment(64);
  w.set("t.u8", GgufMetaValue::u8(250));
  w.set("t.i8", GgufMetaValue::i8(-100));
  w.set("t.u16", GgufMetaValue::u16(65000));
  w.set("t.i16", GgufMetaValue::i16(-32000));
  w.set("t.u32", GgufMetaValue::u32(4'000'000'000u));
  w.set("t.i32", GgufMetaValue::i32(-2'000'000'000));
  w.set("t.f32", GgufMetaValue::f32(0.1f));
  w.set("t.bool", GgufMetaValue::boolean(true));
  w.set("general.name", GgufMetaValue::string("テストモデル"));
  w.set("t.u64", GgufMetaValue::u64(UINT64_MAX));
  w.set("t.i64", GgufMetaValue::i64(INT64_MIN));
  w.set("t.f64", GgufMetaValue::f64(-1e300));
  w.set("t.empty", GgufMetaValue::string(""));
  const uint8_t u8s[] = {0, 255};
  const int16_t i16s[] = {-1, 2, -3};
  const uint64_t u64s[] = {UINT64_MAX};
  const double f64s[] = {1.5, -2.25};
  const int32_t none[] = {0};
  w.set("a.u8", GgufMetaValue::array<uint8_t>(u8s));
  w.set("a.i16", GgufMetaValue::array<int16_t>(i16s));
  w.set("a.u64", GgufMetaValue::array<uint64_t>(u64s));
  w.set("a.f64", GgufMetaValue::array<double>(f64s));
  w.set("a.empty", GgufMetaValue::array<int32_t>(std::span<const int32_t>(none, 0)));
  w.set("a.bool", GgufMetaValue::bool_array({true, false, true}));
  w.set("日本語.キー", GgufMetaValue::string_array({"こんにちは", "", "世界🌸"}));
  // [[1, 2], [["深い"]], []]: nested arrays of different element types.
  const uint32_t pair[] = {1, 2};
  w.set("a.nested", GgufMetaValue::array_of_arrays({GgufMetaValue::array<uint32_t>(pair),
                                                     GgufMetaValue::array_of_arrays({GgufMetaValue::string_array({"深い"})}),
                                                     GgufMetaValue::array_of_arrays({})}));
  w.set("t.u8", GgufMetaValue::u8(7));  // replaces in place
  const std::string embd = float_bytes({1, 2, 3, 4, 5, 6});
  w.add_tensor("token_embd.weight", {3, 2}, TensorType::kF32, embd);
  w.add_tensor_owned("blk.0.ffn_up.weight", {32, 3}, TensorType::kQ4_0, std::string(18 * 3, '\x5A'));
  w.add_tensor("output.weight", {5}, TensorType::kF16, [](GgufDataSink& sink) {
    for (uint16_t i = 0; i < 5; ++i) sink.write(&i, 2);  // streamed in pieces
  });

  const std::string bytes = w.write_to_string();
  EXPECT_EQ(bytes.size(), w.file_size());
  EXPECT_EQ(bytes.size() % 64, 0u);
  const GgufFile f = GgufFile::parse(bytes, "roundtrip.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  ASSERT_EQ(f.metadata().size(), 22u);
  EXPECT_EQ(f.metadata()[1].key, "t.u8");  // kept its first position
  EXPECT_EQ(f.find("t.u8")->type(), GgufValueType::kU8);
  EXPECT_EQ(f.get_u64("t.u8", 0), 7u);
  EXPECT_EQ(f.get_i64("t.i8", 0), -100);
  EXPECT_EQ(f.get_u64("t.u16", 0), 65000u);
  EXPECT_EQ(f.get_i64("t.i16", 0), -32000);
  EXPECT_EQ(f.get_u64("t.u32", 0), 4'000'000'000u);
  EXPECT_EQ(f.get_i64("t.i32", 0), -2'000'000'000);
  EXPECT_EQ(f.find("t.f32")->type(), GgufValueType::kF32);
  EXPECT_EQ(static_cast<float>(f.get_f64("t.f32", 0)), 0.1f);
  EXPECT_TRUE(f.get_bool("t.bool", false));
  EXPECT_EQ(f.get_string("general.name"), "テストモデル");
  EXPECT_EQ(f.get_u64("t.u64", 0), UINT64_MAX);
  EXPECT_EQ(f.get_i64("t.i64", 0), INT64_MIN);
  EXPECT_EQ(f.get_f64("t.f64", 0), -1e300);
  EXPECT_EQ(f.find("t.empty")->as_string(), "");
  EXPECT_EQ(f.find("a.u8")->int_at(1), 255);
  EXPECT_EQ(f.find("a.i16")->int_at(2), -3);
  EXPECT_EQ(f.find("a.u64")->element_type(), GgufValueType::kU64);
  EXPECT_EQ(f.find("a.f64")->float_at(1), -2.25);
  EXPECT_EQ(f.find("a.empty")->size(), 0u);
  EXPECT_EQ(f.find("a.empty")->element_type(), GgufValueType::kI32);
  EXPECT_EQ(f.find("a.bool")->int_at(2), 1);
  const GgufValue* strings = f.find("日本語.キー");
  ASSERT_EQ(strings->size(), 3u);
  EXPECT_EQ(strings->string_at(0), "こんにちは");
  EXPECT_EQ(strings->string_at(1), "");
  EXPECT_EQ(strings->string_at(2), "世界🌸");
  const GgufValue* nested = f.find("a.nested");
  ASSERT_EQ(nested->size(), 3u);
  EXPECT_EQ(nested->array_at(0).int_at(1), 2);
  EXPECT_EQ(nested->array_at(1).array_at(0).string_at(0), "深い");
  EXPECT_EQ(nested->array_at(2).size(), 0u);

  ASSERT_EQ(f.tensors().size(), 3u);
  const GgufTensor& t0 = f.tensors()[0];
  EXPECT_EQ(t0.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(t0.data), t0.n_bytes), embd);
  const GgufTensor& t1 = f.tensors()[1];
  EXPECT_EQ(t1.type, TensorType::kQ4_0);
  EXPECT_EQ(t1.offset, 64u);
  EXPECT_EQ(t1.data[53], 0x5A);
  const GgufTensor& t2 = f.tensors()[2];
  EXPECT_EQ(t2.offset, 128u);
  uint16_t last;
  std::memcpy(&last, t2.data + 8, 2);
  EXPECT_EQ(last, 4);

  // Everything the reader sees can be copied back out unchanged.
  GgufWriter copy;
  for (const GgufKeyValue& kv : f.metadata()) copy.set(kv.key, GgufMetaValue::copy_of(kv.value));
  for (const GgufTensor& t : f.tensors()) {
    copy.add_tensor(t.name, t.shape, t.type, std::string_view(reinterpret_cast<const char*>(t.data), t.n_bytes));
  }
  EXPECT_EQ(copy.write_to_string(), bytes);
}

// Reader → writer on a file written by ggml gives back the same bytes: same metadata,
// same tensor directory, same data and padding.
TEST(GgufWriter, RewritesStories260KIdentically) {
  const std::string path = fixture_path("models/stories260K.gguf");
  const GgufFile original = GgufFile::open(path);
  GgufWriter w;
  for (const GgufKeyValue& kv : original.metadata()) w.set(kv.key, GgufMetaValue::copy_of(kv.value));
  for (const GgufTensor& t : original.tensors()) {
    w.add_tensor(t.name, t.shape, t.type, std::string_view(reinterpret_cast<const char*>(t.data), t.n_bytes));
  }
  const std::string rewritten = w.write_to_string();
  const GgufFile again = GgufFile::parse(rewritten, "rewritten.gguf");
  ASSERT_EQ(again.metadata().size(), original.metadata().size());
  for (size_t i = 0; i < original.metadata().size(); ++i) {
    EXPECT_EQ(again.metadata()[i].key, original.metadata()[i].key);
    EXPECT_EQ(again.metadata()[i].value.type(), original.metadata()[i].value.type());
  }
  ASSERT_EQ(again.tensors().size(), original.tensors().size());
  for (size_t i = 0; i < original.tensors().size(); ++i) {
    const GgufTensor& a = original.tensors()[i];
    const GgufTensor& b = again.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.offset, b.offset);
    ASSERT_EQ(a.n_bytes, b.n_bytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.n_bytes), 0) << a.name;
  }
  EXPECT_EQ(rewritten, read_file_bytes(path));
}

TEST(GgufWriter, WritesAFileAtomically) {
  TempDir dir;
  const std::string path = dir.file("モデル.gguf");
  GgufWriter w;
  w.set_string("general.name", "テストモデル");
  w.add_tensor_owned("w", {4}, TensorType::kF32, float_bytes({1, 2, 3, 4}));
  w.write_file(path);
  EXPECT_EQ(dir.entries(), 1u);  // no temporary file left
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.get_string("general.name"), "テストモデル");
  EXPECT_EQ(f.file_size(), w.file_size());

  // Overwrite with a second version.
  w.set_string("general.name", "第二版");
  w.write_file(path);
  EXPECT_EQ(GgufFile::open(path).get_string("general.name"), "第二版");
  EXPECT_EQ(dir.entries(), 1u);
}

// A streamed tensor reaches the file chunk by chunk, in order (what `koto synth` and
// `koto quantize` rely on for multi-GB models).
TEST(GgufWriter, StreamsLargeTensorsToAFile) {
  TempDir dir;
  const std::string path = dir.file("streamed.gguf");
  constexpr int kChunks = 8;
  constexpr int64_t kChunkFloats = 1 << 18;  // 1 MiB
  GgufWriter w;
  w.set_string("general.name", "ストリーム");
  w.add_tensor("blk.0.ffn_up.weight", {kChunkFloats, kChunks}, TensorType::kF32, [](GgufDataSink& sink) {
    std::vector<float> row(kChunkFloats);
    for (int c = 0; c < kChunks; ++c) {
      std::fill(row.begin(), row.end(), static_cast<float>(c));
      sink.write(row.data(), row.size() * sizeof(float));
    }
  });
  w.add_tensor_owned("output_norm.weight", {4}, TensorType::kF32, float_bytes({9, 9, 9, 9}));
  w.write_file(path);
  const GgufFile f = GgufFile::open(path);
  const GgufTensor* t = f.find_tensor("blk.0.ffn_up.weight");
  ASSERT_NE(t, nullptr);
  for (int c = 0; c < kChunks; ++c) {
    float first, last;
    std::memcpy(&first, t->data + c * kChunkFloats * 4, 4);
    std::memcpy(&last, t->data + (c + 1) * kChunkFloats * 4 - 4, 4);
    EXPECT_EQ(first, static_cast<float>(c));
    EXPECT_EQ(last, static_cast<float>(c));
  }
  EXPECT_EQ(f.find_tensor("output_norm.weight")->data[3], 0x41);  // high byte of 9.0f
  EXPECT_EQ(f.file_size(), w.file_size());
}

TEST(GgufWriter, FailedWriteLeavesTheDestinationAlone) {
  TempDir dir;
  const std::string path = dir.file("model.gguf");
  GgufWriter good;
  good.set_string("general.name", "元のモデル");
  good.write_file(path);
  const std::string before = read_file_bytes(path);

  GgufWriter bad;
  bad.set_string("general.name", "壊れる");
  bad.add_tensor("big", {1024}, TensorType::kF32, [](GgufDataSink& sink) {
    sink.write(std::string(100, 'x'));
    throw std::runtime_error("quantizer failed");
  });
  EXPECT_THROW(bad.write_file(path), std::runtime_error);
  EXPECT_EQ(read_file_bytes(path), before);
  EXPECT_EQ(dir.entries(), 1u);

  GgufWriter short_data;
  short_data.add_tensor("blk.3.ffn_up.weight", {8}, TensorType::kF32, [](GgufDataSink& sink) { sink.write("1234"); });
  expect_error([&] { short_data.write_file(path); }, ErrorCode::kInvalidArgument, {"blk.3.ffn_up.weight", "4 bytes", "32"});
  EXPECT_EQ(read_file_bytes(path), before);
  EXPECT_EQ(dir.entries(), 1u);

  GgufWriter long_data;
  long_data.add_tensor("x", {1}, TensorType::kF32, [](GgufDataSink& sink) { sink.write("12345"); });
  expect_error([&] { long_data.write_to_string(); }, ErrorCode::kInvalidArgument, {"tensor x", "more than"});
}

TEST(GgufWriter, ReportsIoFailuresWithThePath) {
  GgufWriter w;
  w.set_string("general.name", "x");
  expect_error([&] { w.write_file("/nonexistent-folder/モデル.gguf"); }, ErrorCode::kIo,
               {"/nonexistent-folder/モデル.gguf", "folder does not exist"});

  // A file-size limit makes writes fail like a full disk does: the writer must report
  // it, name the file and leave nothing behind.
  TempDir dir;
  const std::string path = dir.file("big.gguf");
  w.add_tensor("blk.0.ffn_down.weight", {1 << 20}, TensorType::kF32,
               [](GgufDataSink& sink) { sink.write(std::string(4 << 20, '\0')); });
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* saved_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = saved;
  limited.rlim_cur = 1 << 20;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  try {
    w.write_file(path);
    ADD_FAILURE() << "write past the file-size limit succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, saved_handler);
  EXPECT_EQ(dir.entries(), 0u);

  // /dev/full fails every write with ENOSPC, as a full disk does.
  const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(full, 0);
  expect_error([&] { w.write_to_fd(full, "出力.gguf"); }, ErrorCode::kIo, {"出力.gguf", "disk is full", "4.0 MiB"});
  ::close(full);
}

TEST(GgufWriter, RefusesWhatCannotMakeAValidFile) {
  GgufWriter w;
  const std::string four = float_bytes({1, 2, 3, 4});
  w.add_tensor("w", {4}, TensorType::kF32, four);
  expect_error([&] { w.add_tensor("w", {4}, TensorType::kF32, four); }, ErrorCode::kInvalidArgument, {"tensor w", "twice"});
  expect_error([&] { w.add_tensor("v", {4, 0}, TensorType::kF32, four); }, ErrorCode::kInvalidArgument, {"tensor v", "dimension 1"});
  expect_error([&] { w.add_tensor("v", {}, TensorType::kF32, four); }, ErrorCode::kInvalidArgument, {"tensor v", "0 dimensions"});
  expect_error([&] { w.add_tensor("v", {1, 1, 1, 1, 4}, TensorType::kF32, four); }, ErrorCode::kInvalidArgument, {"5 dimensions"});
  expect_error([&] { w.add_tensor("v", {INT64_MAX, 2}, TensorType::kF32, four); }, ErrorCode::kInvalidArgument, {"tensor v"});
  expect_error([&] { w.add_tensor("v", {5}, TensorType::kF32, four); }, ErrorCode::kInvalidArgument, {"tensor v", "16 bytes", "20"});
  expect_error([&] { w.add_tensor("q", {48}, TensorType::kQ4_K, four); }, ErrorCode::kInvalidArgument, {"tensor q", "Q4_K", "256"});
  expect_error([&] { w.add_tensor("名\xFF", {4}, TensorType::kF32, four); }, ErrorCode::kInvalidArgument, {"\\xFF"});
  expect_error([&] { w.add_tensor(std::string(64, 'n'), {4}, TensorType::kF32, four); }, ErrorCode::kInvalidArgument,
               {"64 bytes", "63"});
  expect_error([&] { w.set("", GgufMetaValue::u8(1)); }, ErrorCode::kInvalidArgument, {"empty"});
  expect_error([&] { w.set("k\xC0", GgufMetaValue::u8(1)); }, ErrorCode::kInvalidArgument, {"UTF-8"});
  expect_error([&] { w.set("general.name", GgufMetaValue::string("\xE3\x81")); }, ErrorCode::kInvalidArgument, {"general.name", "UTF-8"});
  expect_error([&] { w.set("tokenizer.ggml.tokens", GgufMetaValue::array_of_arrays({GgufMetaValue::string_array({"\xFF"})})); },
               ErrorCode::kInvalidArgument, {"tokenizer.ggml.tokens"});
  expect_error([&] { GgufMetaValue::array_of_arrays({GgufMetaValue::u8(1)}); }, ErrorCode::kInvalidArgument, {"element 0"});
  for (uint32_t a : {0u, 24u, 1u << 21}) {
    expect_error([&] { w.set_alignment(a); }, ErrorCode::kInvalidArgument, {"general.alignment"});
  }
  expect_error([&] { w.set("general.alignment", GgufMetaValue::u64(32)); }, ErrorCode::kInvalidArgument, {"general.alignment"});
  // Nothing refused was added.
  EXPECT_EQ(w.tensor_count(), 1u);
  EXPECT_EQ(w.alignment(), 32u);
  EXPECT_EQ(GgufFile::parse(w.write_to_string(), "w.gguf").tensors().size(), 1u);
}

}  // namespace
}  // namespace koto
