// The scheduler on real models: concurrent requests against one-by-one generation,
// streaming of Japanese through byte tokens, stop conditions, reuse of prefixes (slots,
// memory cache, disk cache after a "restart"), cancellation, the queue's limit.
#include "koto/scheduler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include "base/utf8.h"
#include "chain_model.h"
#include "koto/chat_template.h"
#include "koto/generate.h"
#include "test_support.h"

namespace koto {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::unique_ptr<Model> stories() { return Model::load(fixture_path("models/stories260K.gguf")); }

// Generates for seconds (until its 4096-token context is full), so a test can act on a
// request that is still running.
const std::string& slow_chain_path() {
  static const std::string path = testing::write_slow_chain_model(::testing::TempDir() + "koto_scheduler_slow_chain.gguf");
  return path;
}

std::string chain_model_path(const std::string& name, const testing::ChainModelOptions& options = {}) {
  return testing::write_chain_model(::testing::TempDir() + "koto_scheduler_" + name + ".gguf", options);
}

// A folder of its own for one test, empty.
std::string fresh_folder(const std::string& name) {
  const fs::path path = fs::path(::testing::TempDir()) / ("koto_scheduler_" + name);
  fs::remove_all(path);
  fs::create_directories(path);
  return path.string();
}

CompletionRequest greedy_request(std::vector<TokenId> prompt, int32_t max_tokens) {
  CompletionRequest request;
  request.prompt = std::move(prompt);
  request.max_tokens = max_tokens;
  request.sampling.temperature = 0.0f;
  request.leading_space = LeadingSpace::kKeep;
  return request;
}

// What generate() gives for the same request in a session of its own: the reference.
std::string generate_alone(const Model& model, const CompletionRequest& request) {
  auto session = model.new_session();
  GenerateOptions options;
  options.max_tokens = request.max_tokens;
  options.sampling = request.sampling;
  options.stop_strings = request.stop_strings;
  options.leading_space = request.leading_space;
  options.lookup.max_draft = request.lookup_max_draft;
  return generate(*session, model.tokenizer(), request.prompt, options).text;
}

struct Outcome {
  std::string text;
  std::vector<std::string> chunks;
  RequestEvent last;
};

Outcome collect(RequestHandle& handle) {
  Outcome out;
  out.last = handle.wait([&out](std::string_view chunk) {
    out.chunks.emplace_back(chunk);
    out.text += chunk;
  });
  return out;
}

// Prompts that start the same story in different ways (stories260K writes English).
std::vector<std::vector<TokenId>> story_prompts(const Model& model) {
  std::vector<std::vector<TokenId>> prompts;
  for (const char* start : {"Once upon a time", "Lily liked", "The dog", "One day, Tom", "Sam had a big", "The sun"}) {
    prompts.push_back(model.tokenizer().encode(start, true, false));
  }
  return prompts;
}

TEST(Scheduler, ConcurrentRequestsGiveWhatEachGivesAlone) {
  auto model = stories();
  const auto prompts = story_prompts(*model);
  SchedulerOptions options;
  options.n_slots = 4;
  options.batch_tokens = 16;  // prompts are sliced too
  Scheduler scheduler(*model, options);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (const auto& prompt : prompts) handles.push_back(scheduler.submit(greedy_request(prompt, 60)));
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(i);
    const Outcome out = collect(*handles[i]);
    ASSERT_EQ(out.last.kind, RequestEvent::Kind::kFinished);
    EXPECT_EQ(out.text, generate_alone(*model, greedy_request(prompts[i], 60)));
    EXPECT_FALSE(out.text.empty());
    EXPECT_EQ(out.last.stats.generated_tokens, 60);
    EXPECT_EQ(out.last.stats.stop_reason, StopReason::kMaxTokens);
    EXPECT_EQ(out.last.stats.prompt_tokens, static_cast<int32_t>(prompts[i].size()));
    EXPECT_EQ(out.last.stats.output_bytes, out.text.size());
  }
  // Six requests on four slots: some steps carried several sequences.
  EXPECT_LT(scheduler.status().steps, 6u * 60u);
  EXPECT_TRUE(scheduler.idle());
}

