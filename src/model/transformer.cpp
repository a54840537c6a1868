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

#include "base/op_profile.h"
#include "koto/error.h"
#include "koto/i18n.h"
#include "model/forward_scratch.h"
#include "model/matmul.h"
#include "tensor/float16.h"
#include "tensor/kernel_table.h"
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

// One head's row into Q8_0 blocks (34 bytes per 32 values: an F16 scale d, then 32
// int8 codes): d = max |x| / 127, code = round(x / d). Plain rounding: cache rows are
// written once per token and must be cheap.
void quantize_q8_0_row(const float* x, uint8_t* out, int32_t n) {
  for (int32_t b = 0; b < n; b += 32, out += 34) {
    float amax = 0.0f;
    for (int32_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b + i]));
    const float d = amax / 127.0f;
    const float inv = d > 0.0f ? 1.0f / d : 0.0f;
    const uint16_t d16 = fp32_to_fp16(d);
    std::memcpy(out, &d16, sizeof(d16));
    for (int32_t i = 0; i < 32; ++i) {
      out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::nearbyint(x[b + i] * inv)));
    }
  }
}

void add_rows(float* y, const float* bias, int32_t n_rows, int64_t n) {
  for (int32_t r = 0; r < n_rows; ++r) {
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += bias[i];
  }
}

class TransformerSession;

// One row of a forward pass: a token of one session at one position.
struct PassRow {
  TransformerSession* session;
  int32_t position;   // where the token goes in the session's KV cache
  TokenId token;
  float* logits;      // [n_vocab] destination, or null when this row's logits are not needed
  float* hidden = nullptr;  // [n_embd] destination of the final normed state, or null
};

class TransformerSession final : public Session {
 public:
  TransformerSession(const LoadedModel& model, int32_t n_ctx, TensorType kv_type);

  std::span<const float> eval(std::span<const TokenId> tokens, bool all_logits) override;
  std::span<const float> eval_hidden(std::span<const TokenId> tokens) override;
  int32_t n_past() const override { return n_past_; }
  int32_t n_ctx() const override { return n_ctx_; }
  int32_t exact_rows() const override;
  void truncate(int32_t n) override;
  TensorType kv_type() const override { return kv_type_; }
  size_t kv_bytes_per_position() const override {
    return static_cast<size_t>(2 * p_.n_layer * p_.n_head_kv * row_bytes_);
  }
  void read_kv(int32_t begin, int32_t end, std::span<uint8_t> out) const override;
  void append_kv(std::span<const uint8_t> in) override;

  const LoadedModel& model() const { return model_; }
  // Throws kInvalidArgument when `tokens` cannot be appended (empty, past n_ctx, ids
  // out of range); nothing is changed.
  void check_tokens(std::span<const TokenId> tokens) const;
  // Makes room for the logits of `n_rows` rows and returns the buffer.
  std::span<float> logits_buffer(size_t n_rows) {
    logits_.resize(n_rows * static_cast<size_t>(p_.n_vocab));
    return logits_;
  }
  // The same buffer for hidden states, [n_rows][n_embd].
  std::span<float> hidden_buffer(size_t n_rows) {
    logits_.resize(n_rows * static_cast<size_t>(p_.n_embd));
    return logits_;
  }
  void advance(int32_t n_past) { n_past_ = n_past; }

  // Writes head g of one row's k and v ([n_head_kv][D] each) of `layer` at `position`.
  void store_kv_head(int layer, int32_t g, int32_t position, const float* k, const float* v);
  // Head g's keys and values of `layer`. F32: key rows [n_ctx][D], values transposed
  // [D][n_ctx] (the reference path: one dot product along positions per output value).
  // F16 and Q8_0 keys, and Q8_0 values, are stored a tile of kKeyTile positions at a time
  // (key_tile_bytes() each, in the layouts of kernels::AttentionBlock): F16 keys
  // transposed, [D][64]; Q8_0 keys as codes + 128 [D/4][64][4] (four dimensions of 16
  // positions per 8-bit multiply-add), Q8_0 values as codes [32][D][2] (two positions'
  // codes of a dimension per 16-bit multiply-add), each then the blocks' scales
  // [D/32][64]. F16 values are rows [n_ctx][D].
  const uint8_t* keys(int layer, int32_t g) const {
    return k_cache_[static_cast<size_t>(layer)].get() + g * key_head_bytes_;
  }
  bool tiled_keys() const { return kv_type_ == TensorType::kF16 || kv_type_ == TensorType::kQ8_0; }
  int64_t key_tile_bytes() const { return kKeyTile * row_bytes_; }
  // Writes position p's key, one cache row (D halves, or Q8_0 blocks), into its tile of
  // a head's tiled keys; a tile's first position clears the tile (the attention reads
  // whole tiles; what it does not use must still be defined).
  void write_tiled_key(uint8_t* k_head, int32_t p, const uint8_t* row) const;
  // The cache row of position p's key, from a head's tiled keys.
  void read_tiled_key(const uint8_t* k_head, int32_t p, uint8_t* row) const;
  const uint8_t* values(int layer, int32_t g) const {
    return v_cache_[static_cast<size_t>(layer)].get() + g * value_head_bytes_;
  }
  bool tiled_values() const { return kv_type_ == TensorType::kQ8_0; }
  // The same for a Q8_0 value row and a head's tiled values.
  void write_tiled_value(uint8_t* v_head, int32_t p, const uint8_t* row) const;
  void read_tiled_value(const uint8_t* v_head, int32_t p, uint8_t* row) const;
  int64_t elt_bytes() const { return elt_bytes_; }
  bool transposed_values() const { return kv_type_ == TensorType::kF32; }

