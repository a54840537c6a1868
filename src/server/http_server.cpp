#include "server/http_server.h"

#include <httplib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "base/utf8.h"
#include "koto/doc_index.h"
#include "koto/embedding.h"
#include "koto/error.h"
#include "koto/grounded_answer.h"
#include "koto/timeline.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "server/api_types.h"
#include "server/metrics.h"
#include "server/web_assets.h"

namespace koto::server {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often a waiting handler checks that its client is still there.
constexpr auto kClientCheckInterval = 50ms;

// What the log line of the request being served on this thread says. httplib serves
// one request at a time per thread, from pre-routing to its logger.
struct LogRecord {
  bool active = false;  // set by pre-routing; requests httplib rejects before routing have none
  Clock::time_point start;
  std::string id;
  std::string method;
  std::string path;
  std::string route = "other";
  std::optional<RequestStats> stats;
  std::string note;
};
thread_local LogRecord t_log;

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm {};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json; charset=utf-8");
}

void send_error(httplib::Response& res, const ApiError& error) { send_json(res, error.status, error_body(error)); }

ApiError unavailable(std::string code, const std::string& message) {
  return ApiError(503, "server_error", std::move(code), "", message);
}

}  // namespace

struct HttpServer::Impl {
  Impl(const ServerOptions& options, ApiKeys keys, std::function<void(const std::string&)> log)
      : options(options), keys(std::move(keys)), log(std::move(log)), rng(std::random_device{}()) {}

  // ---- the route table ----
  // What a handler gets of its request: the body (read whole) and the caller's prefix-
  // cache partition (from the API key; "" without keys).
  struct Call {
    std::string body;
    std::string partition;
    const httplib::Request* request = nullptr;  // for query parameters
    std::string path;
  };
  using Handler = void (Impl::*)(const Call& call, httplib::Response&);
  struct Route {
    const char* method;
    const char* path;
    bool needs_key;    // when the server has API keys
    bool needs_model;  // 503 while the model loads
    Handler handle;
  };
  static const Route kRoutes[];

  void health(const Call& call, httplib::Response& res);
  void metrics_route(const Call& call, httplib::Response& res);
  void models(const Call& call, httplib::Response& res);
  void chat_completions(const Call& call, httplib::Response& res);
  void completions(const Call& call, httplib::Response& res);
  void tokenize(const Call& call, httplib::Response& res);
  void detokenize(const Call& call, httplib::Response& res);
  void embeddings(const Call& call, httplib::Response& res);
  void timeline_route(const Call& call, httplib::Response& res);
  void web_page(const Call& call, httplib::Response& res);
  void search(const Call& call, httplib::Response& res);

  void register_routes();
  void dispatch(const std::string& path, const httplib::Request& req, httplib::Response& res,
                const httplib::ContentReader* reader);
  void fill_error_body(const httplib::Request& req, httplib::Response& res);
  void write_log(int status);
  Language request_language(const httplib::Request& req) const {
    return language_from_accept_language(req.get_header_value("Accept-Language"), default_language);
  }
  bool cors_allows(const std::string& origin) const {
    return !options.cors_origin.empty() && !origin.empty() && (options.cors_origin == "*" || options.cors_origin == origin);
  }
  std::string new_id(std::string_view prefix);

  // One generation's response: a stream of SSE chunks or one JSON object.
  struct Generation {
    std::shared_ptr<RequestHandle> handle;
    ResponseIdentity who;
    bool chat = true;
    bool stream = false;
    bool include_usage = false;
    Language language = Language::kEnglish;
    // Grounded chat: the passages given to the model, [{number, path, ...}]; null otherwise.
    json sources;
  };
  // The open document index (opened on first use under docs_mutex); 404 when there is none.
  DocIndex& open_docs();
  void grounded_refusal(const ChatCompletionRequest& parsed, const json& sources, httplib::Response& res);
  std::shared_ptr<RequestHandle> submit(CompletionRequest request, const std::string& partition,
                                        const std::string& prompt_for_log);
  // `sources`: grounded chat's passages, returned with the answer (null otherwise).
  void generate(CompletionRequest request, const GenerationParams& params, LeadingSpace leading_space,
                bool chat_response, const Call& call, const std::string& prompt_for_log, httplib::Response& res,
                json sources = json());
  void respond(Generation generation, httplib::Response& res);
  bool stream_events(Generation& g, httplib::DataSink& sink);
  bool collect_events(Generation& g, httplib::DataSink& sink);
  bool client_gone(Generation& g);
  void record_end(const RequestStats& stats, const std::string& text);

  const ServerOptions options;
  const ApiKeys keys;
  const std::function<void(const std::string&)> log;
  const Language default_language = language();
  httplib::Server http;
  std::thread listener;
  std::atomic<bool> listener_done{false};
  int port = 0;
  Metrics metrics;

  std::atomic<bool> ready{false};
  std::atomic<bool> shutting_down{false};
  const Model* model = nullptr;
  Scheduler* scheduler = nullptr;
  std::optional<ChatTemplate> chat;
  std::string model_id;
  int64_t model_created = 0;
  ApiLimits limits;

