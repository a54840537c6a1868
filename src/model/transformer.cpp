// The forward pass of llama, qwen2 and qwen3, top to bottom in data-flow order:
//
//   1. embeddings        x = token_embd[token]
//   2. attention block   x += Wo · attention(rope(norm(Wq·h)), rope(norm(Wk·h)), Wv·h),  h = rmsnorm(x)
//   3. feed-forward      x += Wdown · (silu(Wgate·h) * (Wup·h)),                        h = rmsnorm(x)
//   4. output            logits = Wout · rmsnorm(x)
//
// A batch of B tokens (positions n_past .. n_past + B - 1) goes through each step
// together, so every weight matrix is read once per batch (matmul.h). The KV cache keeps
// every layer's k and v of all positions seen so far.
#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <memory>
#include <vector>

#include "koto/error.h"
#include "koto/i18n.h"
#include "model/matmul.h"
#include "tensor/float16.h"
#include "tensor/kernels.h"

namespace koto::model {
namespace {

// out = x / sqrt(mean(x²) + eps) * weight; out may be x.
void rmsnorm(float* out, const float* x, const float* weight, int64_t n, float eps) {
  double sum_squares = 0.0;  // double: the reference normalizes in float64
  for (int64_t i = 0; i < n; ++i) sum_squares += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

// Rotates the pairs of one head: normal RoPE pairs (2i, 2i+1), neox pairs (i, i + D/2).
void rope(float* head, const float* cos, const float* sin, int32_t head_dim, bool neox) {
  const int32_t half = head_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    float* a = neox ? &head[i] : &head[2 * i];
    float* b = neox ? &head[i + half] : &head[2 * i + 1];
    const float a0 = *a;
    const float b0 = *b;
    *a = a0 * cos[i] - b0 * sin[i];
    *b = a0 * sin[i] + b0 * cos[i];
  }
}

void add_rows(float* y, const float* bias, int32_t n_rows, int64_t n) {
  for (int32_t r = 0; r < n_rows; ++r) {
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += bias[i];
  }
}

class TransformerSession final : public Session {
 public:
  TransformerSession(const LoadedModel& model, int32_t n_ctx, TensorType kv_type);

  std::span<const float> eval(std::span<const TokenId> tokens, bool all_logits) override;
  int32_t n_past() const override { return n_past_; }
  int32_t n_ctx() const override { return n_ctx_; }
  void truncate(int32_t n) override;

 private:
  void forward(const TokenId* tokens, int32_t n_tokens, bool all_logits, float* logits);
  void store_kv(int layer, int32_t n_tokens);
  void attend(int layer, int32_t n_tokens);

  const ModelParams& p_;
  const Architecture& arch_;
  const Weights& w_;
  ThreadPool& pool_;
  const int32_t n_ctx_;
  int32_t n_past_ = 0;

  // Sizes: E = n_embd, Q = n_head * head_dim, K = n_head_kv * head_dim, F = n_ff, D = head_dim.
  const int64_t q_dim_;
  const int64_t kv_dim_;

  // KV cache in kv_type_, per layer. Keys: [n_head_kv][n_ctx][D], so one head's keys
  // of all positions form a matrix and its scores are one matvec. Values transposed:
  // [n_head_kv][D][n_ctx], so each output dimension is one dot product over positions.
  const TensorType kv_type_;
  const int64_t elt_bytes_;  // bytes of one cache element (2 or 4)
  // A float32 KV cache asks for the float32 reference computation throughout, so the
  // weight products keep float activations too (no 8-bit rounding).
  const MatmulPrecision precision_;
  // Allocated without being written: pages become resident only as positions are
  // filled, and positions >= n_past are never read.
  std::vector<std::unique_ptr<uint8_t[]>> k_cache_;
  std::vector<std::unique_ptr<uint8_t[]>> v_cache_;