 private:
  const LoadedModel& model_;
  const ModelParams& p_;
  const int32_t n_ctx_;
  int32_t n_past_ = 0;
  const int64_t kv_dim_;  // n_head_kv * head_dim

  // KV cache in kv_type_, per layer. Keys: [n_head_kv][n_ctx][D], so one head's keys
  // of all positions form a matrix and its scores are one matvec. Values transposed:
  // [n_head_kv][D][n_ctx], so each output dimension is one dot product over positions.
  const TensorType kv_type_;
  const int64_t elt_bytes_;  // bytes of one cache element (2 or 4; 0 for Q8_0, whose blocks hold 32)
  const int64_t row_bytes_;  // bytes of one head's D values
  static constexpr int32_t kKeyTile = 64;  // the attention kernel's tile (kAttentionTile)
  const int64_t key_head_bytes_;    // one head's keys of all positions (tiles rounded up)
  const int64_t value_head_bytes_;  // and values
  // Allocated without being written: pages become resident only as positions are
  // filled, and positions >= n_past are never read.
  std::vector<std::unique_ptr<uint8_t[]>> k_cache_;
  std::vector<std::unique_ptr<uint8_t[]>> v_cache_;
  std::vector<float> logits_;  // [rows][n_vocab], what eval returns
};

TransformerSession::TransformerSession(const LoadedModel& model, int32_t n_ctx, TensorType kv_type)
    : model_(model),
      p_(model.params()),
      n_ctx_(n_ctx),
      kv_dim_(static_cast<int64_t>(p_.n_head_kv) * p_.head_dim),
      kv_type_(kv_type),
      elt_bytes_(kv_type == TensorType::kQ8_0 ? 0 : tensor_row_bytes(kv_type, 1)),
      row_bytes_(tensor_row_bytes(kv_type, p_.head_dim)),
      key_head_bytes_(kv_type == TensorType::kF32 ? int64_t{n_ctx} * row_bytes_
                                                   : (int64_t{n_ctx} + kKeyTile - 1) / kKeyTile * key_tile_bytes()),
      value_head_bytes_(kv_type == TensorType::kQ8_0 ? key_head_bytes_ : int64_t{n_ctx} * row_bytes_) {
  k_cache_.resize(static_cast<size_t>(p_.n_layer));
  v_cache_.resize(static_cast<size_t>(p_.n_layer));
  for (int l = 0; l < p_.n_layer; ++l) {
    k_cache_[static_cast<size_t>(l)] = std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(p_.n_head_kv * key_head_bytes_));
    v_cache_[static_cast<size_t>(l)] = std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(p_.n_head_kv * value_head_bytes_));
  }
}

void TransformerSession::check_tokens(std::span<const TokenId> tokens) const {
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
}

std::span<const float> TransformerSession::eval(std::span<const TokenId> tokens, bool all_logits) {
  BatchEntry entry{this, tokens, all_logits, {}, false};
  model_.eval_batch(std::span<BatchEntry>(&entry, 1));
  return entry.logits;
}

std::span<const float> TransformerSession::eval_hidden(std::span<const TokenId> tokens) {
  BatchEntry entry{this, tokens, false, {}, true};
  model_.eval_batch(std::span<BatchEntry>(&entry, 1));
  return entry.logits;
}

int32_t TransformerSession::exact_rows() const {
  const Weights& w = model_.weights();
  // A float32 KV cache computes every product in float (MatmulPrecision::kFloat32):
  // one vector reads the stored rows, several a decoded copy, so only F32 weights agree.
  auto rows_of = [&](const Matrix& m) -> int64_t {
    if (kv_type_ == TensorType::kF32 || !kernels::has_q8_kernels(m.type)) return m.type == TensorType::kF32 ? kMaxBatch : 1;
    return kernels::exact_vectors(m.type);
  };
  int64_t rows = rows_of(w.output);
  for (const LayerWeights& l : w.layers) {
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) rows = std::min(rows, rows_of(*m));
  }
  return static_cast<int32_t>(std::max<int64_t>(rows, 1));
}

void TransformerSession::truncate(int32_t n) {
  if (n < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("cannot truncate to {0} positions", "{0} 位置への切り詰めはできません", n));
  }
  // Rows past n_past_ are dead and get overwritten by the next eval.
  n_past_ = std::min(n_past_, n);
}

