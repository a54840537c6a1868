// The HTTP server in-process, over real HTTP on loopback: every route, every error
// class, SSE framing, UTF-8 integrity of every chunk, API keys, CORS, cancellation when
// the client goes away, concurrent requests against one-by-one answers, prefix-cache
// hits, shutdown. (The official `openai` client, restarts and load run against the
// `koto serve` executable: tests/*.mjs.)
#include "server/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "koto/doc_index.h"
#include "koto/embedding.h"
#include "koto/timeline.h"

#include "base/utf8.h"
#include "chain_model.h"
#include "koto/generate.h"
#include "test_support.h"

namespace koto::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A model, a scheduler and the HTTP server on a free loopback port.
class Served {
 public:
  Served(const std::string& model_path, ServerOptions options = {}, SchedulerOptions scheduler_options = {},
         ApiKeys keys = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    model_ = Model::load(model_path);
    scheduler_ = std::make_unique<Scheduler>(*model_, scheduler_options);
    server_ = std::make_unique<HttpServer>(options, std::move(keys), [this](const std::string& line) {
      const std::lock_guard<std::mutex> lock(log_mutex_);
      log_.push_back(line);
    });
    port_ = server_->bind();
    server_->start();
    server_->set_model(*model_, *scheduler_, ChatTemplate::for_model(model_->file(), model_->tokenizer()),
                       options.alias.empty() ? "test-model" : options.alias);
  }
  ~Served() {
    scheduler_->cancel_all();
    server_->stop();
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }
  int port() const { return port_; }
  const Model& model() const { return *model_; }
  Scheduler& scheduler() { return *scheduler_; }
  HttpServer& server() { return *server_; }
  std::vector<std::string> log() {
    const std::lock_guard<std::mutex> lock(log_mutex_);
    return log_;
  }

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::mutex log_mutex_;
  std::vector<std::string> log_;
};

std::string chain_path(const std::string& name, const testing::ChainModelOptions& options = {}) {
  return testing::write_chain_model(::testing::TempDir() + "koto_http_" + name + ".gguf", options);
}

std::string stories_path() { return fixture_path("models/stories260K.gguf"); }

// Generates for seconds (until its 4096-token context is full): requests on it are still
// running when the test acts.
const std::string& slow_chain_path() {
  static const std::string path = testing::write_slow_chain_model(::testing::TempDir() + "koto_http_slow_chain.gguf");
  return path;
}

httplib::Result post(httplib::Client& c, const std::string& path, const json& body, httplib::Headers headers = {}) {
  return c.Post(path.c_str(), headers, body.dump(), "application/json");
}

json body_of(const httplib::Result& r) {
  EXPECT_TRUE(r) << "no response";
  return r ? json::parse(r->body) : json();
}

// The error object of a response, checking the status and the OpenAI shape.
json expect_error(const httplib::Result& r, int status, const std::string& code) {
  EXPECT_TRUE(r);
  if (!r) return {};
  EXPECT_EQ(r->status, status) << r->body;
  const json body = json::parse(r->body);
  EXPECT_TRUE(body.contains("error")) << r->body;
  const json& error = body["error"];
  EXPECT_TRUE(error["message"].is_string());
  EXPECT_TRUE(error["type"].is_string());
  EXPECT_TRUE(error.contains("param"));
  EXPECT_TRUE(error.contains("code"));
  if (!code.empty()) {
    EXPECT_EQ(error["code"], code) << r->body;
  }
  return error;
}

// The SSE events of a body; checks the framing of each ("data: ...\n\n").
std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << "unterminated event at byte " << at;
    if (end == std::string::npos) break;
    const std::string event = body.substr(at, end - at);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    EXPECT_EQ(event.find('\n'), std::string::npos) << "one line per event: " << event;
    events.push_back(event.substr(6));
    at = end + 2;
  }
  return events;
}

json chat_body(const std::string& user, int max_tokens, bool stream = false) {
  json body = {{"model", "test-model"}, {"messages", {{{"role", "user"}, {"content", user}}}}, {"temperature", 0}};
  if (max_tokens > 0) body["max_tokens"] = max_tokens;
  if (stream) body["stream"] = true;
  return body;
}

// ---- A connection the test controls byte by byte ----

