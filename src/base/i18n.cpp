#include "koto/i18n.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

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

// -1: no override on this thread; else a Language.
thread_local int t_override = -1;

}  // namespace

Language language() {
  if (t_override >= 0) return static_cast<Language>(t_override);
  return current().load(std::memory_order_relaxed);
}

ScopedLanguage::ScopedLanguage(Language language) : previous_(t_override) { t_override = static_cast<int>(language); }
ScopedLanguage::~ScopedLanguage() { t_override = previous_; }

Language language_from_accept_language(std::string_view header, Language fallback) {
  // Entries "tag;q=0.8" separated by commas; q defaults to 1.
  double best_q = 0.0;
  Language best = fallback;
  size_t start = 0;
  while (start <= header.size()) {
    size_t end = header.find(',', start);
    if (end == std::string_view::npos) end = header.size();
    std::string_view entry = header.substr(start, end - start);
    start = end + 1;
    const size_t semicolon = entry.find(';');
    std::string_view tag = entry.substr(0, semicolon);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    double q = 1.0;
    if (semicolon != std::string_view::npos) {
      const std::string_view params = entry.substr(semicolon + 1);
      const size_t q_at = params.find("q=");
      if (q_at != std::string_view::npos) {
        const std::string value(params.substr(q_at + 2, 5));
        char* parsed_end = nullptr;
        q = std::strtod(value.c_str(), &parsed_end);
        if (parsed_end == value.c_str() || !(q >= 0.0 && q <= 1.0)) q = 0.0;
      }
    }
    auto is_language = [&tag](std::string_view code) {
      if (tag.size() < 2) return false;
      const bool prefix = (tag[0] | 0x20) == code[0] && (tag[1] | 0x20) == code[1];
      return prefix && (tag.size() == 2 || tag[2] == '-' || tag[2] == '_');
    };
    const bool japanese = is_language("ja");
    if (!japanese && !is_language("en")) continue;
    if (q > best_q) {
      best_q = q;
      best = japanese ? Language::kJapanese : Language::kEnglish;
    }
  }
  return best;
}

void set_language(Language language) { current().store(language, std::memory_order_relaxed); }

Language detect_language_from_environment() {
  Language detected = language_from_environment();
  set_language(detected);
  return detected;
}

}  // namespace koto
