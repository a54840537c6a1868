#include "koto/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "format/gguf_test_bytes.h"
#include "koto/error.h"
#include "koto/gguf_writer.h"
#include "koto/i18n.h"
#include "test_support.h"

namespace koto {
namespace {

using testing::GgufBytes;

constexpr uint64_t kHuge = uint64_t{1} << 63;
constexpr uint32_t kTypeU32 = 4, kTypeString = 8, kTypeArray = 9;
constexpr uint32_t kF32 = 0, kQ4_0 = 2;

// Parses `bytes` and expects a koto::Error with `code` whose message contains every
// one of `parts` (the file name is always checked too).
void expect_error(const std::string& bytes, ErrorCode code, std::initializer_list<std::string_view> parts) {
  try {
    GgufFile::parse(bytes, "壊れた.gguf");
    ADD_FAILURE() << "expected an error containing " << *parts.begin();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.code(), code) << message;
    EXPECT_NE(message.find("壊れた.gguf"), std::string::npos) << message;
    for (std::string_view part : parts) EXPECT_NE(message.find(part), std::string::npos) << "missing \"" << part << "\" in: " << message;
  }
}

// One F32 tensor "w" of `ne` at offset 0, with its data.
std::string one_tensor_file(const std::vector<uint64_t>& ne, uint32_t type = kF32, uint64_t data_bytes = 16) {
  GgufBytes b;
  b.header(1, 1).kv_string("general.name", "テストモデル").tensor("w", ne, type, 0).pad_to(32).zeros(data_bytes);
  return b.bytes();
}

TEST(GgufReader, ReadsStories260K) {
  const GgufFile file = GgufFile::open(fixture_path("models/stories260K.gguf"));
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  EXPECT_EQ(file.architecture(), "llama");
  EXPECT_EQ(file.tensors().size(), 48u);
  EXPECT_EQ(file.get_u64("llama.embedding_length", 0), 64u);
  EXPECT_EQ(file.get_u64("llama.block_count", 0), 5u);
  const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->element_type(), GgufValueType::kString);
  EXPECT_EQ(tokens->size(), 512u);
  EXPECT_EQ(tokens->string_at(1), "<s>");
  const GgufTensor* embd = file.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type, TensorType::kF32);
  EXPECT_EQ(embd->shape, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(embd->n_bytes, 64u * 512u * 4u);
  int64_t params = 0;
  for (const GgufTensor& t : file.tensors()) params += t.n_elements;
  EXPECT_EQ(params, 292800);
}

TEST(GgufReader, MissingFileIsNotFound) {
  try {
    GgufFile::open("/nonexistent/モデル.gguf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/モデル.gguf"), std::string::npos);
  }
}

TEST(GgufReader, ReadsAHandBuiltFile) {
  const std::string bytes = one_tensor_file({2, 2});
  const GgufFile file = GgufFile::parse(bytes, "ok.gguf");
  EXPECT_EQ(file.get_string("general.name"), "テストモデル");
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(file.tensors()[0].n_bytes, 16u);
  EXPECT_EQ(file.data_offset(), 128u);  // 115 bytes of header, padded to 32
}

// Arrays of arrays as gguf-py writes them: the nested arrays carry no type tag of their
// own. (The reader used to expect one per element and misread such files.)
TEST(GgufReader, NestedArraysHaveNoPerElementTag) {
  GgufBytes b;
  b.header(0, 1).str("test.nested").u32(kTypeArray).u32(kTypeArray).u64(2);
  b.u32(kTypeU32).u64(2).u32(7).u32(8);      // [7, 8]
  b.u32(kTypeString).u64(1).str("日本語");     // ["日本語"]
  const GgufFile file = GgufFile::parse(b.bytes(), "nested.gguf");
  const GgufValue* v = file.find("test.nested");
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ(v->array_at(0).int_at(1), 8);
  EXPECT_EQ(v->array_at(1).string_at(0), "日本語");
}

