#include "koto/quant_mix.h"

#include <gtest/gtest.h>

#include "koto/synth.h"

namespace koto {
namespace {

TEST(QuantMix, FindsTypesAndMixesCaseInsensitively) {
  ASSERT_TRUE(find_quant_mix("q4_k_m"));
  EXPECT_EQ(find_quant_mix("q4_k_m")->name, "Q4_K_M");
  EXPECT_EQ(find_quant_mix("Q4_K_M")->base, TensorType::kQ4_K);
  EXPECT_EQ(find_quant_mix("Q4_K_M")->file_type, 15u);
  EXPECT_EQ(find_quant_mix("Q5_0")->file_type, 8u);
  EXPECT_EQ(find_quant_mix("Q8_0")->file_type, 7u);
  EXPECT_FALSE(find_quant_mix("Q3_K_XL"));
  EXPECT_NE(quant_mix_names().find("Q5_K_M"), std::string::npos);
}

TEST(QuantMix, MoreBitsInAboutHalfTheLayers) {
  int count = 0;
  for (int l = 0; l < 32; ++l) count += more_bits_layer(l, 32);
  EXPECT_EQ(count, 16);
  EXPECT_TRUE(more_bits_layer(0, 32));
  EXPECT_TRUE(more_bits_layer(31, 32));
  EXPECT_TRUE(more_bits_layer(6, 32));
  EXPECT_FALSE(more_bits_layer(4, 32));
  EXPECT_FALSE(more_bits_layer(5, 32));
}

TEST(QuantMix, PerTensorRule) {
  const QuantMix q4km = *find_quant_mix("Q4_K_M");
  const std::vector<int64_t> m = {4096, 4096};
  EXPECT_EQ(quant_mix_tensor_type(q4km, "blk.0.attn_v.weight", m, 32, false), TensorType::kQ6_K);
  EXPECT_EQ(quant_mix_tensor_type(q4km, "blk.4.attn_v.weight", m, 32, false), TensorType::kQ4_K);
  EXPECT_EQ(quant_mix_tensor_type(q4km, "blk.6.ffn_down.weight", m, 32, false), TensorType::kQ6_K);
  EXPECT_EQ(quant_mix_tensor_type(q4km, "blk.0.attn_q.weight", m, 32, false), TensorType::kQ4_K);
  EXPECT_EQ(quant_mix_tensor_type(q4km, "output.weight", m, 32, false), TensorType::kQ6_K);
  EXPECT_EQ(quant_mix_tensor_type(q4km, "token_embd.weight", m, 32, false), TensorType::kQ4_K);
  EXPECT_EQ(quant_mix_tensor_type(q4km, "token_embd.weight", m, 32, true), TensorType::kQ6_K);
  EXPECT_EQ(quant_mix_tensor_type(q4km, "blk.0.attn_norm.weight", {4096}, 32, false), TensorType::kF32);
  const QuantMix q8 = *find_quant_mix("Q8_0");
  EXPECT_EQ(quant_mix_tensor_type(q8, "output.weight", m, 32, false), TensorType::kQ8_0);
  EXPECT_EQ(quant_mix_tensor_type(*find_quant_mix("Q5_0"), "output.weight", m, 32, false), TensorType::kQ6_K);
}

TEST(QuantMix, FallbackForRowsThatDoNotFitTheBlock) {
  EXPECT_EQ(fallback_tensor_type(TensorType::kQ4_K, 4096), TensorType::kQ4_K);
  EXPECT_EQ(fallback_tensor_type(TensorType::kQ4_K, 896), TensorType::kQ5_0);
  EXPECT_EQ(fallback_tensor_type(TensorType::kQ6_K, 896), TensorType::kQ8_0);
  EXPECT_EQ(fallback_tensor_type(TensorType::kQ5_K, 896), TensorType::kQ5_1);
  EXPECT_EQ(fallback_tensor_type(TensorType::kQ8_0, 100), TensorType::kF16);
  EXPECT_EQ(tensor_layer_index("blk.17.ffn_up.weight"), 17);
  EXPECT_EQ(tensor_layer_index("output.weight"), -1);
  EXPECT_EQ(tensor_layer_index("blk.x.ffn_up.weight"), -1);
}

uint64_t planned_bytes(std::string_view shape, std::string_view type) {
  uint64_t bytes = 0;
  for (const SynthTensor& t : synth_tensors(*find_model_shape(shape), *find_quant_mix(type))) bytes += t.bytes();
  return bytes;
}

// The published files: Llama-2-7B Q4_K_M 4.08 GB, Q5_0 4.65 GB, Q8_0 7.16 GB.
TEST(QuantMix, Llama2SevenBSizesMatchThePublishedFiles) {
  EXPECT_NEAR(planned_bytes("llama2-7b", "Q4_K_M") / 1e9, 4.08, 0.03);
  EXPECT_NEAR(planned_bytes("llama2-7b", "Q5_0") / 1e9, 4.65, 0.03);
  EXPECT_NEAR(planned_bytes("llama2-7b", "Q8_0") / 1e9, 7.16, 0.03);
  EXPECT_NEAR(planned_bytes("llama2-7b", "F16") / 1e9, 13.48, 0.03);
}

TEST(QuantMix, Qwen05BFallsBackOnItsNarrowRows) {
  const std::vector<SynthTensor> tensors = synth_tensors(*find_model_shape("qwen2.5-0.5b"), *find_quant_mix("Q4_K_M"));
  for (const SynthTensor& t : tensors) {
    if (t.name == "blk.0.attn_q.weight") {
      EXPECT_EQ(t.type, TensorType::kQ5_0);
    } else if (t.name == "blk.0.ffn_down.weight") {
      EXPECT_EQ(t.type, TensorType::kQ6_K);  // rows of 4864 = 19 × 256
    } else if (t.name == "token_embd.weight") {
      EXPECT_EQ(t.type, TensorType::kQ8_0);  // tied: Q6_K → Q8_0 on rows of 896
    }
  }
}

}  // namespace
}  // namespace koto
