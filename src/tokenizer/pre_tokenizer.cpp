#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <array>

#include <unicode/regex.h>
#include <unicode/utext.h>

#include <fmt/format.h>

#include "koto/error.h"
#include "koto/i18n.h"

namespace koto {
namespace {

// \s is spelled \p{White_Space} (and \S \P{White_Space}); see the header.
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\p{White_Space}\p{L}\p{N}]+[\r\n]*)"
    R"(|\p{White_Space}*[\r\n]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\p{White_Space}\p{L}\p{N}]+[\r\n]*)"
    R"(|\p{White_Space}*[\r\n]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+)";
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+)"
    R"(|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+)";

struct Known {
  std::string_view name;       // as in tokenizer.ggml.pre
  std::string_view canonical;  // what name() reports
  std::string_view regex;
};
constexpr Known kKnown[] = {
    {"qwen2", "qwen2", kQwen2Regex},
    {"llama-bpe", "llama-bpe", kLlama3Regex},
    {"llama3", "llama-bpe", kLlama3Regex},
    {"default", "default", kGpt2Regex},
    {"gpt2", "default", kGpt2Regex},
    {"gpt-2", "default", kGpt2Regex},
    {"", "default", kGpt2Regex},
};
// The names a file may give, for messages: every row of kKnown but the empty name (an
// absent tokenizer.ggml.pre), in table order.
constexpr size_t count_named() {
  size_t n = 0;
  for (const Known& k : kKnown) n += k.name.empty() ? 0 : 1;
  return n;
}
constexpr std::array<std::string_view, count_named()> kSupportedNames = [] {
  std::array<std::string_view, count_named()> names{};
  size_t i = 0;
  for (const Known& k : kKnown) {
    if (!k.name.empty()) names[i++] = k.name;
  }
  return names;
}();

}  // namespace

struct PreTokenizer::Pattern {
  std::unique_ptr<icu::RegexPattern> regex;
};

std::span<const std::string_view> PreTokenizer::supported_names() { return kSupportedNames; }

PreTokenizer::PreTokenizer(std::string_view name, const std::string& file_name) {
  const Known* known = nullptr;
  for (const Known& k : kKnown) {
    if (k.name == name) known = &k;
  }
  if (known == nullptr) {
    throw Error(ErrorCode::kUnsupported,
                tr("{0}: pre-tokenizer \"{1}\" (tokenizer.ggml.pre) is not supported; koto knows: {2}",
                   "{0}: プリトークナイザー「{1}」(tokenizer.ggml.pre) には対応していません。対応しているもの: {2}",
                   file_name, name, fmt::join(kSupportedNames, ", ")));
  }
  name_ = std::string(known->canonical);
  UErrorCode status = U_ZERO_ERROR;
  UParseError parse_error{};
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(
      icu::StringPiece(known->regex.data(), static_cast<int32_t>(known->regex.size())));
  std::unique_ptr<icu::RegexPattern> regex(icu::RegexPattern::compile(source, 0, parse_error, status));
  if (U_FAILURE(status) || regex == nullptr) {
    throw Error(ErrorCode::kInternal, tr("pre-tokenizer {0}: ICU rejects the expression ({1}, offset {2})",
                                         "プリトークナイザー {0}: ICU が正規表現を受け付けません ({1}、位置 {2})",
                                         name_, u_errorName(status), parse_error.offset));
  }
  pattern_ = std::make_unique<Pattern>();
  pattern_->regex = std::move(regex);
}

PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  if (text.empty()) return;
  UErrorCode status = U_ZERO_ERROR;
  // Over UTF-8 UText, ICU's native indices are byte offsets into `text`.
  UText* utext = utext_openUTF8(nullptr, text.data(), static_cast<int64_t>(text.size()), &status);
  std::unique_ptr<UText, decltype(&utext_close)> utext_owner(utext, &utext_close);
  std::unique_ptr<icu::RegexMatcher> matcher;
  if (U_SUCCESS(status)) matcher.reset(pattern_->regex->matcher(status));
  if (U_SUCCESS(status)) matcher->reset(utext);
  if (U_FAILURE(status)) {
    throw Error(ErrorCode::kInternal, tr("pre-tokenizer {0}: ICU failed ({1})", "プリトークナイザー {0}: ICU の処理に失敗しました ({1})",
                                         name_, u_errorName(status)));
  }
  const auto size = static_cast<int64_t>(text.size());
  int64_t done = 0;  // bytes of `text` already handed out
  while (matcher->find(status) && U_SUCCESS(status)) {
    const int64_t start = std::clamp<int64_t>(matcher->start64(status), done, size);
    const int64_t end = std::clamp<int64_t>(matcher->end64(status), start, size);
    if (U_FAILURE(status)) break;
    if (start > done) out.push_back(text.substr(static_cast<size_t>(done), static_cast<size_t>(start - done)));
    if (end > start) out.push_back(text.substr(static_cast<size_t>(start), static_cast<size_t>(end - start)));
    done = std::max(done, end);
  }
  if (U_FAILURE(status)) {
    throw Error(ErrorCode::kInternal, tr("pre-tokenizer {0}: ICU failed ({1})", "プリトークナイザー {0}: ICU の処理に失敗しました ({1})",
                                         name_, u_errorName(status)));
  }
  if (done < size) out.push_back(text.substr(static_cast<size_t>(done)));
}

}  // namespace koto
