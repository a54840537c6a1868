// A multi-turn conversation with a model, on the serving core: every turn is one
// request to a Scheduler, whose slot keeps the conversation's KV state, so a turn
// evaluates only what is new (the last answer's closing markup and the new message);
// RequestStats::cached_tokens says how much was reused. When the conversation no longer
// fits in the context with room for an answer, its oldest turns are dropped (the system
// prompt is kept) and the turn reports how many messages went.
//
// `koto chat` and any other front end use this; none keeps a second copy of the logic.
// Thread-safety: one thread uses a Conversation; `cancel` may be set from any thread
// (a signal handler included).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "koto/chat_template.h"
#include "koto/scheduler.h"

namespace koto {

struct ConversationOptions {
  SamplingOptions sampling;
  int32_t max_tokens = -1;   // per answer; < 0: until the model ends it (at most the room left)
  int32_t answer_room = 512; // tokens kept free for the answer when old turns must go
};

struct ConversationTurn {
  std::string answer;        // as streamed (also when cancelled: what came before)
  RequestStats stats;
  int dropped_messages = 0;  // oldest messages dropped before this turn to make room
  bool cancelled = false;
};

class Conversation {
 public:
  // `scheduler` (and its model) must outlive the Conversation.
  Conversation(Scheduler& scheduler, const Model& model, ChatTemplate chat, std::string system_prompt);

  const std::string& system_prompt() const { return system_; }
  void set_system_prompt(std::string system) { system_ = std::move(system); }
  // The turns so far: user, assistant, user, assistant...
  const std::vector<ChatMessage>& messages() const { return messages_; }
  // Forgets the turns; the system prompt stays.
  void clear() { messages_.clear(); }

  // Answers `user`, passing the answer's text to `on_text` as it comes. Throws
  // koto::Error kInvalidArgument when the message alone does not fit in the context
  // (the message gives the numbers). With `cancel` set, the answer stops at the next
  // token; the turn keeps what was said.
  ConversationTurn send(std::string_view user, const ConversationOptions& options,
                        const std::function<void(std::string_view)>& on_text, const std::atomic<bool>* cancel = nullptr);

  // The conversation as JSON ({"system": ..., "messages": [{"role", "content"}...]}), and
  // back. load_json throws kCorruptFile (naming what is wrong) and changes nothing then.
  std::string to_json() const;
  void load_json(std::string_view json);

 private:
  std::vector<TokenId> render(const std::vector<ChatMessage>& turns) const;

  Scheduler& scheduler_;
  const Model& model_;
  ChatTemplate chat_;
  std::string system_;
  std::vector<ChatMessage> messages_;
};

}  // namespace koto