// Bytes of one position: for every layer, its keys [n_head_kv][D] then its values
// [n_head_kv][D]. Positions follow each other: [position][layer][k|v][g][D].
//
// The loops walk the session's cache in its own order (keys by rows of a position,
// values along each transposed row of positions), so its writes and reads are
// sequential; the position-major bytes are read and written with a stride instead,
// which stays in cache (a head's values of a few thousand positions are a few hundred KB).
namespace {

// dst[p * dst_stride] = src[p * src_stride] for p in [0, n): one element of kElt bytes.
template <typename Elt>
void strided_copy(uint8_t* dst, int64_t dst_stride, const uint8_t* src, int64_t src_stride, int32_t n) {
  for (int32_t p = 0; p < n; ++p) {
    Elt value;
    std::memcpy(&value, src + p * src_stride, sizeof(Elt));
    std::memcpy(dst + p * dst_stride, &value, sizeof(Elt));
  }
}

void copy_elements(int64_t elt_bytes, uint8_t* dst, int64_t dst_stride, const uint8_t* src, int64_t src_stride,
                   int32_t n) {
  if (elt_bytes == 2) {
    strided_copy<uint16_t>(dst, dst_stride, src, src_stride, n);
  } else {
    strided_copy<uint32_t>(dst, dst_stride, src, src_stride, n);
  }
}

}  // namespace

void TransformerSession::read_kv(int32_t begin, int32_t end, std::span<uint8_t> out) const {
  const size_t per_position = kv_bytes_per_position();
  if (begin < 0 || begin > end || end > n_past_ || out.size() != static_cast<size_t>(end - begin) * per_position) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("cannot read the KV cache of positions {0} to {1} into {2} bytes (the session holds {3} positions "
                   "of {4} bytes)",
                   "位置 {0}〜{1} の KV キャッシュを {2} バイトに読み出せません (保持 {3} 位置、1 位置 {4} バイト)",
                   begin, end, out.size(), n_past_, per_position));
  }
  const int32_t count = end - begin;
  const int32_t head_dim = p_.head_dim;
  const int64_t row = row_bytes_;
  const int64_t stride = static_cast<int64_t>(per_position);
  for (int l = 0; l < p_.n_layer; ++l) {
    uint8_t* layer_out = out.data() + l * 2 * p_.n_head_kv * row;
    for (int32_t g = 0; g < p_.n_head_kv; ++g) {
      uint8_t* k_out = layer_out + g * row;
      if (tiled_keys()) {
        for (int32_t p = 0; p < count; ++p) read_tiled_key(keys(l, g), begin + p, k_out + p * stride);
      } else {
        const uint8_t* k = keys(l, g) + int64_t{begin} * row;
        for (int32_t p = 0; p < count; ++p) std::memcpy(k_out + p * stride, k + p * row, static_cast<size_t>(row));
      }
      uint8_t* v_out = layer_out + (p_.n_head_kv + g) * row;
      if (tiled_values()) {
        for (int32_t p = 0; p < count; ++p) read_tiled_value(values(l, g), begin + p, v_out + p * stride);
        continue;
      }
      if (!transposed_values()) {
        const uint8_t* v = values(l, g) + int64_t{begin} * row;
        for (int32_t p = 0; p < count; ++p) std::memcpy(v_out + p * stride, v + p * row, static_cast<size_t>(row));
        continue;
      }
      const uint8_t* v = values(l, g) + int64_t{begin} * elt_bytes_;
      for (int32_t i = 0; i < head_dim; ++i) {
        copy_elements(elt_bytes_, v_out + i * elt_bytes_, stride, v + int64_t{i} * n_ctx_ * elt_bytes_, elt_bytes_,
                      count);
      }
    }
  }
}

void TransformerSession::append_kv(std::span<const uint8_t> in) {
  const size_t per_position = kv_bytes_per_position();
  if (in.size() % per_position != 0 || in.size() / per_position > static_cast<size_t>(n_ctx_ - n_past_)) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("cannot append {0} bytes to the KV cache ({1} bytes per position, {2} of {3} positions used)",
                   "KV キャッシュに {0} バイトを追加できません (1 位置 {1} バイト、{3} 位置中 {2} 使用済み)",
                   in.size(), per_position, n_past_, n_ctx_));
  }
  const int32_t count = static_cast<int32_t>(in.size() / per_position);
  const int32_t head_dim = p_.head_dim;
  const int64_t row = row_bytes_;
  const int64_t stride = static_cast<int64_t>(per_position);
  for (int l = 0; l < p_.n_layer; ++l) {
    const uint8_t* layer_in = in.data() + l * 2 * p_.n_head_kv * row;
    for (int32_t g = 0; g < p_.n_head_kv; ++g) {
      const uint8_t* k_in = layer_in + g * row;
      uint8_t* k_head = k_cache_[static_cast<size_t>(l)].get() + g * key_head_bytes_;
      if (tiled_keys()) {
        for (int32_t p = 0; p < count; ++p) write_tiled_key(k_head, n_past_ + p, k_in + p * stride);
      } else {
        uint8_t* k = k_head + int64_t{n_past_} * row;
        for (int32_t p = 0; p < count; ++p) std::memcpy(k + p * row, k_in + p * stride, static_cast<size_t>(row));
      }
      const uint8_t* v_in = layer_in + (p_.n_head_kv + g) * row;
      uint8_t* v_head = v_cache_[static_cast<size_t>(l)].get() + g * value_head_bytes_;
      if (tiled_values()) {
        for (int32_t p = 0; p < count; ++p) write_tiled_value(v_head, n_past_ + p, v_in + p * stride);
        continue;
      }
      if (!transposed_values()) {
        uint8_t* v = v_head + int64_t{n_past_} * row;
        for (int32_t p = 0; p < count; ++p) std::memcpy(v + p * row, v_in + p * stride, static_cast<size_t>(row));
        continue;
      }
      uint8_t* v = v_head + int64_t{n_past_} * elt_bytes_;
      for (int32_t i = 0; i < head_dim; ++i) {
        copy_elements(elt_bytes_, v + int64_t{i} * n_ctx_ * elt_bytes_, elt_bytes_, v_in + i * elt_bytes_, stride,
                      count);
      }
    }
  }
  n_past_ += count;
}

