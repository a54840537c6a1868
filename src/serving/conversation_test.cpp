#include "koto/conversation.h"

#include <gtest/gtest.h>

#include "chain_model.h"
#include "koto/error.h"

namespace koto {
namespace {

std::string chain_path(const std::string& name, const testing::ChainModelOptions& options = {}) {
  return testing::write_chain_model(::testing::TempDir() + "koto_conversation_" + name + ".gguf", options);
}

SchedulerOptions one_slot() {
  SchedulerOptions options;
  options.n_slots = 1;
  return options;
}

TEST(Conversation, EachTurnReusesTheConversationSoFar) {
  const auto model = Model::load(chain_path("reuse"));
  Scheduler scheduler(*model, one_slot());
  Conversation chat(scheduler, *model, ChatTemplate::for_model(model->file(), model->tokenizer()), "丁寧に答えてください。");
  ConversationOptions options;
  options.max_tokens = 6;  // two characters of three bytes
  std::string streamed;
  const ConversationTurn first = chat.send("こんにちは", options, [&](std::string_view t) { streamed += t; });
  EXPECT_EQ(first.answer, testing::chain_text_chars(2));
  EXPECT_EQ(streamed, first.answer);
  EXPECT_EQ(first.stats.cached_tokens, 0);
  EXPECT_EQ(first.dropped_messages, 0);

  const ConversationTurn second = chat.send("次の質問です", options, {});
  // The whole first prompt is reused, and the answer up to where the template closes it.
  EXPECT_GE(second.stats.cached_tokens, first.stats.prompt_tokens);
  EXPECT_LT(second.stats.cached_tokens, second.stats.prompt_tokens);
  ASSERT_EQ(chat.messages().size(), 4u);
  EXPECT_EQ(chat.messages()[0].content, "こんにちは");
  EXPECT_EQ(chat.messages()[1].role, "assistant");
  EXPECT_EQ(chat.messages()[1].content, first.answer);
  EXPECT_EQ(chat.messages()[2].content, "次の質問です");
}

TEST(Conversation, OldTurnsGoWhenTheContextIsFullTheSystemPromptStays) {
  const auto model = Model::load(chain_path("full", {.context_length = 512}));
  Scheduler scheduler(*model, one_slot());
  Conversation chat(scheduler, *model, ChatTemplate::for_model(model->file(), model->tokenizer()), "短く答えて。");
  ConversationOptions options;
  options.max_tokens = 3;
  options.answer_room = 64;
  // Byte tokens: each message is ~100 tokens, so the fifth no longer fits beside the rest.
  const std::string message = "今日の会議の議事録を三行でまとめてください。よろしくお願いします。";
  int dropped = 0;
  for (int i = 0; i < 6; ++i) dropped += chat.send(message, options, {}).dropped_messages;
  EXPECT_GT(dropped, 0);
  EXPECT_EQ(dropped % 2, 0);  // whole exchanges go
  EXPECT_EQ(chat.messages().front().role, "user");
  EXPECT_EQ(chat.messages().size() + static_cast<size_t>(dropped), 12u);
  EXPECT_EQ(chat.system_prompt(), "短く答えて。");

  std::string huge;
  for (int i = 0; i < 20; ++i) huge += message;
  EXPECT_THROW(chat.send(huge, options, {}), Error);
}

TEST(Conversation, SavedAndLoadedAsJsonAndCancelled) {
  const auto model = Model::load(chain_path("save"));
  Scheduler scheduler(*model, one_slot());
  Conversation chat(scheduler, *model, ChatTemplate::for_model(model->file(), model->tokenizer()), "システム");
  ConversationOptions options;
  options.max_tokens = 3;
  chat.send("一つ目", options, {});
  const std::string saved = chat.to_json();

  Conversation other(scheduler, *model, ChatTemplate::for_model(model->file(), model->tokenizer()), "");
  other.load_json(saved);
  EXPECT_EQ(other.system_prompt(), "システム");
  ASSERT_EQ(other.messages().size(), 2u);
  EXPECT_EQ(other.messages()[0].content, "一つ目");
  EXPECT_EQ(other.messages()[1].content, testing::chain_text_chars(1));
  try {
    other.load_json("{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}");
    FAIL() << "loaded a bad role";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  }
  EXPECT_EQ(other.messages().size(), 2u);  // unchanged
  EXPECT_THROW(other.load_json("これは JSON ではない"), Error);

  const std::atomic<bool> stop{true};
  options.max_tokens = -1;
  const ConversationTurn cancelled = other.send("二つ目", options, {}, &stop);
  EXPECT_TRUE(cancelled.cancelled);
  EXPECT_EQ(other.messages().size(), 4u);
}

}  // namespace
}  // namespace koto