class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~RawConnection() { close(); }
  bool connected() const { return connected_; }
  void send(const std::string& bytes) { (void)!::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  void send_post(const std::string& path, const std::string& body, const std::string& extra_headers = "") {
    send("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body);
  }
  // Reads until `marker` appears (or 5 s pass); returns everything read.
  std::string read_until(const std::string& marker) {
    char buffer[4096];
    while (received_.find(marker) == std::string::npos) {
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      received_.append(buffer, static_cast<size_t>(n));
    }
    return received_;
  }
  std::string read_all() { return read_until("\x01never\x02"); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string received_;
};

template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return predicate();
}

// ---- Routes ----

TEST(HttpServer, HealthSays503WhileLoadingThen200) {
  ServerOptions options;
  options.port = 0;
  HttpServer server(options, ApiKeys(), {});
  const int port = server.bind();
  server.start();
  httplib::Client c("127.0.0.1", port);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(json::parse(health->body)["status"], "loading");
  expect_error(post(c, "/v1/chat/completions", chat_body("こんにちは", 4)), 503, "model_loading");
  EXPECT_EQ(post(c, "/v1/chat/completions", chat_body("こんにちは", 4))->get_header_value("Retry-After"), "5");

  auto model = Model::load(chain_path("loading"));
  Scheduler scheduler(*model, {});
  server.set_model(*model, scheduler, ChatTemplate::for_model(model->file(), model->tokenizer()), "chain");
  health = c.Get("/health");
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");
  server.stop();
}

TEST(HttpServer, StopRightAfterStartReturns) {
  // httplib ignores a stop() that comes before its listening thread is marked running;
  // stop() must still end that thread (this hung `koto bench --serve --prefix 0`).
  for (int i = 0; i < 20; ++i) {
    ServerOptions options;
    options.port = 0;
    HttpServer server(options, ApiKeys(), {});
    const int port = server.bind();
    EXPECT_GT(port, 0);
    server.start();
    server.stop();
  }
}

TEST(HttpServer, ChatCompletionInTheOpenAIShape) {
  Served s(chain_path("chat_once", {.end_after_one_cycle = true}));
  httplib::Client c = s.client();
  const json r = body_of(post(c, "/v1/chat/completions", chat_body("日本語で自己紹介してください。", 0)));
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_TRUE(r["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_EQ(r["model"], "test-model");
  EXPECT_TRUE(r["created"].is_number_integer());
  ASSERT_EQ(r["choices"].size(), 1u);
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "の大日生語長");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  // The prompt as the template renders it, counted by the tokenizer.
  const std::vector<TokenId> prompt = tokenize_prompt(
      s.model().tokenizer(), ChatTemplate::for_model(s.model().file(), s.model().tokenizer())
                                 .render(std::vector<ChatMessage>{{"user", "日本語で自己紹介してください。"}}));
  EXPECT_EQ(r["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(r["usage"]["completion_tokens"], 19);  // 18 byte tokens and </s>
  EXPECT_EQ(r["usage"]["total_tokens"], prompt.size() + 19);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(r["timings"]["characters"], 6);
  EXPECT_EQ(r["timings"]["stop_reason"], "eos");
  EXPECT_GT(r["timings"]["time_to_first_token_ms"].get<double>(), 0.0);
  EXPECT_LE(r["timings"]["lookup_accepted_tokens"].get<int>(), r["timings"]["lookup_drafted_tokens"].get<int>());

  const json limited = body_of(post(c, "/v1/chat/completions", chat_body("もう一度", 6)));
  EXPECT_EQ(limited["choices"][0]["message"]["content"], "の大");
  EXPECT_EQ(limited["choices"][0]["finish_reason"], "length");
}

// Every chunk of a stream: complete UTF-8 characters only, the role first, exactly one
// finish_reason, the usage chunk with choices [] last, then [DONE].
TEST(HttpServer, StreamingChunksAreWholeCharactersAndFramedForStrictClients) {
  Served s(chain_path("chat_stream"));
  httplib::Client c = s.client();
  json request = chat_body("日本の首都はどこですか？", 30, true);
  request["stream_options"] = {{"include_usage", true}};
  // SDK clients accept compression; a compressed stream would be held back in blocks.
  auto r = post(c, "/v1/chat/completions", request, {{"Accept-Encoding", "gzip, deflate, br"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_FALSE(r->has_header("Content-Encoding"));
  const std::vector<std::string> events = sse_events(r->body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  int finishes = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_TRUE(chunk.contains("usage")) << "include_usage: every chunk carries usage (null until the last)";
    if (i + 2 == events.size()) {  // the usage chunk
      EXPECT_TRUE(chunk["choices"].empty());
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 30);
      continue;
    }
    EXPECT_TRUE(chunk["usage"].is_null());
    const json& choice = chunk["choices"][0];
    if (i == 0) {
      EXPECT_EQ(choice["delta"]["role"], "assistant");
    }
    if (!choice["finish_reason"].is_null()) {
      ++finishes;
      EXPECT_EQ(choice["finish_reason"], "length");
      EXPECT_TRUE(chunk.contains("timings"));
    }
    if (choice["delta"].contains("content")) {
      const std::string piece = choice["delta"]["content"];
      EXPECT_TRUE(utf8::is_valid(piece));
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "U+FFFD in the middle of the stream";
      if (i > 0) {
        EXPECT_EQ(utf8::count_chars(piece), 1u) << piece;
      }
      text += piece;
    }
  }
  EXPECT_EQ(finishes, 1);
  EXPECT_EQ(text, testing::chain_text_chars(10));  // 30 byte tokens: exactly ten characters
}

TEST(HttpServer, CompletionsContinueARawPromptLikeGenerate) {
  Served s(stories_path());
  httplib::Client c = s.client();
  const json request = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}};
  const json r = body_of(post(c, "/v1/completions", request));
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_TRUE(r["id"].get<std::string>().starts_with("cmpl-"));
  auto session = s.model().new_session();
  GenerateOptions options;
  options.max_tokens = 40;
  options.sampling.temperature = 0;
  const std::vector<TokenId> prompt = s.model().tokenizer().encode("Once upon a time", true, true);
  const std::string expected = generate(*session, s.model().tokenizer(), prompt, options).text;
  EXPECT_EQ(r["choices"][0]["text"], expected);
  EXPECT_EQ(r["usage"]["prompt_tokens"], prompt.size());

  json streamed = request;
  streamed["stream"] = true;
  const std::vector<std::string> events = sse_events(post(c, "/v1/completions", streamed)->body);
  std::string text;
  for (const std::string& event : events) {
    if (event == "[DONE]") continue;
    text += json::parse(event)["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, expected);
  EXPECT_EQ(events.back(), "[DONE]");

  // Token ids work as a prompt too.
  json ids = {{"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}};
  EXPECT_EQ(body_of(post(c, "/v1/completions", ids))["choices"][0]["text"], expected);
}

TEST(HttpServer, ModelsTokenizeDetokenizeAndMetrics) {
  Served s(chain_path("routes"));
  httplib::Client c = s.client();
  const json models = body_of(c.Get("/v1/models"));
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "test-model");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["meta"]["n_ctx"], 512);

  const json tokens = body_of(post(c, "/tokenize", {{"content", "日本"}, {"add_special", true}}));
  const std::vector<TokenId> ids = tokens["tokens"].get<std::vector<TokenId>>();
  EXPECT_EQ(ids, s.model().tokenizer().encode("日本", true, false));
  EXPECT_EQ(body_of(post(c, "/detokenize", {{"tokens", ids}}))["content"], "日本");
  EXPECT_EQ(ids.size(), 8u);  // <s>, ▁ and the six bytes of 日本
  const json pieces = body_of(post(c, "/tokenize", {{"content", "日"}, {"with_pieces", true}}));
  const json& last = pieces["tokens"].back();
  EXPECT_EQ(last["id"], testing::chain_byte_token(0xA5));  // 日 = E6 97 A5
  EXPECT_EQ(last["piece"], json::array({0xA5}));           // a lone byte is no text: given as bytes
  expect_error(post(c, "/detokenize", {{"tokens", {1, 99999}}}), 400, "invalid_value");

  post(c, "/v1/chat/completions", chat_body("こんにちは", 3));
  // A request is counted once its response is sent, which may be just after the client
  // has read it.
  std::optional<httplib::Response> metrics;
  EXPECT_TRUE(eventually([&] {
    auto r = c.Get("/metrics");
    if (r) metrics = *r;
    return metrics && metrics->body.find("route=\"/v1/chat/completions\",status=\"200\"") != std::string::npos;
  }));
  ASSERT_TRUE(metrics);
  EXPECT_TRUE(metrics->get_header_value("Content-Type").starts_with("text/plain; version=0.0.4"));
  EXPECT_NE(metrics->body.find("koto_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1\n"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("koto_generated_tokens_total 3\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("# TYPE koto_lookup_accepted_tokens_total counter\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("koto_slots 4\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("koto_time_to_first_token_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("process_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(metrics->body.find("koto_process_resident_anonymous_bytes "), std::string::npos);
}

// ---- Errors: the class, the status, the parameter, the language ----

TEST(HttpServer, ErrorsHaveTheRightStatusCodeAndParameter) {
  ServerOptions options;
  options.max_body_bytes = 64 * 1024;
  Served s(chain_path("errors", {.context_length = 64}), options);
  httplib::Client c = s.client();
  auto raw = [&](const std::string& body) { return c.Post("/v1/chat/completions", body, "application/json"); };
  expect_error(raw("{\"messages\": [}"), 400, "invalid_json");
  expect_error(raw("[1, 2]"), 400, "invalid_json");
  expect_error(raw(std::string(100, '[') + std::string(100, ']')), 400, "invalid_json");
  expect_error(raw("{\"messages\": \"\xff\xfe\"}"), 400, "invalid_encoding");
  EXPECT_EQ(expect_error(post(c, "/v1/chat/completions", json::object()), 400, "missing_required_parameter")["param"], "messages");
  EXPECT_EQ(expect_error(post(c, "/v1/chat/completions", {{"messages", "こんにちは"}}), 400, "invalid_type")["param"], "messages");
  json bad_role = chat_body("x", 4);
  bad_role["messages"][0]["role"] = "wizard";
  EXPECT_EQ(expect_error(post(c, "/v1/chat/completions", bad_role), 400, "invalid_value")["param"], "messages[0].role");
  json bad_temperature = chat_body("x", 4);
  bad_temperature["temperature"] = "hot";
  EXPECT_EQ(expect_error(post(c, "/v1/chat/completions", bad_temperature), 400, "invalid_type")["param"], "temperature");
  bad_temperature["temperature"] = 1e300;
  expect_error(post(c, "/v1/chat/completions", bad_temperature), 400, "invalid_value");
  json absurd = chat_body("x", 4);
  absurd["max_tokens"] = -5;
  EXPECT_EQ(expect_error(post(c, "/v1/chat/completions", absurd), 400, "invalid_value")["param"], "max_tokens");
  absurd["max_tokens"] = 1000000;  // more than the context allows
  expect_error(post(c, "/v1/chat/completions", absurd), 400, "invalid_value");
  json two = chat_body("x", 4);
  two["n"] = 2;
  const json n_error = expect_error(post(c, "/v1/chat/completions", two), 400, "unsupported_parameter");
  EXPECT_EQ(n_error["param"], "n");
  json tools = chat_body("x", 4);
  tools["tools"] = json::array({{{"type", "function"}}});
  expect_error(post(c, "/v1/chat/completions", tools), 400, "unsupported_parameter");
  json stops = chat_body("x", 4);
  stops["stop"] = {"a", "b", "c", "d", "e"};
  EXPECT_EQ(expect_error(post(c, "/v1/chat/completions", stops), 400, "invalid_value")["param"], "stop");
  stops["stop"] = std::string(300, 'x');
  expect_error(post(c, "/v1/chat/completions", stops), 400, "invalid_value");

  // Longer than the context: both numbers in the message.
  const json too_long = expect_error(post(c, "/v1/chat/completions", chat_body(std::string(100, 'a'), 4)), 400,
                                     "context_length_exceeded");
  EXPECT_NE(too_long["message"].get<std::string>().find("context holds 64"), std::string::npos) << too_long;

  json other_model = chat_body("x", 4);
  other_model["model"] = "gpt-4o";
  EXPECT_EQ(expect_error(post(c, "/v1/chat/completions", other_model), 404, "model_not_found")["param"], "model");

  expect_error(c.Post("/v1/chat/completions", std::string(100 * 1024, ' '), "application/json"), 413, "request_too_large");
  auto wrong_method = c.Get("/v1/chat/completions");
  expect_error(wrong_method, 405, "method_not_allowed");
  EXPECT_EQ(wrong_method->get_header_value("Allow"), "POST");
  expect_error(c.Delete("/v1/models"), 405, "method_not_allowed");
  expect_error(c.Get("/v2/everything"), 404, "not_found");
  // After all that, the server still answers.
  EXPECT_EQ(body_of(post(c, "/v1/chat/completions", chat_body("x", 3)))["choices"][0]["message"]["content"], "の");
}

// `curl -d '{...}'` sends JSON as a form; the body is read as JSON whatever the type says,
// also past the 8 KB cpp-httplib allows forms.
TEST(HttpServer, JsonSentAsAFormIsReadAsJson) {
  Served s(chain_path("form"));
  httplib::Client c = s.client();
  const std::string padded = chat_body("長い質問です。", 3).dump() + std::string(12000, ' ');  // JSON allows it
  auto r = c.Post("/v1/chat/completions", padded, "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["choices"][0]["message"]["content"], "の");
  auto multipart = c.Post("/v1/chat/completions", "--x\r\n\r\n", "multipart/form-data; boundary=x");
  expect_error(multipart, 415, "unsupported_media_type");
}

TEST(HttpServer, MessagesFollowAcceptLanguage) {
  Served s(chain_path("language"));
  httplib::Client c = s.client();
  const json ja = expect_error(post(c, "/v1/chat/completions", json::object(), {{"Accept-Language", "ja,en;q=0.8"}}), 400,
                               "missing_required_parameter");
  EXPECT_NE(ja["message"].get<std::string>().find("'messages' は必須です"), std::string::npos) << ja;
  const json en = expect_error(post(c, "/v1/chat/completions", json::object(), {{"Accept-Language", "en-US"}}), 400,
                               "missing_required_parameter");
  EXPECT_NE(en["message"].get<std::string>().find("'messages' is required"), std::string::npos) << en;
  const json not_found = expect_error(c.Get("/nothing", {{"Accept-Language", "ja"}}), 404, "not_found");
  EXPECT_NE(not_found["message"].get<std::string>().find("経路はありません"), std::string::npos) << not_found;
}

// Queue full: 503 with Retry-After, and nothing else goes wrong.
TEST(HttpServer, FullQueueGives503WithRetryAfter) {
  SchedulerOptions scheduler_options;
  scheduler_options.n_slots = 1;
  scheduler_options.max_queue = 0;
  Served s(slow_chain_path(), {}, scheduler_options);
  RawConnection running(s.port());
  running.send_post("/v1/chat/completions", chat_body("長い回答", 0, true).dump());  // until the context is full
  running.read_until("data: ");
  httplib::Client c = s.client();
  auto busy = post(c, "/v1/chat/completions", chat_body("x", 3));
  expect_error(busy, 503, "server_busy");
  EXPECT_EQ(busy->get_header_value("Retry-After"), "1");
}

// ---- Safe defaults ----

TEST(HttpServer, ApiKeysAreRequiredAndPartitionTheCache) {
  const std::string key_file = ::testing::TempDir() + "koto_http_keys.txt";
  std::ofstream(key_file) << "# two users\nsecret-key-of-alice\n\nsecret-key-of-bob\n";
  Served s(chain_path("keys"), {}, {}, ApiKeys::load(key_file, nullptr));
  httplib::Client c = s.client();
  const json missing = expect_error(post(c, "/v1/chat/completions", chat_body("x", 3)), 401, "invalid_api_key");
  const json wrong = expect_error(post(c, "/v1/chat/completions", chat_body("x", 3), {{"Authorization", "Bearer secret-key-of-alicE"}}),
                                  401, "invalid_api_key");
  EXPECT_EQ(missing["message"], wrong["message"]);  // nothing says which part was wrong
  EXPECT_EQ(post(c, "/v1/chat/completions", chat_body("x", 3), {{"Authorization", "Basic secret-key-of-alice"}})->status, 401);
  EXPECT_EQ(c.Get("/health")->status, 200);  // load balancers need no key
  EXPECT_EQ(c.Get("/v1/models")->status, 401);

  // Alice's prompt does not make Bob's faster.
  const json long_prompt = chat_body("これは長い共通の文書です。" + std::string(120, 'x'), 3);
  const json alice = body_of(post(c, "/v1/chat/completions", long_prompt, {{"Authorization", "Bearer secret-key-of-alice"}}));
  EXPECT_EQ(alice["choices"][0]["message"]["content"], "の");
  const json alice_again = body_of(post(c, "/v1/chat/completions", long_prompt, {{"Authorization", "Bearer secret-key-of-alice"}}));
  EXPECT_GT(alice_again["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 100);
  const json bob = body_of(post(c, "/v1/chat/completions", long_prompt, {{"Authorization", "Bearer secret-key-of-bob"}}));
  EXPECT_EQ(bob["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(bob["choices"][0]["message"]["content"], "の");
}

TEST(HttpServer, CorsHeadersOnlyForTheConfiguredOrigin) {
  {
    Served s(chain_path("no_cors"));
    httplib::Client c = s.client();
    auto r = c.Get("/v1/models", {{"Origin", "https://example.com"}});
    EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
    EXPECT_EQ(c.Options("/v1/chat/completions", {{"Origin", "https://example.com"}})->status, 405);
  }
  ServerOptions options;
  options.cors_origin = "https://chat.example.jp";
  Served s(chain_path("cors"), options);
  httplib::Client c = s.client();
  auto allowed = c.Get("/v1/models", {{"Origin", "https://chat.example.jp"}});
  EXPECT_EQ(allowed->get_header_value("Access-Control-Allow-Origin"), "https://chat.example.jp");
  auto other = c.Get("/v1/models", {{"Origin", "https://evil.example"}});
  EXPECT_FALSE(other->has_header("Access-Control-Allow-Origin"));
  auto preflight = c.Options("/v1/chat/completions", {{"Origin", "https://chat.example.jp"},
                                                      {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(preflight->status, 204);
  EXPECT_EQ(preflight->get_header_value("Access-Control-Allow-Headers"), "Authorization, Content-Type");
}

// ---- A client that goes away cancels its work ----

TEST(HttpServer, DisconnectDuringGenerationFreesTheSlot) {
  Served s(slow_chain_path());
  RawConnection client(s.port());
  client.send_post("/v1/chat/completions", chat_body("終わらない回答", 0, true).dump());
  client.read_until("\"content\":\"の\"");  // generation is under way
  EXPECT_EQ(s.scheduler().status().busy_slots, 1);
  client.close();
  EXPECT_TRUE(eventually([&] { return s.scheduler().status().busy_slots == 0; }));
  httplib::Client c = s.client();
  EXPECT_TRUE(eventually([&] {
    return c.Get("/metrics")->body.find("koto_slots_active 0\n") != std::string::npos;
  }));
  EXPECT_TRUE(eventually([&] {
    for (const std::string& line : s.log()) {
      if (line.find("client-gone") != std::string::npos) return true;
    }
    return false;
  }));
}

TEST(HttpServer, DisconnectDuringThePromptOrInTheQueueCancelsToo) {
  SchedulerOptions scheduler_options;
  scheduler_options.n_slots = 1;
  scheduler_options.batch_tokens = 1;  // one prompt token per step: a long prompt takes many steps
  scheduler_options.cache.memory_bytes = 0;
  Served s(stories_path(), {}, scheduler_options);
  std::vector<TokenId> prompt(1500, 403);
  prompt[0] = 1;
  RawConnection in_prompt(s.port());
  in_prompt.send_post("/v1/completions", json({{"prompt", prompt}, {"max_tokens", 5}}).dump());
  ASSERT_TRUE(eventually([&] { return s.scheduler().status().busy_slots == 1; }));
  RawConnection queued(s.port());
  queued.send_post("/v1/completions", json({{"prompt", "Once"}, {"max_tokens", 5}}).dump());
  ASSERT_TRUE(eventually([&] { return s.scheduler().status().queued == 1; }));
  queued.close();
  EXPECT_TRUE(eventually([&] { return s.scheduler().status().queued == 0; }));
  const uint64_t steps_at_close = s.scheduler().status().steps;
  in_prompt.close();
  EXPECT_TRUE(eventually([&] { return s.scheduler().status().busy_slots == 0; }));
  // One prompt token per step: the prompt was never finished, and no token was generated.
  EXPECT_GE(s.scheduler().status().steps, steps_at_close);
  EXPECT_LT(s.scheduler().status().steps, 1500u);
  EXPECT_EQ(s.scheduler().status().generated_tokens, 0u);
}

// ---- Several clients at once ----

TEST(HttpServer, ConcurrentRequestsGiveTheSameTextAsOneByOne) {
  Served s(stories_path());
  const std::vector<std::string> starts{"Once upon a time", "Lily liked", "The dog", "One day, Tom", "Sam had a big", "The sun"};
  std::vector<std::string> alone;
  {
    httplib::Client c = s.client();
    for (const std::string& start : starts) {
      alone.push_back(body_of(post(c, "/v1/completions", {{"prompt", start}, {"max_tokens", 50}, {"temperature", 0}}))
                          ["choices"][0]["text"]);
    }
  }
  std::vector<std::string> together(starts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < starts.size(); ++i) {
    threads.emplace_back([&, i] {
      httplib::Client c = s.client();
      json request = {{"prompt", starts[i]}, {"max_tokens", 50}, {"temperature", 0}, {"stream", i % 2 == 0}};
      auto r = post(c, "/v1/completions", request);
      if (!r) return;
      if (i % 2 != 0) {
        together[i] = json::parse(r->body)["choices"][0]["text"];
        return;
      }
      for (const std::string& event : sse_events(r->body)) {
        if (event != "[DONE]") together[i] += json::parse(event)["choices"][0]["text"].get<std::string>();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < starts.size(); ++i) EXPECT_EQ(together[i], alone[i]) << starts[i];
}

TEST(HttpServer, RepeatedPrefixIsServedFromTheCache) {
  Served s(stories_path());
  httplib::Client c = s.client();
  const std::string document =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog Max.";
  const json first = body_of(post(c, "/v1/completions", {{"prompt", document + " One day"}, {"max_tokens", 30}, {"temperature", 0}}));
  EXPECT_EQ(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const json again = body_of(post(c, "/v1/completions", {{"prompt", document + " One day"}, {"max_tokens", 30}, {"temperature", 0}}));
  EXPECT_EQ(again["usage"]["prompt_tokens_details"]["cached_tokens"], first["usage"]["prompt_tokens"].get<int>() - 1);
  EXPECT_EQ(again["choices"][0]["text"], first["choices"][0]["text"]);
  EXPECT_EQ(again["timings"]["cached_tokens"], again["usage"]["prompt_tokens_details"]["cached_tokens"]);
}

// ---- Shutdown ----

TEST(HttpServer, ShutdownTurnsNewRequestsAwayWhileRunningOnesFinish) {
  Served s(chain_path("shutdown", {.end_after_one_cycle = true}));
  RawConnection running(s.port());
  running.send_post("/v1/chat/completions", chat_body("x", 0, true).dump(), "Connection: close\r\n");
  running.read_until("data: ");  // it runs
  s.server().begin_shutdown();
  httplib::Client c = s.client();
  auto health = c.Get("/health");
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(json::parse(health->body)["status"], "shutting_down");
  expect_error(post(c, "/v1/chat/completions", chat_body("x", 3)), 503, "shutting_down");
  const std::string answer = running.read_all();
  EXPECT_NE(answer.find("data: [DONE]"), std::string::npos);
  EXPECT_NE(answer.find("\"finish_reason\":\"stop\""), std::string::npos);
}

}  // namespace
}  // namespace koto::server

namespace koto::server {
namespace {

std::vector<float> decode_base64_floats(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string bytes;
  for (size_t i = 0; i + 3 < text.size(); i += 4) {
    const int a = value(text[i]), b = value(text[i + 1]), c = value(text[i + 2]), d = value(text[i + 3]);
    const uint32_t triple = (a << 18) | (b << 12) | ((c < 0 ? 0 : c) << 6) | (d < 0 ? 0 : d);
    bytes += static_cast<char>((triple >> 16) & 0xFF);
    if (c >= 0) bytes += static_cast<char>((triple >> 8) & 0xFF);
    if (d >= 0) bytes += static_cast<char>(triple & 0xFF);
  }
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

TEST(HttpServer, EmbeddingsInTheOpenAIShapeAsFloatsAndBase64) {
  Served served(fixture_path("arch/qwen3-F32.gguf"));
  auto c = served.client();
  Embedder embedder(served.model());
  const std::vector<float> want = embedder.embed_text("経費精算の締め日");

  json body = body_of(post(c, "/v1/embeddings", {{"model", "test-model"}, {"input", "経費精算の締め日"}}));
  EXPECT_EQ(body["object"], "list");
  EXPECT_EQ(body["model"], "test-model");
  ASSERT_EQ(body["data"].size(), 1u);
  EXPECT_EQ(body["data"][0]["object"], "embedding");
  EXPECT_EQ(body["data"][0]["index"], 0);
  const std::vector<float> got = body["data"][0]["embedding"].get<std::vector<float>>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]);
  EXPECT_GT(body["usage"]["prompt_tokens"].get<int>(), 0);

  body = body_of(post(c, "/v1/embeddings", {{"input", {"経費精算の締め日", "交通費"}}, {"encoding_format", "base64"}}));
  ASSERT_EQ(body["data"].size(), 2u);
  EXPECT_EQ(body["data"][1]["index"], 1);
  const std::vector<float> decoded = decode_base64_floats(body["data"][0]["embedding"].get<std::string>());
  ASSERT_EQ(decoded.size(), want.size());
  for (size_t i = 0; i < decoded.size(); ++i) EXPECT_EQ(decoded[i], want[i]);

  expect_error(post(c, "/v1/embeddings", {{"input", json::array()}}), 400, "invalid_type");
  expect_error(post(c, "/v1/embeddings", {{"input", "a"}, {"dimensions", 8}}), 400, "unsupported_parameter");
  expect_error(post(c, "/v1/embeddings", {{"input", "a"}, {"encoding_format", "int8"}}), 400, "invalid_value");
  expect_error(post(c, "/v1/embeddings", {{"input", "a"}, {"model", "other"}}), 404, "model_not_found");
}

TEST(HttpServer, SearchAnswersFromTheDocumentIndex) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "koto_http_search";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "docs");
  std::ofstream(dir / "docs" / "経費.md") << "# 経費精算\n\n経費精算の締め日は毎月二十五日です。\n";
  {
    DocIndex index(dir / "index.db", true);
    index.index({dir / "docs"});
  }
  ServerOptions options;
  options.db = (dir / "index.db").string();
  Served served(chain_path("search"), options);
  auto c = served.client();
  json body = body_of(post(c, "/v1/search", {{"query", "経費精算の締め日はいつ？"}, {"k", 3}}));
  ASSERT_EQ(body["data"].size(), 1u);
  EXPECT_EQ(body["data"][0]["path"], "経費.md");
  EXPECT_EQ(body["data"][0]["heading"], "経費精算");
  EXPECT_EQ(body["data"][0]["line_start"], 3);
  EXPECT_EQ(body["data"][0]["text"], "経費精算の締め日は毎月二十五日です。");
  EXPECT_EQ(body["not_in_documents"], false);
  body = body_of(post(c, "/v1/search", {{"query", "社員旅行の行き先"}}));
  EXPECT_EQ(body["not_in_documents"], true);
  expect_error(post(c, "/v1/search", {{"k", 3}}), 400, "missing_required_parameter");

  ServerOptions none;
  none.db = (dir / "missing.db").string();
  Served without(chain_path("search_none"), none);
  auto c2 = without.client();
  expect_error(post(c2, "/v1/search", {{"query", "経費"}}), 404, "no_document_index");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace koto::server

namespace koto::server {
namespace {

TEST(HttpServer, GroundedChatAnswersFromTheDocumentsOrSaysTheyDoNot) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "koto_http_grounded";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "docs");
  std::ofstream(dir / "docs" / "経費.md") << "# 経費精算\n\n経費精算の締め日は毎月二十五日です。\n";
  {
    DocIndex index(dir / "index.db", true);
    index.index({dir / "docs"});
  }
  ServerOptions options;
  options.db = (dir / "index.db").string();
  options.log_prompts = true;
  testing::ChainModelOptions model_options;
  model_options.context_length = 4096;  // byte tokens: the passages and instruction take ~1,100
  Served served(chain_path("grounded", model_options), options);
  auto c = served.client();

  json body = body_of(post(c, "/v1/chat/completions",
                           {{"messages", {{{"role", "user"}, {"content", "経費精算の締め日はいつですか？"}}}},
                            {"max_tokens", 4},
                            {"koto_documents", true}}));
  ASSERT_EQ(body["koto_sources"].size(), 1u) << body.dump();
  EXPECT_EQ(body["koto_sources"][0]["number"], 1);
  EXPECT_EQ(body["koto_sources"][0]["path"], "経費.md");
  EXPECT_EQ(body["koto_sources"][0]["text"], "経費精算の締め日は毎月二十五日です。");
  EXPECT_TRUE(body["koto_cited"].is_array());
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  // The model was given the numbered passage and the instruction.
  bool prompt_had_passage = false;
  for (const std::string& line : served.log()) {
    prompt_had_passage = prompt_had_passage || (line.find("[1] 出典: 経費.md") != std::string::npos &&
                                                line.find("資料には記載がありません。") != std::string::npos);
  }
  EXPECT_TRUE(prompt_had_passage);

  // Nothing relevant: the fixed sentence, without the model, in both response shapes.
  const json refuse = {{"messages", {{{"role", "user"}, {"content", "社員旅行の行き先はどこですか？"}}}}, {"koto_documents", true}};
  body = body_of(post(c, "/v1/chat/completions", refuse));
  EXPECT_EQ(body["choices"][0]["message"]["content"], "資料には記載がありません。");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["koto_not_in_documents"], true);
  json streamed = refuse;
  streamed["stream"] = true;
  const auto r = post(c, "/v1/chat/completions", streamed);
  ASSERT_TRUE(r);
  const std::vector<std::string> events = sse_events(r->body);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(json::parse(events[1])["choices"][0]["delta"]["content"], "資料には記載がありません。");
  EXPECT_EQ(json::parse(events[2])["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(events[3], "[DONE]");

  expect_error(post(c, "/v1/chat/completions",
                    {{"messages", {{{"role", "user"}, {"content", "経費"}}}}, {"koto_documents", "yes"}}),
               400, "invalid_type");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace koto::server

namespace koto::server {
namespace {

TEST(HttpServer, TimelineRouteServesTheRecordersSamples) {
  Served served(chain_path("timeline"));
  auto c = served.client();
  expect_error(c.Get("/v1/koto/timeline"), 404, "no_timeline");
  TimelineRecorder recorder(std::chrono::milliseconds(10));
  recorder.mark("idle");
  served.server().set_timeline(&recorder);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  json body = body_of(c.Get("/v1/koto/timeline"));
  ASSERT_GE(body["samples"].size(), 3u);
  EXPECT_GT(body["samples"][0]["rss_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(body["marks"][1]["phase"], "idle");
  EXPECT_GE(body["cpu_count"].get<int>(), 1);
  const double last = body["samples"].back()["t"].get<double>();
  const json later = body_of(c.Get(("/v1/koto/timeline?since=" + json(last).dump()).c_str()));
  for (const json& s : later["samples"]) EXPECT_GT(s["t"].get<double>(), last);
  expect_error(c.Get("/v1/koto/timeline?since=abc"), 400, "invalid_value");
  served.server().set_timeline(nullptr);
  recorder.stop();
}

}  // namespace
}  // namespace koto::server
