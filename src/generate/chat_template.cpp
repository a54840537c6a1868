#include "koto/chat_template.h"

#include <algorithm>
#include <cctype>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"

namespace koto {
namespace {

using Kind = PromptSegment::Kind;

struct FamilyName {
  ChatFamily family;
  std::string_view name;
};
constexpr FamilyName kFamilyNames[] = {
    {ChatFamily::kLlama2, "llama2"}, {ChatFamily::kChatML, "chatml"},   {ChatFamily::kLlama3, "llama3"},
    {ChatFamily::kGemma, "gemma"},   {ChatFamily::kMistral, "mistral"}, {ChatFamily::kPlain, "plain"},
};

std::string trim(std::string_view text) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Collects segments, merging adjacent text.
class Builder {
 public:
  Builder& text(std::string_view t) {
    if (t.empty()) return *this;
    if (!segments_.empty() && segments_.back().kind == Kind::kText) {
      segments_.back().text += t;
    } else {
      segments_.push_back({Kind::kText, std::string(t)});
    }
    return *this;
  }
  Builder& special(std::string_view t) {
    segments_.push_back({Kind::kSpecial, std::string(t)});
    return *this;
  }
  Builder& bos(std::string_view spelling) {
    segments_.push_back({Kind::kBos, std::string(spelling)});
    return *this;
  }
  Builder& eos(std::string_view spelling) {
    segments_.push_back({Kind::kEos, std::string(spelling)});
    return *this;
  }
  std::vector<PromptSegment> take() { return std::move(segments_); }

 private:
  std::vector<PromptSegment> segments_;
};

// The conversation split into the optional system text and the turns after it.
struct Conversation {
  std::optional<std::string> system;
  std::span<const ChatMessage> turns;
};

Conversation split_system(std::span<const ChatMessage> messages) {
  Conversation c;
  c.turns = messages;
  if (!messages.empty() && messages.front().role == "system") {
    c.system = messages.front().content;
    c.turns = messages.subspan(1);
  }
  for (const ChatMessage& m : c.turns) {
    if (m.role == "system") {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("a system message may only come first in a conversation",
                     "システムメッセージは会話の最初にしか置けません"));
    }
    if (m.role != "user" && m.role != "assistant") {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("unknown chat role \"{0}\" (known: system, user, assistant)",
                     "不明な役割 \"{0}\" です (使えるもの: system, user, assistant)", m.role));
    }
  }
  return c;
}

void render_llama2(Builder& b, const Conversation& c, bool add_generation_prompt) {
  bool first_user = true;
  for (const ChatMessage& m : c.turns) {
    if (m.role == "user") {
      b.bos("<s>").text("[INST] ");
      if (first_user && c.system && !trim(*c.system).empty()) {
        b.text("<<SYS>>\n").text(trim(*c.system)).text("\n<</SYS>>\n\n");
      }
      b.text(trim(m.content)).text(" [/INST]");
      first_user = false;
    } else {
      b.text(" ").text(trim(m.content)).text(" ").eos("</s>");
    }
  }
  (void)add_generation_prompt;  // the answer follows [/INST] directly
}

void render_chatml(Builder& b, const Conversation& c, bool add_generation_prompt) {
  auto turn = [&b](std::string_view role, std::string_view content) {
    b.special("<|im_start|>").text(role).text("\n").text(content).special("<|im_end|>").text("\n");
  };
  if (c.system) turn("system", *c.system);
  for (const ChatMessage& m : c.turns) turn(m.role, m.content);
  if (add_generation_prompt) b.special("<|im_start|>").text("assistant\n");
}

void render_llama3(Builder& b, const Conversation& c, bool add_generation_prompt) {
  auto header = [&b](std::string_view role) {
    b.special("<|start_header_id|>").text(role).special("<|end_header_id|>").text("\n\n");
  };
  b.bos("<|begin_of_text|>");
  if (c.system) {
    header("system");
    b.text(trim(*c.system)).special("<|eot_id|>");
  }
  for (const ChatMessage& m : c.turns) {
    header(m.role);
    b.text(trim(m.content)).special("<|eot_id|>");
  }
  if (add_generation_prompt) header("assistant");
}