TEST(Scheduler, SeededSamplingIsTheSameConcurrentlyAndAlone) {
  auto model = stories();
  const auto prompts = story_prompts(*model);
  SchedulerOptions options;
  options.n_slots = 3;
  Scheduler scheduler(*model, options);
  std::vector<CompletionRequest> requests;
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (size_t i = 0; i < 3; ++i) {
    CompletionRequest request = greedy_request(prompts[i], 40);
    request.sampling.temperature = 0.9f;
    request.sampling.seed = 1234 + i;
    requests.push_back(request);
    handles.push_back(scheduler.submit(request));
  }
  for (size_t i = 0; i < 3; ++i) {
    const Outcome out = collect(*handles[i]);
    EXPECT_EQ(out.text, generate_alone(*model, requests[i])) << i;
    EXPECT_EQ(out.last.stats.seed, 1234 + i);
  }
}

// Lookup decoding in concurrent slots: greedy text is what it is without guesses (and
// what generate() gives), guesses were kept, and seeded sampling with guesses is what
// generate() gives with guesses.
TEST(Scheduler, LookupDecodingKeepsTextWithConcurrentSlots) {
  auto model = stories();
  const Tokenizer& tokenizer = model->tokenizer();
  std::vector<std::vector<TokenId>> prompts;
  for (const char* text : {"The cat sat on the mat. The cat sat on the mat. The cat",
                           "Once upon a time there was a little girl named Lily. Once upon a time there was a",
                           "Tom had a red ball and a blue kite"}) {
    prompts.push_back(tokenizer.encode(text, true, false));
  }
  SchedulerOptions options;
  options.n_slots = 3;
  Scheduler scheduler(*model, options);
  for (float temperature : {0.0f, 0.8f}) {
    std::vector<CompletionRequest> requests;
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (size_t i = 0; i < prompts.size(); ++i) {
      CompletionRequest request = greedy_request(prompts[i], 80);
      request.sampling.temperature = temperature;
      request.sampling.seed = 99 + i;
      request.lookup_max_draft = 6;
      requests.push_back(request);
      handles.push_back(scheduler.submit(request));
    }
    int32_t kept = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const Outcome out = collect(*handles[i]);
      EXPECT_EQ(out.text, generate_alone(*model, requests[i])) << i;
      if (temperature == 0.0f) {
        CompletionRequest plain = requests[i];
        plain.lookup_max_draft = 0;
        EXPECT_EQ(out.text, generate_alone(*model, plain)) << i;
      }
      EXPECT_EQ(out.last.stats.generated_tokens, 80);
      EXPECT_LE(out.last.stats.lookup_accepted, out.last.stats.lookup_drafted);
      kept += out.last.stats.lookup_accepted;
    }
    EXPECT_GT(kept, 10) << temperature;
  }
}

TEST(Scheduler, JapaneseFromByteTokensArrivesInWholeCharacters) {
  auto model = Model::load(chain_model_path("utf8"));
  Scheduler scheduler(*model, {});
  const std::vector<TokenId> prompt = model->tokenizer().encode("日本語で答えてください。", true, false);
  // 31 tokens: ten characters and one byte of the eleventh.
  const Outcome out = collect(*scheduler.submit(greedy_request(prompt, 31)));
  ASSERT_EQ(out.last.kind, RequestEvent::Kind::kFinished);
  EXPECT_EQ(out.last.stats.generated_tokens, 31);
  // The stray byte at the end is replaced, never split or dropped silently.
  EXPECT_EQ(out.text, testing::chain_text_chars(10) + "\xEF\xBF\xBD");
  EXPECT_EQ(out.last.stats.output_chars, 11u);
  ASSERT_GE(out.chunks.size(), 10u);
  for (const std::string& chunk : out.chunks) {
    EXPECT_TRUE(utf8::is_valid(chunk)) << chunk;
    EXPECT_EQ(utf8::count_chars(chunk), 1u) << "one character per chunk: " << chunk;
  }
}

