// Pre-tokenizers of byte-level BPE: the regular expression that cuts text into pieces
// ("words") before BPE runs inside each piece, chosen by tokenizer.ggml.pre.
//
//   "qwen2"                 Qwen2/Qwen3: letters with one leading non-letter, single digits
//   "llama-bpe" ("llama3")  Llama 3: as qwen2 but digits in groups of up to three
//   "default", "gpt2", ""   GPT-2: contractions, " ?letters", " ?digits", " ?other"
//
// The expressions are run by ICU's regex engine on the UTF-8 text. `\s` is Unicode's
// White_Space property (ICU's own \s differs: it leaves out U+000B and U+0085).
// Immutable after construction; split() may be called from many threads at once.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace koto {

class PreTokenizer {
 public:
  // Throws koto::Error kUnsupported naming `name` (and `file_name`) and listing the
  // supported names when `name` is not one of them.
  PreTokenizer(std::string_view name, const std::string& file_name);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Appends the pieces of `text` to `out`, in order. Together they are exactly `text`
  // (bytes the expression does not match, such as invalid UTF-8, form pieces of their own).
  void split(std::string_view text, std::vector<std::string_view>& out) const;

  // The canonical name ("qwen2", "llama-bpe" or "default").
  const std::string& name() const { return name_; }

  // Names accepted by the constructor, for messages and --help.
  static std::span<const std::string_view> supported_names();

 private:
  struct Pattern;
  std::string name_;
  std::unique_ptr<Pattern> pattern_;
};

}  // namespace koto
