// Model::load: everything a file says is checked here, once, so the forward pass can
// trust shapes and types. Messages name the file, the key or tensor, what was found
// and what was expected.
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "koto/model.h"
#include "model/loaded_model.h"
#include "model/repack_cache.h"
#include "tensor/kernels.h"

namespace koto {
namespace model {
namespace {

// Far above any real model, low enough that products of these stay in int64.
constexpr uint64_t kMaxDimension = 1 << 20;
constexpr uint64_t kMaxLayers = 4096;
constexpr uint64_t kMaxContext = 1 << 24;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

class ParamReader {
 public:
  ParamReader(const GgufFile& file, std::string_view arch) : file_(file), prefix_(std::string(arch) + ".") {}

  int32_t required(std::string_view name, uint64_t max) const {
    const std::string key = prefix_ + std::string(name);
    if (file_.find(key) == nullptr) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("{0}: key {1} is missing; the model cannot be run without it",
                     "{0}: キー {1} がありません。これがないとモデルを実行できません", file_.path(), key));
    }
    return checked(key, file_.get_u64(key, 0), max);
  }

  int32_t optional(std::string_view name, uint64_t fallback, uint64_t max) const {
    const std::string key = prefix_ + std::string(name);
    return checked(key, file_.get_u64(key, fallback), max);
  }

  double optional_float(std::string_view name, double fallback) const {
    const std::string key = prefix_ + std::string(name);
    const double value = file_.get_f64(key, fallback);
    if (!std::isfinite(value)) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("{0}: key {1} is not a finite number", "{0}: キー {1} が有限の数ではありません", file_.path(), key));
    }
    return value;
  }

  std::string optional_string(std::string_view name) const {
    return file_.get_string(prefix_ + std::string(name));
  }

  std::string key(std::string_view name) const { return prefix_ + std::string(name); }

 private:
  int32_t checked(const std::string& key, uint64_t value, uint64_t max) const {
    if (value == 0 || value > max) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("{0}: key {1} = {2} is out of range (1 to {3})", "{0}: キー {1} = {2} が範囲外です (1〜{3})",
                     file_.path(), key, value, max));
    }
    return static_cast<int32_t>(value);
  }

  const GgufFile& file_;
  std::string prefix_;
};

[[noreturn]] void throw_bad_params(const GgufFile& file, const std::string& what_en, const std::string& what_ja) {
  throw Error(ErrorCode::kCorruptFile, tr("{0}: inconsistent hyperparameters: {1}", "{0}: ハイパーパラメータが矛盾しています: {2}",
                                          file.path(), what_en, what_ja));
}

// Finds tensors and checks their shape and type against what the forward pass needs.
class TensorReader {
 public:
  explicit TensorReader(const GgufFile& file) : file_(file) {}

  const GgufTensor* find(const std::string& name) const { return file_.find_tensor(name); }

