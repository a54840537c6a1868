// Every user-visible message in koto exists in Japanese and English. The language is
// chosen once from the environment (KOTO_LANG, then LC_ALL, LC_MESSAGES, LANG: a value
// starting with "ja" selects Japanese; anything else English) and can be overridden
// with set_language() (tests do). Thread-safe: the choice is an atomic.
//
// A server answers each request in the language the request asks for: a
// ScopedLanguage overrides the choice for the current thread only, for its lifetime.
//
// Messages are written in pairs where they are raised, so the two versions stay
// together:
//   throw Error(ErrorCode::kNotFound,
//               tr("{0}: no such file", "{0}: ファイルがありません", path));
// Placeholders are fmt's positional ones ({0}, {1}), so a translation may reorder them.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace koto {

enum class Language { kEnglish, kJapanese };

Language language();
void set_language(Language language);
// Reads the environment again (as at start-up); returns the chosen language.
Language detect_language_from_environment();

// The language of an HTTP Accept-Language header ("ja,en-US;q=0.9"): the preferred one
// of Japanese and English by their q-values (ties: the first listed); `fallback` when
// neither is listed or the header is empty.
Language language_from_accept_language(std::string_view header, Language fallback = Language::kEnglish);

// Messages on this thread are in `language` while this object lives (nestable).
class ScopedLanguage {
 public:
  explicit ScopedLanguage(Language language);
  ~ScopedLanguage();
  ScopedLanguage(const ScopedLanguage&) = delete;
  ScopedLanguage& operator=(const ScopedLanguage&) = delete;

 private:
  int previous_;  // -1: no override before
};

// The English or Japanese text, for the current language.
inline std::string_view pick(std::string_view en, std::string_view ja) {
  return language() == Language::kJapanese ? ja : en;
}

template <typename... Args>
std::string tr(std::string_view en, std::string_view ja, Args&&... args) {
  return fmt::format(fmt::runtime(pick(en, ja)), std::forward<Args>(args)...);
}

}  // namespace koto