TEST(Scheduler, StopsAtEndOfGenerationStopStringsAndMaxTokens) {
  auto once = Model::load(chain_model_path("once", {.end_after_one_cycle = true}));
  Scheduler scheduler(*once, {});
  const std::vector<TokenId> prompt = once->tokenizer().encode("こんにちは", true, false);

  Outcome out = collect(*scheduler.submit(greedy_request(prompt, 100)));
  EXPECT_EQ(out.text, testing::kChainText);
  EXPECT_EQ(out.last.stats.stop_reason, StopReason::kEndOfGeneration);
  EXPECT_EQ(out.last.stats.generated_tokens, 19);  // 18 bytes and </s>

  CompletionRequest stop = greedy_request(prompt, 100);
  stop.stop_strings = {"生語"};
  out = collect(*scheduler.submit(stop));
  EXPECT_EQ(out.text, "の大日");
  EXPECT_EQ(out.last.stats.stop_reason, StopReason::kStopString);
  EXPECT_EQ(out.last.stop_string, "生語");

  out = collect(*scheduler.submit(greedy_request(prompt, 7)));
  EXPECT_EQ(out.text, "の大\xEF\xBF\xBD");
  EXPECT_EQ(out.last.stats.stop_reason, StopReason::kMaxTokens);

  // ignore_eos: </s> is never chosen; the best other token (here <unk>, id 0) comes instead.
  CompletionRequest fixed_length = greedy_request(prompt, 25);
  fixed_length.ignore_eos = true;
  out = collect(*scheduler.submit(fixed_length));
  EXPECT_EQ(out.last.stats.generated_tokens, 25);
  EXPECT_EQ(out.last.stats.stop_reason, StopReason::kMaxTokens);
  EXPECT_TRUE(out.text.starts_with(testing::kChainText)) << out.text;
}

TEST(Scheduler, ContextFullEndsTheAnswer) {
  auto model = Model::load(chain_model_path("small_ctx", {.context_length = 32}));
  Scheduler scheduler(*model, {});
  const std::vector<TokenId> prompt(20, testing::chain_byte_token('a'));
  const Outcome out = collect(*scheduler.submit(greedy_request(prompt, -1)));
  EXPECT_EQ(out.last.stats.stop_reason, StopReason::kContextFull);
  EXPECT_EQ(out.last.stats.generated_tokens, 13);  // positions 20..31 evaluated, one more chosen
  EXPECT_EQ(scheduler.n_ctx(), 32);
}

TEST(Scheduler, RefusesWhatCannotWork) {
  auto model = Model::load(chain_model_path("refuse", {.context_length = 32}));
  Scheduler scheduler(*model, {});
  auto code_of = [&](CompletionRequest request) {
    try {
      scheduler.submit(std::move(request));
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code_of(greedy_request({}, 5)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of(greedy_request({1, 999}, 5)), ErrorCode::kInvalidArgument);
  CompletionRequest bad_sampling = greedy_request({1, 5}, 5);
  bad_sampling.sampling.top_p = 2.0f;
  EXPECT_EQ(code_of(bad_sampling), ErrorCode::kInvalidArgument);
  try {
    scheduler.submit(greedy_request(std::vector<TokenId>(32, 5), 5));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("32 tokens but the context holds 32"), std::string::npos) << e.what();
  }
  // In Japanese for a request that asks for it.
  CompletionRequest japanese = greedy_request(std::vector<TokenId>(40, 5), 5);
  japanese.language = Language::kJapanese;
  try {
    scheduler.submit(japanese);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("プロンプトが 40 トークンあり"), std::string::npos) << e.what();
  }
}

TEST(Scheduler, OptionsAreChecked) {
  auto model = stories();
  SchedulerOptions options;
  options.n_slots = 0;
  EXPECT_THROW(Scheduler(*model, options), Error);
  options.n_slots = 8;
  options.batch_tokens = 4;
  EXPECT_THROW(Scheduler(*model, options), Error);
}

// The queue's limit counts requests beyond the free slots.
TEST(Scheduler, FullQueueRefusesWithUnavailable) {
  auto model = Model::load(slow_chain_path());
  SchedulerOptions options;
  options.n_slots = 1;
  options.max_queue = 1;
  Scheduler scheduler(*model, options);
  const std::vector<TokenId> prompt{1, 5, 6};
  auto running = scheduler.submit(greedy_request(prompt, -1));  // runs until the context is full
  while (scheduler.status().busy_slots == 0) std::this_thread::sleep_for(1ms);
  auto waiting = scheduler.submit(greedy_request(prompt, 5));
  EXPECT_EQ(scheduler.status().queued, 1);
  try {
    scheduler.submit(greedy_request(prompt, 5));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("queue of 1 is full"), std::string::npos) << e.what();
  }
  // A cancelled queued request ends without text and frees its place.
  waiting->cancel();
  const Outcome cancelled = collect(*waiting);
  EXPECT_EQ(cancelled.last.stats.stop_reason, StopReason::kCancelled);
  EXPECT_TRUE(cancelled.text.empty());
  EXPECT_EQ(scheduler.status().queued, 0);
  auto again = scheduler.submit(greedy_request(prompt, 5));
  running->cancel();
  EXPECT_EQ(collect(*running).last.stats.stop_reason, StopReason::kCancelled);
  EXPECT_EQ(collect(*again).text, "の\xEF\xBF\xBD");
}