  // Activations of up to kMaxBatch tokens, row-major [token][...].
  std::vector<float> x_;      // [B][E]  the residual stream
  std::vector<float> h_;      // [B][E]  normalized input of the current block
  std::vector<float> q_;      // [B][Q]
  std::vector<float> k_;      // [B][K]
  std::vector<float> v_;      // [B][K]
  std::vector<float> att_;    // [B][Q]  attention output, heads concatenated
  std::vector<float> proj_;   // [B][E]  a block's output before it is added to x
  std::vector<float> gate_;   // [B][F]
  std::vector<float> up_;     // [B][F]
  std::vector<float> cos_;    // [B][D/2] RoPE rotation of each token's position
  std::vector<float> sin_;    // [B][D/2]
  std::vector<float> logits_;  // [rows][n_vocab], what eval returns
};

TransformerSession::TransformerSession(const LoadedModel& model, int32_t n_ctx, TensorType kv_type)
    : p_(model.params()),
      arch_(model.architecture()),
      w_(model.weights()),
      pool_(model.pool()),
      n_ctx_(n_ctx),
      q_dim_(static_cast<int64_t>(p_.n_head) * p_.head_dim),
      kv_dim_(static_cast<int64_t>(p_.n_head_kv) * p_.head_dim),
      kv_type_(kv_type),
      elt_bytes_(tensor_row_bytes(kv_type, 1)),
      precision_(kv_type == TensorType::kF32 ? MatmulPrecision::kFloat32 : MatmulPrecision::kFast) {
  k_cache_.resize(static_cast<size_t>(p_.n_layer));
  v_cache_.resize(static_cast<size_t>(p_.n_layer));
  for (int l = 0; l < p_.n_layer; ++l) {
    k_cache_[static_cast<size_t>(l)] = std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(n_ctx_ * kv_dim_ * elt_bytes_));
    v_cache_[static_cast<size_t>(l)] = std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(n_ctx_ * kv_dim_ * elt_bytes_));
  }
  const size_t b = kMaxBatch;
  x_.resize(b * p_.n_embd);
  h_.resize(b * p_.n_embd);
  q_.resize(b * q_dim_);
  k_.resize(b * kv_dim_);
  v_.resize(b * kv_dim_);
  att_.resize(b * q_dim_);
  proj_.resize(b * p_.n_embd);
  gate_.resize(b * p_.n_ff);
  up_.resize(b * p_.n_ff);
  cos_.resize(b * p_.head_dim / 2);
  sin_.resize(b * p_.head_dim / 2);
}

std::span<const float> TransformerSession::eval(std::span<const TokenId> tokens, bool all_logits) {
  if (tokens.empty()) {
    throw Error(ErrorCode::kInvalidArgument, tr("no tokens to evaluate", "評価するトークンがありません"));
  }
  if (tokens.size() > static_cast<size_t>(n_ctx_ - n_past_)) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("{0} tokens at position {1} would run past the context of {2} positions",
                   "位置 {1} からの {0} トークンはコンテキスト長 {2} を超えます", tokens.size(), n_past_, n_ctx_));
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= p_.n_vocab) {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("token id {0} (input {1}) is out of range: the vocabulary has ids 0 to {2}",
                     "トークン ID {0} (入力の {1} 番目) が範囲外です。語彙の ID は 0〜{2} です", tokens[i], i,
                     p_.n_vocab - 1));
    }
  }
  const size_t n_rows = all_logits ? tokens.size() : 1;
  logits_.resize(n_rows * static_cast<size_t>(p_.n_vocab));
  for (size_t start = 0; start < tokens.size(); start += kMaxBatch) {
    const int32_t n = static_cast<int32_t>(std::min<size_t>(kMaxBatch, tokens.size() - start));
    const bool last = start + n == tokens.size();
    float* out = all_logits ? logits_.data() + start * p_.n_vocab : (last ? logits_.data() : nullptr);
    forward(tokens.data() + start, n, all_logits, out);
  }
  return logits_;
}

void TransformerSession::truncate(int32_t n) {
  if (n < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("cannot truncate to {0} positions", "{0} 位置への切り詰めはできません", n));
  }
  // Rows past n_past_ are dead and get overwritten by the next eval.
  n_past_ = std::min(n_past_, n);
}

// Appends the batch's k and v to the cache, at their positions.
void TransformerSession::store_kv(int layer, int32_t n_tokens) {
  uint8_t* k_cache = k_cache_[static_cast<size_t>(layer)].get();
  uint8_t* v_cache = v_cache_[static_cast<size_t>(layer)].get();
  const int32_t head_dim = p_.head_dim;
  for (int32_t b = 0; b < n_tokens; ++b) {
    const int64_t position = n_past_ + b;
    for (int32_t g = 0; g < p_.n_head_kv; ++g) {
      const float* k = &k_[b * kv_dim_ + g * head_dim];
      const float* v = &v_[b * kv_dim_ + g * head_dim];
      const int64_t k_index = (g * int64_t{n_ctx_} + position) * head_dim;  // [g][position][0]
      const int64_t v_index = g * int64_t{head_dim} * n_ctx_ + position;     // [g][0][position]
      if (kv_type_ == TensorType::kF32) {
        auto* k32 = reinterpret_cast<float*>(k_cache);
        auto* v32 = reinterpret_cast<float*>(v_cache);
        for (int32_t i = 0; i < head_dim; ++i) k32[k_index + i] = k[i];
        for (int32_t i = 0; i < head_dim; ++i) v32[v_index + int64_t{i} * n_ctx_] = v[i];
      } else {
        auto* k16 = reinterpret_cast<uint16_t*>(k_cache);
        auto* v16 = reinterpret_cast<uint16_t*>(v_cache);
        for (int32_t i = 0; i < head_dim; ++i) k16[k_index + i] = fp32_to_fp16(k[i]);
        for (int32_t i = 0; i < head_dim; ++i) v16[v_index + int64_t{i} * n_ctx_] = fp32_to_fp16(v[i]);
      }
    }
  }
}

