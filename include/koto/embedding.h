// Sentence embeddings from a model: the final hidden states of a text's tokens
// (rmsnorm(x) * output_norm), pooled into one vector and L2-normalised.
//
// Pooling follows the model's GGUF metadata `<arch>.pooling_type` (1 = mean, 3 = last
// token, as Qwen3-Embedding uses it); without it, mean pooling. Qwen3-Embedding-style
// models (last-token pooling) also get the end-of-text token appended, and queries get
// their instruction prefix ("Instruct: ...\nQuery:"), as those models were trained.
//
// Thread-safety: an Embedder uses its own session; one thread at a time per Embedder.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "koto/model.h"

namespace koto {

enum class Pooling { kMean, kLast };

// "mean", "last".
const char* pooling_name(Pooling pooling);

// The pooling the model's metadata asks for (mean when it says nothing). Throws
// kUnsupported for a pooling koto does not do (CLS, rank), naming it.
Pooling pooling_for_model(const Model& model);

// Pools hidden states [n_tokens][n_embd] and L2-normalises the result.
std::vector<float> pool_hidden_states(std::span<const float> hidden, int32_t n_embd, Pooling pooling);

class Embedder {
 public:
  // `model` must outlive the Embedder. n_ctx 0: the model's, at most 4096 (longer texts
  // are cut to it, keeping the start).
  explicit Embedder(const Model& model, int32_t n_ctx = 0);
  ~Embedder();

  Pooling pooling() const { return pooling_; }
  const Model& model() const { return model_; }
  int32_t dimensions() const;

  // The embedding of token ids exactly as given (no BOS or EOS added).
  std::vector<float> embed_tokens(std::span<const TokenId> tokens);
  // The embedding of a document text, or of a search query (with the model's query
  // instruction when it has one).
  std::vector<float> embed_text(std::string_view text, bool is_query = false);

 private:
  const Model& model_;
  Pooling pooling_;
  std::unique_ptr<Session> session_;
};

}  // namespace koto