void TransformerSession::write_tiled_key(uint8_t* k_head, int32_t p, const uint8_t* row) const {
  uint8_t* tile = k_head + int64_t{p / kKeyTile} * key_tile_bytes();
  const int32_t t = p % kKeyTile;
  if (t == 0) std::memset(tile, 0, static_cast<size_t>(key_tile_bytes()));
  const int32_t head_dim = p_.head_dim;
  if (kv_type_ == TensorType::kF16) {
    for (int32_t d = 0; d < head_dim; ++d) std::memcpy(tile + (int64_t{d} * kKeyTile + t) * 2, row + 2 * d, 2);
    return;
  }
  uint8_t* scales = tile + int64_t{head_dim} * kKeyTile;
  for (int32_t b = 0; b < head_dim / 32; ++b) {
    const uint8_t* block = row + 34 * b;
    std::memcpy(scales + (int64_t{b} * kKeyTile + t) * 2, block, 2);
    for (int32_t i = 0; i < 32; ++i) {
      const int32_t d = 32 * b + i;
      tile[(int64_t{d / 4} * kKeyTile + t) * 4 + d % 4] = static_cast<uint8_t>(block[2 + i] ^ 0x80);
    }
  }
}

void TransformerSession::read_tiled_key(const uint8_t* k_head, int32_t p, uint8_t* row) const {
  const uint8_t* tile = k_head + int64_t{p / kKeyTile} * key_tile_bytes();
  const int32_t t = p % kKeyTile;
  const int32_t head_dim = p_.head_dim;
  if (kv_type_ == TensorType::kF16) {
    for (int32_t d = 0; d < head_dim; ++d) std::memcpy(row + 2 * d, tile + (int64_t{d} * kKeyTile + t) * 2, 2);
    return;
  }
  const uint8_t* scales = tile + int64_t{head_dim} * kKeyTile;
  for (int32_t b = 0; b < head_dim / 32; ++b) {
    uint8_t* block = row + 34 * b;
    std::memcpy(block, scales + (int64_t{b} * kKeyTile + t) * 2, 2);
    for (int32_t i = 0; i < 32; ++i) {
      const int32_t d = 32 * b + i;
      block[2 + i] = static_cast<uint8_t>(tile[(int64_t{d / 4} * kKeyTile + t) * 4 + d % 4] ^ 0x80);
    }
  }
}

void TransformerSession::write_tiled_value(uint8_t* v_head, int32_t p, const uint8_t* row) const {
  uint8_t* tile = v_head + int64_t{p / kKeyTile} * key_tile_bytes();
  const int32_t t = p % kKeyTile;
  if (t == 0) std::memset(tile, 0, static_cast<size_t>(key_tile_bytes()));
  const int32_t head_dim = p_.head_dim;
  uint8_t* codes = tile + int64_t{t / 2} * head_dim * 2 + t % 2;
  uint8_t* scales = tile + int64_t{head_dim} * kKeyTile;
  for (int32_t b = 0; b < head_dim / 32; ++b) {
    std::memcpy(scales + (int64_t{b} * kKeyTile + t) * 2, row + 34 * b, 2);
    for (int32_t i = 0; i < 32; ++i) codes[(32 * b + i) * 2] = row[34 * b + 2 + i];
  }
}

void TransformerSession::read_tiled_value(const uint8_t* v_head, int32_t p, uint8_t* row) const {
  const uint8_t* tile = v_head + int64_t{p / kKeyTile} * key_tile_bytes();
  const int32_t t = p % kKeyTile;
  const int32_t head_dim = p_.head_dim;
  const uint8_t* codes = tile + int64_t{t / 2} * head_dim * 2 + t % 2;
  const uint8_t* scales = tile + int64_t{head_dim} * kKeyTile;
  for (int32_t b = 0; b < head_dim / 32; ++b) {
    std::memcpy(row + 34 * b, scales + (int64_t{b} * kKeyTile + t) * 2, 2);
    for (int32_t i = 0; i < 32; ++i) row[34 * b + 2 + i] = codes[(32 * b + i) * 2];
  }
}