// Causal attention of the batch's queries over the cache: token b (position n_past_ +
// b) sees positions 0 .. n_past_ + b. Query head h reads kv head h / (n_head /
// n_head_kv), so consecutive query heads share one kv head (GQA).
void TransformerSession::attend(int layer, int32_t n_tokens) {
  const int32_t head_dim = p_.head_dim;
  const int32_t group = p_.n_head / p_.n_head_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const uint8_t* k_cache = k_cache_[static_cast<size_t>(layer)].get();
  const uint8_t* v_cache = v_cache_[static_cast<size_t>(layer)].get();
  const int64_t work = int64_t{n_tokens} * p_.n_head * (n_past_ + n_tokens) * head_dim * 2;

  parallel_for_work(pool_, int64_t{n_tokens} * p_.n_head, work, [&](int64_t task) {
    const int32_t b = static_cast<int32_t>(task / p_.n_head);
    const int32_t h = static_cast<int32_t>(task % p_.n_head);
    const int32_t g = h / group;
    const int32_t n_keys = n_past_ + b + 1;
    const float* q = &q_[b * q_dim_ + h * head_dim];
    thread_local std::vector<float> scores;
    scores.resize(static_cast<size_t>(n_keys));

    // scores[s] = q · k_s for every visible position s, as one matvec over head g's keys.
    const uint8_t* keys = k_cache + g * int64_t{n_ctx_} * head_dim * elt_bytes_;
    kernels::matvec(kv_type_, keys, head_dim, q, scores.data(), 0, n_keys);
    float max_score = -std::numeric_limits<float>::infinity();
    for (int32_t s = 0; s < n_keys; ++s) {
      scores[s] *= scale;
      max_score = std::max(max_score, scores[s]);
    }
    double sum = 0.0;
    for (int32_t s = 0; s < n_keys; ++s) {
      scores[s] = std::exp(scores[s] - max_score);
      sum += scores[s];
    }
    const float inv_sum = static_cast<float>(1.0 / sum);
    for (int32_t s = 0; s < n_keys; ++s) scores[s] *= inv_sum;

    // out[i] = sum_s p_s v_s[i]: a dot product along row i of head g's transposed values.
    float* out = &att_[b * q_dim_ + h * head_dim];
    const uint8_t* values = v_cache + g * int64_t{head_dim} * n_ctx_ * elt_bytes_;
    for (int32_t i = 0; i < head_dim; ++i) {
      out[i] = kernels::dot_row(kv_type_, values + int64_t{i} * n_ctx_ * elt_bytes_, scores.data(), n_keys);
    }
  });
}

