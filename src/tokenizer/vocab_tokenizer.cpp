#include "tokenizer/vocab_tokenizer.h"

#include "koto/gguf.h"

namespace koto {

VocabTokenizer::VocabTokenizer(const GgufFile& file, bool scores_required, bool add_bos_default)
    : vocab_(file, scores_required), add_bos_(file.get_bool("tokenizer.ggml.add_bos_token", add_bos_default)) {}

std::string_view VocabTokenizer::piece(TokenId id) const {
  vocab_.check_id(id);
  return vocab_.piece(id);
}

std::optional<TokenId> VocabTokenizer::find_special(std::string_view text) const {
  const std::optional<TokenId> id = vocab_.find(text);
  if (!id) return std::nullopt;
  const TokenType type = vocab_.type(*id);
  if (type == TokenType::kControl || type == TokenType::kUserDefined) return id;
  return std::nullopt;
}

bool VocabTokenizer::is_control(TokenId id) const {
  return vocab_.contains(id) && vocab_.type(id) == TokenType::kControl;
}

std::string VocabTokenizer::token_bytes(TokenId id, bool show_special) const {
  vocab_.check_id(id);
  const std::string_view piece = vocab_.piece(id);
  switch (vocab_.type(id)) {
    case TokenType::kControl:
      return show_special ? std::string(piece) : std::string();
    case TokenType::kUserDefined:  // added tokens are stored as plain text
    case TokenType::kUnknown:
      return std::string(piece);
    default:
      return ordinary_bytes(id);
  }
}

std::string VocabTokenizer::decode(std::span<const TokenId> ids, bool show_special) const {
  std::string text;
  for (TokenId id : ids) text += token_bytes(id, show_special);
  if (strips_leading_space() && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

}  // namespace koto
