#include "server/metrics.h"

#include <sys/resource.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace koto::server {
namespace {

constexpr std::string_view kRoutes[] = {"/health", "/metrics", "/v1/models", "/v1/chat/completions",
                                        "/v1/completions", "/tokenize", "/detokenize"};

}  // namespace

void Metrics::Histogram::add(double value) {
  size_t i = 0;
  while (i < n_bounds && value > bounds[i]) ++i;
  ++counts[i];
  sum += value;
  ++count;
}

Metrics::Histogram Metrics::make(std::initializer_list<double> bounds) {
  Histogram h;
  for (double b : bounds) h.bounds[h.n_bounds++] = b;
  return h;
}

void Metrics::count_request(std::string_view route, int status) {
  std::string label = "other";
  for (std::string_view known : kRoutes) {
    if (route == known) label = std::string(known);
  }
  const std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{label, status}];
}

void Metrics::observe(const RequestStats& stats) {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (stats.stop_reason == StopReason::kCancelled) ++cancelled_;
  if (stats.generated_tokens > 0) ttft_.add(stats.time_to_first_token_seconds);
  if (stats.generated_tokens > 1 && stats.generation_seconds > 0) tokens_per_second_.add(stats.tokens_per_second());
}

void Metrics::render_histogram(std::string& out, const char* name, const char* help, const Histogram& h) {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.n_bounds; ++i) {
    cumulative += h.counts[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds[i], cumulative);
  }
  cumulative += h.counts[h.n_bounds];
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cumulative, name, h.sum, name, h.count);
}

std::string Metrics::render(const SchedulerStatus* status) const {
  std::string out;
  auto gauge = [&out](const char* name, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, value);
  };
  auto counter = [&out](const char* name, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, value);
  };
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    out += "# HELP koto_requests_total HTTP requests answered, by route and status.\n# TYPE koto_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      out += fmt::format("koto_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
    }
    counter("koto_requests_cancelled_total", "Generations stopped early (client gone, shutdown).", cancelled_);
    render_histogram(out, "koto_time_to_first_token_seconds", "From the request's arrival to its first token.", ttft_);
    render_histogram(out, "koto_generation_tokens_per_second", "Generation speed of each request.", tokens_per_second_);
  }
  gauge("koto_model_loaded", "1 once the model is loaded and requests are served.", status != nullptr ? 1 : 0);
  if (status != nullptr) {
    counter("koto_prompt_tokens_total", "Prompt tokens of finished requests.", status->prompt_tokens);
    counter("koto_cached_prompt_tokens_total", "Prompt tokens restored from a cache instead of evaluated.",
            status->cached_prompt_tokens);
    counter("koto_generated_tokens_total", "Tokens generated.", status->generated_tokens);
    counter("koto_lookup_drafted_tokens_total", "Tokens guessed by lookup decoding (finished requests).",
            status->lookup_drafted_tokens);
    counter("koto_lookup_accepted_tokens_total", "Guessed tokens that were kept, each a forward pass saved.",
            status->lookup_accepted_tokens);
    counter("koto_forward_passes_total", "Forward passes (steps) of the scheduler.", status->steps);
    gauge("koto_slots", "Sequence slots (--parallel).", status->slots);
    gauge("koto_slots_active", "Slots serving a request now.", status->busy_slots);
    gauge("koto_queue_depth", "Requests waiting for a slot.", status->queued);
    gauge("koto_prefix_cache_memory_bytes", "KV bytes held by the prefix cache in memory.", status->cache.memory_bytes);
    gauge("koto_prefix_cache_disk_bytes", "Bytes of the prefix cache's files.", status->cache.disk_bytes);
    counter("koto_prefix_cache_hit_tokens_total", "Positions restored from the prefix cache.", status->cache.hit_tokens);
    counter("koto_prefix_cache_disk_loads_total", "Blocks read back from disk.", status->cache.disk_loads);
    counter("koto_prefix_cache_rejected_files_total", "Damaged or foreign cache files ignored.", status->cache.rejected_files);
  }
  const ProcessUsage usage = process_usage();
  gauge("process_resident_memory_bytes", "Resident memory (VmRSS).", usage.rss_bytes);
  gauge("koto_process_resident_anonymous_bytes", "Resident anonymous memory (RssAnon): everything but mapped files.",
        usage.rss_anon_bytes);
  gauge("koto_process_resident_file_bytes", "Resident file-backed memory (RssFile): mostly the mapped model.",
        usage.rss_file_bytes);
  counter("process_cpu_seconds_total", "User and system CPU time of all threads.", usage.cpu_seconds);
  return out;
}

ProcessUsage process_usage() {
  ProcessUsage usage;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    std::istringstream fields(line);
    std::string key;
    uint64_t kib = 0;
    fields >> key >> kib;
    if (key == "VmRSS:") usage.rss_bytes = kib * 1024;
    if (key == "RssAnon:") usage.rss_anon_bytes = kib * 1024;
    if (key == "RssFile:") usage.rss_file_bytes = kib * 1024;
  }
  rusage self {};
  if (getrusage(RUSAGE_SELF, &self) == 0) {
    usage.cpu_seconds = static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                        static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  }
  return usage;
}

}  // namespace koto::server
