#include "tokenizer/vocab.h"

#include <algorithm>
#include <cmath>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"

namespace koto {
namespace {

constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";

// Larger vocabularies exist nowhere; refusing them keeps a damaged count from
// turning into a huge allocation.
constexpr uint64_t kMaxVocab = 16u * 1024u * 1024u;

// Pieces that end generation in common chat models even when no key names them.
constexpr std::string_view kEndOfGenerationPieces[] = {
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>", "<|end|>", "<end_of_turn>",
};

[[noreturn]] void throw_length_mismatch(const std::string& file, std::string_view key, uint64_t have,
                                        uint64_t want) {
  throw Error(ErrorCode::kCorruptFile,
              tr("{0}: {1} has {2} entries, but {3} has {4}; the file is damaged",
                 "{0}: {1} の要素数は {2} ですが、{3} は {4} です。ファイルが壊れています", file, key, have,
                 kTokensKey, want));
}

// The array under `key` with elements accepted by `element_ok`, or null when absent.
const GgufValue* find_array(const GgufFile& file, std::string_view key, bool (*element_ok)(GgufValueType),
                            std::string_view expected) {
  const GgufValue* value = file.find(key);
  if (value == nullptr) return nullptr;
  if (!value->is_array() || !element_ok(value->element_type())) {
    const std::string_view found =
        value->is_array() ? gguf_value_type_name(value->element_type()) : gguf_value_type_name(value->type());
    throw Error(ErrorCode::kCorruptFile,
                tr("{0}: {1} should be an array of {2}, but holds {3}",
                   "{0}: {1} は {2} の配列のはずですが、{3} です", file.path(), key, expected, found));
  }
  return value;
}

bool is_string_type(GgufValueType t) { return t == GgufValueType::kString; }
bool is_number_type(GgufValueType t) {
  return t != GgufValueType::kString && t != GgufValueType::kArray && t != GgufValueType::kBool;
}
bool is_integer_type(GgufValueType t) { return is_number_type(t) && t != GgufValueType::kF32 && t != GgufValueType::kF64; }

}  // namespace

Vocab::Vocab(const GgufFile& file, bool scores_required) : file_name_(file.path()) {
  const GgufValue* tokens = find_array(file, kTokensKey, is_string_type, "string");
  if (tokens == nullptr || tokens->size() == 0) {
    throw Error(ErrorCode::kCorruptFile,
                tr("{0}: {1} is missing or empty; the file has no usable vocabulary",
                   "{0}: {1} がないか空です。使える語彙がありません", file_name_, kTokensKey));
  }
  const uint64_t n = tokens->size();
  if (n > kMaxVocab) {
    throw Error(ErrorCode::kCorruptFile, tr("{0}: {1} has {2} entries, more than the {3} koto accepts",
                                            "{0}: {1} の要素数 {2} は koto の上限 {3} を超えています",
                                            file_name_, kTokensKey, n, kMaxVocab));
  }
  pieces_.reserve(n);
  for (uint64_t i = 0; i < n; ++i) pieces_.emplace_back(tokens->string_at(i));

  scores_.assign(n, 0.0f);
  if (const GgufValue* scores = find_array(file, kScoresKey, is_number_type, "f32")) {
    if (scores->size() != n) throw_length_mismatch(file_name_, kScoresKey, scores->size(), n);
    for (uint64_t i = 0; i < n; ++i) {
      const double s = scores->float_at(i);
      // NaN would make the merge order undefined.
      if (std::isnan(s)) {
        throw Error(ErrorCode::kCorruptFile, tr("{0}: {1}[{2}] is not a number", "{0}: {1}[{2}] が数値ではありません",
                                                file_name_, kScoresKey, i));
      }
      scores_[i] = static_cast<float>(s);
    }
  } else if (scores_required) {
    throw Error(ErrorCode::kCorruptFile,
                tr("{0}: {1} is missing; a SentencePiece vocabulary needs a score per token",
                   "{0}: {1} がありません。SentencePiece の語彙にはトークンごとのスコアが必要です", file_name_,
                   kScoresKey));
  }

  types_.assign(n, TokenType::kNormal);
  if (const GgufValue* types = find_array(file, kTypesKey, is_integer_type, "i32")) {
    if (types->size() != n) throw_length_mismatch(file_name_, kTypesKey, types->size(), n);
    for (uint64_t i = 0; i < n; ++i) {
      const int64_t t = types->int_at(i);
      if (t < 0 || t > static_cast<int64_t>(TokenType::kByte)) {
        throw Error(ErrorCode::kCorruptFile,
                    tr("{0}: {1}[{2}] is {3}, not a token type (0..6)",
                       "{0}: {1}[{2}] の値 {3} はトークン種別 (0..6) ではありません", file_name_, kTypesKey, i, t));
      }
      types_[i] = static_cast<TokenType>(t);
    }
  }

  by_piece_.reserve(n);
  for (size_t i = 0; i < pieces_.size(); ++i) by_piece_.emplace(pieces_[i], static_cast<TokenId>(i));

  bos_ = read_special_id(file, "tokenizer.ggml.bos_token_id");
  eos_ = read_special_id(file, "tokenizer.ggml.eos_token_id");
  unknown_ = read_special_id(file, "tokenizer.ggml.unknown_token_id");
  const std::optional<TokenId> eot = read_special_id(file, "tokenizer.ggml.eot_token_id");
  const std::optional<TokenId> eom = read_special_id(file, "tokenizer.ggml.eom_token_id");

  for (const std::optional<TokenId>& id : {eos_, eot, eom}) {
    if (id) end_of_generation_.push_back(*id);
  }
  for (std::string_view text : kEndOfGenerationPieces) {
    if (const std::optional<TokenId> id = find(text)) end_of_generation_.push_back(*id);
  }
  std::sort(end_of_generation_.begin(), end_of_generation_.end());
  end_of_generation_.erase(std::unique(end_of_generation_.begin(), end_of_generation_.end()),
                           end_of_generation_.end());

  for (TokenId id = 0; id < size(); ++id) {
    const TokenType t = type(id);
    if ((t == TokenType::kControl || t == TokenType::kUserDefined) && !piece(id).empty()) {
      specials_by_first_byte_[static_cast<uint8_t>(piece(id)[0])].push_back(id);
      has_specials_ = true;
    }
  }
  for (std::vector<TokenId>& bucket : specials_by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [this](TokenId a, TokenId b) { return piece(a).size() > piece(b).size(); });
  }
}

