// The cost of a run over time: a recorder samples, every ~100 ms from start to exit, the
// process's CPU use, the whole machine's (/proc/stat), the process's resident memory and
// how much of the model file is resident (mincore on its mapping), and takes phase
// marks (start, load, prompt processing, first token, generation, idle). It writes the
// picture the story's developer had to make by hand from Task Manager: a self-contained
// SVG (no network resources) with time on x, CPU % and memory on y, shaded and labelled
// phases (Japanese labels, English by locale) and the headline figures in a caption;
// and the samples as JSON for people who plot their own.
//
// Thread-safety: mark(), samples() and marks() may be called from any thread; the
// recorder's own thread samples until stop() or destruction.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace koto {

struct TimelineSample {
  double t = 0;                    // seconds since the recorder started
  double process_cpu_percent = 0;  // of ONE core over the last interval (2 busy threads: ~200)
  double machine_cpu_percent = 0;  // of ALL cores, every process (/proc/stat)
  uint64_t rss_bytes = 0;          // the process's resident memory
  uint64_t model_resident_bytes = 0;  // pages of the watched file in memory (mincore)
};

struct TimelineMark {
  double t = 0;
  std::string phase;  // "start", "load", "prompt", "first_token", "generation", "idle", "end", or free text
};

// The figures of the caption; 0 leaves one out.
struct TimelineHeadline {
  std::string title;             // e.g. the model's file name
  double load_seconds = 0;
  double time_to_first_token_seconds = 0;
  double tokens_per_second = 0;
  double chars_per_second = 0;
};

class TimelineRecorder {
 public:
  // Starts sampling at once (a "start" mark at 0). `max_samples` bounds memory for a
  // long-running server (the oldest samples go first).
  explicit TimelineRecorder(std::chrono::milliseconds interval = std::chrono::milliseconds(100),
                            size_t max_samples = 100000);
  ~TimelineRecorder();
  TimelineRecorder(const TimelineRecorder&) = delete;
  TimelineRecorder& operator=(const TimelineRecorder&) = delete;

  // Samples how much of [data, data + size) (a mapped file) is resident from now on.
  void watch_mapping(const void* data, size_t size);
  void mark(std::string phase);
  // Takes one last sample and stops the thread (idempotent).
  void stop();

  double elapsed_seconds() const;
  size_t cpu_count() const;
  uint64_t watched_bytes() const;
  std::vector<TimelineSample> samples() const;
  std::vector<TimelineMark> marks() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The samples, marks and headline as JSON: {"cpu_count", "watched_bytes", "headline",
// "marks": [{"t","phase"}], "samples": [{"t","process_cpu_percent","machine_cpu_percent",
// "rss_bytes","model_resident_bytes"}]}.
std::string timeline_json(const TimelineRecorder& recorder, const TimelineHeadline& headline);

// A self-contained SVG picture of the run (labels in the current language).
std::string timeline_svg(const TimelineRecorder& recorder, const TimelineHeadline& headline);

// Writes `path` (the SVG; an .html path gets the SVG inside a minimal page) and
// `path` + ".json". Throws koto::Error(kIo) naming the file.
void write_timeline(const std::string& path, const TimelineRecorder& recorder, const TimelineHeadline& headline);

}  // namespace koto
