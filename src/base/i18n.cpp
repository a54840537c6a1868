#include "koto/i18n.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace koto {
namespace {

Language language_from_environment() {
  for (const char* name : {"KOTO_LANG", "LC_ALL", "LC_MESSAGES", "LANG"}) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') continue;
    return std::strncmp(value, "ja", 2) == 0 ? Language::kJapanese : Language::kEnglish;
  }
  return Language::kEnglish;
}

std::atomic<Language>& current() {
  static std::atomic<Language> language{language_from_environment()};
  return language;
}

}  // namespace

Language language() { return current().load(std::memory_order_relaxed); }

void set_language(Language language) { current().store(language, std::memory_order_relaxed); }

Language detect_language_from_environment() {
  Language detected = language_from_environment();
  set_language(detected);
  return detected;
}

}  // namespace koto
