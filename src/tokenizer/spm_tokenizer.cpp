#include "tokenizer/spm_tokenizer.h"

#include "base/utf8.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "tokenizer/symbol_merger.h"

namespace koto {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// The byte of a "<0xXX>" piece, or -1 when the piece has another form.
int parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                     : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

}  // namespace

SpmTokenizer::SpmTokenizer(const GgufFile& file)
    : VocabTokenizer(file, /*scores_required=*/true, /*add_bos_default=*/true) {
  add_space_prefix_ = file.get_bool("tokenizer.ggml.add_space_prefix", true);
  byte_tokens_.fill(-1);
  byte_value_.assign(static_cast<size_t>(vocab_.size()), -1);
  for (TokenId id = 0; id < vocab_.size(); ++id) {
    if (vocab_.type(id) != TokenType::kByte) continue;
    const int value = parse_byte_piece(vocab_.piece(id));
    if (value < 0) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("{0}: tokenizer.ggml.tokens[{1}] is a byte token but reads \"{2}\", not <0xXX>",
                     "{0}: tokenizer.ggml.tokens[{1}] はバイトトークンなのに「{2}」で、<0xXX> の形ではありません",
                     vocab_.file_name(), id, utf8::escape_for_message(vocab_.piece(id))));
    }
    byte_value_[static_cast<size_t>(id)] = static_cast<int16_t>(value);
    if (byte_tokens_[static_cast<size_t>(value)] < 0) byte_tokens_[static_cast<size_t>(value)] = id;
  }
}

std::optional<TokenId> SpmTokenizer::find_mergeable(std::string_view text) const {
  const std::optional<TokenId> id = vocab_.find(text);
  if (!id) return std::nullopt;
  const TokenType type = vocab_.type(*id);
  if (type == TokenType::kNormal || type == TokenType::kUserDefined || type == TokenType::kUndefined) return id;
  return std::nullopt;
}

std::vector<TokenId> SpmTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<TokenId> ids;
  if (add_bos && vocab_.bos()) ids.push_back(*vocab_.bos());
  for (const Vocab::Fragment& fragment : vocab_.split_special(text, parse_special)) {
    if (fragment.special >= 0) {
      ids.push_back(fragment.special);
      continue;
    }
    encode_text(fragment.text, ids);
  }
  return ids;
}

void SpmTokenizer::encode_text(std::string_view raw, std::vector<TokenId>& out) const {
  if (raw.empty()) return;
  std::string text;
  text.reserve(raw.size() + raw.size() / 2 + 3);
  if (add_space_prefix_) text += kSpaceMark;
  for (char c : raw) {
    if (c == ' ') {
      text += kSpaceMark;
    } else {
      text += c;
    }
  }
  if (text.size() > UINT32_MAX) {
    throw Error(ErrorCode::kInvalidArgument, tr("the text is too long to tokenize ({0} bytes)",
                                                "テキストが長すぎてトークン化できません ({0} バイト)", raw.size()));
  }

  std::vector<MergeSymbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t start = pos;
    utf8::decode(text, pos);  // invalid bytes come out as one-byte symbols
    const std::string_view piece = std::string_view(text).substr(start, pos - start);
    MergeSymbol symbol;
    symbol.start = static_cast<uint32_t>(start);
    symbol.length = static_cast<uint32_t>(pos - start);
    symbol.id = find_mergeable(piece).value_or(-1);
    symbols.push_back(symbol);
  }

  const std::string_view view = text;
  merge_symbols(symbols, [&](const MergeSymbol& left, const MergeSymbol& right) -> std::optional<PairMerge> {
    const std::optional<TokenId> id = find_mergeable(view.substr(left.start, left.length + right.length));
    if (!id) return std::nullopt;
    return PairMerge{-static_cast<double>(vocab_.score(*id)), *id};
  });

  for (const MergeSymbol& symbol : symbols) {
    if (symbol.length == 0) continue;
    if (symbol.id >= 0) {
      out.push_back(symbol.id);
      continue;
    }
    for (uint32_t i = 0; i < symbol.length; ++i) {
      const auto byte = static_cast<uint8_t>(text[symbol.start + i]);
      const TokenId byte_token = byte_tokens_[byte];
      if (byte_token >= 0) {
        out.push_back(byte_token);
      } else if (vocab_.unknown()) {
        out.push_back(*vocab_.unknown());
        break;  // one unknown token per symbol, as SentencePiece does without byte fallback
      } else {
        throw Error(ErrorCode::kUnsupported,
                    tr("{0}: cannot encode \"{1}\": the vocabulary has neither the byte token <0x{2:02X}> nor an "
                       "unknown token",
                       "{0}: 「{1}」をトークン化できません: 語彙にバイトトークン <0x{2:02X}> も未知トークンもありません",
                       vocab_.file_name(), utf8::escape_for_message(view.substr(symbol.start, symbol.length)),
                       static_cast<unsigned>(byte)));
      }
    }
  }
}

std::string SpmTokenizer::ordinary_bytes(TokenId id) const {
  if (vocab_.type(id) == TokenType::kByte) return std::string(1, static_cast<char>(byte_value_[static_cast<size_t>(id)]));
  const std::string_view piece = vocab_.piece(id);
  std::string bytes;
  bytes.reserve(piece.size());
  for (size_t pos = 0; pos < piece.size();) {
    if (piece.substr(pos).starts_with(kSpaceMark)) {
      bytes += ' ';
      pos += kSpaceMark.size();
    } else {
      bytes += piece[pos++];
    }
  }
  return bytes;
}

}  // namespace koto