// Cancelling while the prompt is still being processed frees the slot before the prompt
// is done: the request ends having generated nothing.
TEST(Scheduler, CancelDuringThePromptFreesTheSlot) {
  auto model = stories();
  SchedulerOptions options;
  options.n_slots = 1;
  options.batch_tokens = 1;  // one prompt token per step: 400 steps of prompt
  options.cache.memory_bytes = 0;
  Scheduler scheduler(*model, options);
  std::vector<TokenId> prompt(400, 403);
  prompt[0] = 1;
  auto handle = scheduler.submit(greedy_request(prompt, 10));
  while (scheduler.status().steps < 3) std::this_thread::sleep_for(1ms);
  handle->cancel();
  const Outcome out = collect(*handle);
  EXPECT_EQ(out.last.stats.stop_reason, StopReason::kCancelled);
  EXPECT_EQ(out.last.stats.generated_tokens, 0);
  EXPECT_LT(scheduler.status().steps, 400u);
  EXPECT_EQ(scheduler.status().busy_slots, 0);
  // The slot serves the next request at once.
  const std::vector<TokenId> short_prompt = model->tokenizer().encode("Once upon a time", true, false);
  EXPECT_EQ(collect(*scheduler.submit(greedy_request(short_prompt, 20))).text,
            generate_alone(*model, greedy_request(short_prompt, 20)));
}

// The second turn of a conversation in the same slot evaluates only what is new.
TEST(Scheduler, TheSlotKeepsItsTokensForTheNextRequest) {
  auto model = stories();
  SchedulerOptions options;
  options.n_slots = 2;
  options.cache.memory_bytes = 0;  // the slot alone
  Scheduler scheduler(*model, options);
  const std::vector<TokenId> first = model->tokenizer().encode("Once upon a time, there was a little girl", true, false);
  const Outcome turn1 = collect(*scheduler.submit(greedy_request(first, 30)));
  EXPECT_EQ(turn1.last.stats.cached_tokens, 0);
  std::vector<TokenId> second = model->tokenizer().encode("Once upon a time, there was a little girl" + turn1.text + " She", true, false);
  const Outcome turn2 = collect(*scheduler.submit(greedy_request(second, 20)));
  EXPECT_GE(turn2.last.stats.cached_tokens, static_cast<int32_t>(first.size()));
  EXPECT_EQ(turn2.text, generate_alone(*model, greedy_request(second, 20)));
}

// Another slot gets a prefix from the memory cache; another partition does not.
TEST(Scheduler, PrefixCacheServesOtherSlotsWithinAPartition) {
  auto model = stories();
  SchedulerOptions options;
  options.n_slots = 2;
  options.cache.block_tokens = 8;
  Scheduler scheduler(*model, options);
  const std::string shared = "Once upon a time, there was a little girl named Lily. She loved to play outside";
  const std::vector<TokenId> prompt_a = model->tokenizer().encode(shared + " with her dog.", true, false);
  const std::vector<TokenId> prompt_b = model->tokenizer().encode(shared + " in the park.", true, false);
  const std::vector<TokenId> prompt_c = model->tokenizer().encode(shared + " in the rain.", true, false);
  size_t common = 0;
  while (prompt_a[common] == prompt_b[common]) ++common;

  ASSERT_EQ(collect(*scheduler.submit(greedy_request(prompt_a, 5))).last.stats.cached_tokens, 0);
  // Slot 1 holds prompt_a now; keep it busy with a long answer, so prompt_b goes to slot 2.
  CompletionRequest long_answer = greedy_request(prompt_a, 400);
  auto busy = scheduler.submit(long_answer);
  while (scheduler.status().busy_slots == 0) std::this_thread::sleep_for(1ms);
  const CompletionRequest request_b = greedy_request(prompt_b, 30);
  const Outcome b = collect(*scheduler.submit(request_b));
  EXPECT_EQ(b.last.stats.cached_tokens, static_cast<int32_t>(common));  // to the token, not to a block
  EXPECT_EQ(b.text, generate_alone(*model, request_b));
  EXPECT_GT(scheduler.status().cache.hit_tokens, 0u);

  CompletionRequest other_user = greedy_request(prompt_c, 30);
  other_user.cache_partition = "another key";
  const Outcome c = collect(*scheduler.submit(other_user));
  EXPECT_EQ(c.last.stats.cached_tokens, 0);
  EXPECT_EQ(c.text, generate_alone(*model, other_user));
  busy->cancel();
  collect(*busy);
}

