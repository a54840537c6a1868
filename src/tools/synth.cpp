#include "koto/synth.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_writer.h"
#include "koto/i18n.h"
#include "tensor/quantize.h"
#include "tools/random_blocks.h"

namespace koto {
namespace {

// Published config.json values. ELYZA-japanese-Llama-2-7b is Llama-2-7B's shape; its
// rms_norm_eps is taken as Llama-2's 1e-5 (the value does not change speed or memory).
constexpr ModelShape kShapes[] = {
    {"llama2-7b", "llama", "ELYZA-japanese-Llama-2-7b, Llama-2-7B", 4096, 32, 32, 32, 0, 11008, 32000, 4096, 1e-5f,
     10000.0f, false},
    {"llama3-8b", "llama", "Llama-3-8B, Llama-3.1-8B (without rope_freqs)", 4096, 32, 32, 8, 0, 14336, 128256, 8192,
     1e-5f, 500000.0f, false},
    {"qwen2.5-0.5b", "qwen2", "Qwen2.5-0.5B", 896, 24, 14, 2, 0, 4864, 151936, 32768, 1e-6f, 1e6f, true},
    {"qwen2.5-1.5b", "qwen2", "TinySwallow-1.5B, Qwen2.5-1.5B", 1536, 28, 12, 2, 0, 8960, 151936, 32768, 1e-6f, 1e6f,
     true},
    {"qwen3-1.7b", "qwen3", "Qwen3-1.7B", 2048, 28, 16, 8, 128, 6144, 151936, 40960, 1e-6f, 1e6f, true},
    // Test shapes of a few MB, one per architecture; row lengths are multiples of 256
    // so every type fits without fallback.
    {"tiny", "llama", "test shape (llama)", 256, 2, 8, 2, 0, 768, 512, 2048, 1e-5f, 10000.0f, false},
    {"tiny-qwen2", "qwen2", "test shape (qwen2, tied, biases)", 256, 2, 4, 2, 0, 512, 512, 2048, 1e-6f, 1e6f, true},
    {"tiny-qwen3", "qwen3", "test shape (qwen3, tied, q/k norms)", 256, 2, 4, 2, 128, 512, 512, 2048, 1e-6f, 1e6f,
     true},
};

constexpr float kWeightSigma = 0.02f;
constexpr int32_t kTokenTypeNormal = 1;
constexpr int32_t kTokenTypeUnknown = 2;
constexpr int32_t kTokenTypeControl = 3;
constexpr int32_t kTokenTypeUnused = 5;
constexpr int32_t kTokenTypeByte = 6;

uint64_t name_hash(std::string_view name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

std::string owned_floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

std::vector<float> noisy_vector(int64_t n, float center, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, kWeightSigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = center + normal(rng);
  return v;
}

// "▁" followed by a base-26 spelling of i: unique, never a byte or control piece.
std::string filler_piece(int64_t i) {
  std::string letters;
  do {
    letters.insert(letters.begin(), static_cast<char>('a' + i % 26));
    i = i / 26 - 1;
  } while (i >= 0);
  return "\xE2\x96\x81" + letters;
}

void write_synthetic_vocab(GgufWriter& writer, int32_t n_vocab) {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(n_vocab));
  auto add = [&](std::string piece, float score, int32_t type) {
    tokens.push_back(std::move(piece));
    scores.push_back(score);
    types.push_back(type);
  };
  add("<unk>", 0.0f, kTokenTypeUnknown);
  add("<s>", 0.0f, kTokenTypeControl);
  add("</s>", 0.0f, kTokenTypeControl);
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0.0f, kTokenTypeByte);
  for (int64_t i = 0; static_cast<int32_t>(tokens.size()) < n_vocab; ++i) {
    add(filler_piece(i), -static_cast<float>(i + 1), kTokenTypeNormal);
  }
  writer.set_string("tokenizer.ggml.model", "llama");
  writer.set("tokenizer.ggml.tokens", GgufMetaValue::string_array(std::move(tokens)));
  writer.set("tokenizer.ggml.scores", GgufMetaValue::array<float>(scores));
  writer.set("tokenizer.ggml.token_type", GgufMetaValue::array<int32_t>(types));
  writer.set_u32("tokenizer.ggml.bos_token_id", 1);
  writer.set_u32("tokenizer.ggml.eos_token_id", 2);
  writer.set_u32("tokenizer.ggml.unknown_token_id", 0);
  writer.set("tokenizer.ggml.add_bos_token", GgufMetaValue::boolean(true));
  writer.set("tokenizer.ggml.add_eos_token", GgufMetaValue::boolean(false));
}

// Copies tokenizer.* from `path`, padding the token list to n_vocab. Returns the
// number of tokens added.
int32_t copy_vocab(GgufWriter& writer, const std::string& path, const ModelShape& shape) {
  const GgufFile vocab = GgufFile::open(path);
  const GgufValue* tokens = vocab.find("tokenizer.ggml.tokens");
  if (tokens == nullptr || !tokens->is_array() || tokens->element_type() != GgufValueType::kString) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("{0}: no tokenizer.ggml.tokens; --vocab needs a GGUF file with a vocabulary",
                   "{0}: tokenizer.ggml.tokens がありません。--vocab には語彙を含む GGUF ファイルを指定してください", path));
  }
  const uint64_t n_tokens = tokens->size();
  if (n_tokens > static_cast<uint64_t>(shape.n_vocab)) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("{0} has {1} tokens, more than the {2} rows of {3}'s embedding; use a vocabulary made for {3}",
                   "{0} のトークン数 {1} は {3} の埋め込み行数 {2} を超えています。{3} 用の語彙を指定してください", path,
                   n_tokens, shape.n_vocab, shape.name));
  }
  const uint64_t pad = static_cast<uint64_t>(shape.n_vocab) - n_tokens;
  for (const GgufKeyValue& kv : vocab.metadata()) {
    if (kv.key.substr(0, 10) != "tokenizer.") continue;
    const GgufValue& v = kv.value;
    const bool per_token = v.is_array() && v.size() == n_tokens &&
                           (kv.key == "tokenizer.ggml.tokens" || kv.key == "tokenizer.ggml.scores" ||
                            kv.key == "tokenizer.ggml.token_type");
    if (pad == 0 || !per_token) {
      writer.set(kv.key, GgufMetaValue::copy_of(v));
    } else if (kv.key == "tokenizer.ggml.tokens") {
      std::vector<std::string> padded;
      padded.reserve(static_cast<size_t>(shape.n_vocab));
      for (uint64_t i = 0; i < n_tokens; ++i) padded.emplace_back(v.string_at(i));
      for (uint64_t i = n_tokens; i < static_cast<uint64_t>(shape.n_vocab); ++i) padded.push_back(fmt::format("[PAD{}]", i));
      writer.set(kv.key, GgufMetaValue::string_array(std::move(padded)));
    } else if (kv.key == "tokenizer.ggml.scores") {
      std::vector<float> padded(static_cast<size_t>(shape.n_vocab), 0.0f);
      for (uint64_t i = 0; i < n_tokens; ++i) padded[i] = static_cast<float>(v.float_at(i));
      writer.set(kv.key, GgufMetaValue::array<float>(padded));
    } else {
      std::vector<int32_t> padded(static_cast<size_t>(shape.n_vocab), kTokenTypeUnused);
      for (uint64_t i = 0; i < n_tokens; ++i) padded[i] = static_cast<int32_t>(v.int_at(i));
      writer.set(kv.key, GgufMetaValue::array<int32_t>(padded));
    }
  }
  return static_cast<int32_t>(pad);
}

}  // namespace