TEST(GgufReader, RefusesBadMagicAndVersions) {
  expect_error("GGML\x03\0\0\0", ErrorCode::kCorruptFile, {"GGUF", "GGML"});
  expect_error("", ErrorCode::kCorruptFile, {"GGUF"});
  GgufBytes v1, v4, big_endian;
  v1.header(0, 0, 1);
  v4.header(0, 0, 4);
  big_endian.header(0, 0, 0x03000000);
  expect_error(v1.bytes(), ErrorCode::kUnsupported, {"version 1"});
  expect_error(v4.bytes(), ErrorCode::kUnsupported, {"version 4"});
  expect_error(big_endian.bytes(), ErrorCode::kUnsupported, {"big-endian"});
}

TEST(GgufReader, RefusesAbsurdCountsWithoutAllocating) {
  for (uint64_t n : {kHuge, std::numeric_limits<uint64_t>::max(), uint64_t{1} << 40}) {
    GgufBytes kv, tensors;
    kv.header(0, n).zeros(64);
    tensors.header(n, 0).zeros(64);
    expect_error(kv.bytes(), ErrorCode::kCorruptFile, {"metadata entries"});
    expect_error(tensors.bytes(), ErrorCode::kCorruptFile, {"tensors"});
  }
  GgufBytes key_length, value_length, array_count, string_element;
  key_length.header(0, 1).u64(kHuge).zeros(32);
  expect_error(key_length.bytes(), ErrorCode::kCorruptFile, {"metadata entry 0"});
  value_length.header(0, 1).str("general.name").u32(kTypeString).u64(kHuge).zeros(32);
  expect_error(value_length.bytes(), ErrorCode::kCorruptFile, {"general.name"});
  array_count.header(0, 1).str("tokenizer.ggml.scores").u32(kTypeArray).u32(6).u64(kHuge).zeros(32);
  expect_error(array_count.bytes(), ErrorCode::kCorruptFile, {"tokenizer.ggml.scores", "9223372036854775808"});
  string_element.header(0, 1).str("tokenizer.ggml.tokens").u32(kTypeArray).u32(kTypeString).u64(2).str("a").u64(kHuge);
  expect_error(string_element.bytes(), ErrorCode::kCorruptFile, {"tokenizer.ggml.tokens"});
}

TEST(GgufReader, RefusesBadValueTypes) {
  GgufBytes unknown, unknown_element, deep;
  unknown.header(0, 1).str("ユーザー.キー").u32(13).u32(0);
  expect_error(unknown.bytes(), ErrorCode::kCorruptFile, {"ユーザー.キー", "13"});
  unknown_element.header(0, 1).str("test.array").u32(kTypeArray).u32(99).u64(1).u32(0);
  expect_error(unknown_element.bytes(), ErrorCode::kCorruptFile, {"test.array", "99"});
  deep.header(0, 1).str("test.deep").u32(kTypeArray);
  for (int i = 0; i < 6; ++i) deep.u32(kTypeArray).u64(1);
  deep.u32(kTypeU32).u64(0);
  expect_error(deep.bytes(), ErrorCode::kCorruptFile, {"test.deep", "deep"});
}

TEST(GgufReader, RefusesDuplicateEmptyAndNonUtf8Keys) {
  GgufBytes duplicate, empty, bad_key, bad_value, bad_element;
  duplicate.header(0, 2).kv_string("general.name", "一").kv_string("general.name", "二");
  expect_error(duplicate.bytes(), ErrorCode::kCorruptFile, {"general.name", "twice"});
  empty.header(0, 1).kv_u32("", 1);
  expect_error(empty.bytes(), ErrorCode::kCorruptFile, {"empty key"});
  bad_key.header(0, 1).kv_u32("general.\xFF\xFE", 1);
  expect_error(bad_key.bytes(), ErrorCode::kCorruptFile, {"UTF-8", "general.\\xFF\\xFE"});
  bad_value.header(0, 1).kv_string("general.name", "名前\xE3\x81");
  expect_error(bad_value.bytes(), ErrorCode::kCorruptFile, {"UTF-8", "general.name"});
  bad_element.header(0, 1).str("tokenizer.ggml.tokens").u32(kTypeArray).u32(kTypeString).u64(2).str("<s>").str("\xC0\xAF");
  expect_error(bad_element.bytes(), ErrorCode::kCorruptFile, {"UTF-8", "element 1", "tokenizer.ggml.tokens"});
}

