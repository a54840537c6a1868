// A tiny llama model, written by the test itself, whose answer is known in advance:
// the Japanese text 「の大日生語長」, spelled one byte-fallback token at a time (each
// character takes three tokens), over and over — or once, then EOS.
//
// How it works. The vocabulary is SentencePiece-style: <unk>, <s>, </s>, the 256 byte
// tokens <0x00>..<0xFF> and "▁" (the space before the text). The embedding of token t is the one-hot vector e_t; all
// attention and feed-forward weights are zero, so the residual stream stays e_t and the
// logits are output · rmsnorm(e_t). Row next(t) of the output matrix has a 1 in column
// t, so the next token depends only on the current one and wins by sqrt(n_embd) ≈ 18
// logits: greedy decoding follows next() exactly, and sampling almost surely too.
// The 18 bytes of the six characters are all different, so next() can walk them in a
// cycle; every other token leads to the first byte.
//
// Used for what a random-weight model cannot show: exact expected text, stop strings,
// end of generation, and Japanese arriving through byte tokens (UTF-8 integrity).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "koto/gguf_writer.h"
#include "koto/tensor_type.h"

namespace koto::testing {

inline constexpr std::string_view kChainText = "の大日生語長";  // 6 characters, 18 bytes

struct ChainModelOptions {
  bool end_after_one_cycle = false;  // the last byte of 長 leads to </s> instead of の
  uint32_t context_length = 512;
  // The zero weights cost time without changing the answer: more layers and a wider
  // feed-forward make a model slow enough that a test can act while it generates.
  uint32_t n_layer = 1;
  uint32_t n_ff = 32;                                  // a multiple of 32
  TensorType zero_weight_type = TensorType::kF32;      // zeros are zero bytes in every type
  // A Llama-2 chat template (tokenizer.chat_template), so chat requests work.
  bool with_chat_template = true;
  std::string name = "chain-test";
};

// Byte-token id of a byte: <0xNN> is 3 + NN.
inline int32_t chain_byte_token(uint8_t byte) { return 3 + byte; }

inline GgufWriter chain_model_writer(const ChainModelOptions& options = {}) {
  constexpr int32_t n_vocab = 260;
  constexpr int32_t n_embd = 320;  // >= n_vocab for the one-hot embeddings
  constexpr int32_t n_head = 2;
  const int32_t n_ff = static_cast<int32_t>(options.n_ff);
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", options.name);
  w.set_u32("llama.context_length", options.context_length);
  w.set_u32("llama.embedding_length", n_embd);
  w.set_u32("llama.block_count", options.n_layer);
  w.set_u32("llama.feed_forward_length", n_ff);
  w.set_u32("llama.attention.head_count", n_head);
  w.set_u32("llama.attention.head_count_kv", n_head);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);

  std::vector<std::string> pieces{"<unk>", "<s>", "</s>"};
  std::vector<float> scores(3, 0.0f);
  std::vector<int32_t> types{2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    pieces.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    scores.push_back(0.0f);
    types.push_back(6);  // byte
  }
  pieces.push_back("\u2581");  // the space SentencePiece puts before the text
  scores.push_back(0.0f);
  types.push_back(1);  // normal
  w.set_string("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.tokens", GgufMetaValue::string_array(pieces));
  w.set("tokenizer.ggml.scores", GgufMetaValue::array<float>(scores));
  w.set("tokenizer.ggml.token_type", GgufMetaValue::array<int32_t>(types));
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  if (options.with_chat_template) {
    w.set_string("tokenizer.chat_template",
                 "{{ bos_token }}[INST] <<SYS>>\n{{ system }}\n<</SYS>>\n\n{{ user }} [/INST]");
  }