void TransformerSession::store_kv_head(int layer, int32_t g, int32_t position, const float* k_row, const float* v_row) {
  uint8_t* k_head = k_cache_[static_cast<size_t>(layer)].get() + g * key_head_bytes_;
  uint8_t* v_cache = v_cache_[static_cast<size_t>(layer)].get();
  uint8_t* v_head = v_cache + g * value_head_bytes_;
  const int32_t head_dim = p_.head_dim;
  const float* k = &k_row[g * head_dim];
  const float* v = &v_row[g * head_dim];
  switch (kv_type_) {
    case TensorType::kQ8_0: {
      thread_local std::vector<uint8_t> row;
      row.resize(static_cast<size_t>(row_bytes_));
      quantize_q8_0_row(k, row.data(), head_dim);
      write_tiled_key(k_head, position, row.data());
      quantize_q8_0_row(v, row.data(), head_dim);
      write_tiled_value(v_head, position, row.data());
      return;
    }
    case TensorType::kF16: {
      thread_local std::vector<uint16_t> row;
      row.resize(static_cast<size_t>(head_dim));
      kernels::floats_to_halves(k, row.data(), head_dim);
      write_tiled_key(k_head, position, reinterpret_cast<const uint8_t*>(row.data()));
      kernels::floats_to_halves(v, reinterpret_cast<uint16_t*>(v_head + int64_t{position} * row_bytes_), head_dim);
      return;
    }
    default: {  // F32: key rows, values transposed [g][D][n_ctx]
      auto* k32 = reinterpret_cast<float*>(k_head + int64_t{position} * row_bytes_);
      auto* v32 = reinterpret_cast<float*>(v_cache);
      const int64_t v_index = g * int64_t{head_dim} * n_ctx_ + position;
      for (int32_t i = 0; i < head_dim; ++i) k32[i] = k[i];
      for (int32_t i = 0; i < head_dim; ++i) v32[v_index + int64_t{i} * n_ctx_] = v[i];
      return;
    }
  }
}

// One forward pass over up to kMaxBatch rows, which may belong to several sessions
// (each session's rows at consecutive positions, from its n_past). Every weight matrix
// is read once for all rows; attention of a row reads its own session's cache only.
class ForwardPass {
 public:
  ForwardPass(const LoadedModel& model, ForwardScratch& scratch, std::span<const PassRow> rows, TensorType kv_type)
      : p_(model.params()),
        w_(model.weights()),
        pool_(model.pool()),
        s_(scratch),
        rows_(rows),
        n_rows_(static_cast<int32_t>(rows.size())),
        q_dim_(static_cast<int64_t>(p_.n_head) * p_.head_dim),
        kv_dim_(static_cast<int64_t>(p_.n_head_kv) * p_.head_dim),
        kv_type_(kv_type),
        // A float32 KV cache asks for the float32 reference computation throughout, so
        // the weight products keep float activations too (no 8-bit rounding).
        precision_(kv_type == TensorType::kF32 ? MatmulPrecision::kFloat32 : MatmulPrecision::kFast) {}

  void run();

 private:
  void attend(int layer);
  void attend_tiled(int layer);
  // fn(b) for every row b, on the pool when the rows' `work` (values touched) is worth it.
  template <typename Fn>
  void for_rows(int64_t work, const Fn& fn) {
    parallel_for_work(pool_, n_rows_, work, [&fn](int64_t b) { fn(static_cast<int32_t>(b)); });
  }

  const ModelParams& p_;
  const Weights& w_;
  ThreadPool& pool_;
  ForwardScratch& s_;
  std::span<const PassRow> rows_;
  const int32_t n_rows_;
  // Sizes: E = n_embd, Q = n_head * head_dim, K = n_head_kv * head_dim, F = n_ff, D = head_dim.
  const int64_t q_dim_;
  const int64_t kv_dim_;
  const TensorType kv_type_;
  const MatmulPrecision precision_;
};

