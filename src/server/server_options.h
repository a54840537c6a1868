// Every setting of `koto serve`, with its default, its environment variable and its help
// in both languages, in one table (kServerOptions in server_options.cpp). The command
// line wins over the environment, the environment over the default.
//
// Safe defaults: loopback only, a 4 MiB body limit, timeouts on slow clients, no CORS,
// no prompt text in the logs. Listening on any other address needs an API key (file or
// KOTO_API_KEY) unless --insecure-no-api-key is given.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <variant>

namespace koto::server {

struct ServerOptions {
  std::string model;              // GGUF file (required)
  std::string alias;              // the model's id in the API; "" → the file name without .gguf
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (printed, and written to port_file)
  std::string port_file;          // write the port here once listening (scripts, tests)
  int n_ctx = 0;                  // per slot; 0: min(n_ctx_train, 4096)
  int parallel = 4;               // sequence slots
  int lookup = 6;
  std::string kv_type = "f16";          // f16 or q8_0 (cli/kv_type.h)                 // lookup decoding's most guessed tokens per step; 0: off
  int queue = 16;                 // requests waiting beyond the free slots
  int batch = 64;                 // rows per forward pass
  int threads = 0;                // 0: one per physical core
  int cache_mb = 1024;            // prefix cache in memory; 0: off
  std::string cache_dir;          // prefix cache on disk; "": off
  int cache_disk_mb = 4096;
  std::string api_key_file;
  bool insecure_no_api_key = false;
  std::string cors_origin;        // "": no CORS headers at all
  uint64_t max_body_bytes = 4ull << 20;
  int max_tokens = 0;             // the most one request may ask for; 0: the context size
  int read_timeout_s = 30;        // a client that sends nothing for this long is dropped
  int write_timeout_s = 30;       // a client that reads nothing for this long is dropped (and its answer cancelled)
  int idle_timeout_s = 5;         // keep-alive connections idle this long are closed
  int http_threads = 32;          // connections served at once
  int shutdown_timeout_s = 30;    // SIGINT/SIGTERM: running answers get this long to finish
  bool log_prompts = false;
  std::string system_prompt;      // used when a chat request has no system message
  std::string chat_template;      // "": the model's own
  std::string db;                 // document index for /v1/search; "": koto's default one, when it exists
};

struct ServerOptionRow {
  const char* flags;    // CLI11 names, e.g. "-p,--port"
  const char* env;      // environment variable, or nullptr
  const char* help_en;
  const char* help_ja;
  std::variant<std::string ServerOptions::*, int ServerOptions::*, uint64_t ServerOptions::*, bool ServerOptions::*> field;
  int64_t min = 0;      // numeric options: the allowed range
  int64_t max = 0;
};

std::span<const ServerOptionRow> server_option_rows();

// Registers every row on `command`, bound to `options` (defaults shown in --help).
void add_server_options(CLI::App& command, ServerOptions& options);

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

}  // namespace koto::server