std::span<const ModelShape> model_shapes() { return kShapes; }

const ModelShape* find_model_shape(std::string_view name) {
  for (const ModelShape& shape : kShapes) {
    if (shape.name == name) return &shape;
  }
  return nullptr;
}

std::string model_shape_names() {
  std::string names;
  for (const ModelShape& shape : kShapes) {
    if (!names.empty()) names += ", ";
    names += shape.name;
  }
  return names;
}

uint64_t SynthTensor::bytes() const {
  uint64_t rows = 1;
  for (size_t i = 1; i < shape.size(); ++i) rows *= static_cast<uint64_t>(shape[i]);
  return rows * static_cast<uint64_t>(tensor_row_bytes(type, shape[0]));
}

std::vector<SynthTensor> synth_tensors(const ModelShape& shape, const QuantMix& mix) {
  const std::string arch(shape.architecture);
  const int64_t E = shape.n_embd;
  const int64_t D = shape.head_dim > 0 ? shape.head_dim : shape.n_embd / shape.n_head;
  const int64_t Q = shape.n_head * D;
  const int64_t K = shape.n_head_kv * D;
  const int64_t F = shape.n_ff;
  std::vector<SynthTensor> tensors;
  auto matrix = [&](std::string name, int64_t n_in, int64_t n_out) {
    std::vector<int64_t> dims = {n_in, n_out};
    const TensorType wanted = quant_mix_tensor_type(mix, name, dims, shape.n_layer, shape.tied_embeddings);
    tensors.push_back({std::move(name), std::move(dims), fallback_tensor_type(wanted, n_in), SynthTensor::Kind::kMatrix});
  };
  auto vector = [&](std::string name, int64_t n, SynthTensor::Kind kind) {
    tensors.push_back({std::move(name), {n}, TensorType::kF32, kind});
  };
  using Kind = SynthTensor::Kind;
  matrix("token_embd.weight", E, shape.n_vocab);
  for (int l = 0; l < shape.n_layer; ++l) {
    auto name = [l](std::string_view suffix) { return fmt::format("blk.{}.{}", l, suffix); };
    vector(name("attn_norm.weight"), E, Kind::kNorm);
    matrix(name("attn_q.weight"), E, Q);
    matrix(name("attn_k.weight"), E, K);
    matrix(name("attn_v.weight"), E, K);
    if (arch == "qwen2") {
      vector(name("attn_q.bias"), Q, Kind::kBias);
      vector(name("attn_k.bias"), K, Kind::kBias);
      vector(name("attn_v.bias"), K, Kind::kBias);
    }
    if (arch == "qwen3") {
      vector(name("attn_q_norm.weight"), D, Kind::kNorm);
      vector(name("attn_k_norm.weight"), D, Kind::kNorm);
    }
    matrix(name("attn_output.weight"), Q, E);
    vector(name("ffn_norm.weight"), E, Kind::kNorm);
    matrix(name("ffn_gate.weight"), E, F);
    matrix(name("ffn_up.weight"), E, F);
    matrix(name("ffn_down.weight"), F, E);
  }
  vector("output_norm.weight", E, Kind::kNorm);
  if (!shape.tied_embeddings) matrix("output.weight", E, shape.n_vocab);
  return tensors;
}

