#include "koto/gguf.h"

#include <gtest/gtest.h>

#include "koto/error.h"
#include "test_support.h"

namespace koto {
namespace {

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

}  // namespace
}  // namespace koto