  std::mutex rng_mutex;
  // /v1/embeddings: one embedder (its own session) at a time.
  std::mutex embed_mutex;
  std::unique_ptr<Embedder> embedder;
  // /v1/search: the document index, opened on first use, one search at a time.
  std::mutex docs_mutex;
  std::unique_ptr<DocIndex> docs;
  std::atomic<const TimelineRecorder*> timeline{nullptr};
  std::mt19937_64 rng;
};

const HttpServer::Impl::Route HttpServer::Impl::kRoutes[] = {
    {"GET", "/health", false, false, &Impl::health},
    {"GET", "/metrics", true, false, &Impl::metrics_route},
    {"GET", "/v1/models", true, true, &Impl::models},
    {"POST", "/v1/chat/completions", true, true, &Impl::chat_completions},
    {"POST", "/v1/completions", true, true, &Impl::completions},
    {"POST", "/tokenize", true, true, &Impl::tokenize},
    {"POST", "/detokenize", true, true, &Impl::detokenize},
    {"POST", "/v1/embeddings", true, true, &Impl::embeddings},
    {"POST", "/v1/search", true, false, &Impl::search},
    {"GET", "/v1/koto/timeline", true, false, &Impl::timeline_route},
    // The web chat page (embedded; web/).
    {"GET", "/", false, false, &Impl::web_page},
    {"GET", "/assets/app.js", false, false, &Impl::web_page},
    {"GET", "/assets/style.css", false, false, &Impl::web_page},
    {"GET", "/assets/marked.umd.js", false, false, &Impl::web_page},
    {"GET", "/assets/purify.min.js", false, false, &Impl::web_page},
};

std::string HttpServer::Impl::new_id(std::string_view prefix) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id(prefix);
  const std::lock_guard<std::mutex> lock(rng_mutex);
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return id;
}

void HttpServer::Impl::register_routes() {
  std::vector<std::string> paths;
  for (const Route& route : kRoutes) {
    if (std::find(paths.begin(), paths.end(), route.path) == paths.end()) paths.emplace_back(route.path);
  }
  for (const std::string& path : paths) {
    auto handler = [this, path](const httplib::Request& req, httplib::Response& res) {
      dispatch(path, req, res, nullptr);
    };
    // Bodies are read by the handlers themselves (a content reader), so cpp-httplib never
    // parses one as a form: `curl -d` sends JSON as application/x-www-form-urlencoded,
    // which it would otherwise cap at 8 KB.
    auto with_body = [this, path](const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& reader) { dispatch(path, req, res, &reader); };
    http.Get(path, handler);
    http.Post(path, with_body);
    http.Put(path, with_body);
    http.Patch(path, with_body);
    http.Delete(path, with_body);
    http.Options(path, handler);
  }
  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    t_log = LogRecord{};
    t_log.active = true;
    t_log.start = Clock::now();
    t_log.method = req.method;
    t_log.path = req.path;
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) { fill_error_body(req, res); });
  http.set_logger([this](const httplib::Request&, const httplib::Response& res) { write_log(res.status); });
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}});
}

// Statuses set by httplib itself (unknown route, body too large, malformed request)
// get a body in the OpenAI shape too.
void HttpServer::Impl::fill_error_body(const httplib::Request& req, httplib::Response& res) {
  if (!res.body.empty()) return;
  const ScopedLanguage language(request_language(req));
  switch (res.status) {
    case 404:
      send_error(res, ApiError(404, "invalid_request_error", "not_found", "",
                               tr("no route {0} {1}; koto serves /v1/chat/completions, /v1/completions, /v1/models, "
                                  "/health, /metrics, /tokenize, /detokenize",
                                  "{0} {1} という経路はありません。koto が応じるのは /v1/chat/completions、/v1/completions、"
                                  "/v1/models、/health、/metrics、/tokenize、/detokenize です",
                                  utf8::escape_for_message(req.method, 16), utf8::escape_for_message(req.path, 100))));
      break;
    case 413:
      send_error(res, ApiError(413, "invalid_request_error", "request_too_large", "",
                               tr("the request body is larger than the {0} bytes allowed (--max-body)",
                                  "リクエスト本文が上限 {0} バイト (--max-body) を超えています", options.max_body_bytes)));
      break;
    default:
      send_error(res, ApiError(res.status, res.status >= 500 ? "server_error" : "invalid_request_error", "", "",
                               tr("the request could not be handled (HTTP {0})", "リクエストを処理できませんでした (HTTP {0})",
                                  res.status)));
  }
}

