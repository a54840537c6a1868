// The vocabulary both tokenizer kinds share: the pieces, their scores and types from
// tokenizer.ggml.{tokens,scores,token_type}, the special ids (BOS, EOS, EOT, unknown),
// the end-of-generation set and the splitting of text at special-token texts.
//
// Construction checks everything it reads (array types and lengths, ids in range) and
// throws a one-line kCorruptFile koto::Error naming the file and the key. A Vocab is
// immutable afterwards and safe to share between threads. It owns copies of all strings,
// so it does not depend on the GgufFile staying open. It is neither copyable nor
// movable: its piece index points into its own storage.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

// Token types as llama.cpp's converter numbers them in tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class Vocab {
 public:
  // Reads the vocabulary of `file`. `scores_required`: tokenizer.ggml.scores must be
  // present (SentencePiece merges by score); otherwise every score is 0 when absent.
  Vocab(const GgufFile& file, bool scores_required);
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;

  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  bool contains(TokenId id) const { return id >= 0 && id < size(); }
  // Throws kInvalidArgument naming the id and the vocabulary size when out of range.
  void check_id(TokenId id) const;

  // Unchecked accessors: the id must satisfy contains().
  std::string_view piece(TokenId id) const { return pieces_[static_cast<size_t>(id)]; }
  float score(TokenId id) const { return scores_[static_cast<size_t>(id)]; }
  TokenType type(TokenId id) const { return types_[static_cast<size_t>(id)]; }

  // The first id whose piece is exactly `piece`.
  std::optional<TokenId> find(std::string_view piece) const;

  std::optional<TokenId> bos() const { return bos_; }
  std::optional<TokenId> eos() const { return eos_; }
  std::optional<TokenId> unknown() const { return unknown_; }
  // EOS, EOT, EOM and the pieces <|im_end|>, <|eot_id|>, <|eom_id|>, <|endoftext|>,
  // <|end|>, <end_of_turn> when the vocabulary has them.
  bool is_end_of_generation(TokenId id) const;

  // A part of the input: ordinary text (special < 0), or one special token.
  struct Fragment {
    std::string_view text;  // points into the input
    TokenId special = -1;
  };
  // Splits `text` at the texts of control and user-defined tokens, longest match first
  // at each position. With parse_special false the whole text is one fragment. Empty
  // text fragments are left out.
  std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;

  const std::string& file_name() const { return file_name_; }

 private:
  std::optional<TokenId> read_special_id(const GgufFile& file, std::string_view key) const;

  std::string file_name_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string_view, TokenId> by_piece_;  // views into pieces_
  std::optional<TokenId> bos_, eos_, unknown_;
  std::vector<TokenId> end_of_generation_;   // sorted
  // Control and user-defined tokens by the first byte of their text, longest first.
  std::array<std::vector<TokenId>, 256> specials_by_first_byte_;
  bool has_specials_ = false;
};

}  // namespace koto
