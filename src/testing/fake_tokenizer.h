// A tokenizer for tests that need no vocabulary file: ids 0..255 are single bytes,
// 256 is BOS, 257 is EOS (end of generation), 258 a control token "<ctl>", and ids
// from 259 are whole words given to the constructor (a word may start with a space,
// like a SentencePiece piece).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "koto/tokenizer.h"

namespace koto::testing {

class FakeTokenizer : public Tokenizer {
 public:
  static constexpr TokenId kBos = 256, kEos = 257, kControl = 258, kFirstWord = 259;

  explicit FakeTokenizer(std::vector<std::string> words = {}, bool strips_leading_space = false)
      : words_(std::move(words)), strips_(strips_leading_space) {}

  std::vector<TokenId> encode(std::string_view text, bool add_bos, bool parse_special) const override {
    std::vector<TokenId> ids;
    if (add_bos) ids.push_back(kBos);
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string token_bytes(TokenId id, bool show_special) const override {
    if (id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
    if (id >= kFirstWord && id - kFirstWord < static_cast<TokenId>(words_.size())) return words_[id - kFirstWord];
    if (!show_special) return {};
    return id == kBos ? "<s>" : id == kEos ? "</s>" : "<ctl>";
  }
  std::string decode(std::span<const TokenId> ids, bool show_special) const override {
    std::string out;
    for (TokenId id : ids) out += token_bytes(id, show_special);
    if (strips_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }
  bool strips_leading_space() const override { return strips_; }
  int32_t vocab_size() const override { return kFirstWord + static_cast<int32_t>(words_.size()); }
  std::string_view piece(TokenId id) const override { return {}; }
  std::optional<TokenId> find_piece(std::string_view piece) const override {
    for (size_t i = 0; i < words_.size(); ++i) {
      if (words_[i] == piece) return kFirstWord + static_cast<TokenId>(i);
    }
    return std::nullopt;
  }
  std::optional<TokenId> find_special(std::string_view text) const override {
    if (text == "<s>") return kBos;
    if (text == "</s>") return kEos;
    if (text == "<ctl>") return kControl;
    return std::nullopt;
  }
  bool is_control(TokenId id) const override { return id >= kBos && id <= kControl; }
  bool is_end_of_generation(TokenId id) const override { return id == kEos; }
  std::optional<TokenId> bos() const override { return kBos; }
  std::optional<TokenId> eos() const override { return kEos; }
  bool add_bos_by_default() const override { return true; }
  std::string_view model_name() const override { return "fake"; }
  std::string_view pre_tokenizer() const override { return ""; }

 private:
  std::vector<std::string> words_;
  bool strips_;
};

}  // namespace koto::testing