SynthReport synth_model(const SynthOptions& options, const std::string& path) {
  const auto start = std::chrono::steady_clock::now();
  const ModelShape* shape = find_model_shape(options.shape);
  if (shape == nullptr) {
    throw Error(ErrorCode::kInvalidArgument, tr("unknown shape \"{0}\" (known: {1})", "不明な形 \"{0}\" です (既知: {1})",
                                                options.shape, model_shape_names()));
  }
  const std::optional<QuantMix> mix = find_quant_mix(options.type);
  if (!mix) {
    throw Error(ErrorCode::kInvalidArgument, tr("unknown type \"{0}\" (known: {1})", "不明な型 \"{0}\" です (既知: {1})",
                                                options.type, quant_mix_names()));
  }
  const std::string arch(shape->architecture);
  const int64_t E = shape->n_embd;
  const int64_t D = shape->head_dim > 0 ? shape->head_dim : shape->n_embd / shape->n_head;
  const int64_t F = shape->n_ff;
  const int64_t V = shape->n_vocab;

  GgufWriter writer;
  SynthReport report;
  writer.set_string("general.architecture", arch);
  writer.set_string("general.name", fmt::format("synthetic {} {}", shape->name, mix->name));
  writer.set_u32("general.file_type", mix->file_type);
  writer.set_string("koto.synth.shape", std::string(shape->name));
  writer.set("koto.synth.seed", GgufMetaValue::u64(options.seed));
  writer.set_u32(arch + ".context_length", static_cast<uint32_t>(shape->n_ctx));
  writer.set_u32(arch + ".embedding_length", static_cast<uint32_t>(E));
  writer.set_u32(arch + ".block_count", static_cast<uint32_t>(shape->n_layer));
  writer.set_u32(arch + ".feed_forward_length", static_cast<uint32_t>(F));
  writer.set_u32(arch + ".attention.head_count", static_cast<uint32_t>(shape->n_head));
  writer.set_u32(arch + ".attention.head_count_kv", static_cast<uint32_t>(shape->n_head_kv));
  writer.set_f32(arch + ".attention.layer_norm_rms_epsilon", shape->rms_eps);
  writer.set_f32(arch + ".rope.freq_base", shape->rope_freq_base);
  writer.set_u32(arch + ".rope.dimension_count", static_cast<uint32_t>(D));
  if (shape->head_dim > 0) {
    writer.set_u32(arch + ".attention.key_length", static_cast<uint32_t>(D));
    writer.set_u32(arch + ".attention.value_length", static_cast<uint32_t>(D));
  }
  writer.set_u32(arch + ".vocab_size", static_cast<uint32_t>(V));

  if (options.vocab_path.empty()) {
    write_synthetic_vocab(writer, shape->n_vocab);
    report.vocab_tokens = shape->n_vocab;
  } else {
    report.padded_tokens = copy_vocab(writer, options.vocab_path, *shape);
    report.vocab_tokens = shape->n_vocab;
  }

  // Progress is reported against the whole file's size. The writer runs the producers
  // one after another inside write_file below, so they share these by reference.
  uint64_t done = 0;
  uint64_t total = 0;  // known once every tensor is added
  tools::RandomBlockPools pools(kWeightSigma, options.seed);
  bool quantized = false;

  for (const SynthTensor& t : synth_tensors(*shape, *mix)) {
    const uint64_t seed = options.seed ^ name_hash(t.name);
    report.n_params += t.shape.size() == 1 ? t.shape[0] : t.shape[0] * t.shape[1];
    if (t.kind != SynthTensor::Kind::kMatrix) {
      const float center = t.kind == SynthTensor::Kind::kNorm ? 1.0f : 0.0f;
      writer.add_tensor_owned(t.name, t.shape, TensorType::kF32, owned_floats(noisy_vector(t.shape[0], center, seed)));
      continue;
    }
    quantized |= tensor_type_info(t.type).block_size > 1;
    const tools::RandomBlockPool* pool = &pools.get(t.type);
    const int64_t n_in = t.shape[0];
    const int64_t n_out = t.shape[1];
    writer.add_tensor(t.name, t.shape, t.type, [pool, seed, n_in, n_out, &done, &total, &options](GgufDataSink& sink) {
      pool->write_rows(sink, n_in, n_out, seed, [&](uint64_t n) {
        done += n;
        if (options.progress) options.progress(done, total);
      });
    });
  }
  if (quantized) writer.set_u32("general.quantization_version", 2);

  total = writer.file_size();
  writer.write_file(path);
  report.file_bytes = total;
  report.n_vocab = shape->n_vocab;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace koto
