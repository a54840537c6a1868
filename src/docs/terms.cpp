#include "docs/terms.h"

#include <mecab.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <array>
#include <string>

#include "koto/error.h"
#include "koto/i18n.h"

namespace koto::docs {
namespace {

bool is_ascii_word_char(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

// Verbs too common in manuals and questions to say what they are about.
bool is_stop_verb(std::string_view base) {
  static constexpr std::array<std::string_view, 14> kStop = {"する", "ある", "いる", "なる", "できる", "れる", "られる",
                                                             "おる", "くる", "いく", "せる", "させる", "いう", "思う"};
  for (std::string_view s : kStop) {
    if (base == s) return true;
  }
  return false;
}

// The ASCII words of `text` (already lower case): runs of [a-z0-9_] joined by inner
// '.', '-', '+' or '/', with a leading "-" or "--" when the run starts an option.
template <typename Emit>
void ascii_words(std::string_view text, Emit&& emit) {
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool prev_word = i > 0 && is_ascii_word_char(static_cast<unsigned char>(text[i - 1]));
    size_t start = i;
    if (c == '-' && !prev_word) {
      size_t j = i;
      while (j < n && text[j] == '-' && j - i < 2) ++j;
      if (j < n && is_ascii_word_char(static_cast<unsigned char>(text[j]))) {
        i = j;
      } else {
        ++i;
        continue;
      }
    } else if (!is_ascii_word_char(c) || prev_word) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < n) {
      const auto d = static_cast<unsigned char>(text[end]);
      if (is_ascii_word_char(d)) {
        ++end;
      } else if ((d == '.' || d == '-' || d == '+' || d == '/') && end + 1 < n &&
                 is_ascii_word_char(static_cast<unsigned char>(text[end + 1]))) {
        ++end;
      } else {
        break;
      }
    }
    while (end < n && text[end] == '+') ++end;  // c++, g++
    const std::string_view word = text.substr(start, end - start);
    emit(word);
    // The parts of a word with punctuation, so "all" finds "--all" and "ld" finds "ld.so".
    if (word.find_first_of(".-+/") != std::string_view::npos) {
      size_t p = 0;
      while (p < word.size()) {
        while (p < word.size() && !is_ascii_word_char(static_cast<unsigned char>(word[p]))) ++p;
        size_t q = p;
        while (q < word.size() && is_ascii_word_char(static_cast<unsigned char>(word[q]))) ++q;
        if (q - p >= 2 && q - p < word.size()) emit(word.substr(p, q - p));
        p = q;
      }
    }
    i = end;
  }
}

bool has_ascii_alnum(std::string_view s) {
  for (char c : s) {
    if (is_ascii_word_char(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

// Field `index` (0-based) of MeCab's comma-separated feature string.
std::string_view feature_field(std::string_view feature, int index) {
  size_t start = 0;
  for (int i = 0; i < index; ++i) {
    start = feature.find(',', start);
    if (start == std::string_view::npos) return {};
    ++start;
  }
  const size_t end = feature.find(',', start);
  return feature.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

}  // namespace

std::string normalize_for_search(std::string_view utf8) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfkc_cf = icu::Normalizer2::getNFKCCasefoldInstance(status);
  if (U_FAILURE(status)) throw Error(ErrorCode::kInternal, "ICU: NFKC_Casefold is not available");
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(icu::StringPiece(utf8.data(), static_cast<int32_t>(utf8.size())));
  const icu::UnicodeString normalized = nfkc_cf->normalize(source, status);
  if (U_FAILURE(status)) throw Error(ErrorCode::kInternal, "ICU: normalisation failed");
  // Katakana words are written with and without a final long-vowel mark (サーバ/サーバー,
  // ユーザ/ユーザー, フォルダ/フォルダー): the final ー of a katakana word
  // of three or more letters is dropped, so both spellings give the same terms.
  //
  // Text wrapped at a fixed width (plain-text manuals, PDF lines) breaks Japanese words
  // across lines: a line break (with the next line's indentation) between two wide
  // characters is dropped, so the word is whole again.
  icu::UnicodeString folded;
  const int32_t n = normalized.length();
  int32_t katakana_run = 0;
  auto wide = [](char16_t c) { return c >= 0x2E80; };
  for (int32_t i = 0; i < n; ++i) {
    const char16_t c = normalized.charAt(i);
    if (c == u'\n' && folded.length() > 0 && wide(folded.charAt(folded.length() - 1))) {
      int32_t j = i;
      while (j < n && (normalized.charAt(j) == u'\n' || normalized.charAt(j) == u' ' || normalized.charAt(j) == u'\t')) ++j;
      const bool one_break = normalized.tempSubString(i, j - i).indexOf(u'\n', 1) < 0;
      if (j < n && one_break && wide(normalized.charAt(j))) {
        i = j - 1;
        continue;
      }
    }
    const bool katakana = c >= 0x30A1 && c <= 0x30FA;
    if (c == 0x30FC && katakana_run >= 2) {
      const char16_t next = i + 1 < n ? normalized.charAt(i + 1) : 0;
      const bool word_goes_on = (next >= 0x30A1 && next <= 0x30FA) || next == 0x30FC;
      if (!word_goes_on) {
        katakana_run = 0;
        continue;
      }
    }
    katakana_run = katakana || (c == 0x30FC && katakana_run > 0) ? katakana_run + 1 : 0;
    folded.append(c);
  }
  std::string out;
  folded.toUTF8String(out);
  return out;
}

void for_each_char_gram(std::string_view normalized, const std::function<bool(size_t, size_t)>& emit) {
  const auto* s = reinterpret_cast<const uint8_t*>(normalized.data());
  const auto n = static_cast<int32_t>(normalized.size());
  int32_t run_start = -1;  // byte offset of the run's first character
  int32_t prev = -1;       // byte offset of the previous character in the run
  int32_t run_length = 0;
  int32_t i = 0;
  while (i < n) {
    const int32_t at = i;
    UChar32 c = 0;
    U8_NEXT(s, i, n, c);
    const bool letter = c >= 0x80 && (u_isalpha(c) || u_isdigit(c) || u_hasBinaryProperty(c, UCHAR_DIACRITIC));
    if (!letter) {
      // A run of one character is a term of its own.
      if (run_length == 1 && !emit(static_cast<size_t>(run_start), static_cast<size_t>(at))) return;
      run_start = -1;
      run_length = 0;
      continue;
    }
    if (run_start < 0) {
      run_start = at;
    } else if (!emit(static_cast<size_t>(prev), static_cast<size_t>(i))) {
      return;
    }
    prev = at;
    ++run_length;
  }
  if (run_length == 1) emit(static_cast<size_t>(run_start), static_cast<size_t>(n));
}

std::vector<std::string> char_grams(std::string_view normalized) {
  std::vector<std::string> grams;
  for_each_char_gram(normalized, [&](size_t begin, size_t end) {
    grams.emplace_back(normalized.substr(begin, end - begin));
    return true;
  });
  return grams;
}

struct TermExtractor::Impl {
  mecab_t* mecab = nullptr;
  ~Impl() {
    if (mecab != nullptr) mecab_destroy(mecab);
  }
};

TermExtractor::TermExtractor() : impl_(std::make_unique<Impl>()) {
  impl_->mecab = mecab_new2("");
  if (impl_->mecab == nullptr) {
    throw Error(ErrorCode::kUnavailable,
                tr("MeCab could not start ({0}); install the packages mecab-ipadic-utf8 and libmecab2",
                   "MeCab を起動できません ({0})。パッケージ mecab-ipadic-utf8 と libmecab2 を入れてください",
                   mecab_strerror(nullptr)));
  }
}

TermExtractor::~TermExtractor() = default;

std::vector<TermExtractor::Word> TermExtractor::tagged_words(std::string_view normalized) {
  std::vector<Word> words;
  ascii_words(normalized, [&](std::string_view w) { words.push_back({std::string(w), true}); });
  // Consecutive nouns could also give their compound (タイム + ゾーン → タイムゾーン);
  // measured on ja-manpages it lowered MRR@10 (0.884 → 0.845), so kCompounds is off:
  // the bigrams already match such words.
  constexpr bool kCompounds = false;
  std::string compound;
  int compound_parts = 0;
  auto end_compound = [&] {
    if (kCompounds && compound_parts >= 2) words.push_back({compound, true});
    compound.clear();
    compound_parts = 0;
  };
  const mecab_node_t* node = mecab_sparse_tonode2(impl_->mecab, normalized.data(), normalized.size());
  for (; node != nullptr; node = node->next) {
    if (node->stat == MECAB_BOS_NODE || node->stat == MECAB_EOS_NODE || node->length == 0) continue;
    const std::string_view surface(node->surface, node->length);
    // The ASCII scan has ASCII words whole; punctuation and spaces are no terms.
    if (has_ascii_alnum(surface) || static_cast<unsigned char>(surface[0]) < 0x80) {
      end_compound();
      continue;
    }
    if (node->stat == MECAB_UNK_NODE) {
      words.push_back({std::string(surface), true});
      compound += surface;
      ++compound_parts;
      continue;
    }
    const std::string_view feature(node->feature);
    const std::string_view pos = feature_field(feature, 0);
    const std::string_view detail = feature_field(feature, 1);
    const std::string_view base = feature_field(feature, 6);
    if (pos == "名詞" && detail != "非自立" && detail != "代名詞" && detail != "数") {
      if (detail != "接尾") words.push_back({std::string(surface), true});
      compound += surface;
      ++compound_parts;
      continue;
    }
    end_compound();
    if (pos == "動詞" || pos == "形容詞") {
      if (detail != "自立") continue;
      const std::string_view form = base.empty() || base == "*" ? surface : base;
      if (pos == "動詞" && is_stop_verb(form)) continue;
      words.push_back({std::string(form), false});
    }
  }
  end_compound();
  return words;
}

std::vector<std::string> TermExtractor::words(std::string_view normalized) {
  std::vector<std::string> out;
  for (Word& w : tagged_words(normalized)) out.push_back(std::move(w.text));
  return out;
}

}  // namespace koto::docs
