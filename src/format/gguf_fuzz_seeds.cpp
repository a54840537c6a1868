// Writes small, valid GGUF files into a folder as seeds for gguf_fuzz: every value
// type, nested arrays, Japanese text, every tensor type, unusual alignments. Usage:
//   gguf_fuzz_seeds OUT_DIR
#include <cstdio>
#include <string>

#include "koto/error.h"
#include "koto/gguf_writer.h"
#include "koto/tensor_type.h"

namespace {

using koto::GgufMetaValue;
using koto::GgufWriter;
using koto::TensorType;

void add_all_value_types(GgufWriter& w) {
  w.set("general.architecture", GgufMetaValue::string("llama"));
  w.set("general.name", GgufMetaValue::string("テストモデル"));
  w.set("t.u8", GgufMetaValue::u8(1));
  w.set("t.i8", GgufMetaValue::i8(-1));
  w.set("t.u16", GgufMetaValue::u16(2));
  w.set("t.i16", GgufMetaValue::i16(-2));
  w.set("t.u32", GgufMetaValue::u32(3));
  w.set("t.i32", GgufMetaValue::i32(-3));
  w.set("t.f32", GgufMetaValue::f32(0.5f));
  w.set("t.bool", GgufMetaValue::boolean(true));
  w.set("t.u64", GgufMetaValue::u64(4));
  w.set("t.i64", GgufMetaValue::i64(-4));
  w.set("t.f64", GgufMetaValue::f64(0.25));
  const float scores[] = {0.0f, -1.5f};
  const uint64_t big[] = {UINT64_MAX, 0};
  w.set("tokenizer.ggml.tokens", GgufMetaValue::string_array({"<s>", "日本"}));
  w.set("tokenizer.ggml.scores", GgufMetaValue::array<float>(scores));
  w.set("t.u64s", GgufMetaValue::array<uint64_t>(big));
  w.set("t.bools", GgufMetaValue::bool_array({true, false}));
  w.set("t.nested", GgufMetaValue::array_of_arrays(
                        {GgufMetaValue::array<float>(scores),
                         GgufMetaValue::array_of_arrays({GgufMetaValue::string_array({"深い"})})}));
}

void write(const GgufWriter& w, const std::string& dir, const std::string& name) {
  w.write_file(dir + "/" + name + ".gguf");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gguf_fuzz_seeds OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  try {
    GgufWriter values;
    add_all_value_types(values);
    write(values, dir, "values");

    // One small tensor of every type (one block per row, two rows).
    GgufWriter types;
    types.set("general.name", GgufMetaValue::string("types"));
    for (uint32_t id = 0; id < 64; ++id) {
      const auto info = koto::tensor_type_info(id);
      if (!info) continue;
      const int64_t bytes = 2 * info->block_bytes;
      types.add_tensor_owned(std::string(info->name), {info->block_size, 2}, info->type,
                             std::string(static_cast<size_t>(bytes), static_cast<char>(id)));
    }
    write(types, dir, "types");

    for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
      GgufWriter aligned;
      aligned.set_alignment(alignment);
      aligned.set("general.name", GgufMetaValue::string("整列"));
      aligned.add_tensor_owned("a", {3}, TensorType::kF32, std::string(12, '\1'));
      aligned.add_tensor_owned("b", {2, 2, 2, 2}, TensorType::kF16, std::string(32, '\2'));
      write(aligned, dir, "aligned" + std::to_string(alignment));
    }

    GgufWriter model;
    add_all_value_types(model);
    model.set("llama.block_count", GgufMetaValue::u32(1));
    model.set("llama.embedding_length", GgufMetaValue::u32(32));
    model.add_tensor_owned("token_embd.weight", {32, 2}, TensorType::kQ8_0, std::string(68, '\3'));
    model.add_tensor_owned("blk.0.attn_q.weight", {256, 1}, TensorType::kQ4_K, std::string(144, '\4'));
    write(model, dir, "model");

    write(GgufWriter(), dir, "empty");
  } catch (const koto::Error& e) {
    std::fprintf(stderr, "gguf_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
