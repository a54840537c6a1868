#include "koto/run_stats.h"

#include <fmt/format.h>
#include <sched.h>
#include <sys/resource.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>
#include <thread>

#include "koto/i18n.h"

namespace koto {
namespace {

double ratio(double a, double b) { return b > 0.0 ? a / b : 0.0; }

// A "Key:   123 kB" line of a /proc file, in bytes; 0 when absent.
uint64_t read_proc_kb(const char* path, std::string_view key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == ':') {
      try {
        return std::stoull(line.substr(key.size() + 1)) * 1024;
      } catch (const std::exception&) {
        return 0;
      }
    }
  }
  return 0;
}

struct CpuTimes {
  double user = 0.0;
  double system = 0.0;
};

CpuTimes cpu_times() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return {};
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return {seconds(usage.ru_utime), seconds(usage.ru_stime)};
}

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0)); }

}  // namespace

double RunStats::prompt_tokens_per_second() const { return ratio(prompt_tokens, prompt_seconds); }

double RunStats::generation_tokens_per_second() const {
  return generated_tokens > 1 ? ratio(generated_tokens - 1, generation_seconds) : 0.0;
}

double RunStats::chars_per_second() const { return ratio(static_cast<double>(output_chars), generation_seconds); }

double RunStats::cpu_percent_of_one_core() const {
  return 100.0 * ratio(cpu_user_seconds + cpu_system_seconds, total_seconds);
}

double RunStats::cpu_percent_of_all_cores() const {
  return cpu_count > 0 ? cpu_percent_of_one_core() / cpu_count : 0.0;
}

std::string format_run_stats(const RunStats& s) {
  std::string out;
  auto line = [&out](std::string text) {
    out += text;
    out += '\n';
  };
  line(tr("--- run statistics{0} ---", "--- 実行統計{0} ---", s.model.empty() ? "" : " (" + s.model + ")"));
  line(tr("load:            {0:.2f} s", "読み込み:        {0:.2f} 秒", s.load_seconds));
  line(tr("prompt:          {0} tokens in {1:.2f} s ({2:.1f} tokens/s)",
          "プロンプト:      {0} トークン / {1:.2f} 秒 (毎秒 {2:.1f} トークン)", s.prompt_tokens, s.prompt_seconds,
          s.prompt_tokens_per_second()));
  line(tr("first token:     {0:.2f} s after the request ({1:.2f} s after start)",
          "最初のトークン:  依頼から {0:.2f} 秒 (起動から {1:.2f} 秒)", s.time_to_first_token_seconds,
          s.load_seconds + s.time_to_first_token_seconds));
  if (s.time_to_first_text_seconds > 0.0) {
    line(tr("first character: {0:.2f} s after the request", "最初の文字:      依頼から {0:.2f} 秒",
            s.time_to_first_text_seconds));
  }
  line(tr("generation:      {0} tokens in {1:.2f} s ({2:.1f} tokens/s)",
          "生成:            {0} トークン / {1:.2f} 秒 (毎秒 {2:.1f} トークン)", s.generated_tokens,
          s.generation_seconds, s.generation_tokens_per_second()));
  line(tr("output:          {0} characters ({1:.1f} characters/s), {2} bytes",
          "出力:            {0} 文字 (毎秒 {1:.1f} 文字), {2} バイト", s.output_chars, s.chars_per_second(),
          s.output_bytes));
  if (s.lookup_drafted > 0) {
    line(tr("lookup:          {0} of {1} guessed tokens kept (each one a forward pass saved)",
            "先読み:          推測した {1} トークンのうち {0} を採用 (1 つごとに順伝播 1 回を節約)", s.lookup_accepted,
            s.lookup_drafted));
  }
  line(tr("stopped by:      {0}", "停止理由:        {0}", s.stop_reason.empty() ? "-" : s.stop_reason));
  line(tr("peak memory:     {0} (resident, from the OS)", "最大メモリ:      {0} (常駐、OS の計測値)",
          mib(s.peak_rss_bytes)));
  line(tr("CPU:             {0:.0f}% of one core, {1:.0f}% of {2} CPUs ({3} threads, {4:.2f} s user + {5:.2f} s "
          "system in {6:.2f} s)",
          "CPU:             1 コアの {0:.0f}%、全 {2} CPU の {1:.0f}% ({3} スレッド、ユーザー {4:.2f} 秒 + "
          "システム {5:.2f} 秒 / {6:.2f} 秒)",
          s.cpu_percent_of_one_core(), s.cpu_percent_of_all_cores(), s.cpu_count, s.threads, s.cpu_user_seconds,
          s.cpu_system_seconds, s.total_seconds));
  line(tr("seed:            {0}", "シード:          {0}", s.seed));
  return out;
}

std::string run_stats_json(const RunStats& s) {
  const nlohmann::json j = {
      {"model", s.model},
      {"n_ctx", s.n_ctx},
      {"threads", s.threads},
      {"cpu_count", s.cpu_count},
      {"load_s", s.load_seconds},
      {"prompt_tokens", s.prompt_tokens},
      {"prompt_s", s.prompt_seconds},
      {"prompt_tokens_per_s", s.prompt_tokens_per_second()},
      {"time_to_first_token_s", s.time_to_first_token_seconds},
      {"time_to_first_text_s", s.time_to_first_text_seconds},
      {"generated_tokens", s.generated_tokens},
      {"generation_s", s.generation_seconds},
      {"generation_tokens_per_s", s.generation_tokens_per_second()},
      {"output_bytes", s.output_bytes},
      {"output_chars", s.output_chars},
      {"chars_per_s", s.chars_per_second()},
      {"stop_reason", s.stop_reason},
      {"seed", s.seed},
      {"lookup_drafted", s.lookup_drafted},
      {"lookup_accepted", s.lookup_accepted},
      {"total_s", s.total_seconds},
      {"cpu_user_s", s.cpu_user_seconds},
      {"cpu_system_s", s.cpu_system_seconds},
      {"cpu_percent_of_one_core", s.cpu_percent_of_one_core()},
      {"cpu_percent_of_all_cores", s.cpu_percent_of_all_cores()},
      {"peak_rss_bytes", s.peak_rss_bytes},
  };
  // Model names come from files: replace invalid UTF-8 rather than throw.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

uint64_t peak_rss_bytes() {
  if (const uint64_t hwm = read_proc_kb("/proc/self/status", "VmHWM")) return hwm;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // kilobytes on Linux
}

uint64_t available_memory_bytes() { return read_proc_kb("/proc/meminfo", "MemAvailable"); }

int available_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

UsageMeter::UsageMeter() : start_(std::chrono::steady_clock::now()) {
  const CpuTimes t = cpu_times();
  user_start_ = t.user;
  system_start_ = t.system;
}

double UsageMeter::wall_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void UsageMeter::fill(RunStats& stats) const {
  const CpuTimes t = cpu_times();
  stats.total_seconds = wall_seconds();
  stats.cpu_user_seconds = t.user - user_start_;
  stats.cpu_system_seconds = t.system - system_start_;
  stats.peak_rss_bytes = peak_rss_bytes();
  if (stats.cpu_count == 0) stats.cpu_count = available_cpu_count();
}

}  // namespace koto