  const GgufTensor& require(const std::string& name, std::vector<int64_t> expected) const {
    const GgufTensor* tensor = file_.find_tensor(name);
    if (tensor == nullptr) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("{0}: tensor {1} is missing; the file is incomplete or not a {2} model",
                     "{0}: テンソル {1} がありません。ファイルが不完全か、{2} モデルではありません", file_.path(), name,
                     file_.architecture()));
    }
    check(*tensor, expected);
    return *tensor;
  }

  void check(const GgufTensor& tensor, const std::vector<int64_t>& expected) const {
    if (tensor.shape != expected) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("{0}: tensor {1} has shape {2}, expected {3} from the model's hyperparameters",
                     "{0}: テンソル {1} の形が {2} です。ハイパーパラメータからは {3} のはずです", file_.path(),
                     tensor.name, shape_string(tensor.shape), shape_string(expected)));
    }
    const TensorTypeInfo& info = tensor_type_info(tensor.type);
    if (!info.supported) {
      throw Error(ErrorCode::kUnsupported,
                  tr("{0}: tensor {1} has type {2}, which koto cannot compute with (supported: {3}); "
                     "use a file quantized to one of those types",
                     "{0}: テンソル {1} の型 {2} には対応していません (対応: {3})。対応する型で量子化されたファイルを使ってください",
                     file_.path(), tensor.name, info.name, supported_tensor_type_names()));
    }
  }

  Matrix matrix(const std::string& name, int64_t n_in, int64_t n_out) const {
    return to_matrix(require(name, {n_in, n_out}));
  }

  static Matrix to_matrix(const GgufTensor& tensor) {
    Matrix m;
    m.data = tensor.data;
    m.type = tensor.type;
    m.n_in = tensor.shape[0];
    m.n_out = tensor.shape[1];
    m.row_bytes = tensor_row_bytes(tensor.type, m.n_in);
    return m;
  }

  std::vector<float> vector(const std::string& name, int64_t n) const { return to_floats(require(name, {n})); }

  // Empty when the tensor is absent.
  std::vector<float> optional_vector(const std::string& name, int64_t n) const {
    const GgufTensor* tensor = find(name);
    if (tensor == nullptr) return {};
    check(*tensor, {n});
    return to_floats(*tensor);
  }

 private:
  static std::vector<float> to_floats(const GgufTensor& tensor) {
    std::vector<float> values(static_cast<size_t>(tensor.n_elements));
    kernels::dequantize_row(tensor.type, tensor.data, values.data(), tensor.n_elements);
    return values;
  }

  const GgufFile& file_;
};

}  // namespace

ModelParams read_model_params(const GgufFile& file, const Architecture& architecture) {
  const ParamReader keys(file, architecture.name);
  ModelParams p;
  p.architecture = std::string(architecture.name);
  p.name = file.get_string("general.name");
  p.n_ctx_train = keys.required("context_length", kMaxContext);
  p.n_embd = keys.required("embedding_length", kMaxDimension);
  p.n_layer = keys.required("block_count", kMaxLayers);
  p.n_ff = keys.required("feed_forward_length", kMaxDimension);
  p.n_head = keys.required("attention.head_count", kMaxDimension);
  p.n_head_kv = keys.optional("attention.head_count_kv", static_cast<uint64_t>(p.n_head), kMaxDimension);
  p.rms_eps = static_cast<float>(keys.optional_float("attention.layer_norm_rms_epsilon", 1e-5));
  p.rope_freq_base = static_cast<float>(keys.optional_float("rope.freq_base", 10000.0));
  p.rope_neox = architecture.rope_neox;

  if (p.n_head % p.n_head_kv != 0) {
    throw_bad_params(file,
                     fmt::format("{} = {} is not a multiple of {} = {}", keys.key("attention.head_count"), p.n_head,
                                 keys.key("attention.head_count_kv"), p.n_head_kv),
                     fmt::format("{} = {} が {} = {} の倍数ではありません", keys.key("attention.head_count"), p.n_head,
                                 keys.key("attention.head_count_kv"), p.n_head_kv));
  }
  if (file.find(keys.key("attention.key_length")) != nullptr) {
    p.head_dim = keys.required("attention.key_length", kMaxDimension);
  } else {
    if (p.n_embd % p.n_head != 0) {
      throw_bad_params(file,
                       fmt::format("{} = {} is not a multiple of {} = {}", keys.key("embedding_length"), p.n_embd,
                                   keys.key("attention.head_count"), p.n_head),
                       fmt::format("{} = {} が {} = {} の倍数ではありません", keys.key("embedding_length"), p.n_embd,
                                   keys.key("attention.head_count"), p.n_head));
    }
    p.head_dim = p.n_embd / p.n_head;
  }
  if (p.head_dim % 2 != 0) {
    throw_bad_params(file, fmt::format("head size {} is odd; RoPE needs pairs", p.head_dim),
                     fmt::format("ヘッドの大きさ {} が奇数です。RoPE には偶数が必要です", p.head_dim));
  }
  const int32_t value_length = keys.optional("attention.value_length", static_cast<uint64_t>(p.head_dim), kMaxDimension);
  if (value_length != p.head_dim) {
    throw Error(ErrorCode::kUnsupported,
                tr("{0}: value heads of {1} differ from key heads of {2}; koto does not run such models",
                   "{0}: value ヘッドの大きさ {1} が key ヘッドの {2} と異なります。このようなモデルには対応していません",
                   file.path(), value_length, p.head_dim));
  }
  const int32_t rope_dims = keys.optional("rope.dimension_count", static_cast<uint64_t>(p.head_dim), kMaxDimension);
  if (rope_dims != p.head_dim) {
    throw Error(ErrorCode::kUnsupported,
                tr("{0}: RoPE on {1} of {2} head dimensions (partial rotary) is not supported",
                   "{0}: ヘッドの {2} 次元のうち {1} 次元だけの RoPE (部分回転) には対応していません", file.path(),
                   rope_dims, p.head_dim));
  }

  // Context extension: linear scaling is a position multiplier; Llama 3.1's scaling
  // comes as rope_freqs.weight (read with the weights). Anything else is refused
  // rather than silently run with the wrong positions.
  std::string scaling = keys.optional_string("rope.scaling.type");
  double factor = keys.optional_float("rope.scaling.factor", 0.0);
  if (scaling.empty() && file.find(keys.key("rope.scale_linear")) != nullptr) {
    scaling = "linear";
    factor = keys.optional_float("rope.scale_linear", 1.0);
  }
  if (scaling == "linear") {
    if (factor > 0.0) p.rope_freq_scale = static_cast<float>(1.0 / factor);
  } else if (!scaling.empty() && scaling != "none") {
    throw Error(ErrorCode::kUnsupported,
                tr("{0}: RoPE scaling \"{1}\" ({2}) is not supported (supported: none, linear, Llama 3 rope_freqs)",
                   "{0}: RoPE スケーリング \"{1}\" ({2}) には対応していません (対応: none, linear, Llama 3 の rope_freqs)",
                   file.path(), scaling, keys.key("rope.scaling.type")));
  }
  return p;
}

