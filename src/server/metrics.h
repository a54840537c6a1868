// What /metrics reports, in the Prometheus text format (version 0.0.4): requests by
// route and status, tokens (prompt, cached, generated), slots and queue, time to first
// token and tokens/s histograms, the prefix cache, and the process's memory and CPU.
//
// Thread-safe: every HTTP thread records into one Metrics.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "koto/scheduler.h"

namespace koto::server {

class Metrics {
 public:
  // One finished HTTP request. Routes outside koto's table count as "other", so hostile
  // paths cannot grow the label set.
  void count_request(std::string_view route, int status);
  // One finished generation.
  void observe(const RequestStats& stats);

  // The whole exposition. `status` is null while the model is loading.
  std::string render(const SchedulerStatus* status) const;

 private:
  struct Histogram {
    static constexpr size_t kMaxBuckets = 12;
    std::array<double, kMaxBuckets> bounds{};
    size_t n_bounds = 0;
    std::array<uint64_t, kMaxBuckets + 1> counts{};  // the last: +Inf
    double sum = 0;
    uint64_t count = 0;
    void add(double value);
  };
  static Histogram make(std::initializer_list<double> bounds);
  static void render_histogram(std::string& out, const char* name, const char* help, const Histogram& h);

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  Histogram ttft_ = make({0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
  Histogram tokens_per_second_ = make({1, 2, 5, 10, 20, 30, 50, 100, 200, 500});
  uint64_t cancelled_ = 0;
};

// Process readings from /proc (0 when unreadable).
struct ProcessUsage {
  uint64_t rss_bytes = 0;       // VmRSS
  uint64_t rss_anon_bytes = 0;  // RssAnon: heap and stacks, not the mapped model
  uint64_t rss_file_bytes = 0;  // RssFile: mostly the mapped model
  double cpu_seconds = 0;       // user + system, all threads
};
ProcessUsage process_usage();

}  // namespace koto::server
