// Every wire type of koto's HTTP API in one place: the OpenAI-compatible requests as
// koto reads them (with every check a client could fail, each naming the field), and
// the responses, stream chunks and errors exactly in the shape the official SDKs parse.
// Nothing here does I/O; http_server.cpp moves bytes, this file gives them meaning.
//
// Request checks raise ApiError (status, OpenAI error type and code, the parameter at
// fault, a message in the current language). Unknown fields are ignored, as most
// OpenAI-compatible servers do, except those that ask for something koto cannot do
// (n > 1, tools, logprobs, echo...), which get a 400 that says so.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "koto/chat_template.h"
#include "koto/sampler.h"
#include "koto/scheduler.h"

namespace koto::server {

using nlohmann::json;

// An error in the OpenAI shape: {"error": {"message", "type", "param", "code"}}.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, std::string code, std::string param, const std::string& message)
      : std::runtime_error(message), status(status), type(std::move(type)), code(std::move(code)), param(std::move(param)) {}
  int status;
  std::string type;   // "invalid_request_error", "authentication_error", "server_error"...
  std::string code;   // "" → null
  std::string param;  // "" → null
};

// 400 invalid_request_error about one parameter.
ApiError bad_request(std::string param, const std::string& message, std::string code = {});

// The error body for any status.
json error_body(const ApiError& error);

// A request body as JSON: malformed text, a body that is not an object, or nesting
// deeper than kMaxJsonDepth gives a 400 with the parser's position.
inline constexpr int kMaxJsonDepth = 32;
json parse_body(std::string_view body);

struct ApiLimits {
  int32_t max_tokens = 4096;       // the most a request may ask for (max_tokens)
  size_t max_stop_strings = 4;     // as OpenAI
  size_t max_stop_bytes = 256;     // each
  size_t max_messages = 1024;
};

// Fields shared by /v1/chat/completions and /v1/completions.
struct GenerationParams {
  std::string model;                 // "" when the client sent none
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
  int32_t max_tokens = -1;           // -1: until the end of generation or a full context
  SamplingOptions sampling;          // koto's defaults for fields not sent
  std::vector<std::string> stop;
  bool ignore_eos = false;           // koto's (and llama.cpp's) extension: generate exactly max_tokens
};

// koto's extension of chat completions: "koto_documents": true, or {"k": 5,
// "min_coverage": 0.3}, answers the last user message from the document index only
// (koto/grounded_answer.h), with the passages in the response.
struct DocumentsOption {
  int k = 5;
  double min_coverage = -1;  // < 0: DocIndex's default
};

struct ChatCompletionRequest {
  GenerationParams params;
  std::vector<ChatMessage> messages;  // a leading system (or developer) message first, as ChatTemplate wants it
  std::optional<DocumentsOption> documents;
};

struct TextCompletionRequest {
  GenerationParams params;
  std::string prompt;                 // text, or
  std::vector<TokenId> prompt_tokens; // ids, when the client sent an array of integers
};

ChatCompletionRequest parse_chat_completion_request(const json& body, const ApiLimits& limits);
TextCompletionRequest parse_completion_request(const json& body, const ApiLimits& limits);

struct TokenizeRequest {
  std::string content;
  bool add_special = false;   // BOS when the model adds one
  bool parse_special = false; // "<|im_start|>" as one token
  bool with_pieces = false;
};
TokenizeRequest parse_tokenize_request(const json& body);

// POST /v1/embeddings: `input` is a string, an array of strings, an array of token ids
// or an array of such arrays (each becomes one embedding). `encoding_format` "float"
// (default) or "base64" (little-endian float32, what the official SDKs ask for).
struct EmbeddingsRequest {
  std::vector<std::string> texts;                 // either texts...
  std::vector<std::vector<TokenId>> token_lists;  // ...or token ids
  bool base64 = false;
};
EmbeddingsRequest parse_embeddings_request(const json& body);

// POST /v1/search: {"query": "...", "k": 5}.
struct SearchRequest {
  std::string query;
  int k = 5;
};
SearchRequest parse_search_request(const json& body);

// The base64 of float32 values, little-endian (OpenAI's encoding_format "base64").
std::string floats_base64(std::span<const float> values);
std::vector<TokenId> parse_detokenize_request(const json& body);

// ---- Responses ----

// OpenAI's finish_reason for a stop reason: "stop" (end of generation, stop string),
// "length" (max_tokens, full context).
std::string_view finish_reason(StopReason reason);

// The usage object, with prompt_tokens_details.cached_tokens.
json usage_json(const RequestStats& stats);
// koto's own cost fields ("timings"): prompt, cache, first token and speed figures.
json timings_json(const RequestStats& stats);

struct ResponseIdentity {
  std::string id;       // "chatcmpl-…" or "cmpl-…"
  int64_t created = 0;  // Unix seconds
  std::string model;
};

json chat_completion_json(const ResponseIdentity& who, const std::string& text, const RequestStats& stats);
// A stream chunk. `delta` is {"role": "assistant", "content": ""} first, then {"content": ...},
// then {} with the finish_reason.
json chat_chunk_json(const ResponseIdentity& who, const json& delta, const std::optional<std::string_view>& finish,
                     bool with_null_usage);
json completion_json(const ResponseIdentity& who, const std::string& text, const RequestStats& stats);
json completion_chunk_json(const ResponseIdentity& who, const std::string& text,
                           const std::optional<std::string_view>& finish, bool with_null_usage);
// The last chunk of a stream with include_usage: choices [] and the usage.
json usage_chunk_json(const ResponseIdentity& who, bool chat, const RequestStats& stats);

// One SSE event: "data: " + compact JSON + "\n\n" (JSON escapes keep it on one line).
std::string sse_event(const json& payload);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace koto::server