// Causal attention of each row's query over its own session's cache: a row at position
// p sees positions 0 .. p (its session's rows of this pass were stored first). Query
// head h reads kv head h / (n_head / n_head_kv), so consecutive query heads share one
// kv head (GQA).
void ForwardPass::attend(int layer) {
  if (kv_type_ == TensorType::kF16 || kv_type_ == TensorType::kQ8_0) return attend_tiled(layer);
  const int32_t head_dim = p_.head_dim;
  const int32_t group = p_.n_head / p_.n_head_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  int64_t work = 0;
  for (const PassRow& row : rows_) work += int64_t{p_.n_head} * (row.position + 1) * head_dim * 2;

  parallel_for_work(pool_, int64_t{n_rows_} * p_.n_head, work, [&](int64_t task) {
    const int32_t b = static_cast<int32_t>(task / p_.n_head);
    const int32_t h = static_cast<int32_t>(task % p_.n_head);
    const int32_t g = h / group;
    const PassRow& row = rows_[static_cast<size_t>(b)];
    const TransformerSession& session = *row.session;
    const int32_t n_keys = row.position + 1;
    const int64_t n_ctx = session.n_ctx();
    const int64_t elt_bytes = session.elt_bytes();
    const float* q = &s_.q[b * q_dim_ + h * head_dim];
    thread_local std::vector<float> scores;
    scores.resize(static_cast<size_t>(n_keys));

    // scores[s] = q · k_s for every visible position s, as one matvec over head g's keys.
    kernels::matvec(kv_type_, session.keys(layer, g), head_dim, q, scores.data(), 0, n_keys);
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
    float* out = &s_.att[b * q_dim_ + h * head_dim];
    const uint8_t* values = session.values(layer, g);
    for (int32_t i = 0; i < head_dim; ++i) {
      out[i] = kernels::dot_row(kv_type_, values + int64_t{i} * n_ctx * elt_bytes, scores.data(), n_keys);
    }
  });
}

