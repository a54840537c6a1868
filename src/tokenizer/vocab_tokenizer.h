// What SentencePiece and byte-level BPE tokenizers share: a Vocab read from the GGUF
// file and everything answered from it alone (ids, pieces, special tokens, the bytes of
// control, user-defined and unknown tokens, decoding as the concatenation of
// token_bytes). A subclass adds encoding and the bytes of its ordinary pieces.
//
// Immutable after construction; safe to use from many threads.
#pragma once

#include "koto/tokenizer.h"
#include "tokenizer/vocab.h"

namespace koto {

class VocabTokenizer : public Tokenizer {
 public:
  // Reads the vocabulary (see Vocab) and tokenizer.ggml.add_bos_token, absent meaning
  // `add_bos_default`. Throws koto::Error kCorruptFile for an inconsistent vocabulary.
  VocabTokenizer(const GgufFile& file, bool scores_required, bool add_bos_default);

  // Control tokens: "" (their piece with show_special); user-defined and unknown
  // tokens: their piece as stored; every other token: ordinary_bytes().
  std::string token_bytes(TokenId id, bool show_special = false) const final;
  // token_bytes of every id, then one leading space dropped when strips_leading_space().
  std::string decode(std::span<const TokenId> ids, bool show_special = false) const final;

  int32_t vocab_size() const final { return vocab_.size(); }
  std::string_view piece(TokenId id) const final;
  std::optional<TokenId> find_piece(std::string_view piece) const final { return vocab_.find(piece); }
  std::optional<TokenId> find_special(std::string_view text) const final;
  bool is_control(TokenId id) const final;
  bool is_end_of_generation(TokenId id) const final { return vocab_.is_end_of_generation(id); }

  std::optional<TokenId> bos() const final { return vocab_.bos(); }
  std::optional<TokenId> eos() const final { return vocab_.eos(); }
  bool add_bos_by_default() const final { return add_bos_; }

 protected:
  // The bytes of a token that is not control, user-defined or unknown; `id` is valid.
  virtual std::string ordinary_bytes(TokenId id) const = 0;

  Vocab vocab_;

 private:
  bool add_bos_;
};

}  // namespace koto
