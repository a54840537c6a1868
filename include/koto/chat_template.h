// Chat templates: turning a conversation into the prompt a model was trained on.
//
// koto does not run the Jinja code in a GGUF's tokenizer.chat_template; it recognises
// the family of the template and renders that family's format itself:
//   kLlama2   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ...
//             (Llama-2 chat, ELYZA; BOS before every user turn, EOS after every answer)
//   kChatML   <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
//             (Qwen, TinySwallow)
//   kLlama3   <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> ...
//   kGemma    <bos><start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n
//             (no system role: the system text opens the first user turn, then "\n\n")
//   kMistral  <s>[INST] {system}\n\n{user} [/INST]{answer}</s>[INST] ...
//   kPlain    "System: {system}\nUser: {user}\nAssistant:" — used when the model has no
//             template koto recognises; the caller should show warning().
// Contents are trimmed where the family's official template trims them (Llama-2,
// Llama-3, Gemma).
//
// Rendering produces segments, not one string, so that user text can never inject
// special tokens: text segments (user content and plain markup alike) are tokenized
// with parse_special = false, and the template's own special tokens are separate
// segments looked up as single vocabulary pieces. Adjacent text segments are
// tokenized together, so markup and content merge as they would in one string.
//
// ChatTemplate is immutable and thread-safe.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

class GgufFile;

// A sensible default for Japanese assistants (ELYZA's instruction style).
inline constexpr std::string_view kDefaultSystemPrompt =
    "あなたは誠実で優秀な日本人のアシスタントです。特に指示が無い場合は、常に日本語で回答してください。";

enum class ChatFamily { kLlama2, kChatML, kLlama3, kGemma, kMistral, kPlain };

// "llama2", "chatml", "llama3", "gemma", "mistral", "plain".
std::string_view chat_family_name(ChatFamily family);
// The inverse of chat_family_name; nullopt for an unknown name.
std::optional<ChatFamily> parse_chat_family(std::string_view name);
// Every family's name, comma-separated: "llama2, chatml, llama3, gemma, mistral, plain".
std::string chat_family_names();

struct ChatMessage {
  std::string role;     // "system" (only as the first message), "user" or "assistant"
  std::string content;
};

struct PromptSegment {
  enum class Kind {
    kText,     // tokenized with parse_special = false
    kSpecial,  // one special token, by its text ("<|im_start|>"): the control or
               // user-defined token of that text (Tokenizer::find_special); plain text
               // when the vocabulary has none, even if an ordinary piece reads so
    kBos,      // the tokenizer's BOS id (text is the family's spelling, for display)
    kEos,      // the tokenizer's EOS id
  };
  Kind kind;
  std::string text;

  bool operator==(const PromptSegment&) const = default;
};

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatFamily family, std::string note = {});

  // The family of a Jinja chat template by its markers; nullopt when none matches.
  static std::optional<ChatFamily> detect(std::string_view jinja);

  // The template for a model: from tokenizer.chat_template when present and
  // recognised; when absent, guessed from the vocabulary (<|im_start|> → ChatML, ...)
  // or the model name (ELYZA → Llama-2), with a note; otherwise kPlain with a warning.
  static ChatTemplate for_model(const GgufFile& file, const Tokenizer& tokenizer);

  ChatFamily family() const { return family_; }
  // A message for the user (in their language) when the template was guessed or fell
  // back to kPlain; "" when the model's own template was recognised.
  const std::string& note() const { return note_; }

  // Renders the conversation; with add_generation_prompt the opening of the
  // assistant's turn follows. Throws koto::Error(kInvalidArgument) for an unknown
  // role or a system message that is not the first.
  std::vector<PromptSegment> render(std::span<const ChatMessage> messages,
                                    bool add_generation_prompt = true) const;

  // Text that ends an answer in this format besides the end-of-generation tokens
  // (kPlain: "\nUser:"; Llama-2 and Mistral: "[INST]").
  std::vector<std::string> stop_strings() const;

 private:
  ChatFamily family_;
  std::string note_;
};

// The segments as one string (special tokens and BOS/EOS by their text), for tests
// and for showing the prompt.
std::string render_text(std::span<const PromptSegment> segments);

// Token ids for the segments. BOS is added first when the segments do not start with
// kBos and the tokenizer adds BOS by default.
std::vector<TokenId> tokenize_prompt(const Tokenizer& tokenizer, std::span<const PromptSegment> segments);

// A one-question conversation, ready to generate from.
struct ChatPrompt {
  std::vector<PromptSegment> segments;    // for showing the prompt (render_text)
  std::vector<TokenId> ids;               // tokenize_prompt(segments)
  std::vector<std::string> stop_strings;  // the template's (ChatTemplate::stop_strings)
};

// The conversation [system (omitted when empty), user] in `chat`'s format, with the
// opening of the assistant's turn. Trailing line breaks of `user` are dropped (a
// prompt read from a file or stdin usually ends with one). Generate the answer with
// GenerateOptions::leading_space = LeadingSpace::kStrip.
ChatPrompt build_chat_prompt(const ChatTemplate& chat, const Tokenizer& tokenizer, std::string_view system,
                             std::string_view user);

}  // namespace koto