void render_gemma(Builder& b, const Conversation& c, bool add_generation_prompt) {
  b.bos("<bos>");
  bool first_user = true;
  for (const ChatMessage& m : c.turns) {
    b.special("<start_of_turn>").text(m.role == "assistant" ? "model\n" : "user\n");
    if (m.role == "user" && first_user && c.system && !trim(*c.system).empty()) {
      b.text(trim(*c.system)).text("\n\n");
    }
    if (m.role == "user") first_user = false;
    b.text(trim(m.content)).special("<end_of_turn>").text("\n");
  }
  if (add_generation_prompt) b.special("<start_of_turn>").text("model\n");
}

void render_mistral(Builder& b, const Conversation& c, bool add_generation_prompt) {
  b.bos("<s>");
  bool first_user = true;
  for (const ChatMessage& m : c.turns) {
    if (m.role == "user") {
      b.special("[INST]").text(" ");
      if (first_user && c.system && !c.system->empty()) b.text(*c.system).text("\n\n");
      b.text(m.content).text(" ").special("[/INST]");
      first_user = false;
    } else {
      b.text(m.content).eos("</s>");
    }
  }
  (void)add_generation_prompt;
}

void render_plain(Builder& b, const Conversation& c, bool add_generation_prompt) {
  if (c.system && !c.system->empty()) b.text("System: ").text(*c.system).text("\n");
  for (const ChatMessage& m : c.turns) {
    b.text(m.role == "user" ? "User: " : "Assistant: ").text(m.content).text("\n");
  }
  if (add_generation_prompt) b.text("Assistant:");
}

}  // namespace

std::string_view chat_family_name(ChatFamily family) {
  for (const FamilyName& f : kFamilyNames) {
    if (f.family == family) return f.name;
  }
  return "plain";
}

std::optional<ChatFamily> parse_chat_family(std::string_view name) {
  for (const FamilyName& f : kFamilyNames) {
    if (f.name == name) return f.family;
  }
  return std::nullopt;
}

std::string chat_family_names() {
  std::string names;
  for (const FamilyName& f : kFamilyNames) {
    if (!names.empty()) names += ", ";
    names += f.name;
  }
  return names;
}

ChatTemplate::ChatTemplate(ChatFamily family, std::string note) : family_(family), note_(std::move(note)) {}

std::optional<ChatFamily> ChatTemplate::detect(std::string_view jinja) {
  auto has = [jinja](std::string_view marker) { return jinja.find(marker) != std::string_view::npos; };
  if (has("<|im_start|>")) return ChatFamily::kChatML;
  if (has("<|start_header_id|>")) return ChatFamily::kLlama3;
  if (has("<start_of_turn>")) return ChatFamily::kGemma;
  if (has("[INST]")) return has("<<SYS>>") ? ChatFamily::kLlama2 : ChatFamily::kMistral;
  return std::nullopt;
}

ChatTemplate ChatTemplate::for_model(const GgufFile& file, const Tokenizer& tokenizer) {
  const std::string jinja = file.get_string("tokenizer.chat_template");
  if (!jinja.empty()) {
    if (std::optional<ChatFamily> family = detect(jinja)) return ChatTemplate(*family);
    return ChatTemplate(ChatFamily::kPlain,
                        tr("the model's chat template is not one koto knows (llama2, chatml, llama3, gemma, "
                           "mistral); using the plain format \"System: / User: / Assistant:\" — answers may be "
                           "poor; choose one with --template",
                           "モデルのチャットテンプレートは koto が知らない形式です (対応: llama2, chatml, llama3, "
                           "gemma, mistral)。簡易形式 \"System: / User: / Assistant:\" を使います。回答の質が"
                           "下がることがあります。--template で指定できます"));
  }
  // No template in the file (common in older conversions): the vocabulary or the name
  // usually tells.
  auto guessed = [](ChatFamily family, std::string_view from_en, std::string_view from_ja) {
    return ChatTemplate(family, tr("the model has no chat template; using {0} (guessed from {1})",
                                   "モデルにチャットテンプレートがないため {0} を使います ({1}から推測)",
                                   chat_family_name(family), pick(from_en, from_ja)));
  };
  if (tokenizer.find_piece("<|im_start|>")) return guessed(ChatFamily::kChatML, "the vocabulary", "語彙");
  if (tokenizer.find_piece("<|start_header_id|>")) return guessed(ChatFamily::kLlama3, "the vocabulary", "語彙");
  if (tokenizer.find_piece("<start_of_turn>")) return guessed(ChatFamily::kGemma, "the vocabulary", "語彙");
  const std::string name = lower(file.get_string("general.name"));
  const bool llama2_chat = name.find("elyza") != std::string::npos ||
                           ((name.find("llama-2") != std::string::npos || name.find("llama2") != std::string::npos) &&
                            (name.find("chat") != std::string::npos || name.find("instruct") != std::string::npos));
  if (llama2_chat) return guessed(ChatFamily::kLlama2, "the model name", "モデル名");
  return ChatTemplate(ChatFamily::kPlain,
                      tr("the model has no chat template; using the plain format \"System: / User: / "
                         "Assistant:\" — choose one with --template, or use --raw",
                         "モデルにチャットテンプレートがありません。簡易形式 \"System: / User: / Assistant:\" "
                         "を使います。--template で指定するか、--raw を使ってください"));
}