void HttpServer::Impl::dispatch(const std::string& path, const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader* reader) {
  const ScopedLanguage language(request_language(req));
  t_log.route = path;
  Call call;
  call.request = &req;
  call.path = path;
  std::string& body = call.body;
  if (reader != nullptr) {
    if (req.is_multipart_form_data()) {
      send_error(res, ApiError(415, "invalid_request_error", "unsupported_media_type", "",
                               pick("multipart bodies are not accepted; send JSON (Content-Type: application/json)",
                                    "multipart の本文は受け付けません。JSON で送ってください (Content-Type: application/json)")
                                   .data()));
      res.set_header("Connection", "close");
      return;
    }
    const bool complete = (*reader)([&body](const char* data, size_t size) {
      body.append(data, size);
      return true;
    });
    if (!complete) {
      res.status = res.status == 413 ? 413 : 400;  // fill_error_body words it
      res.set_header("Connection", "close");
      return;
    }
  }
  const std::string origin = req.get_header_value("Origin");
  const bool cors = cors_allows(origin);
  if (cors) {
    res.set_header("Access-Control-Allow-Origin", options.cors_origin == "*" ? "*" : origin);
    res.set_header("Vary", "Origin");
  }
  const Route* route = nullptr;
  std::string allowed;
  for (const Route& r : kRoutes) {
    if (r.path != path) continue;
    allowed += (allowed.empty() ? "" : ", ") + std::string(r.method);
    if (req.method == r.method || (req.method == "HEAD" && std::string_view(r.method) == "GET")) route = &r;
  }
  if (req.method == "OPTIONS" && cors) {  // a browser's preflight
    res.status = 204;
    res.set_header("Access-Control-Allow-Methods", allowed + ", OPTIONS");
    res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
    res.set_header("Access-Control-Max-Age", "600");
    return;
  }
  try {
    if (route == nullptr) {
      res.set_header("Allow", allowed);
      throw ApiError(405, "invalid_request_error", "method_not_allowed", "",
                     tr("{0} is not allowed on {1}; use {2}", "{1} では {0} は使えません。{2} を使ってください",
                        utf8::escape_for_message(req.method, 16), path, allowed));
    }
    const std::optional<std::string> partition =
        keys.empty() ? std::optional<std::string>("") : keys.check(req.get_header_value("Authorization"));
    if (route->needs_key && !partition) {
      res.set_header("WWW-Authenticate", "Bearer");
      throw ApiError(401, "authentication_error", "invalid_api_key", "",
                     pick("missing or invalid API key: send the header \"Authorization: Bearer YOUR_KEY\"",
                          "API キーがないか正しくありません。ヘッダー \"Authorization: Bearer キー\" を付けてください")
                         .data());
    }
    if (route->needs_model && !ready.load(std::memory_order_acquire)) {
      res.set_header("Retry-After", "5");
      throw unavailable("model_loading", pick("the model is still loading; try again in a few seconds",
                                              "モデルを読み込み中です。数秒後に再度お試しください")
                                             .data());
    }
    call.partition = partition.value_or("");
    (this->*route->handle)(call, res);
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnavailable) {
      res.set_header("Retry-After", "1");
      send_error(res, unavailable(shutting_down ? "shutting_down" : "server_busy", e.what()));
    } else if (e.code() == ErrorCode::kInvalidArgument) {
      send_error(res, bad_request("", e.what()));
    } else {
      send_error(res, ApiError(500, "server_error", "", "", e.what()));
    }
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, "server_error", "", "",
                             tr("internal error: {0}", "内部エラー: {0}", utf8::escape_for_message(e.what()))));
  }
}

// One line per request, written when httplib has sent the response — or by the handler
// itself when the client went away (httplib logs nothing then).
void HttpServer::Impl::write_log(int status) {
  if (!t_log.active) t_log = LogRecord{};  // rejected before routing: nothing is known of it
  metrics.count_request(t_log.route, status);
  if (!log) {
    t_log.active = false;
    return;
  }
  auto shown = [](const std::string& text, size_t limit) { return text.empty() ? std::string("-") : utf8::escape_for_message(text, limit); };
  std::string line = fmt::format("{} {} {} {} {}", utc_now(), t_log.id.empty() ? "-" : t_log.id, shown(t_log.method, 16),
                                 shown(t_log.path, 100), status);
  if (t_log.stats) {
    const RequestStats& s = *t_log.stats;
    line += fmt::format(" prompt={} cached={} completion={} ttft={:.3f}s tok/s={:.1f} stop={}", s.prompt_tokens,
                        s.cached_tokens, s.generated_tokens, s.time_to_first_token_seconds, s.tokens_per_second(),
                        stop_reason_name(s.stop_reason));
  }
  if (t_log.active) line += fmt::format(" {:.3f}s", std::chrono::duration<double>(Clock::now() - t_log.start).count());
  if (!t_log.note.empty()) line += " " + t_log.note;
  log(line);
  t_log.active = false;
}

// ---- routes ----

void HttpServer::Impl::health(const Call&, httplib::Response& res) {
  if (shutting_down) {
    send_json(res, 503, {{"status", "shutting_down"}});
  } else if (!ready.load(std::memory_order_acquire)) {
    res.set_header("Retry-After", "5");
    send_json(res, 503, {{"status", "loading"}});
  } else {
    const SchedulerStatus s = scheduler->status();
    send_json(res, 200, {{"status", "ok"}, {"model", model_id}, {"slots", s.slots}, {"slots_busy", s.busy_slots}, {"queue", s.queued}});
  }
}

void HttpServer::Impl::metrics_route(const Call&, httplib::Response& res) {
  std::optional<SchedulerStatus> status;
  if (ready.load(std::memory_order_acquire)) status = scheduler->status();
  res.set_content(metrics.render(status ? &*status : nullptr), "text/plain; version=0.0.4; charset=utf-8");
}

