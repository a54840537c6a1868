// koto's HTTP server: the OpenAI-compatible API over a Scheduler, on cpp-httplib.
//
// Routes are rows of one table (kRoutes in http_server.cpp: method, path, whether an API
// key is needed, whether the model must be loaded, handler). Handlers parse with
// api_types.h, submit to the scheduler and format; nothing here generates text.
//
// Life cycle: bind() (port 0: any free port) and start() before the model is loaded, so
// /health answers 503 "loading" meanwhile; set_model() makes every route work;
// begin_shutdown() turns new generation requests and /health away (503) while running
// answers go on; stop() closes the listener and waits for the handlers.
//
// Per request: the language of messages from Accept-Language; the prefix-cache partition
// from the API key; a client that goes away (detected within ~50 ms, also while its
// prompt is processed or it waits in the queue) cancels its request; one log line when
// it ends (never prompt text unless --log-prompts).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "koto/chat_template.h"
#include "koto/model.h"
#include "koto/scheduler.h"
#include "server/api_keys.h"
#include "server/server_options.h"

namespace koto {
class TimelineRecorder;
}

namespace koto::server {

class HttpServer {
 public:
  // `log` receives one line per request and per notable event (thread-safe calls).
  HttpServer(const ServerOptions& options, ApiKeys keys, std::function<void(const std::string&)> log);
  ~HttpServer();  // stops if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port; returns the port. Throws koto::Error(kIo) naming the address.
  int bind();
  // Serves on background threads.
  void start();
  // The model is ready. `model`, `scheduler` must outlive the server (or its stop()).
  void set_model(const Model& model, Scheduler& scheduler, ChatTemplate chat, std::string model_id);
  // GET /v1/koto/timeline serves this recorder's samples (it must outlive the server);
  // without one the route answers 404.
  void set_timeline(const TimelineRecorder* timeline);
  // New generation requests and /health get 503; running answers go on.
  void begin_shutdown();
  // Closes the listener and waits for every handler to end (cancel running answers first).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace koto::server
