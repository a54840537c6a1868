#include "tokenizer/bpe_tokenizer.h"

#include "base/utf8.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "tokenizer/symbol_merger.h"

namespace koto {
namespace {

constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";

// GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the
// rest are moved, in increasing order, to U+0100 and up so every piece is printable.
std::array<char32_t, 256> make_byte_chars() {
  std::array<char32_t, 256> chars{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    chars[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
  }
  return chars;
}

// The byte a character stands for, or -1 for characters outside the table.
int char_byte(char32_t c) {
  static const std::array<int16_t, 0x144> table = [] {
    std::array<int16_t, 0x144> t{};
    t.fill(-1);
    const std::array<char32_t, 256> chars = make_byte_chars();
    for (int b = 0; b < 256; ++b) t[chars[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
    return t;
  }();
  return c < table.size() ? table[c] : -1;
}

}  // namespace

BpeTokenizer::BpeTokenizer(const GgufFile& file)
    : VocabTokenizer(file, /*scores_required=*/false, /*add_bos_default=*/false),
      pre_tokenizer_(file.get_string("tokenizer.ggml.pre", ""), file.path()) {
  byte_chars_ = make_byte_chars();
  for (size_t b = 0; b < 256; ++b) {
    std::string character;
    utf8::append(character, byte_chars_[b]);
    byte_tokens_[b] = vocab_.find(character).value_or(-1);
  }
  load_merges(file);
}

void BpeTokenizer::load_merges(const GgufFile& file) {
  const GgufValue* merges = file.find(kMergesKey);
  if (merges == nullptr) {
    throw Error(ErrorCode::kCorruptFile,
                tr("{0}: {1} is missing; a byte-level BPE vocabulary (tokenizer.ggml.model gpt2) needs it",
                   "{0}: {1} がありません。バイトレベル BPE の語彙 (tokenizer.ggml.model gpt2) には必要です",
                   file.path(), kMergesKey));
  }
  if (!merges->is_array() || merges->element_type() != GgufValueType::kString) {
    throw Error(ErrorCode::kCorruptFile, tr("{0}: {1} should be an array of strings",
                                            "{0}: {1} は文字列の配列のはずです", file.path(), kMergesKey));
  }
  if (merges->size() > static_cast<uint64_t>(INT32_MAX)) {
    throw Error(ErrorCode::kCorruptFile, tr("{0}: {1} has {2} entries, too many",
                                            "{0}: {1} の要素数 {2} が多すぎます", file.path(), kMergesKey,
                                            merges->size()));
  }
  merges_.reserve(merges->size());
  std::string joined;
  for (uint64_t i = 0; i < merges->size(); ++i) {
    const std::string_view line = merges->string_at(i);
    // Pieces never start with a space in byte-level vocabularies, but may hold one
    // after their first character in others; the separator is the first space after it.
    const size_t space = line.size() > 1 ? line.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos || space + 1 >= line.size()) {
      throw Error(ErrorCode::kCorruptFile,
                  tr("{0}: {1}[{2}] is \"{3}\", not two pieces separated by a space",
                     "{0}: {1}[{2}] は「{3}」で、空白で区切った二つのピースではありません", file.path(), kMergesKey, i,
                     utf8::escape_for_message(line)));
    }
    const std::string_view left = line.substr(0, space);
    const std::string_view right = line.substr(space + 1);
    joined.assign(left);
    joined.append(right);
    const std::optional<TokenId> left_id = vocab_.find(left);
    const std::optional<TokenId> right_id = vocab_.find(right);
    const std::optional<TokenId> result = vocab_.find(joined);
    if (!left_id || !right_id || !result) continue;  // can never apply (see header)
    merges_.emplace(pair_key(*left_id, *right_id), Merge{static_cast<int32_t>(i), *result});
  }
}

std::vector<TokenId> BpeTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<TokenId> ids;
  if (add_bos && vocab_.bos()) ids.push_back(*vocab_.bos());
  std::vector<std::string_view> words;
  for (const Vocab::Fragment& fragment : vocab_.split_special(text, parse_special)) {
    if (fragment.special >= 0) {
      ids.push_back(fragment.special);
      continue;
    }
    words.clear();
    pre_tokenizer_.split(fragment.text, words);
    for (std::string_view word : words) encode_word(word, ids);
  }
  return ids;
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<TokenId>& out) const {
  if (word.size() > UINT32_MAX) {
    throw Error(ErrorCode::kInvalidArgument, tr("the text is too long to tokenize ({0} bytes)",
                                                "テキストが長すぎてトークン化できません ({0} バイト)", word.size()));
  }
  std::vector<MergeSymbol> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    symbols[i].start = static_cast<uint32_t>(i);
    symbols[i].length = 1;
    symbols[i].id = byte_tokens_[static_cast<uint8_t>(word[i])];
  }
  merge_symbols(symbols, [this](const MergeSymbol& left, const MergeSymbol& right) -> std::optional<PairMerge> {
    if (left.id < 0 || right.id < 0) return std::nullopt;
    const auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end()) return std::nullopt;
    return PairMerge{static_cast<double>(it->second.rank), it->second.result};
  });
  for (const MergeSymbol& symbol : symbols) {
    if (symbol.length == 0) continue;
    if (symbol.id >= 0) {
      out.push_back(symbol.id);
    } else if (vocab_.unknown()) {
      out.push_back(*vocab_.unknown());
    } else {
      throw Error(ErrorCode::kUnsupported,
                  tr("{0}: cannot encode the byte 0x{1:02X}: the vocabulary has no token for it and no unknown token",
                     "{0}: バイト 0x{1:02X} をトークン化できません: 語彙にそのトークンも未知トークンもありません",
                     vocab_.file_name(), static_cast<unsigned>(static_cast<uint8_t>(word[symbol.start]))));
    }
  }
}

std::string BpeTokenizer::ordinary_bytes(TokenId id) const {
  const std::string_view piece = vocab_.piece(id);
  std::string bytes;
  bytes.reserve(piece.size());
  for (size_t pos = 0; pos < piece.size();) {
    const size_t start = pos;
    const char32_t c = utf8::decode(piece, pos);
    const int byte = char_byte(c);
    if (byte >= 0) {
      bytes += static_cast<char>(byte);
    } else {
      bytes.append(piece.substr(start, pos - start));  // not a byte character: keep as is
    }
  }
  return bytes;
}

}  // namespace koto