  // next(t) for every token: the cycle through the text's bytes, everything else to its start.
  std::vector<int32_t> next(n_vocab, chain_byte_token(static_cast<uint8_t>(kChainText[0])));
  for (size_t i = 0; i < kChainText.size(); ++i) {
    const int32_t from = chain_byte_token(static_cast<uint8_t>(kChainText[i]));
    const bool last = i + 1 == kChainText.size();
    next[static_cast<size_t>(from)] =
        last && options.end_after_one_cycle ? 2 : chain_byte_token(static_cast<uint8_t>(kChainText[(i + 1) % kChainText.size()]));
  }

  auto floats = [](const std::vector<float>& values) {
    return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  };
  auto ones = [&](int64_t n) { return floats(std::vector<float>(static_cast<size_t>(n), 1.0f)); };

  std::vector<float> embedding(size_t{n_vocab} * n_embd, 0.0f);
  for (int32_t t = 0; t < n_vocab; ++t) embedding[size_t(t) * n_embd + size_t(t)] = 1.0f;
  std::vector<float> output(size_t{n_vocab} * n_embd, 0.0f);
  for (int32_t t = 0; t < n_vocab; ++t) output[size_t(next[size_t(t)]) * n_embd + size_t(t)] = 1.0f;

  // A zero matrix of `type`: all-zero bytes (zero scales and codes), streamed.
  const TensorType zero_type = options.zero_weight_type;
  auto add_zero_matrix = [&w, zero_type](const std::string& name, int64_t n_in, int64_t n_out) {
    const uint64_t bytes = static_cast<uint64_t>(tensor_row_bytes(zero_type, n_in)) * static_cast<uint64_t>(n_out);
    w.add_tensor(name, {n_in, n_out}, zero_type, [bytes](GgufDataSink& sink) {
      const std::string block(1 << 16, '\0');
      for (uint64_t done = 0; done < bytes; done += block.size()) {
        sink.write(block.data(), static_cast<size_t>(std::min<uint64_t>(block.size(), bytes - done)));
      }
    });
  };
  w.add_tensor_owned("token_embd.weight", {n_embd, n_vocab}, TensorType::kF32, floats(embedding));
  for (uint32_t l = 0; l < options.n_layer; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    w.add_tensor_owned(blk + "attn_norm.weight", {n_embd}, TensorType::kF32, ones(n_embd));
    for (const char* name : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight"}) {
      add_zero_matrix(blk + name, n_embd, n_embd);
    }
    w.add_tensor_owned(blk + "ffn_norm.weight", {n_embd}, TensorType::kF32, ones(n_embd));
    add_zero_matrix(blk + "ffn_gate.weight", n_embd, n_ff);
    add_zero_matrix(blk + "ffn_up.weight", n_embd, n_ff);
    add_zero_matrix(blk + "ffn_down.weight", n_ff, n_embd);
  }
  w.add_tensor_owned("output_norm.weight", {n_embd}, TensorType::kF32, ones(n_embd));
  w.add_tensor_owned("output.weight", {n_embd, n_vocab}, TensorType::kF32, floats(output));
  return w;
}

// Writes the model to `path` (atomically); returns path.
inline std::string write_chain_model(const std::string& path, const ChainModelOptions& options = {}) {
  chain_model_writer(options).write_file(path);
  return path;
}

// The answer's first n characters (the text repeats).
inline std::string chain_text_chars(size_t n) {
  static const std::vector<std::string> chars{"の", "大", "日", "生", "語", "長"};
  std::string out;
  for (size_t i = 0; i < n; ++i) out += chars[i % chars.size()];
  return out;
}

}  // namespace koto::testing

namespace koto::testing {

// A chain model that takes a few milliseconds per token (4 layers, a wide feed-forward
// of Q8_0 zeros, 4096 positions): long enough for a test to act while it generates.
inline std::string write_slow_chain_model(const std::string& path) {
  ChainModelOptions options;
  options.context_length = 4096;
  options.n_layer = 4;
  options.n_ff = 8192;
  options.zero_weight_type = TensorType::kQ8_0;
  return write_chain_model(path, options);
}

}  // namespace koto::testing
