#include "koto/embedding.h"

#include <algorithm>
#include <cmath>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"

namespace koto {
namespace {

// Qwen3-Embedding's query format (its model card): an instruction, then the query.
constexpr std::string_view kQueryInstruction =
    "Instruct: Given a question, retrieve passages of the documents that answer it\nQuery:";

}  // namespace

const char* pooling_name(Pooling pooling) { return pooling == Pooling::kLast ? "last" : "mean"; }

Pooling pooling_for_model(const Model& model) {
  const GgufFile& file = model.file();
  const std::string key = std::string(file.architecture()) + ".pooling_type";
  const int64_t type = file.get_i64(key, 1);
  switch (type) {
    case 0:  // "none": per-token; a sentence still needs one vector
    case 1:
      return Pooling::kMean;
    case 3:
      return Pooling::kLast;
    default:
      throw Error(ErrorCode::kUnsupported,
                  tr("{0}: {1} = {2} (2 = CLS, 4 = rank) is not supported; koto pools by mean (1) or last token (3)",
                     "{0}: {1} = {2} (2 = CLS、4 = rank) には対応していません。koto は平均 (1) か最後のトークン (3) で集約します",
                     file.path(), key, type));
  }
}

std::vector<float> pool_hidden_states(std::span<const float> hidden, int32_t n_embd, Pooling pooling) {
  const size_t d = static_cast<size_t>(n_embd);
  if (d == 0 || hidden.size() < d || hidden.size() % d != 0) {
    throw Error(ErrorCode::kInvalidArgument, "pool_hidden_states: hidden states are not whole rows of n_embd");
  }
  const size_t n = hidden.size() / d;
  std::vector<double> sum(d, 0.0);
  if (pooling == Pooling::kLast) {
    for (size_t j = 0; j < d; ++j) sum[j] = hidden[(n - 1) * d + j];
  } else {
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < d; ++j) sum[j] += hidden[i * d + j];
    }
    for (double& v : sum) v /= static_cast<double>(n);
  }
  double norm = 0;
  for (double v : sum) norm += v * v;
  norm = std::sqrt(norm);
  std::vector<float> out(d);
  for (size_t j = 0; j < d; ++j) out[j] = norm > 0 ? static_cast<float>(sum[j] / norm) : 0.0f;
  return out;
}

Embedder::Embedder(const Model& model, int32_t n_ctx) : model_(model), pooling_(pooling_for_model(model)) {
  SessionOptions options;
  options.n_ctx = n_ctx;
  options.kv_type = TensorType::kF32;  // closer to the reference; an embedding session is short-lived
  session_ = model.new_session(options);
}

Embedder::~Embedder() = default;

int32_t Embedder::dimensions() const { return model_.params().n_embd; }

std::vector<float> Embedder::embed_tokens(std::span<const TokenId> tokens) {
  if (tokens.empty()) {
    throw Error(ErrorCode::kInvalidArgument, tr("nothing to embed: the text has no tokens", "埋め込む内容がありません (トークンが 0 個)"));
  }
  session_->truncate(0);
  const size_t n = std::min(tokens.size(), static_cast<size_t>(session_->n_ctx()));
  const std::span<const float> hidden = session_->eval_hidden(tokens.first(n));
  return pool_hidden_states(hidden, model_.params().n_embd, pooling_);
}

std::vector<float> Embedder::embed_text(std::string_view text, bool is_query) {
  const Tokenizer& tokenizer = model_.tokenizer();
  std::string input;
  // Last-token models are trained with the query instruction and an end-of-text token.
  if (pooling_ == Pooling::kLast && is_query) input += kQueryInstruction;
  input += text;
  std::vector<TokenId> ids = tokenizer.encode(input, tokenizer.add_bos_by_default(), /*parse_special=*/false);
  if (pooling_ == Pooling::kLast) {
    std::optional<TokenId> end = tokenizer.find_special("<|endoftext|>");
    if (!end) end = tokenizer.eos();
    const size_t room = static_cast<size_t>(session_->n_ctx());
    if (ids.size() >= room) ids.resize(room - 1);  // the end token must stay: it is what is pooled
    if (end) ids.push_back(*end);
  }
  return embed_tokens(ids);
}

}  // namespace koto