Weights read_weights(const GgufFile& file, const Architecture& arch, const ModelParams& p) {
  const TensorReader tensors(file);
  const int64_t n_embd = p.n_embd;
  const int64_t q_dim = static_cast<int64_t>(p.n_head) * p.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(p.n_head_kv) * p.head_dim;
  Weights w;

  // token_embd fixes n_vocab; check its row length first.
  const GgufTensor* embd = tensors.find("token_embd.weight");
  if (embd == nullptr || embd->shape.size() != 2) {
    tensors.require("token_embd.weight", {n_embd, embd ? embd->shape.back() : 0});
  }
  const int64_t n_vocab = embd->shape[1];
  w.token_embd = tensors.matrix("token_embd.weight", n_embd, n_vocab);

  w.layers.resize(static_cast<size_t>(p.n_layer));
  for (int l = 0; l < p.n_layer; ++l) {
    LayerWeights& layer = w.layers[static_cast<size_t>(l)];
    auto name = [l](std::string_view suffix) { return layer_tensor_name(l, suffix); };
    layer.attn_norm = tensors.vector(name("attn_norm.weight"), n_embd);
    layer.wq = tensors.matrix(name("attn_q.weight"), n_embd, q_dim);
    layer.wk = tensors.matrix(name("attn_k.weight"), n_embd, kv_dim);
    layer.wv = tensors.matrix(name("attn_v.weight"), n_embd, kv_dim);
    if (arch.qkv_bias) {
      layer.bq = tensors.vector(name("attn_q.bias"), q_dim);
      layer.bk = tensors.vector(name("attn_k.bias"), kv_dim);
      layer.bv = tensors.vector(name("attn_v.bias"), kv_dim);
    }
    if (arch.qk_norm) {
      layer.q_norm = tensors.vector(name("attn_q_norm.weight"), p.head_dim);
      layer.k_norm = tensors.vector(name("attn_k_norm.weight"), p.head_dim);
    }
    layer.wo = tensors.matrix(name("attn_output.weight"), q_dim, n_embd);
    layer.ffn_norm = tensors.vector(name("ffn_norm.weight"), n_embd);
    layer.w_gate = tensors.matrix(name("ffn_gate.weight"), n_embd, p.n_ff);
    layer.w_up = tensors.matrix(name("ffn_up.weight"), n_embd, p.n_ff);
    layer.w_down = tensors.matrix(name("ffn_down.weight"), p.n_ff, n_embd);
  }

  w.output_norm = tensors.vector("output_norm.weight", n_embd);
  if (arch.output_may_be_tied && tensors.find("output.weight") == nullptr) {
    w.output = w.token_embd;
    w.tied_output = true;
  } else {
    w.output = tensors.matrix("output.weight", n_embd, n_vocab);
  }

  // RoPE speeds; rope_freqs.weight (Llama 3.1) divides them pair by pair.
  const std::vector<float> freq_factors = tensors.optional_vector("rope_freqs.weight", p.head_dim / 2);
  w.rope_inv_freq.resize(static_cast<size_t>(p.head_dim / 2));
  for (int i = 0; i < p.head_dim / 2; ++i) {
    double speed = std::pow(static_cast<double>(p.rope_freq_base), -2.0 * i / p.head_dim) * p.rope_freq_scale;
    if (!freq_factors.empty()) speed /= freq_factors[static_cast<size_t>(i)];
    w.rope_inv_freq[static_cast<size_t>(i)] = speed;
  }
  return w;
}

}  // namespace model

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& options) {
  GgufFile file = GgufFile::open(path);
  const std::string arch_name(file.architecture());
  const model::Architecture* arch = model::find_architecture(arch_name);
  if (arch == nullptr) {
    throw Error(ErrorCode::kUnsupported,
                arch_name.empty()
                    ? tr("{0}: general.architecture is missing, so koto cannot tell how to run it (supported: {1})",
                         "{0}: general.architecture がないため実行方法が分かりません (対応: {1})", path,
                         model::supported_architecture_names())
                    : tr("{0}: architecture \"{1}\" is not supported (supported: {2})",
                         "{0}: アーキテクチャ \"{1}\" には対応していません (対応: {2})", path, arch_name,
                         model::supported_architecture_names()));
  }
  ModelParams params = model::read_model_params(file, *arch);
  model::Weights weights = model::read_weights(file, *arch, params);
  params.n_vocab = static_cast<int32_t>(weights.token_embd.n_out);
  if (params.n_vocab <= 0 || static_cast<uint64_t>(params.n_vocab) > (1u << 24)) {
    throw Error(ErrorCode::kCorruptFile, tr("{0}: vocabulary of {1} tokens is out of range",
                                            "{0}: 語彙数 {1} が範囲外です", path, params.n_vocab));
  }
  for (const GgufTensor& tensor : file.tensors()) params.n_params += tensor.n_elements;

  std::unique_ptr<Tokenizer> tokenizer = Tokenizer::from_gguf(file);
  if (tokenizer->vocab_size() > params.n_vocab) {
    throw Error(ErrorCode::kCorruptFile,
                tr("{0}: the tokenizer has {1} tokens but token_embd.weight only {2} rows",
                   "{0}: トークナイザには {1} 個のトークンがありますが、token_embd.weight は {2} 行しかありません", path,
                   tokenizer->vocab_size(), params.n_vocab));
  }
  RepackReport report;
  std::unique_ptr<MappedFile> repacked = model::repack_weights(file, weights, options, report);
  return std::make_unique<model::LoadedModel>(std::move(file), *arch, std::move(params), std::move(weights),
                                              std::move(tokenizer), options.n_threads, std::move(repacked),
                                              std::move(report));
}

}  // namespace koto
