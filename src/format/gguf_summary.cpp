#include "koto/gguf_summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "koto/error.h"

namespace koto {
namespace {

constexpr int64_t kDefaultMaxContext = 4096;

int64_t get_dim(const GgufFile& file, const std::string& arch, std::string_view suffix) {
  const uint64_t v = file.get_u64(fmt::format("{}.{}", arch, suffix), 0);
  // A dimension beyond 2^40 is not a model; treat as unknown rather than overflow below.
  return v > (1ull << 40) ? 0 : static_cast<int64_t>(v);
}

uint64_t saturating_mul(std::initializer_list<uint64_t> factors) {
  uint64_t result = 1;
  for (uint64_t f : factors) {
    if (f != 0 && result > UINT64_MAX / f) return UINT64_MAX;
    result *= f;
  }
  return result;
}

}  // namespace

ModelDimensions model_dimensions(const GgufFile& file) {
  const std::string arch(file.architecture());
  ModelDimensions d;
  if (arch.empty()) return d;
  d.n_layer = get_dim(file, arch, "block_count");
  d.n_embd = get_dim(file, arch, "embedding_length");
  d.n_ff = get_dim(file, arch, "feed_forward_length");
  d.n_head = get_dim(file, arch, "attention.head_count");
  d.n_head_kv = get_dim(file, arch, "attention.head_count_kv");
  if (d.n_head_kv == 0) d.n_head_kv = d.n_head;
  d.key_length = get_dim(file, arch, "attention.key_length");
  if (d.key_length == 0 && d.n_head > 0) d.key_length = d.n_embd / d.n_head;
  d.value_length = get_dim(file, arch, "attention.value_length");
  if (d.value_length == 0) d.value_length = d.key_length;
  d.context_length = get_dim(file, arch, "context_length");
  d.n_vocab = get_dim(file, arch, "vocab_size");
  if (d.n_vocab == 0) {
    if (const GgufValue* tokens = file.find("tokenizer.ggml.tokens"); tokens != nullptr && tokens->is_array()) {
      d.n_vocab = static_cast<int64_t>(tokens->size());
    }
  }
  return d;
}

MemoryEstimate estimate_memory(const ModelDimensions& d, uint64_t weight_bytes, int64_t n_ctx) {
  MemoryEstimate m;
  if (n_ctx <= 0) n_ctx = d.context_length > 0 ? std::min(d.context_length, kDefaultMaxContext) : kDefaultMaxContext;
  m.n_ctx = n_ctx;
  m.weights = weight_bytes;
  const auto u = [](int64_t v) { return static_cast<uint64_t>(std::max<int64_t>(v, 0)); };
  m.kv_cache = saturating_mul({u(d.n_layer), u(n_ctx), u(d.n_head_kv), u(d.key_length) + u(d.value_length), 2});
  // x, xb, xb2, q, k, v (≈ n_embd each), the two FFN buffers, logits, attention scores.
  const uint64_t floats = 6 * u(d.n_embd) + 2 * u(d.n_ff) + u(d.n_vocab) + saturating_mul({u(d.n_head), u(n_ctx)});
  m.scratch = saturating_mul({floats, 4});
  return m;
}

std::string_view chat_template_family(std::string_view t) {
  if (t.find("<|start_header_id|>") != std::string_view::npos) return "llama3";
  if (t.find("<|im_start|>") != std::string_view::npos) return "chatml";
  if (t.find("<start_of_turn>") != std::string_view::npos) return "gemma";
  if (t.find("[INST]") != std::string_view::npos) return "llama2";
  return "";
}

GgufSummary summarize_gguf(const GgufFile& file, int64_t n_ctx) {
  GgufSummary s;
  s.path = file.path();
  s.file_size = file.file_size();
  s.version = file.version();
  s.alignment = file.alignment();
  s.n_tensors = file.tensors().size();
  s.n_keys = file.metadata().size();
  s.name = file.get_string("general.name");
  s.architecture = std::string(file.architecture());

  std::map<uint32_t, TensorTypeCount> by_type;
  uint64_t weight_bytes = 0;
  for (const GgufTensor& t : file.tensors()) {
    s.parameters += t.n_elements;  // each fits the file, so the sum cannot overflow int64
    weight_bytes += t.n_bytes;
    TensorTypeCount& c = by_type[static_cast<uint32_t>(t.type)];
    c.type = t.type;
    c.tensors += 1;
    c.bytes += t.n_bytes;
  }
  for (const auto& [id, count] : by_type) s.types.push_back(count);

  s.dims = model_dimensions(file);
  if (!s.architecture.empty()) {
    const std::string freq_key = s.architecture + ".rope.freq_base";
    const std::string eps_key = s.architecture + ".attention.layer_norm_rms_epsilon";
    if (file.find(freq_key) != nullptr) s.rope_freq_base = file.get_f64(freq_key, 0);
    if (file.find(eps_key) != nullptr) s.rms_norm_epsilon = file.get_f64(eps_key, 0);
  }
  s.tokenizer_model = file.get_string("tokenizer.ggml.model");
  s.tokenizer_pre = file.get_string("tokenizer.ggml.pre");
  if (file.find("tokenizer.ggml.bos_token_id") != nullptr) s.bos_id = file.get_i64("tokenizer.ggml.bos_token_id", 0);
  if (file.find("tokenizer.ggml.eos_token_id") != nullptr) s.eos_id = file.get_i64("tokenizer.ggml.eos_token_id", 0);
  if (const GgufValue* t = file.find("tokenizer.chat_template"); t != nullptr && t->is_string()) {
    const std::string_view text = t->as_string();
    s.has_chat_template = true;
    s.chat_template_first_line = std::string(text.substr(0, text.find('\n')));
    s.chat_template_family = std::string(chat_template_family(text));
  }
  s.memory = estimate_memory(s.dims, weight_bytes, n_ctx);
  return s;
}

std::string gguf_summary_json(const GgufSummary& s) {
  using nlohmann::json;
  json types = json::array();
  for (const TensorTypeCount& c : s.types) {
    types.push_back({{"type", tensor_type_name(c.type)}, {"tensors", c.tensors}, {"bytes", c.bytes}});
  }
  const auto optional_number = [](const auto& v) { return v ? json(*v) : json(nullptr); };
  json j = {
      {"path", s.path},
      {"file_size", s.file_size},
      {"gguf_version", s.version},
      {"alignment", s.alignment},
      {"tensor_count", s.n_tensors},
      {"metadata_count", s.n_keys},
      {"name", s.name},
      {"architecture", s.architecture},
      {"parameters", s.parameters},
      {"tensor_types", types},
      {"hyperparameters",
       {{"context_length", s.dims.context_length},
        {"embedding_length", s.dims.n_embd},
        {"block_count", s.dims.n_layer},
        {"feed_forward_length", s.dims.n_ff},
        {"head_count", s.dims.n_head},
        {"head_count_kv", s.dims.n_head_kv},
        {"key_length", s.dims.key_length},
        {"value_length", s.dims.value_length},
        {"rope_freq_base", optional_number(s.rope_freq_base)},
        {"layer_norm_rms_epsilon", optional_number(s.rms_norm_epsilon)}}},
      {"vocabulary",
       {{"model", s.tokenizer_model},
        {"pre", s.tokenizer_pre},
        {"size", s.dims.n_vocab},
        {"bos_token_id", optional_number(s.bos_id)},
        {"eos_token_id", optional_number(s.eos_id)}}},
      {"chat_template",
       {{"present", s.has_chat_template},
        {"first_line", s.chat_template_first_line},
        {"family", s.chat_template_family}}},
      {"memory",
       {{"n_ctx", s.memory.n_ctx},
        {"weights", s.memory.weights},
        {"kv_cache", s.memory.kv_cache},
        {"scratch", s.memory.scratch},
        {"total", s.memory.total()}}},
  };
  // Strings in a GGUF are validated UTF-8, so dump() cannot throw on them.
  return j.dump();
}

std::string format_parameter_count(int64_t n) {
  const double v = static_cast<double>(n);
  if (n >= 1'000'000'000) return fmt::format("{:.2f} B", v / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.1f} M", v / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f} K", v / 1e3);
  return fmt::format("{}", n);
}

std::string format_byte_size(uint64_t n) {
  const double v = static_cast<double>(n);
  if (n >= (1ull << 30)) return fmt::format("{:.2f} GiB", v / (1ull << 30));
  if (n >= (1ull << 20)) return fmt::format("{:.1f} MiB", v / (1ull << 20));
  if (n >= (1ull << 10)) return fmt::format("{:.1f} KiB", v / (1ull << 10));
  return fmt::format("{} bytes", n);
}

}  // namespace koto