void HttpServer::Impl::models(const Call&, httplib::Response& res) {
  const ModelParams& p = model->params();
  json entry = {{"id", model_id},
                {"object", "model"},
                {"created", model_created},
                {"owned_by", "koto"},
                {"meta",
                 {{"architecture", p.architecture},
                  {"parameters", p.n_params},
                  {"n_ctx", scheduler->n_ctx()},
                  {"n_ctx_train", p.n_ctx_train},
                  {"n_vocab", p.n_vocab},
                  {"file_size", model->file().file_size()},
                  {"chat_template", std::string(chat_family_name(chat->family()))}}}};
  send_json(res, 200, {{"object", "list"}, {"data", json::array({entry})}});
}

namespace {

void check_model_name(const std::string& asked, const std::string& served) {
  if (asked.empty() || asked == served) return;
  throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                 tr("the model \"{0}\" is not served here; this server serves \"{1}\" (GET /v1/models)",
                    "モデル \"{0}\" はここにはありません。このサーバーのモデルは \"{1}\" です (GET /v1/models)",
                    utf8::escape_for_message(asked), served));
}

}  // namespace

std::shared_ptr<RequestHandle> HttpServer::Impl::submit(CompletionRequest request, const std::string& partition,
                                                        const std::string& prompt_for_log) {
  if (request.prompt.size() >= static_cast<size_t>(scheduler->n_ctx())) {
    throw bad_request("messages",
                      tr("the prompt is {0} tokens but the context holds {1} (with room for at least one answer token); "
                         "shorten the conversation",
                         "プロンプトが {0} トークンあり、コンテキスト {1} トークン (回答に少なくとも 1 トークン必要) に収まりません。会話を短くしてください",
                         request.prompt.size(), scheduler->n_ctx()),
                      "context_length_exceeded");
  }
  request.cache_partition = partition;
  request.language = language();
  if (options.log_prompts && log) log(fmt::format("{} prompt: {}", t_log.id, prompt_for_log));
  if (shutting_down) {
    throw unavailable("shutting_down", pick("the server is shutting down and takes no new requests",
                                            "サーバーは終了処理中のため、新しい依頼を受け付けません")
                                           .data());
  }
  return scheduler->submit(std::move(request));
}

// The part chat and completions share: the request's options onto the prompt, submit,
// and the response (stream or JSON).
void HttpServer::Impl::generate(CompletionRequest request, const GenerationParams& params, LeadingSpace leading_space,
                                bool chat_response, const Call& call, const std::string& prompt_for_log,
                                httplib::Response& res, json sources) {
  request.max_tokens = params.max_tokens;
  request.sampling = params.sampling;
  request.stop_strings = params.stop;
  request.ignore_eos = params.ignore_eos;
  request.leading_space = leading_space;
  request.lookup_max_draft = options.lookup;
  Generation g;
  g.who = {new_id(chat_response ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)), model_id};
  t_log.id = g.who.id;
  g.handle = submit(std::move(request), call.partition, prompt_for_log);
  g.chat = chat_response;
  g.stream = params.stream;
  g.include_usage = params.include_usage;
  g.language = language();
  g.sources = std::move(sources);
  respond(std::move(g), res);
}

void HttpServer::Impl::chat_completions(const Call& call, httplib::Response& res) {
  ChatCompletionRequest parsed = parse_chat_completion_request(parse_body(call.body), limits);
  check_model_name(parsed.params.model, model_id);
  json grounded_sources;
  if (parsed.documents) {
    // The question is the last user message; the model gets only the passages.
    const auto last_user = std::find_if(parsed.messages.rbegin(), parsed.messages.rend(),
                                        [](const ChatMessage& m) { return m.role == "user"; });
    if (last_user == parsed.messages.rend()) {
      throw bad_request("messages", pick("koto_documents needs a user message to answer",
                                         "koto_documents には答える user メッセージが必要です")
                                        .data(),
                        "invalid_value");
    }
    const std::string question = last_user->content;
    SearchResult found;
    {
      const std::lock_guard<std::mutex> lock(docs_mutex);
      found = open_docs().search(question, parsed.documents->k);
    }
    json sources = json::array();
    for (size_t i = 0; i < found.hits.size(); ++i) {
      const SearchHit& h = found.hits[i];
      json source = {{"number", i + 1},         {"path", h.path},       {"line_start", h.line_start},
                     {"line_end", h.line_end}, {"heading", h.heading}, {"text", h.text}};
      if (h.page > 0) source["page"] = h.page;
      sources.push_back(std::move(source));
    }
    const double min_coverage = parsed.documents->min_coverage >= 0 ? parsed.documents->min_coverage : DocIndex::kDefaultMinCoverage;
    if (should_refuse(found, min_coverage)) {
      grounded_refusal(parsed, json::array(), res);
      return;
    }
    // The passages that fit in a slot's context with room for an answer: the
    // lowest-ranked go first.
    std::vector<SearchHit> passages = found.hits;
    const int32_t answer_room = parsed.params.max_tokens < 0 ? 256 : std::min(parsed.params.max_tokens, 256);
    const size_t room = static_cast<size_t>(std::max(1, scheduler->n_ctx() - answer_room));
    for (;;) {
      const GroundedPrompt grounded = build_grounded_prompt(question, passages);
      parsed.messages = {ChatMessage{"system", grounded.system}, ChatMessage{"user", grounded.user}};
      if (passages.size() <= 1 || tokenize_prompt(model->tokenizer(), chat->render(parsed.messages)).size() <= room) break;
      passages.pop_back();
    }
    sources.erase(sources.begin() + static_cast<std::ptrdiff_t>(passages.size()), sources.end());
    grounded_sources = std::move(sources);
  }
  if (parsed.messages.front().role != "system" && !options.system_prompt.empty()) {
    parsed.messages.insert(parsed.messages.begin(), ChatMessage{"system", options.system_prompt});
  }
  std::vector<PromptSegment> segments;
  try {
    segments = chat->render(parsed.messages);
  } catch (const Error& e) {
    throw bad_request("messages", e.what());
  }
  CompletionRequest request;
  request.prompt = tokenize_prompt(model->tokenizer(), segments);
  for (std::string& stop : chat->stop_strings()) parsed.params.stop.push_back(std::move(stop));
  generate(std::move(request), parsed.params, LeadingSpace::kStrip, /*chat=*/true, call,
           options.log_prompts ? render_text(segments) : "", res, std::move(grounded_sources));
}