std::optional<TokenId> Vocab::read_special_id(const GgufFile& file, std::string_view key) const {
  const GgufValue* value = file.find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_integer()) {
    throw Error(ErrorCode::kCorruptFile, tr("{0}: {1} should be an integer, but holds {2}",
                                            "{0}: {1} は整数のはずですが、{2} です", file_name_, key,
                                            gguf_value_type_name(value->type())));
  }
  // Converters write -1 (or its u32 form) for "none".
  const bool is_none = value->type() == GgufValueType::kU32 ? value->as_u64() == 0xFFFFFFFFu
                       : value->type() == GgufValueType::kU64 ? value->as_u64() == ~uint64_t{0}
                                                              : value->as_i64() == -1;
  if (is_none) return std::nullopt;
  const bool in_range = value->type() == GgufValueType::kU64 || value->type() == GgufValueType::kU32
                            ? value->as_u64() < pieces_.size()
                            : value->as_i64() >= 0 && value->as_i64() < size();
  if (!in_range) {
    const std::string shown = value->type() == GgufValueType::kU64 || value->type() == GgufValueType::kU32
                                  ? std::to_string(value->as_u64())
                                  : std::to_string(value->as_i64());
    throw Error(ErrorCode::kCorruptFile,
                tr("{0}: {1} is {2}, outside the vocabulary of {3} tokens",
                   "{0}: {1} の値 {2} は語彙 ({3} 個) の範囲外です", file_name_, key, shown, size()));
  }
  return static_cast<TokenId>(value->as_i64());
}

void Vocab::check_id(TokenId id) const {
  if (!contains(id)) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("token id {0} is out of range: the vocabulary of {1} has ids 0..{2}",
                   "トークン ID {0} は範囲外です: {1} の語彙の ID は 0..{2} です", id, file_name_, size() - 1));
  }
}

std::optional<TokenId> Vocab::find(std::string_view text) const {
  const auto it = by_piece_.find(text);
  if (it == by_piece_.end()) return std::nullopt;
  return it->second;
}

bool Vocab::is_end_of_generation(TokenId id) const {
  return std::binary_search(end_of_generation_.begin(), end_of_generation_.end(), id);
}

std::vector<Vocab::Fragment> Vocab::split_special(std::string_view text, bool parse_special) const {
  std::vector<Fragment> fragments;
  if (!parse_special || !has_specials_) {
    if (!text.empty()) fragments.push_back({text, -1});
    return fragments;
  }
  size_t text_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    TokenId match = -1;
    const std::string_view rest = text.substr(pos);
    for (TokenId id : specials_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (rest.starts_with(piece(id))) {  // longest first, so the first hit is the longest
        match = id;
        break;
      }
    }
    if (match < 0) {
      ++pos;
      continue;
    }
    if (pos > text_start) fragments.push_back({text.substr(text_start, pos - text_start), -1});
    fragments.push_back({piece(match), match});
    pos += piece(match).size();
    text_start = pos;
  }
  if (pos > text_start) fragments.push_back({text.substr(text_start, pos - text_start), -1});
  return fragments;
}

}  // namespace koto
