// Every user-visible message in koto exists in Japanese and English. The language is
// chosen once from the environment (KOTO_LANG, then LC_ALL, LC_MESSAGES, LANG: a value
// starting with "ja" selects Japanese; anything else English) and can be overridden
// with set_language() (tests do). Thread-safe: the choice is an atomic.
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

// The English or Japanese text, for the current language.
inline std::string_view pick(std::string_view en, std::string_view ja) {
  return language() == Language::kJapanese ? ja : en;
}

template <typename... Args>
std::string tr(std::string_view en, std::string_view ja, Args&&... args) {
  return fmt::format(fmt::runtime(pick(en, ja)), std::forward<Args>(args)...);
}

}  // namespace koto