void HttpServer::Impl::completions(const Call& call, httplib::Response& res) {
  TextCompletionRequest parsed = parse_completion_request(parse_body(call.body), limits);
  check_model_name(parsed.params.model, model_id);
  const Tokenizer& tokenizer = model->tokenizer();
  CompletionRequest request;
  if (!parsed.prompt_tokens.empty()) {
    request.prompt = std::move(parsed.prompt_tokens);
    for (size_t i = 0; i < request.prompt.size(); ++i) {
      if (request.prompt[i] >= tokenizer.vocab_size()) {
        throw bad_request(fmt::format("prompt[{}]", i),
                          tr("token id {0} is out of range: the vocabulary has ids 0 to {1}",
                             "トークン ID {0} は範囲外です。語彙の ID は 0〜{1} です", request.prompt[i], tokenizer.vocab_size() - 1),
                          "invalid_value");
      }
    }
  } else {
    // The client writes the whole prompt, markup included: special-token text counts.
    request.prompt = tokenizer.encode(parsed.prompt, tokenizer.add_bos_by_default(), /*parse_special=*/true);
  }
  // The answer continues the prompt's text: its leading space stays.
  generate(std::move(request), parsed.params, LeadingSpace::kKeep, /*chat=*/false, call,
           options.log_prompts ? parsed.prompt : "", res);
}

void HttpServer::Impl::tokenize(const Call& call, httplib::Response& res) {
  const TokenizeRequest parsed = parse_tokenize_request(parse_body(call.body));
  const Tokenizer& tokenizer = model->tokenizer();
  const std::vector<TokenId> ids =
      tokenizer.encode(parsed.content, parsed.add_special && tokenizer.add_bos_by_default(), parsed.parse_special);
  json tokens = json::array();
  for (TokenId id : ids) {
    if (!parsed.with_pieces) {
      tokens.push_back(id);
      continue;
    }
    const std::string bytes = tokenizer.token_bytes(id, /*show_special=*/true);
    json piece;
    if (utf8::is_valid(bytes)) {
      piece = bytes;
    } else {  // a byte token: the bytes themselves
      piece = json::array();
      for (unsigned char c : bytes) piece.push_back(c);
    }
    tokens.push_back({{"id", id}, {"piece", piece}});
  }
  send_json(res, 200, {{"tokens", tokens}});
}

void HttpServer::Impl::detokenize(const Call& call, httplib::Response& res) {
  const std::vector<TokenId> ids = parse_detokenize_request(parse_body(call.body));
  const Tokenizer& tokenizer = model->tokenizer();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= tokenizer.vocab_size()) {
      throw bad_request(fmt::format("tokens[{}]", i),
                        tr("token id {0} is out of range: the vocabulary has ids 0 to {1}",
                           "トークン ID {0} は範囲外です。語彙の ID は 0〜{1} です", ids[i], tokenizer.vocab_size() - 1),
                        "invalid_value");
    }
  }
  send_json(res, 200, {{"content", tokenizer.decode(ids)}});  // invalid bytes become U+FFFD in the JSON
}

