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

#include "tokenizer/vocab_tokenizer.h"

namespace koto {

class SpmTokenizer final : public VocabTokenizer {
 public:
  // Throws koto::Error kCorruptFile for an inconsistent vocabulary (see Vocab).
  explicit SpmTokenizer(const GgufFile& file);

  std::vector<TokenId> encode(std::string_view text, bool add_bos, bool parse_special) const override;
  bool strips_leading_space() const override { return add_space_prefix_; }
  std::string_view model_name() const override { return "llama"; }
  std::string_view pre_tokenizer() const override { return ""; }

 private:
  // Byte tokens give their byte; U+2581 becomes a space.
  std::string ordinary_bytes(TokenId id) const override;
  // Appends the tokens of ordinary text (no special-token parsing, no prefix added).
  void encode_text(std::string_view text, std::vector<TokenId>& out) const;
  std::optional<TokenId> find_mergeable(std::string_view text) const;

  bool add_space_prefix_ = true;
  std::array<TokenId, 256> byte_tokens_{};  // id of <0xXX>, -1 when absent
  std::vector<int16_t> byte_value_;          // per id: the byte of a <0xXX> byte token, else -1
};

}  // namespace koto
