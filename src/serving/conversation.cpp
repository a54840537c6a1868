#include "koto/conversation.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "koto/error.h"
#include "koto/i18n.h"

namespace koto {

Conversation::Conversation(Scheduler& scheduler, const Model& model, ChatTemplate chat, std::string system_prompt)
    : scheduler_(scheduler), model_(model), chat_(std::move(chat)), system_(std::move(system_prompt)) {}

std::vector<TokenId> Conversation::render(const std::vector<ChatMessage>& turns) const {
  std::vector<ChatMessage> all;
  if (!system_.empty()) all.push_back({"system", system_});
  all.insert(all.end(), turns.begin(), turns.end());
  return tokenize_prompt(model_.tokenizer(), chat_.render(all));
}

ConversationTurn Conversation::send(std::string_view user, const ConversationOptions& options,
                                    const std::function<void(std::string_view)>& on_text, const std::atomic<bool>* cancel) {
  ConversationTurn turn;
  std::vector<ChatMessage> turns = messages_;
  turns.push_back({"user", std::string(user)});
  const int32_t n_ctx = scheduler_.n_ctx();
  const int32_t room = std::max<int32_t>(1, std::min(options.answer_room, n_ctx / 2));
  std::vector<TokenId> prompt = render(turns);
  // The oldest exchange goes first (a user message and its answer), until it fits.
  while (static_cast<int32_t>(prompt.size()) > n_ctx - room && turns.size() > 1) {
    const size_t drop = turns.size() >= 3 && turns[1].role == "assistant" ? 2 : 1;
    turns.erase(turns.begin(), turns.begin() + static_cast<std::ptrdiff_t>(drop));
    turn.dropped_messages += static_cast<int>(drop);
    prompt = render(turns);
  }
  if (static_cast<int32_t>(prompt.size()) > n_ctx - room) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("the message is {0} tokens with the system prompt, but the context holds {1} with {2} kept for the "
                   "answer; shorten it or start with a larger -c",
                   "メッセージはシステムプロンプトと合わせて {0} トークンですが、コンテキストは {1} トークンで、そのうち {2} "
                   "トークンは回答用です。短くするか、-c を大きくして起動してください",
                   prompt.size(), n_ctx, room));
  }
  CompletionRequest request;
  request.prompt = std::move(prompt);
  request.sampling = options.sampling;
  request.stop_strings = chat_.stop_strings();
  request.leading_space = LeadingSpace::kStrip;
  request.language = language();
  const int32_t left = n_ctx - static_cast<int32_t>(request.prompt.size());
  request.max_tokens = options.max_tokens < 0 ? left : std::min(options.max_tokens, left);
  const std::shared_ptr<RequestHandle> handle = scheduler_.submit(std::move(request));
  for (;;) {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) handle->cancel();
    std::optional<RequestEvent> event = handle->next(std::chrono::milliseconds(50));
    if (!event) continue;
    if (event->kind == RequestEvent::Kind::kText) {
      turn.answer += event->text;
      if (on_text) on_text(event->text);
      continue;
    }
    if (event->kind == RequestEvent::Kind::kFailed) throw Error(event->error_code, event->error_message);
    turn.stats = event->stats;
    turn.cancelled = event->stats.stop_reason == StopReason::kCancelled;
    break;
  }
  turns.push_back({"assistant", turn.answer});
  messages_ = std::move(turns);
  return turn;
}

std::string Conversation::to_json() const {
  nlohmann::json messages = nlohmann::json::array();
  for (const ChatMessage& m : messages_) messages.push_back({{"role", m.role}, {"content", m.content}});
  return nlohmann::json{{"system", system_}, {"messages", messages}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Conversation::load_json(std::string_view text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kCorruptFile, tr("not a saved conversation: {0}", "保存した会話ではありません: {0}", e.what()));
  }
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array()) {
    throw Error(ErrorCode::kCorruptFile, tr("not a saved conversation: no \"messages\" array",
                                            "保存した会話ではありません (\"messages\" の配列がありません)"));
  }
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < j["messages"].size(); ++i) {
    const nlohmann::json& m = j["messages"][i];
    const bool ok = m.is_object() && m.contains("role") && m["role"].is_string() && m.contains("content") &&
                    m["content"].is_string() && (m["role"] == "user" || m["role"] == "assistant");
    if (!ok) {
      throw Error(ErrorCode::kCorruptFile, tr("saved conversation: message {0} needs a role (user or assistant) and a content",
                                              "保存した会話: {0} 番目のメッセージに role (user か assistant) と content が必要です", i));
    }
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  system_ = j.contains("system") && j["system"].is_string() ? j["system"].get<std::string>() : system_;
  messages_ = std::move(messages);
}

}  // namespace koto