void HttpServer::Impl::embeddings(const Call& call, httplib::Response& res) {
  const json body = parse_body(call.body);
  const auto model_field = body.find("model");
  check_model_name(model_field != body.end() && model_field->is_string() ? model_field->get<std::string>() : "", model_id);
  const EmbeddingsRequest parsed = parse_embeddings_request(body);
  const Tokenizer& tokenizer = model->tokenizer();
  json data = json::array();
  int64_t prompt_tokens = 0;
  const std::lock_guard<std::mutex> lock(embed_mutex);
  if (!embedder) embedder = std::make_unique<Embedder>(*model);
  auto add = [&](const std::vector<float>& v, size_t index) {
    json item = {{"object", "embedding"}, {"index", index}};
    item["embedding"] = parsed.base64 ? json(floats_base64(v)) : json(v);
    data.push_back(std::move(item));
  };
  for (size_t i = 0; i < parsed.texts.size(); ++i) {
    prompt_tokens += static_cast<int64_t>(tokenizer.encode(parsed.texts[i], false, false).size());
    add(embedder->embed_text(parsed.texts[i]), i);
  }
  for (size_t i = 0; i < parsed.token_lists.size(); ++i) {
    for (size_t j = 0; j < parsed.token_lists[i].size(); ++j) {
      if (parsed.token_lists[i][j] >= tokenizer.vocab_size()) {
        throw bad_request(fmt::format("input[{}]", i), tr("token id {0} is out of range: the vocabulary has ids 0 to {1}",
                                                          "トークン ID {0} は範囲外です。語彙の ID は 0〜{1} です",
                                                          parsed.token_lists[i][j], tokenizer.vocab_size() - 1),
                          "invalid_value");
      }
    }
    prompt_tokens += static_cast<int64_t>(parsed.token_lists[i].size());
    add(embedder->embed_tokens(parsed.token_lists[i]), i);
  }
  send_json(res, 200,
            {{"object", "list"},
             {"data", data},
             {"model", model_id},
             {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}});
}

void HttpServer::Impl::search(const Call& call, httplib::Response& res) {
  const SearchRequest parsed = parse_search_request(parse_body(call.body));
  const std::lock_guard<std::mutex> lock(docs_mutex);
  const SearchResult result = open_docs().search(parsed.query, parsed.k);
  json hits = json::array();
  for (const SearchHit& h : result.hits) {
    json hit = {{"path", h.path},         {"score", h.score},     {"line_start", h.line_start},
                {"line_end", h.line_end}, {"heading", h.heading}, {"text", h.text}};
    if (h.page > 0) hit["page"] = h.page;
    hits.push_back(std::move(hit));
  }
  send_json(res, 200,
            {{"object", "list"},
             {"data", hits},
             {"coverage", result.coverage},
             {"not_in_documents", should_refuse(result)},
             {"search_ms", 1000 * result.seconds}});
}

// The page and its scripts, with a strict Content-Security-Policy: this origin's scripts
// and styles only, no inline code, nothing fetched from elsewhere.
void HttpServer::Impl::web_page(const Call& call, httplib::Response& res) {
  for (const WebAsset& asset : web_assets()) {
    if (call.path != asset.path) continue;
    res.status = 200;
    res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, std::string(asset.content_type) + "; charset=utf-8");
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                   "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    res.set_header("Referrer-Policy", "no-referrer");  // nosniff and no-store are on every response
    return;
  }
  throw ApiError(404, "invalid_request_error", "not_found", "", tr("no such page: {0}", "そのページはありません: {0}", call.path));
}

// The recorder's samples after `since` seconds (all without it), for live charts.
void HttpServer::Impl::timeline_route(const Call& call, httplib::Response& res) {
  const TimelineRecorder* recorder = timeline.load();
  if (recorder == nullptr) {
    throw ApiError(404, "invalid_request_error", "no_timeline", "",
                   pick("this server records no timeline", "このサーバーはタイムラインを記録していません").data());
  }
  double since = -1;
  if (call.request->has_param("since")) {
    try {
      since = std::stod(call.request->get_param_value("since"));
    } catch (const std::exception&) {
      throw bad_request("since", pick("'since' must be a number of seconds", "'since' は秒数でなければなりません").data(), "invalid_value");
    }
  }
  json samples = json::array();
  for (const TimelineSample& s : recorder->samples()) {
    if (s.t <= since) continue;
    samples.push_back({{"t", s.t},
                       {"process_cpu_percent", s.process_cpu_percent},
                       {"machine_cpu_percent", s.machine_cpu_percent},
                       {"rss_bytes", s.rss_bytes},
                       {"model_resident_bytes", s.model_resident_bytes}});
  }
  json marks = json::array();
  for (const TimelineMark& m : recorder->marks()) marks.push_back({{"t", m.t}, {"phase", m.phase}});
  send_json(res, 200,
            {{"now", recorder->elapsed_seconds()},
             {"cpu_count", recorder->cpu_count()},
             {"watched_bytes", recorder->watched_bytes()},
             {"marks", marks},
             {"samples", samples}});
}

DocIndex& HttpServer::Impl::open_docs() {
  if (!docs) {
    const std::filesystem::path path = options.db.empty() ? DocIndex::default_path() : std::filesystem::path(options.db);
    try {
      docs = std::make_unique<DocIndex>(path, false);
    } catch (const Error& e) {
      throw ApiError(404, "invalid_request_error", "no_document_index", "",
                     tr("no document index is open: {0} (start koto serve with --db, after koto index)",
                        "文書索引を開けません: {0} (koto index の後、koto serve を --db 付きで起動してください)", e.what()));
    }
  }
  return *docs;
}