// A new scheduler with the same --cache-dir finds the prefix on disk; a damaged file is
// ignored with a warning and the answer stays right.
TEST(Scheduler, DiskCacheSurvivesARestartAndDamageIsIgnored) {
  const std::string folder = fresh_folder("disk");
  auto model = stories();
  const std::string document =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, she saw a "
      "big tree with a red ball in it.";
  const std::vector<TokenId> first = model->tokenizer().encode(document + " Lily", true, false);
  const std::vector<TokenId> second = model->tokenizer().encode(document + " The ball", true, false);
  SchedulerOptions options;
  options.cache.disk_dir = folder;
  options.cache.block_tokens = 8;
  std::vector<std::string> warnings;
  options.warn = [&warnings](const std::string& w) { warnings.push_back(w); };
  {
    Scheduler scheduler(*model, options);
    collect(*scheduler.submit(greedy_request(first, 10)));
  }  // the destructor finishes the writes
  const CompletionRequest request = greedy_request(second, 25);
  const std::string expected = generate_alone(*model, request);
  size_t common = 0;
  while (first[common] == second[common]) ++common;
  {
    Scheduler restarted(*model, options);
    EXPECT_GT(restarted.status().cache.disk_blocks, 0u);
    const Outcome out = collect(*restarted.submit(request));
    EXPECT_EQ(out.last.stats.cached_tokens, static_cast<int32_t>(common));
    EXPECT_EQ(out.text, expected);
    EXPECT_GT(restarted.status().cache.disk_loads, 0u);
  }
  EXPECT_TRUE(warnings.empty());

  // Flip one byte of every block file's KV data: checksums fail, nothing is trusted.
  size_t damaged = 0;
  for (const auto& model_folder : fs::directory_iterator(folder)) {
    for (const auto& file : fs::directory_iterator(model_folder.path())) {
      std::fstream f(file.path(), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-1, std::ios::end);
      char c = 0;
      f.seekg(-1, std::ios::end);
      f.get(c);
      f.seekp(-1, std::ios::end);
      f.put(static_cast<char>(c ^ 0x40));
      ++damaged;
    }
  }
  ASSERT_GT(damaged, 0u);
  {
    Scheduler after_damage(*model, options);
    const Outcome out = collect(*after_damage.submit(request));
    EXPECT_EQ(out.text, expected);
    EXPECT_EQ(out.last.stats.cached_tokens, 0);
    EXPECT_GT(after_damage.status().cache.rejected_files, 0u);
  }
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings[0].find("checksum mismatch"), std::string::npos) << warnings[0];
}

TEST(Scheduler, CancelAllEndsEverythingAndStopAcceptingRefuses) {
  auto model = Model::load(slow_chain_path());
  SchedulerOptions options;
  options.n_slots = 2;
  Scheduler scheduler(*model, options);
  const std::vector<TokenId> prompt{1, 5};
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 4; ++i) handles.push_back(scheduler.submit(greedy_request(prompt, -1)));
  scheduler.stop_accepting();
  try {
    scheduler.submit(greedy_request(prompt, 1));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
  scheduler.cancel_all();
  for (auto& handle : handles) EXPECT_EQ(collect(*handle).last.stats.stop_reason, StopReason::kCancelled);
  EXPECT_TRUE(scheduler.idle());
}

}  // namespace
}  // namespace koto
