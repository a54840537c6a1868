#include "server/api_types.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace koto::server {
namespace {

ApiError error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError";
  return ApiError(0, "", "", "", "");
}

TEST(ApiTypes, ChatRequestWithEverythingKotoReads) {
  const json body = json::parse(R"({
    "model": "elyza", "stream": true, "stream_options": {"include_usage": true},
    "messages": [
      {"role": "system", "content": "丁寧に答えてください。"},
      {"role": "developer", "content": "短く。"},
      {"role": "user", "content": [{"type": "text", "text": "日本の"}, {"type": "text", "text": "首都は？"}]},
      {"role": "assistant", "content": "東京です。"},
      {"role": "user", "content": "人口は？"}],
    "max_completion_tokens": 100, "temperature": 0.2, "top_p": 0.9, "seed": -1,
    "presence_penalty": 0.5, "frequency_penalty": -0.5, "stop": "。", "n": 1, "logprobs": false, "tools": []})");
  const ChatCompletionRequest r = parse_chat_completion_request(body, {});
  EXPECT_EQ(r.params.model, "elyza");
  EXPECT_TRUE(r.params.stream);
  EXPECT_TRUE(r.params.include_usage);
  EXPECT_EQ(r.params.max_tokens, 100);
  EXPECT_FLOAT_EQ(r.params.sampling.temperature, 0.2f);
  EXPECT_FLOAT_EQ(r.params.sampling.top_p, 0.9f);
  EXPECT_EQ(r.params.sampling.seed, static_cast<uint64_t>(-1) == kRandomSeed ? 0u : static_cast<uint64_t>(-1));
  EXPECT_FLOAT_EQ(r.params.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.params.sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(r.params.stop, std::vector<std::string>{"。"});
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[0].content, "丁寧に答えてください。\n\n短く。");
  EXPECT_EQ(r.messages[1].content, "日本の首都は？");
  EXPECT_EQ(r.messages[3].content, "人口は？");
}

TEST(ApiTypes, DefaultsWhenFieldsAreMissingOrNull) {
  const ChatCompletionRequest r = parse_chat_completion_request(
      json::parse(R"({"messages": [{"role": "user", "content": "こんにちは"}], "temperature": null})"), {});
  EXPECT_FALSE(r.params.stream);
  EXPECT_EQ(r.params.max_tokens, -1);
  EXPECT_FLOAT_EQ(r.params.sampling.temperature, SamplingOptions{}.temperature);
  EXPECT_EQ(r.params.sampling.seed, kRandomSeed);
}

TEST(ApiTypes, EachMistakeNamesItsParameter) {
  struct Case {
    const char* body;
    const char* param;
    const char* code;
  };
  const Case cases[] = {
      {R"({})", "messages", "missing_required_parameter"},
      {R"({"messages": []})", "messages", "invalid_value"},
      {R"({"messages": [1]})", "messages[0]", "invalid_type"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role", "missing_required_parameter"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content", "invalid_type"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content[0].type", "unsupported_parameter"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}, {"role": "user", "content": "z"}]})", "messages[1].role", "invalid_value"},
      {R"({"messages": [{"role": "system", "content": "y"}]})", "messages", "invalid_value"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", "stream", "invalid_type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", "max_tokens", "invalid_value"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.5})", "max_tokens", "invalid_type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_p": 1.5})", "top_p", "invalid_value"},
      {R"({"messages": [{"role": "user", "content": "x"}], "seed": "7"})", "seed", "invalid_type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": [1]})", "stop", "invalid_type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n": 3})", "n", "unsupported_parameter"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})", "logprobs", "unsupported_parameter"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})", "response_format", "unsupported_parameter"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": 1}})", "stream_options.include_usage", "invalid_type"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    const ApiError e = error_of([&] { parse_chat_completion_request(json::parse(c.body), {}); });
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, c.param);
    EXPECT_EQ(e.code, c.code);
  }
}

TEST(ApiTypes, BodiesThatAreNotJsonObjects) {
  for (const char* body : {"", "{", "[]", "\"text\"", "{\"a\": 1} trailing", "{\"a\": 1e999999}"}) {
    SCOPED_TRACE(body);
    EXPECT_EQ(error_of([&] { parse_body(body); }).code, "invalid_json");
  }
  EXPECT_EQ(error_of([] { parse_body("{\"a\": \"\xC3\x28\"}"); }).code, "invalid_encoding");
  const std::string deep = "{\"a\":" + std::string(40, '[') + std::string(40, ']') + "}";
  EXPECT_EQ(error_of([&] { parse_body(deep); }).code, "invalid_json");
  const std::string nested_ok = "{\"a\":" + std::string(20, '[') + std::string(20, ']') + "}";
  EXPECT_NO_THROW(parse_body(nested_ok));
}

TEST(ApiTypes, CompletionPrompts) {
  EXPECT_EQ(parse_completion_request(json::parse(R"({"prompt": "昔々"})"), {}).prompt, "昔々");
  EXPECT_EQ(parse_completion_request(json::parse(R"({"prompt": ["昔々"]})"), {}).prompt, "昔々");
  EXPECT_EQ(parse_completion_request(json::parse(R"({"prompt": [1, 2, 3]})"), {}).prompt_tokens, (std::vector<TokenId>{1, 2, 3}));
  EXPECT_EQ(error_of([] { parse_completion_request(json::parse(R"({"prompt": ["a", "b"]})"), {}); }).code, "unsupported_parameter");
  EXPECT_EQ(error_of([] { parse_completion_request(json::parse(R"({"prompt": [1, -2]})"), {}); }).param, "prompt[1]");
  EXPECT_EQ(error_of([] { parse_completion_request(json::parse(R"({"prompt": "x", "echo": true})"), {}); }).param, "echo");
  EXPECT_EQ(error_of([] { parse_completion_request(json::parse(R"({})"), {}); }).param, "prompt");
}

TEST(ApiTypes, ResponsesInTheShapeTheSdksParse) {
  RequestStats stats;
  stats.prompt_tokens = 12;
  stats.cached_tokens = 8;
  stats.generated_tokens = 5;
  stats.stop_reason = StopReason::kContextFull;
  const ResponseIdentity who{"chatcmpl-abc", 1700000000, "koto-model"};
  const json full = chat_completion_json(who, "東京です。", stats);
  EXPECT_EQ(full["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(full["usage"]["total_tokens"], 17);
  EXPECT_EQ(full["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
  const json chunk = chat_chunk_json(who, {{"content", "東"}}, std::nullopt, false);
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(chunk.contains("usage"));
  const json usage = usage_chunk_json(who, true, stats);
  EXPECT_TRUE(usage["choices"].is_array() && usage["choices"].empty());
  EXPECT_EQ(sse_event({{"content", "改行\nあり"}}), "data: {\"content\":\"改行\\nあり\"}\n\n");
  EXPECT_EQ(finish_reason(StopReason::kEndOfGeneration), "stop");
  EXPECT_EQ(finish_reason(StopReason::kStopString), "stop");
  EXPECT_EQ(finish_reason(StopReason::kMaxTokens), "length");
  const json error = error_body(bad_request("messages", "だめです", "invalid_value"));
  EXPECT_EQ(error.dump(), R"({"error":{"code":"invalid_value","message":"だめです","param":"messages","type":"invalid_request_error"}})");
}

}  // namespace
}  // namespace koto::server
