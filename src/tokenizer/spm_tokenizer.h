// SentencePiece-style tokenizer (tokenizer.ggml.model "llama"): the text gets one
// leading space (tokenizer.ggml.add_space_prefix, default true), spaces become U+2581,
// and code points are merged pairwise, highest-scoring vocabulary piece first (leftmost
// on ties). A final symbol that is no piece becomes one <0xXX> token per UTF-8 byte
// (byte fallback), or the unknown token when the vocabulary has no byte tokens.
//
// Only normal, user-defined and undefined pieces are merge targets: control, unknown,
// unused and byte pieces never come out of merging.
//
// With parse_special, each run of ordinary text is encoded as if it stood alone, so the
// space prefix is added at the start of the input and after every special token.
//
// Immutable after construction; safe to use from many threads.
#pragma once

#include <array>

#include "koto/tokenizer.h"
#include "tokenizer/vocab.h"

namespace koto {

class SpmTokenizer final : public Tokenizer {
 public:
  // Throws koto::Error kCorruptFile for an inconsistent vocabulary (see Vocab).
  explicit SpmTokenizer(const GgufFile& file);

  std::vector<TokenId> encode(std::string_view text, bool add_bos, bool parse_special) const override;
  std::string token_bytes(TokenId id, bool show_special = false) const override;
  std::string decode(std::span<const TokenId> ids, bool show_special = false) const override;
  bool strips_leading_space() const override { return add_space_prefix_; }

  int32_t vocab_size() const override { return vocab_.size(); }
  std::string_view piece(TokenId id) const override;
  std::optional<TokenId> find_piece(std::string_view piece) const override { return vocab_.find(piece); }
  bool is_control(TokenId id) const override;
  bool is_end_of_generation(TokenId id) const override { return vocab_.is_end_of_generation(id); }

  std::optional<TokenId> bos() const override { return vocab_.bos(); }
  std::optional<TokenId> eos() const override { return vocab_.eos(); }
  bool add_bos_by_default() const override { return add_bos_; }
  std::string_view model_name() const override { return "llama"; }
  std::string_view pre_tokenizer() const override { return ""; }

 private:
  // Appends the tokens of ordinary text (no special-token parsing, no prefix added).
  void encode_text(std::string_view text, std::vector<TokenId>& out) const;
  std::optional<TokenId> find_mergeable(std::string_view text) const;

  Vocab vocab_;
  bool add_space_prefix_ = true;
  bool add_bos_ = true;
  std::array<TokenId, 256> byte_tokens_{};  // id of <0xXX>, -1 when absent
  std::vector<int16_t> byte_value_;          // per id: the byte of a <0xXX> byte token, else -1
};

}  // namespace koto