void TransformerSession::forward(const TokenId* tokens, int32_t n_tokens, bool all_logits, float* logits) {
  const int64_t n_embd = p_.n_embd;
  const int32_t head_dim = p_.head_dim;
  const int32_t half = head_dim / 2;
  const float eps = p_.rms_eps;

  // 1. Embeddings: row `token` of token_embd (decoded when the table is quantized).
  for (int32_t b = 0; b < n_tokens; ++b) {
    kernels::dequantize_row(w_.token_embd.type, w_.token_embd.row(tokens[b]), &x_[b * n_embd], n_embd);
  }
  // RoPE angles of the batch's positions, shared by every layer and head.
  for (int32_t b = 0; b < n_tokens; ++b) {
    const double position = n_past_ + b;
    for (int32_t i = 0; i < half; ++i) {
      const double angle = position * w_.rope_inv_freq[static_cast<size_t>(i)];
      cos_[b * half + i] = static_cast<float>(std::cos(angle));
      sin_[b * half + i] = static_cast<float>(std::sin(angle));
    }
  }

  for (int l = 0; l < p_.n_layer; ++l) {
    const LayerWeights& layer = w_.layers[static_cast<size_t>(l)];

    // 2. Attention block.
    for (int32_t b = 0; b < n_tokens; ++b) {
      rmsnorm(&h_[b * n_embd], &x_[b * n_embd], layer.attn_norm.data(), n_embd, eps);
    }
    matmul_shared_input(pool_, {{&layer.wq, q_.data()}, {&layer.wk, k_.data()}, {&layer.wv, v_.data()}},
                        h_.data(), n_tokens, precision_);
    if (!layer.bq.empty()) {  // qwen2
      add_rows(q_.data(), layer.bq.data(), n_tokens, q_dim_);
      add_rows(k_.data(), layer.bk.data(), n_tokens, kv_dim_);
      add_rows(v_.data(), layer.bv.data(), n_tokens, kv_dim_);
    }
    for (int32_t b = 0; b < n_tokens; ++b) {
      const float* cos = &cos_[b * half];
      const float* sin = &sin_[b * half];
      for (int32_t h = 0; h < p_.n_head; ++h) {
        float* q = &q_[b * q_dim_ + h * head_dim];
        if (!layer.q_norm.empty()) rmsnorm(q, q, layer.q_norm.data(), head_dim, eps);  // qwen3
        rope(q, cos, sin, head_dim, p_.rope_neox);
      }
      for (int32_t h = 0; h < p_.n_head_kv; ++h) {
        float* k = &k_[b * kv_dim_ + h * head_dim];
        if (!layer.k_norm.empty()) rmsnorm(k, k, layer.k_norm.data(), head_dim, eps);  // qwen3
        rope(k, cos, sin, head_dim, p_.rope_neox);
      }
    }
    store_kv(l, n_tokens);
    attend(l, n_tokens);
    matmul(pool_, layer.wo, att_.data(), n_tokens, proj_.data(), precision_);
    for (int64_t i = 0; i < n_tokens * n_embd; ++i) x_[i] += proj_[i];

    // 3. Feed-forward block (SwiGLU).
    for (int32_t b = 0; b < n_tokens; ++b) {
      rmsnorm(&h_[b * n_embd], &x_[b * n_embd], layer.ffn_norm.data(), n_embd, eps);
    }
    matmul_shared_input(pool_, {{&layer.w_gate, gate_.data()}, {&layer.w_up, up_.data()}},
                        h_.data(), n_tokens, precision_);
    for (int64_t i = 0; i < n_tokens * int64_t{p_.n_ff}; ++i) {
      const float g = gate_[i];
      gate_[i] = g / (1.0f + std::exp(-g)) * up_[i];
    }
    matmul(pool_, layer.w_down, gate_.data(), n_tokens, proj_.data(), precision_);
    for (int64_t i = 0; i < n_tokens * n_embd; ++i) x_[i] += proj_[i];
  }
  n_past_ += n_tokens;

  // 4. Output: logits of every token, or of the last one only.
  if (logits == nullptr) return;
  const int32_t first = all_logits ? 0 : n_tokens - 1;
  for (int32_t b = first; b < n_tokens; ++b) {
    rmsnorm(&h_[(b - first) * n_embd], &x_[b * n_embd], w_.output_norm.data(), n_embd, eps);
  }
  matmul(pool_, w_.output, h_.data(), n_tokens - first, logits, precision_);
}

}  // namespace

std::unique_ptr<Session> new_transformer_session(const LoadedModel& model, int32_t n_ctx, TensorType kv_type) {
  return std::make_unique<TransformerSession>(model, n_ctx, kv_type);
}

uint64_t transformer_session_bytes(const ModelParams& p, int32_t n_ctx, TensorType kv_type, int n_threads) {
  const uint64_t q_dim = static_cast<uint64_t>(p.n_head) * p.head_dim;
  const uint64_t kv_dim = static_cast<uint64_t>(p.n_head_kv) * p.head_dim;
  const uint64_t kv_cache = 2ull * p.n_layer * n_ctx * kv_dim * static_cast<uint64_t>(tensor_row_bytes(kv_type, 1));
  const uint64_t activations =
      kMaxBatch * (3ull * p.n_embd + 2 * q_dim + 2 * kv_dim + 2ull * p.n_ff + p.head_dim) + p.n_vocab;
  const uint64_t per_thread = static_cast<uint64_t>(n_ctx) + p.head_dim + 64 * 1024 / sizeof(float);
  return kv_cache + (activations + per_thread * n_threads) * sizeof(float);
}

}  // namespace koto::model