// The documents do not say: the fixed sentence, in the shape of a normal answer, without
// running the model.
void HttpServer::Impl::grounded_refusal(const ChatCompletionRequest& parsed, const json& sources, httplib::Response& res) {
  const ResponseIdentity who{new_id("chatcmpl-"), static_cast<int64_t>(std::time(nullptr)), model_id};
  t_log.id = who.id;
  t_log.note = "not-in-documents";
  RequestStats stats;
  stats.stop_reason = StopReason::kEndOfGeneration;
  const std::string text(kNotInDocuments);
  if (!parsed.params.stream) {
    json body = chat_completion_json(who, text, stats);
    body["koto_sources"] = sources;
    body["koto_not_in_documents"] = true;
    send_json(res, 200, body);
    return;
  }
  std::string events = sse_event(chat_chunk_json(who, {{"role", "assistant"}, {"content", ""}}, std::nullopt, parsed.params.include_usage));
  events += sse_event(chat_chunk_json(who, {{"content", text}}, std::nullopt, parsed.params.include_usage));
  json last = chat_chunk_json(who, json::object(), finish_reason(stats.stop_reason), parsed.params.include_usage);
  last["koto_sources"] = sources;
  last["koto_not_in_documents"] = true;
  events += sse_event(last);
  if (parsed.params.include_usage) events += sse_event(usage_chunk_json(who, true, stats));
  events += std::string(kSseDone);
  res.status = 200;
  res.set_content(events, "text/event-stream");
}

// ---- responses of generations ----

void HttpServer::Impl::record_end(const RequestStats& stats, const std::string& text) {
  metrics.observe(stats);
  t_log.stats = stats;
  if (options.log_prompts && log) log(fmt::format("{} answer: {}", t_log.id, text));
}

void HttpServer::Impl::respond(Generation generation, httplib::Response& res) {
  res.status = 200;
  auto g = std::make_shared<Generation>(std::move(generation));
  // Whatever ends the response (the client gone, an error), the request ends with it.
  struct CancelOnRelease {
    explicit CancelOnRelease(std::shared_ptr<RequestHandle> h) : handle(std::move(h)) {}
    CancelOnRelease(const CancelOnRelease&) = delete;
    CancelOnRelease& operator=(const CancelOnRelease&) = delete;
    ~CancelOnRelease() { handle->cancel(); }
    std::shared_ptr<RequestHandle> handle;
  };
  auto guard = std::make_shared<CancelOnRelease>(g->handle);
  // Exactly "text/event-stream": cpp-httplib compresses any other text/* type for clients
  // that accept gzip, and a compressor holds chunks back, which defeats streaming.
  const char* type = g->stream ? "text/event-stream" : "application/json; charset=utf-8";
  res.set_chunked_content_provider(type, [this, g, guard](size_t, httplib::DataSink& sink) {
    const ScopedLanguage language(g->language);
    return g->stream ? stream_events(*g, sink) : collect_events(*g, sink);
  });
}

namespace {

bool write(httplib::DataSink& sink, const std::string& data) { return sink.write(data.data(), data.size()); }

}  // namespace

// The client went away: cancel, and wait (one step, at most a second) for the request's
// last event, so the log line and the metrics still get its numbers.
bool HttpServer::Impl::client_gone(Generation& g) {
  g.handle->cancel();
  t_log.note = "client-gone";
  const auto deadline = Clock::now() + 1s;
  while (Clock::now() < deadline) {
    std::optional<RequestEvent> event = g.handle->next(kClientCheckInterval);
    if (event && event->kind != RequestEvent::Kind::kText) {
      record_end(event->stats, "");
      break;
    }
  }
  write_log(200);  // the status that was sent; httplib writes no log line for an aborted response
  return false;
}

bool HttpServer::Impl::stream_events(Generation& g, httplib::DataSink& sink) {
  auto gone = [&] { return client_gone(g); };
  if (g.chat && !write(sink, sse_event(chat_chunk_json(g.who, {{"role", "assistant"}, {"content", ""}}, std::nullopt,
                                                       g.include_usage)))) {
    return gone();
  }
  std::string text;
  while (true) {
    std::optional<RequestEvent> event = g.handle->next(kClientCheckInterval);
    if (!event) {
      if (!sink.is_writable()) return gone();
      continue;
    }
    if (event->kind == RequestEvent::Kind::kText) {
      text += event->text;
      const json chunk = g.chat ? chat_chunk_json(g.who, {{"content", event->text}}, std::nullopt, g.include_usage)
                                : completion_chunk_json(g.who, event->text, std::nullopt, g.include_usage);
      if (!write(sink, sse_event(chunk))) return gone();
      continue;
    }
    if (event->kind == RequestEvent::Kind::kFailed ||
        (event->stats.stop_reason == StopReason::kCancelled && shutting_down)) {
      const ApiError error = event->kind == RequestEvent::Kind::kFailed
                                 ? ApiError(500, "server_error", "", "", event->error_message)
                                 : unavailable("shutting_down", pick("the server is shutting down; the answer was cut short",
                                                                     "サーバーの終了のため、回答を途中で打ち切りました")
                                                                    .data());
      record_end(event->stats, text);
      write(sink, sse_event(error_body(error)));
      write(sink, std::string(kSseDone));
      sink.done();
      return true;
    }
    const RequestStats& stats = event->stats;
    json last = g.chat ? chat_chunk_json(g.who, json::object(), finish_reason(stats.stop_reason), g.include_usage)
                       : completion_chunk_json(g.who, "", finish_reason(stats.stop_reason), g.include_usage);
    last["timings"] = timings_json(stats);
    if (!g.sources.is_null()) {
      last["koto_sources"] = g.sources;
      last["koto_cited"] = cited_passages(text, static_cast<int>(g.sources.size()));
    }
    record_end(stats, text);
    bool ok = write(sink, sse_event(last));
    if (ok && g.include_usage) ok = write(sink, sse_event(usage_chunk_json(g.who, g.chat, stats)));
    if (ok) ok = write(sink, std::string(kSseDone));
    if (!ok) return gone();
    sink.done();
    return true;
  }
}