// The F16 cache's attention in tiles (kernels::attention_f16): one task per run of a
// sequence's consecutive rows (at most kRowsPerTask) and KV head, with the query heads
// of its group, so every tile of keys and values is decoded once for all of them.
void ForwardPass::attend_tiled(int layer) {
  constexpr int32_t kRowsPerTask = 16;
  const int32_t head_dim = p_.head_dim;
  const int32_t group = p_.n_head / p_.n_head_kv;
  struct Task {
    int32_t first_row;
    int32_t n_rows;
    int32_t g;
  };
  thread_local std::vector<Task> task_list;
  std::vector<Task>& tasks = task_list;
  tasks.clear();
  int64_t work = 0;
  for (int32_t b = 0; b < n_rows_;) {
    int32_t e = b + 1;
    while (e < n_rows_ && e - b < kRowsPerTask && rows_[e].session == rows_[b].session &&
           rows_[e].position == rows_[e - 1].position + 1) {
      ++e;
    }
    for (int32_t g = 0; g < p_.n_head_kv; ++g) tasks.push_back({b, e - b, g});
    work += int64_t{e - b} * p_.n_head * (rows_[e - 1].position + 1) * head_dim * 2;
    b = e;
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  parallel_for_work(pool_, static_cast<int64_t>(tasks.size()), work, [&](int64_t i) {
    const Task& t = tasks[static_cast<size_t>(i)];
    const PassRow& first = rows_[t.first_row];
    const TransformerSession& session = *first.session;
    kernels::AttentionBlock block{};
    block.q = &s_.q[t.first_row * q_dim_ + int64_t{t.g} * group * head_dim];
    block.q_row_stride = q_dim_;
    block.out = &s_.att[t.first_row * q_dim_ + int64_t{t.g} * group * head_dim];
    block.out_row_stride = q_dim_;
    block.n_rows = t.n_rows;
    block.n_heads = group;
    block.head_dim = head_dim;
    block.first_position = first.position;
    block.keys = session.keys(layer, t.g);
    block.values = session.values(layer, t.g);
    block.n_ctx = session.n_ctx();
    block.scale = scale;
    block.q8_0 = kv_type_ == TensorType::kQ8_0;
    block.keys_tiled = session.tiled_keys();
    kernels::attention_f16(block);
  });
}

void ForwardPass::run() {
  const int64_t n_embd = p_.n_embd;
  const int32_t head_dim = p_.head_dim;
  const int32_t half = head_dim / 2;
  const float eps = p_.rms_eps;
  const int32_t n_tokens = n_rows_;
  float* x = s_.x.data();
  float* h = s_.h.data();

  using profile::Op;
  using profile::Scope;
  Scope embed_scope(Op::kEmbed);
  // 1. Embeddings: row `token` of token_embd (decoded when the table is quantized).
  for (int32_t b = 0; b < n_tokens; ++b) {
    kernels::dequantize_row(w_.token_embd.type, w_.token_embd.row(rows_[b].token), &x[b * n_embd], n_embd);
  }
  // RoPE angles of the rows' positions, shared by every layer and head.
  for (int32_t b = 0; b < n_tokens; ++b) {
    const double position = rows_[b].position;
    for (int32_t i = 0; i < half; ++i) {
      const double angle = position * w_.rope_inv_freq[static_cast<size_t>(i)];
      s_.cos[b * half + i] = static_cast<float>(std::cos(angle));
      s_.sin[b * half + i] = static_cast<float>(std::sin(angle));
    }
  }

  embed_scope.stop();

  for (int l = 0; l < p_.n_layer; ++l) {
    const LayerWeights& layer = w_.layers[static_cast<size_t>(l)];

    // 2. Attention block.
    {
      const Scope scope(Op::kNorm);
      for_rows(n_tokens * n_embd, [&](int32_t b) {
        rmsnorm(&h[b * n_embd], &x[b * n_embd], layer.attn_norm.data(), n_embd, eps);
      });
    }
    matmul_shared_input(pool_, {{&layer.wq, s_.q.data()}, {&layer.wk, s_.k.data()}, {&layer.wv, s_.v.data()}}, h,
                        n_tokens, precision_);
    Scope rope_scope(Op::kRope);
    for_rows(n_tokens * (q_dim_ + 2 * kv_dim_), [&](int32_t b) {
      if (!layer.bq.empty()) {  // qwen2
        add_rows(&s_.q[b * q_dim_], layer.bq.data(), 1, q_dim_);
        add_rows(&s_.k[b * kv_dim_], layer.bk.data(), 1, kv_dim_);
        add_rows(&s_.v[b * kv_dim_], layer.bv.data(), 1, kv_dim_);
      }
      const float* cos = &s_.cos[b * half];
      const float* sin = &s_.sin[b * half];
      for (int32_t hd = 0; hd < p_.n_head; ++hd) {
        float* q = &s_.q[b * q_dim_ + hd * head_dim];
        if (!layer.q_norm.empty()) rmsnorm(q, q, layer.q_norm.data(), head_dim, eps);  // qwen3
        rope(q, cos, sin, head_dim, p_.rope_neox);
      }
      for (int32_t hd = 0; hd < p_.n_head_kv; ++hd) {
        float* k = &s_.k[b * kv_dim_ + hd * head_dim];
        if (!layer.k_norm.empty()) rmsnorm(k, k, layer.k_norm.data(), head_dim, eps);  // qwen3
        rope(k, cos, sin, head_dim, p_.rope_neox);
      }
    });
    rope_scope.stop();
    {
      // One task per KV head, all rows: threads write apart (rows of one head share
      // cache lines, heads do not).
      const Scope scope(Op::kKvStore);
      parallel_for_work(pool_, p_.n_head_kv, n_tokens * 2 * kv_dim_, [&](int64_t g) {
        for (int32_t b = 0; b < n_tokens; ++b) {
          rows_[b].session->store_kv_head(l, static_cast<int32_t>(g), rows_[b].position, &s_.k[b * kv_dim_],
                                          &s_.v[b * kv_dim_]);
        }
      });
    }
    {
      const Scope scope(Op::kAttention);
      attend(l);
    }
    matmul(pool_, layer.wo, s_.att.data(), n_tokens, s_.proj.data(), precision_);
    {
      const Scope scope(Op::kResidual);
      for_rows(n_tokens * n_embd, [&](int32_t b) { add_rows(&x[b * n_embd], &s_.proj[b * n_embd], 1, n_embd); });
    }

    // 3. Feed-forward block (SwiGLU).
    {
      const Scope scope(Op::kNorm);
      for_rows(n_tokens * n_embd, [&](int32_t b) {
        rmsnorm(&h[b * n_embd], &x[b * n_embd], layer.ffn_norm.data(), n_embd, eps);
      });
    }
    matmul_shared_input(pool_, {{&layer.w_gate, s_.gate.data()}, {&layer.w_up, s_.up.data()}}, h, n_tokens,
                        precision_);
    {
      const Scope scope(Op::kActivation);
      const int64_t n_ff = p_.n_ff;
      for_rows(n_tokens * n_ff, [&](int32_t b) {
        kernels::silu_mul(&s_.gate[b * n_ff], &s_.up[b * n_ff], n_ff);
      });
    }
    matmul(pool_, layer.w_down, s_.gate.data(), n_tokens, s_.proj.data(), precision_);
    {
      const Scope scope(Op::kResidual);
      for_rows(n_tokens * n_embd, [&](int32_t b) { add_rows(&x[b * n_embd], &s_.proj[b * n_embd], 1, n_embd); });
    }
  }

  // 4. Output: hidden states where asked; logits of the rows that want them, computed
  //    together, then scattered.
  Scope norm_scope(Op::kNorm);
  for (int32_t b = 0; b < n_tokens; ++b) {
    if (rows_[b].hidden != nullptr) rmsnorm(rows_[b].hidden, &x[b * n_embd], w_.output_norm.data(), n_embd, eps);
  }
  int32_t n_out = 0;
  for (int32_t b = 0; b < n_tokens; ++b) {
    if (rows_[b].logits == nullptr) continue;
    rmsnorm(&h[n_out * n_embd], &x[b * n_embd], w_.output_norm.data(), n_embd, eps);
    ++n_out;
  }
  norm_scope.stop();
  if (n_out == 0) return;
  const size_t n_vocab = static_cast<size_t>(p_.n_vocab);
  s_.logits.resize(static_cast<size_t>(n_out) * n_vocab);
  matmul(pool_, w_.output, h, n_out, s_.logits.data(), precision_);
  const Scope scope(Op::kOutput);
  int32_t out = 0;
  for (int32_t b = 0; b < n_tokens; ++b) {
    if (rows_[b].logits == nullptr) continue;
    std::memcpy(rows_[b].logits, &s_.logits[static_cast<size_t>(out) * n_vocab], n_vocab * sizeof(float));
    ++out;
  }
}

}  // namespace

