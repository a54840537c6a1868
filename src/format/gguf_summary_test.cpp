#include "koto/gguf_summary.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "koto/gguf_writer.h"
#include "test_support.h"

namespace koto {
namespace {

TEST(GgufSummary, DescribesStories260K) {
  const GgufFile file = GgufFile::open(fixture_path("models/stories260K.gguf"));
  const GgufSummary s = summarize_gguf(file);
  EXPECT_EQ(s.name, "llama");
  EXPECT_EQ(s.architecture, "llama");
  EXPECT_EQ(s.parameters, 292800);
  EXPECT_EQ(format_parameter_count(s.parameters), "292.8 K");
  ASSERT_EQ(s.types.size(), 1u);
  EXPECT_EQ(s.types[0].type, TensorType::kF32);
  EXPECT_EQ(s.types[0].tensors, 48);
  EXPECT_EQ(s.types[0].bytes, 292800u * 4);
  EXPECT_EQ(s.dims.n_layer, 5);
  EXPECT_EQ(s.dims.n_embd, 64);
  EXPECT_EQ(s.dims.n_ff, 172);
  EXPECT_EQ(s.dims.n_head, 8);
  EXPECT_EQ(s.dims.n_head_kv, 4);
  EXPECT_EQ(s.dims.key_length, 8);
  EXPECT_EQ(s.dims.n_vocab, 512);
  EXPECT_EQ(s.dims.context_length, 2048);
  EXPECT_FALSE(s.rope_freq_base.has_value());
  ASSERT_TRUE(s.rms_norm_epsilon.has_value());
  EXPECT_NEAR(*s.rms_norm_epsilon, 1e-5, 1e-9);
  EXPECT_EQ(s.tokenizer_model, "llama");
  EXPECT_EQ(s.bos_id, 1);
  EXPECT_EQ(s.eos_id, 2);
  EXPECT_FALSE(s.has_chat_template);
  // Default context min(2048, 4096); KV = 5 layers × 2048 × 4 heads × (8 + 8) × 2 bytes.
  EXPECT_EQ(s.memory.n_ctx, 2048);
  EXPECT_EQ(s.memory.weights, 292800u * 4);
  EXPECT_EQ(s.memory.kv_cache, 1310720u);
  EXPECT_EQ(s.memory.scratch, 4u * (6 * 64 + 2 * 172 + 512 + 8 * 2048));

  const nlohmann::json j = nlohmann::json::parse(gguf_summary_json(s));
  EXPECT_EQ(j["parameters"], 292800);
  EXPECT_EQ(j["tensor_types"][0]["type"], "F32");
  EXPECT_EQ(j["hyperparameters"]["head_count_kv"], 4);
  EXPECT_TRUE(j["hyperparameters"]["rope_freq_base"].is_null());
  EXPECT_EQ(j["vocabulary"]["size"], 512);
  EXPECT_EQ(j["memory"]["total"], s.memory.total());
}

TEST(GgufSummary, EstimatesMemoryForAGivenContext) {
  ModelDimensions d;
  d.n_layer = 32;
  d.n_embd = 4096;
  d.n_ff = 14336;
  d.n_head = 32;
  d.n_head_kv = 8;
  d.key_length = d.value_length = 128;
  d.n_vocab = 128256;
  d.context_length = 131072;
  const MemoryEstimate m = estimate_memory(d, 4'000'000'000, 0);
  EXPECT_EQ(m.n_ctx, 4096);  // capped default
  EXPECT_EQ(m.kv_cache, 32ull * 4096 * 8 * 256 * 2);  // 512 MiB
  EXPECT_EQ(estimate_memory(d, 0, 8192).kv_cache, 2 * m.kv_cache);
  EXPECT_EQ(m.total(), m.weights + m.kv_cache + m.scratch);
  d.context_length = 0;
  EXPECT_EQ(estimate_memory(d, 0, 0).n_ctx, 4096);
}

TEST(GgufSummary, DetectsChatTemplatesAndFormatsNumbers) {
  EXPECT_EQ(chat_template_family("{% for m in messages %}[INST] {{ m.content }} [/INST]"), "llama2");
  EXPECT_EQ(chat_template_family("<|im_start|>system\n"), "chatml");
  EXPECT_EQ(chat_template_family("<|start_header_id|>user<|end_header_id|>"), "llama3");
  EXPECT_EQ(chat_template_family("<start_of_turn>user\n"), "gemma");
  EXPECT_EQ(chat_template_family("ユーザー: {{ content }}"), "");
  EXPECT_EQ(format_parameter_count(1'540'000'000), "1.54 B");
  EXPECT_EQ(format_parameter_count(124'400'000), "124.4 M");
  EXPECT_EQ(format_parameter_count(999), "999");
  EXPECT_EQ(format_byte_size(512), "512 bytes");
  EXPECT_EQ(format_byte_size(1536), "1.5 KiB");
  EXPECT_EQ(format_byte_size(4563402752), "4.25 GiB");

  GgufWriter w;
  w.set_string("general.architecture", "qwen2");
  w.set_string("general.name", "テストモデル");
  w.set_string("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m.role }}\n{% endfor %}");
  const std::string bytes = w.write_to_string();
  const GgufSummary s = summarize_gguf(GgufFile::parse(bytes, "chat.gguf"));
  EXPECT_TRUE(s.has_chat_template);
  EXPECT_EQ(s.chat_template_family, "chatml");
  EXPECT_EQ(s.chat_template_first_line, "{% for m in messages %}<|im_start|>{{ m.role }}");
  EXPECT_EQ(s.name, "テストモデル");
  EXPECT_EQ(nlohmann::json::parse(gguf_summary_json(s))["name"], "テストモデル");
}

}  // namespace
}  // namespace koto