TEST(GgufReader, RefusesBadAlignment) {
  for (uint32_t a : {0u, 3u, 48u, 1u << 21}) {
    GgufBytes b;
    b.header(0, 1).kv_u32("general.alignment", a);
    expect_error(b.bytes(), ErrorCode::kCorruptFile, {"general.alignment", std::to_string(a)});
  }
  // Values a throwing getter would refuse as a caller error must still be file errors.
  GgufBytes negative, huge, text;
  negative.header(0, 1).str("general.alignment").u32(5).u32(static_cast<uint32_t>(-32));
  expect_error(negative.bytes(), ErrorCode::kCorruptFile, {"general.alignment", "-32"});
  huge.header(0, 1).str("general.alignment").u32(10).u64(kHuge);
  expect_error(huge.bytes(), ErrorCode::kCorruptFile, {"general.alignment", "9223372036854775808"});
  text.header(0, 1).kv_string("general.alignment", "32");
  expect_error(text.bytes(), ErrorCode::kCorruptFile, {"general.alignment", "string"});
}

TEST(GgufReader, RefusesBadTensorShapesAndTypes) {
  expect_error(one_tensor_file({4, 0}), ErrorCode::kCorruptFile, {"tensor w", "dimension 1"});
  expect_error(one_tensor_file({static_cast<uint64_t>(-4)}), ErrorCode::kCorruptFile, {"tensor w", "dimension 0"});
  expect_error(one_tensor_file({}), ErrorCode::kCorruptFile, {"tensor w", "0 dimensions"});
  expect_error(one_tensor_file({1, 1, 1, 1, 1}), ErrorCode::kCorruptFile, {"tensor w", "5 dimensions"});
  expect_error(one_tensor_file({1ull << 32, 1ull << 32}), ErrorCode::kCorruptFile, {"tensor w", "dimension 1"});
  expect_error(one_tensor_file({4}, 99), ErrorCode::kUnsupported, {"tensor w", "99"});
  expect_error(one_tensor_file({33}, kQ4_0), ErrorCode::kCorruptFile, {"tensor w", "Q4_0", "33"});
  // The shape fits int64, but its bytes (elements × 4 / 1) would not.
  expect_error(one_tensor_file({1ull << 62}), ErrorCode::kCorruptFile, {"tensor w", "large"});
}

TEST(GgufReader, RefusesBadTensorPlacement) {
  GgufBytes unaligned, past_end, overlap, duplicate, bad_name, empty_name;
  unaligned.header(1, 0).tensor("blk.0.attn_q.weight", {4}, kF32, 8).pad_to(32).zeros(64);
  expect_error(unaligned.bytes(), ErrorCode::kCorruptFile, {"blk.0.attn_q.weight", "offset 8"});
  past_end.header(1, 0).tensor("token_embd.weight", {64, 512}, kF32, 0).pad_to(32).zeros(1000);
  expect_error(past_end.bytes(), ErrorCode::kCorruptFile, {"token_embd.weight", "past the end"});
  overlap.header(2, 0).tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32).pad_to(32).zeros(64);
  expect_error(overlap.bytes(), ErrorCode::kCorruptFile, {"a and b", "overlap"});
  duplicate.header(2, 0).tensor("重み", {8}, kF32, 0).tensor("重み", {8}, kF32, 32).pad_to(32).zeros(64);
  expect_error(duplicate.bytes(), ErrorCode::kCorruptFile, {"重み", "twice"});
  bad_name.header(1, 0).tensor("w\xFF", {8}, kF32, 0).pad_to(32).zeros(32);
  expect_error(bad_name.bytes(), ErrorCode::kCorruptFile, {"tensor 0", "UTF-8"});
  empty_name.header(1, 0).tensor("", {8}, kF32, 0).pad_to(32).zeros(32);
  expect_error(empty_name.bytes(), ErrorCode::kCorruptFile, {"tensor entry 0", "empty name"});
}

