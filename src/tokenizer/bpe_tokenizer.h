// Byte-level BPE (tokenizer.ggml.model "gpt2"), as in GPT-2, Llama 3 and Qwen: the text
// is cut by the pre-tokenizer named in tokenizer.ggml.pre (see pre_tokenizer.h); every
// byte of a piece becomes the token of its GPT-2 byte character (0x21-0x7E, 0xA1-0xAC,
// 0xAE-0xFF stand for themselves, the other 68 bytes for U+0100..U+0143); then adjacent
// tokens are merged by tokenizer.ggml.merges, lowest index first, leftmost on ties.
//
// Merging works on token ids: a merge "a b" applies to the pair (id(a), id(b)) and gives
// id(ab). Merge lines naming a string that is not in tokenizer.ggml.tokens can never
// apply and are skipped. There is no cache, so no locking: encode() is thread-safe.
//
// Immutable after construction; safe to use from many threads.
#pragma once

#include <array>
#include <string>
#include <unordered_map>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/vocab_tokenizer.h"

namespace koto {

class BpeTokenizer final : public VocabTokenizer {
 public:
  // Throws koto::Error: kCorruptFile for an inconsistent vocabulary or merge list,
  // kUnsupported for an unknown tokenizer.ggml.pre.
  explicit BpeTokenizer(const GgufFile& file);

  std::vector<TokenId> encode(std::string_view text, bool add_bos, bool parse_special) const override;
  bool strips_leading_space() const override { return false; }
  std::string_view model_name() const override { return "gpt2"; }
  std::string_view pre_tokenizer() const override { return pre_tokenizer_.name(); }

 private:
  // Each GPT-2 byte character becomes its byte; other characters are kept as they are.
  std::string ordinary_bytes(TokenId id) const override;
  struct Merge {
    int32_t rank;    // index in tokenizer.ggml.merges
    TokenId result;  // the merged token
  };
  static uint64_t pair_key(TokenId left, TokenId right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void load_merges(const GgufFile& file);
  // Appends the tokens of one pre-tokenizer piece.
  void encode_word(std::string_view word, std::vector<TokenId>& out) const;

  PreTokenizer pre_tokenizer_;
  std::unordered_map<uint64_t, Merge> merges_;  // pair_key(left, right) -> merge
  std::array<TokenId, 256> byte_tokens_{};      // token of each byte's character, -1 when absent
  std::array<char32_t, 256> byte_chars_{};      // the character standing for each byte
};

}  // namespace koto
