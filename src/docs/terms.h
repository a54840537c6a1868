// The search terms of Japanese (and mixed) text, the same for documents and queries:
// - normalize_for_search: NFKC (full-width ASCII and half-width katakana become one form)
//   and lower case;
// - words: MeCab's content words (nouns, verbs and adjectives in their dictionary form,
//   unknown words) plus ASCII words kept whole as commands and options are written
//   (`printf`, `--all`, `-l`, `getpwent`, `ld.so`), with the parts of the ASCII words
//   that carry punctuation (`all` of `--all`, `ld` and `so` of `ld.so`);
// - char_grams: character bigrams of the runs of non-ASCII letters (a run of one
//   character gives that character), which match paraphrases that share no whole word.
//
// Thread-safety: normalize_for_search and char_grams are pure. A TermExtractor owns a
// MeCab tagger and must be used by one thread at a time (make one per thread).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace koto::docs {

std::string normalize_for_search(std::string_view utf8);

// Bigrams of `normalized` (from normalize_for_search), in text order, duplicates kept.
std::vector<std::string> char_grams(std::string_view normalized);

// The same grams as byte ranges [begin, end) of `normalized`, for SQLite's tokenizer.
// `emit` returns false to stop.
void for_each_char_gram(std::string_view normalized, const std::function<bool(size_t begin, size_t end)>& emit);

class TermExtractor {
 public:
  // Loads MeCab with the system dictionary (mecab-ipadic-utf8). Throws koto::Error
  // (kUnavailable) naming the package to install when MeCab or its dictionary is missing.
  TermExtractor();
  ~TermExtractor();
  TermExtractor(const TermExtractor&) = delete;
  TermExtractor& operator=(const TermExtractor&) = delete;

  // Words of `normalized`, in text order, duplicates kept (term frequency counts).
  std::vector<std::string> words(std::string_view normalized);

  // Like words(), with each word's part of speech class: true for nouns, unknown words
  // and ASCII words (the words that say what a question is about).
  struct Word {
    std::string text;
    bool content = false;
  };
  std::vector<Word> tagged_words(std::string_view normalized);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace koto::docs