// A file written by our writer with many sections; every proper prefix that cuts into
// a section must be refused as corrupt, naming the file, never crash.
TEST(GgufReader, EveryTruncationOfASmallFileIsCorrupt) {
  GgufWriter w;
  w.set_string("general.name", "テストモデル");
  w.set_u32("llama.block_count", 2);
  w.set("tokenizer.ggml.tokens", GgufMetaValue::string_array({"<s>", "こんにちは", "世界"}));
  const float scores[] = {0.5f, -1.0f, 2.0f};
  w.set("tokenizer.ggml.scores", GgufMetaValue::array<float>(scores));
  w.set("test.nested", GgufMetaValue::array_of_arrays({GgufMetaValue::string_array({"a"}),
                                                       GgufMetaValue::array_of_arrays({})}));
  w.add_tensor_owned("a", {8}, TensorType::kF32, std::string(32, '\1'));
  w.add_tensor_owned("b", {32, 2}, TensorType::kQ4_0, std::string(36, '\2'));
  const std::string bytes = w.write_to_string();
  const GgufFile full = GgufFile::parse(bytes, "full.gguf");
  const uint64_t needed = full.data_offset() + full.tensors().back().offset + full.tensors().back().n_bytes;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    const std::string prefix = bytes.substr(0, cut);
    if (cut >= needed) {
      EXPECT_NO_THROW(GgufFile::parse(prefix, "cut.gguf")) << "cut at " << cut;  // only trailing padding lost
      continue;
    }
    try {
      GgufFile::parse(prefix, "切れた.gguf");
      ADD_FAILURE() << "cut at " << cut << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << "cut at " << cut << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("切れた.gguf"), std::string::npos);
    }
  }
}

TEST(GgufReader, TruncatedStories260KIsCorruptAtEveryHeaderByte) {
  const std::string bytes = read_file_bytes(fixture_path("models/stories260K.gguf"));
  const GgufFile full = GgufFile::parse(bytes, "full.gguf");
  // Every byte through the header and directory, then every 4 KiB of data, then the end.
  std::vector<size_t> cuts;
  for (size_t cut = 0; cut < full.data_offset() + 64; ++cut) cuts.push_back(cut);
  for (size_t cut = full.data_offset() + 64; cut < bytes.size(); cut += 4093) cuts.push_back(cut);
  cuts.push_back(bytes.size() - 1);
  for (size_t cut : cuts) {
    try {
      GgufFile::parse(std::string_view(bytes).substr(0, cut), "stories260K.gguf");
      ADD_FAILURE() << "cut at " << cut << " was accepted";
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ErrorCode::kCorruptFile) << "cut at " << cut << ": " << e.what();
    }
  }
  // A cut in the data names the tensor that no longer fits.
  try {
    GgufFile::parse(std::string_view(bytes).substr(0, bytes.size() - 1), "stories260K.gguf");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(full.tensors().back().name), std::string::npos) << e.what();
  }
  // A cut in a value names its key.
  const size_t in_tokens = 24 + 8 + std::strlen("tokenizer.ggml.tokens") + 4 + 12 + 4200;
  try {
    GgufFile::parse(std::string_view(bytes).substr(0, in_tokens), "stories260K.gguf");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.tokens"), std::string::npos) << e.what();
  }
}

TEST(GgufReader, ReadsEveryFixtureModel) {
  for (const char* name : {"quant/Q4_K.gguf", "quant/IQ4_XS.gguf", "quant/BF16.gguf", "tokenizer/llama2-spm.gguf",
                           "arch/qwen2-Q8_0.gguf"}) {
    const GgufFile file = GgufFile::open(fixture_path(name));
    EXPECT_FALSE(file.metadata().empty()) << name;
    for (const GgufTensor& t : file.tensors()) {
      EXPECT_EQ(t.offset % file.alignment(), 0u) << name << " " << t.name;
      EXPECT_LE(file.data_offset() + t.offset + t.n_bytes, file.file_size()) << name << " " << t.name;
    }
  }
}

class GgufJapaneseMessages : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = language();
    set_language(Language::kJapanese);
  }
  void TearDown() override { set_language(saved_); }
  Language saved_ = Language::kEnglish;
};

TEST_F(GgufJapaneseMessages, DuplicateKeyAndUnknownType) {
  GgufBytes duplicate;
  duplicate.header(0, 2).kv_string("general.name", "一").kv_string("general.name", "二");
  expect_error(duplicate.bytes(), ErrorCode::kCorruptFile, {"キー general.name が二度現れます", "ファイルが壊れています"});
  expect_error(one_tensor_file({4}, 99), ErrorCode::kUnsupported, {"テンソル w の型番号 99"});
}

}  // namespace
}  // namespace koto
