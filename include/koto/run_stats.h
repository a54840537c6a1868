// What one answer cost: times, speeds, memory and CPU, measured (never estimated).
//
// Memory and CPU come from the operating system: peak resident memory from
// /proc/self/status (VmHWM), falling back to getrusage's ru_maxrss; CPU time from
// getrusage(RUSAGE_SELF) (all threads, user + system). Times are from
// std::chrono::steady_clock. Everything here is Linux-first; on other systems the
// /proc readings fall back or read 0.
//
// The generator fills the generation fields, the front end the rest (load time,
// threads, process totals through UsageMeter). RunStats is a plain value.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace koto {

struct RunStats {
  std::string model;                      // file name or general.name, for the report
  int32_t n_ctx = 0;                      // context size of the session
  int threads = 0;                        // worker threads used by the engine
  int cpu_count = 0;                      // CPUs this process may run on

  double load_seconds = 0.0;              // Model::load
  int32_t prompt_tokens = 0;              // tokens evaluated for the prompt (prefill)
  double prompt_seconds = 0.0;            // prefill wall time
  double time_to_first_token_seconds = 0.0;  // request start (after load) → first token chosen
  double time_to_first_text_seconds = 0.0;   // request start → first printable character (0: none)
  int32_t generated_tokens = 0;           // tokens chosen, end-of-generation token included
  double generation_seconds = 0.0;        // first token chosen → end (covers generated_tokens - 1 steps)
  uint64_t output_bytes = 0;              // UTF-8 bytes of the printed answer
  uint64_t output_chars = 0;              // characters (code points) of the printed answer
  std::string stop_reason;                // "eos", "max_tokens", "stop_string", "context_full", "cancelled"
  uint64_t seed = 0;                      // sampler seed actually used
  int32_t lookup_drafted = 0;             // tokens guessed by lookup decoding
  int32_t lookup_accepted = 0;            // of them, kept (each saved one forward pass)

  double total_seconds = 0.0;             // wall time of the whole command
  double cpu_user_seconds = 0.0;          // over total_seconds, all threads
  double cpu_system_seconds = 0.0;
  uint64_t peak_rss_bytes = 0;            // high-water mark of resident memory

  // Derived values; 0 when the interval is empty.
  double prompt_tokens_per_second() const;
  double generation_tokens_per_second() const;  // (generated_tokens - 1) / generation_seconds
  double chars_per_second() const;              // output_chars / generation_seconds
  double cpu_percent_of_one_core() const;       // 100 = one core busy all the time
  double cpu_percent_of_all_cores() const;      // 100 = every allowed CPU busy
};

// A human-readable block in the current language (koto/i18n.h), several lines, ending
// with a newline.
std::string format_run_stats(const RunStats& stats);

// One JSON object with English keys and units in the names ("load_s",
// "peak_rss_bytes", ...), derived values included; pretty-printed.
std::string run_stats_json(const RunStats& stats);

// Process measurements.
uint64_t peak_rss_bytes();         // VmHWM, else ru_maxrss; 0 if neither is readable
uint64_t available_memory_bytes(); // /proc/meminfo MemAvailable; 0 when unknown
int available_cpu_count();         // sched_getaffinity, else hardware_concurrency

// Wall and CPU time since construction; fills the process fields of a RunStats.
class UsageMeter {
 public:
  UsageMeter();
  double wall_seconds() const;
  // Sets total_seconds, cpu_user_seconds, cpu_system_seconds, peak_rss_bytes and
  // cpu_count (when 0).
  void fill(RunStats& stats) const;

 private:
  std::chrono::steady_clock::time_point start_;
  double user_start_ = 0.0;
  double system_start_ = 0.0;
};

}  // namespace koto
