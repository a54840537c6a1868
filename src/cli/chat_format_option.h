// --template, shared by the commands that talk through a chat template (run, serve).
#pragma once

#include <optional>
#include <string>

#include "cli/usage_error.h"
#include "koto/chat_template.h"
#include "koto/i18n.h"

namespace koto::cli {

// The family --template names; nullopt when it was not given (""). Throws UsageError
// for an unknown name, listing the known ones.
inline std::optional<ChatFamily> chat_format_option(const std::string& name) {
  if (name.empty()) return std::nullopt;
  std::optional<ChatFamily> family = parse_chat_family(name);
  if (!family) {
    throw UsageError(tr("--template {0}: unknown (known: {1})", "--template {0}: 不明な形式です (使えるもの: {1})", name,
                        chat_family_names()));
  }
  return family;
}

}  // namespace koto::cli