ForwardScratch::ForwardScratch(const ModelParams& p) {
  const size_t b = kMaxBatch;
  const size_t q_dim = static_cast<size_t>(p.n_head) * p.head_dim;
  const size_t kv_dim = static_cast<size_t>(p.n_head_kv) * p.head_dim;
  x.resize(b * p.n_embd);
  h.resize(b * p.n_embd);
  q.resize(b * q_dim);
  k.resize(b * kv_dim);
  v.resize(b * kv_dim);
  att.resize(b * q_dim);
  proj.resize(b * p.n_embd);
  gate.resize(b * p.n_ff);
  up.resize(b * p.n_ff);
  cos.resize(b * p.head_dim / 2);
  sin.resize(b * p.head_dim / 2);
}

void eval_transformer_batch(const LoadedModel& model, ForwardScratch& scratch, std::span<BatchEntry> entries) {
  // Everything is checked before anything runs, so a refused call changes nothing.
  std::vector<TransformerSession*> sessions(entries.size());
  for (size_t e = 0; e < entries.size(); ++e) {
    auto* session = dynamic_cast<TransformerSession*>(entries[e].session);
    if (session == nullptr || &session->model() != &model) {
      throw Error(ErrorCode::kInvalidArgument, tr("batch entry {0} is not a session of this model",
                                                  "バッチの {0} 番目はこのモデルのセッションではありません", e));
    }
    if (e > 0 && session->kv_type() != sessions[0]->kv_type()) {
      throw Error(ErrorCode::kInvalidArgument, tr("the sessions of one batch must share one KV cache type",
                                                  "一つのバッチのセッションは同じ KV キャッシュの型でなければなりません"));
    }
    for (size_t other = 0; other < e; ++other) {
      if (sessions[other] == session) {
        throw Error(ErrorCode::kInvalidArgument, tr("batch entries {0} and {1} are the same session",
                                                    "バッチの {0} 番目と {1} 番目が同じセッションです", other, e));
      }
    }
    session->check_tokens(entries[e].tokens);
    sessions[e] = session;
  }
  if (entries.empty()) return;
  const TensorType kv_type = sessions[0]->kv_type();
  const size_t n_vocab = static_cast<size_t>(model.params().n_vocab);

  std::vector<std::span<float>> logits(entries.size());
  for (size_t e = 0; e < entries.size(); ++e) {
    logits[e] = entries[e].hidden_states ? sessions[e]->hidden_buffer(entries[e].tokens.size())
                                         : sessions[e]->logits_buffer(entries[e].all_logits ? entries[e].tokens.size() : 1);
  }
  const size_t n_embd = static_cast<size_t>(model.params().n_embd);
  // Rows in entry order, kMaxBatch per pass; an entry may continue into the next pass.
  std::vector<PassRow> rows;
  rows.reserve(kMaxBatch);
  auto run_pass = [&] {
    ForwardPass(model, scratch, rows, kv_type).run();
    for (const PassRow& row : rows) row.session->advance(row.position + 1);
    rows.clear();
  };
  for (size_t e = 0; e < entries.size(); ++e) {
    const std::span<const TokenId> tokens = entries[e].tokens;
    const int32_t start = sessions[e]->n_past();
    for (size_t i = 0; i < tokens.size(); ++i) {
      float* out = nullptr;
      float* hidden = nullptr;
      if (entries[e].hidden_states) {
        hidden = logits[e].data() + i * n_embd;
      } else if (entries[e].all_logits) {
        out = logits[e].data() + i * n_vocab;
      } else if (i + 1 == tokens.size()) {
        out = logits[e].data();
      }
      rows.push_back({sessions[e], start + static_cast<int32_t>(i), tokens[i], out, hidden});
      if (rows.size() == static_cast<size_t>(kMaxBatch)) run_pass();
    }
  }
  if (!rows.empty()) run_pass();
  for (size_t e = 0; e < entries.size(); ++e) entries[e].logits = logits[e];
}

std::unique_ptr<Session> new_transformer_session(const LoadedModel& model, int32_t n_ctx, TensorType kv_type) {
  return std::make_unique<TransformerSession>(model, n_ctx, kv_type);
}

uint64_t transformer_session_bytes(const ModelParams& p, int32_t n_ctx, TensorType kv_type, int n_threads) {
  const uint64_t q_dim = static_cast<uint64_t>(p.n_head) * p.head_dim;
  const uint64_t kv_dim = static_cast<uint64_t>(p.n_head_kv) * p.head_dim;
  const uint64_t kv_cache = 2ull * p.n_layer * n_ctx * p.n_head_kv * static_cast<uint64_t>(tensor_row_bytes(kv_type, p.head_dim));
  const uint64_t activations =
      kMaxBatch * (3ull * p.n_embd + 2 * q_dim + 2 * kv_dim + 2ull * p.n_ff + p.head_dim) + p.n_vocab;
  const uint64_t per_thread = static_cast<uint64_t>(n_ctx) + p.head_dim + 64 * 1024 / sizeof(float);
  return kv_cache + (activations + per_thread * n_threads) * sizeof(float);
}

}  // namespace koto::model