bool HttpServer::Impl::collect_events(Generation& g, httplib::DataSink& sink) {
  std::string text;
  while (true) {
    std::optional<RequestEvent> event = g.handle->next(kClientCheckInterval);
    if (!event) {
      if (!sink.is_writable()) return client_gone(g);
      continue;
    }
    if (event->kind == RequestEvent::Kind::kText) {
      text += event->text;
      continue;
    }
    record_end(event->stats, text);
    json body;
    if (event->kind == RequestEvent::Kind::kFailed) {
      body = error_body(ApiError(500, "server_error", "", "", event->error_message));
    } else if (event->stats.stop_reason == StopReason::kCancelled && shutting_down) {
      body = error_body(unavailable("shutting_down", pick("the server is shutting down; the answer was cut short",
                                                          "サーバーの終了のため、回答を途中で打ち切りました")
                                                         .data()));
    } else {
      body = g.chat ? chat_completion_json(g.who, text, event->stats) : completion_json(g.who, text, event->stats);
      if (!g.sources.is_null()) {
        body["koto_sources"] = g.sources;
        body["koto_cited"] = cited_passages(text, static_cast<int>(g.sources.size()));
      }
    }
    const bool ok = write(sink, body.dump(-1, ' ', false, json::error_handler_t::replace));
    if (ok) sink.done();
    return ok;
  }
}

// ---- HttpServer ----

HttpServer::HttpServer(const ServerOptions& options, ApiKeys keys, std::function<void(const std::string&)> log)
    : impl_(std::make_unique<Impl>(options, std::move(keys), std::move(log))) {
  Impl& s = *impl_;
  const int threads = options.http_threads;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.http.set_read_timeout(options.read_timeout_s, 0);
  s.http.set_write_timeout(options.write_timeout_s, 0);
  s.http.set_keep_alive_timeout(options.idle_timeout_s);
  s.http.set_keep_alive_max_count(1000);
  s.http.set_payload_max_length(options.max_body_bytes);
  s.http.set_tcp_nodelay(true);  // SSE chunks are small and must leave at once
  s.register_routes();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  Impl& s = *impl_;
  const std::string& host = s.options.host;
  s.port = s.options.port == 0 ? s.http.bind_to_any_port(host) : (s.http.bind_to_port(host, s.options.port) ? s.options.port : -1);
  if (s.port <= 0) {
    throw Error(ErrorCode::kIo,
                tr("cannot listen on {0}:{1} (in use, or not an address of this machine); choose another with --host/--port",
                   "{0}:{1} で待ち受けできません (使用中か、このマシンのアドレスではありません)。--host/--port で変えてください",
                   host, s.options.port));
  }
  return s.port;
}

void HttpServer::start() {
  Impl& s = *impl_;
  s.listener = std::thread([&s] {
    s.http.listen_after_bind();
    s.listener_done.store(true, std::memory_order_release);
  });
}

void HttpServer::set_model(const Model& model, Scheduler& scheduler, ChatTemplate chat, std::string model_id) {
  Impl& s = *impl_;
  s.model = &model;
  s.scheduler = &scheduler;
  s.chat = std::move(chat);
  s.model_id = std::move(model_id);
  struct stat st {};
  if (::stat(model.file().path().c_str(), &st) == 0) s.model_created = static_cast<int64_t>(st.st_mtime);
  s.limits.max_tokens = s.options.max_tokens > 0 ? s.options.max_tokens : scheduler.n_ctx();
  s.ready.store(true, std::memory_order_release);
}

void HttpServer::set_timeline(const TimelineRecorder* timeline) { impl_->timeline.store(timeline); }

void HttpServer::begin_shutdown() {
  Impl& s = *impl_;
  s.shutting_down = true;
  if (s.scheduler != nullptr) s.scheduler->stop_accepting();
}

void HttpServer::stop() {
  Impl& s = *impl_;
  if (s.listener.joinable()) {
    // httplib's stop() does nothing until the listening thread has marked itself running,
    // so a stop right after start() would leave that thread in accept() for ever: repeat
    // it until the thread is out.
    while (!s.listener_done.load(std::memory_order_acquire)) {
      s.http.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    s.listener.join();
  }
}

}  // namespace koto::server