std::vector<PromptSegment> ChatTemplate::render(std::span<const ChatMessage> messages,
                                                bool add_generation_prompt) const {
  const Conversation conversation = split_system(messages);
  Builder b;
  switch (family_) {
    case ChatFamily::kLlama2: render_llama2(b, conversation, add_generation_prompt); break;
    case ChatFamily::kChatML: render_chatml(b, conversation, add_generation_prompt); break;
    case ChatFamily::kLlama3: render_llama3(b, conversation, add_generation_prompt); break;
    case ChatFamily::kGemma: render_gemma(b, conversation, add_generation_prompt); break;
    case ChatFamily::kMistral: render_mistral(b, conversation, add_generation_prompt); break;
    case ChatFamily::kPlain: render_plain(b, conversation, add_generation_prompt); break;
  }
  return b.take();
}

std::vector<std::string> ChatTemplate::stop_strings() const {
  switch (family_) {
    case ChatFamily::kPlain: return {"\nUser:"};
    case ChatFamily::kLlama2:
    case ChatFamily::kMistral: return {"[INST]"};
    default: return {};
  }
}

std::string render_text(std::span<const PromptSegment> segments) {
  std::string out;
  for (const PromptSegment& s : segments) out += s.text;
  return out;
}

std::vector<TokenId> tokenize_prompt(const Tokenizer& tokenizer, std::span<const PromptSegment> segments) {
  std::vector<TokenId> ids;
  if ((segments.empty() || segments.front().kind != Kind::kBos) && tokenizer.add_bos_by_default() &&
      tokenizer.bos()) {
    ids.push_back(*tokenizer.bos());
  }
  std::string run;  // text waiting to be tokenized in one piece
  auto flush = [&] {
    if (run.empty()) return;
    const std::vector<TokenId> part = tokenizer.encode(run, /*add_bos=*/false, /*parse_special=*/false);
    ids.insert(ids.end(), part.begin(), part.end());
    run.clear();
  };
  for (const PromptSegment& s : segments) {
    switch (s.kind) {
      case Kind::kText: run += s.text; break;
      case Kind::kSpecial:
        if (std::optional<TokenId> id = tokenizer.find_special(s.text)) {
          flush();
          ids.push_back(*id);
        } else {
          run += s.text;  // e.g. "[INST]" in vocabularies where it is ordinary text
        }
        break;
      case Kind::kBos:
        flush();
        if (tokenizer.bos()) ids.push_back(*tokenizer.bos());
        break;
      case Kind::kEos:
        flush();
        if (tokenizer.eos()) ids.push_back(*tokenizer.eos());
        break;
    }
  }
  flush();
  return ids;
}

ChatPrompt build_chat_prompt(const ChatTemplate& chat, const Tokenizer& tokenizer, std::string_view system,
                             std::string_view user) {
  while (!user.empty() && (user.back() == '\n' || user.back() == '\r')) user.remove_suffix(1);
  std::vector<ChatMessage> messages;
  if (!system.empty()) messages.push_back({"system", std::string(system)});
  messages.push_back({"user", std::string(user)});
  ChatPrompt prompt;
  prompt.segments = chat.render(messages);
  prompt.ids = tokenize_prompt(tokenizer, prompt.segments);
  prompt.stop_strings = chat.stop_strings();
  return prompt;
}

}  // namespace koto
