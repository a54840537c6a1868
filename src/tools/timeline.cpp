#include "koto/timeline.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "koto/error.h"
#include "koto/i18n.h"

namespace koto {
namespace {

using Clock = std::chrono::steady_clock;

double process_cpu_seconds() {
  rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Busy and total jiffies of all CPUs (/proc/stat's first line).
std::pair<uint64_t, uint64_t> machine_jiffies() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const uint64_t busy = user + nice + system + irq + softirq + steal;
  return {busy, busy + idle + iowait};
}

uint64_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::string phase_label(const std::string& phase) {
  struct Row {
    const char* key;
    const char* en;
    const char* ja;
  };
  static constexpr Row kPhases[] = {{"start", "start", "開始"},
                                    {"load", "load", "読み込み"},
                                    {"weights", "weights into memory", "重みをメモリへ"},
                                    {"prompt", "prompt", "プロンプト処理"},
                                    {"first_token", "first token", "最初のトークン"},
                                    {"generation", "generation", "生成"},
                                    {"idle", "idle", "待機"},
                                    {"end", "end", "終了"}};
  for (const Row& r : kPhases) {
    if (phase == r.key) return std::string(pick(r.en, r.ja));
  }
  return phase;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

struct TimelineRecorder::State {
  std::chrono::milliseconds interval;
  size_t max_samples;
  Clock::time_point start = Clock::now();
  size_t cpus = std::max<long>(1, ::sysconf(_SC_NPROCESSORS_ONLN));
  mutable std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::deque<TimelineSample> samples;
  std::vector<TimelineMark> marks;
  const void* watched = nullptr;
  size_t watched_size = 0;
  std::vector<unsigned char> pages;  // mincore's output, reused
  double last_cpu = process_cpu_seconds();
  std::pair<uint64_t, uint64_t> last_jiffies = machine_jiffies();
  Clock::time_point last_time = start;
  std::thread thread;

  uint64_t watched_resident() {
    if (watched == nullptr || watched_size == 0) return 0;
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(watched) / page * page;
    const size_t length = reinterpret_cast<uintptr_t>(watched) + watched_size - begin;
    pages.resize((length + page - 1) / page);
    if (::mincore(reinterpret_cast<void*>(begin), length, pages.data()) != 0) return 0;
    uint64_t resident = 0;
    for (unsigned char p : pages) resident += p & 1;
    return std::min<uint64_t>(resident * page, watched_size);
  }

  void sample() {
    const Clock::time_point now = Clock::now();
    const double cpu = process_cpu_seconds();
    const auto jiffies = machine_jiffies();
    const double wall = std::chrono::duration<double>(now - last_time).count();
    TimelineSample s;
    s.t = std::chrono::duration<double>(now - start).count();
    s.process_cpu_percent = wall > 0 ? 100.0 * (cpu - last_cpu) / wall : 0;
    const uint64_t total = jiffies.second - last_jiffies.second;
    s.machine_cpu_percent = total > 0 ? 100.0 * static_cast<double>(jiffies.first - last_jiffies.first) / static_cast<double>(total) : 0;
    s.rss_bytes = resident_bytes();
    s.model_resident_bytes = watched_resident();
    last_cpu = cpu;
    last_jiffies = jiffies;
    last_time = now;
    samples.push_back(s);
    while (samples.size() > max_samples) samples.pop_front();
  }

  void run() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      wake.wait_for(lock, interval, [&] { return stopping; });
      if (stopping) break;
      sample();
    }
  }
};

TimelineRecorder::TimelineRecorder(std::chrono::milliseconds interval, size_t max_samples)
    : state_(std::make_unique<State>()) {
  state_->interval = interval;
  state_->max_samples = std::max<size_t>(2, max_samples);
  state_->marks.push_back({0, "start"});
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

TimelineRecorder::~TimelineRecorder() { stop(); }

void TimelineRecorder::watch_mapping(const void* data, size_t size) {
  const std::lock_guard lock(state_->mutex);
  state_->watched = data;
  state_->watched_size = size;
}

void TimelineRecorder::mark(std::string phase) {
  const std::lock_guard lock(state_->mutex);
  state_->marks.push_back({std::chrono::duration<double>(Clock::now() - state_->start).count(), std::move(phase)});
}

void TimelineRecorder::stop() {
  {
    const std::lock_guard lock(state_->mutex);
    if (state_->stopping) return;
    state_->stopping = true;
    state_->sample();
  }
  state_->wake.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
}

double TimelineRecorder::elapsed_seconds() const { return std::chrono::duration<double>(Clock::now() - state_->start).count(); }
size_t TimelineRecorder::cpu_count() const { return state_->cpus; }
uint64_t TimelineRecorder::watched_bytes() const {
  const std::lock_guard lock(state_->mutex);
  return state_->watched_size;
}

std::vector<TimelineSample> TimelineRecorder::samples() const {
  const std::lock_guard lock(state_->mutex);
  return {state_->samples.begin(), state_->samples.end()};
}

std::vector<TimelineMark> TimelineRecorder::marks() const {
  const std::lock_guard lock(state_->mutex);
  return state_->marks;
}

std::string timeline_json(const TimelineRecorder& recorder, const TimelineHeadline& h) {
  nlohmann::json marks = nlohmann::json::array();
  for (const TimelineMark& m : recorder.marks()) marks.push_back({{"t", m.t}, {"phase", m.phase}});
  nlohmann::json samples = nlohmann::json::array();
  for (const TimelineSample& s : recorder.samples()) {
    samples.push_back({{"t", s.t},
                       {"process_cpu_percent", s.process_cpu_percent},
                       {"machine_cpu_percent", s.machine_cpu_percent},
                       {"rss_bytes", s.rss_bytes},
                       {"model_resident_bytes", s.model_resident_bytes}});
  }
  const nlohmann::json out = {{"cpu_count", recorder.cpu_count()},
                              {"watched_bytes", recorder.watched_bytes()},
                              {"headline",
                               {{"title", h.title},
                                {"load_seconds", h.load_seconds},
                                {"time_to_first_token_seconds", h.time_to_first_token_seconds},
                                {"tokens_per_second", h.tokens_per_second},
                                {"chars_per_second", h.chars_per_second}}},
                              {"marks", marks},
                              {"samples", samples}};
  return out.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string timeline_svg(const TimelineRecorder& recorder, const TimelineHeadline& h) {
  const std::vector<TimelineSample> samples = recorder.samples();
  const std::vector<TimelineMark> marks = recorder.marks();
  constexpr double kWidth = 960, kLeft = 70, kRight = 70, kTop = 60, kPanel = 170, kGap = 40;
  const double plot_w = kWidth - kLeft - kRight;
  const double height = kTop + 2 * kPanel + kGap + 110;
  double t_end = samples.empty() ? 1 : samples.back().t;
  for (const TimelineMark& m : marks) t_end = std::max(t_end, m.t);
  t_end = std::max(t_end, 0.1);
  const double cpus = static_cast<double>(recorder.cpu_count());
  uint64_t peak = 0;
  for (const TimelineSample& s : samples) peak = std::max({peak, s.rss_bytes, s.model_resident_bytes});
  const double mem_max_gb = std::max(0.1, std::ceil(static_cast<double>(peak) / 1e9 * 1.15 * 10) / 10);
  auto x = [&](double t) { return kLeft + plot_w * t / t_end; };
  const double cpu_top = kTop, mem_top = kTop + kPanel + kGap;
  auto y_cpu = [&](double percent_of_all) { return cpu_top + kPanel * (1 - std::clamp(percent_of_all, 0.0, 100.0) / 100); };
  auto y_mem = [&](double bytes) { return mem_top + kPanel * (1 - std::clamp(bytes / 1e9 / mem_max_gb, 0.0, 1.0)); };

  std::ostringstream svg;
  svg << fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{0:.0f}" height="{1:.0f}" viewBox="0 0 {0:.0f} {1:.0f}" font-family="sans-serif" font-size="12">)",
                     kWidth, height)
      << "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>\n", kLeft,
                     xml_escape(tr("The cost of the run: {0}", "実行の費用: {0}", h.title)));
  // Phases: bands from each mark to the next, alternately shaded, labelled at the top.
  static constexpr const char* kShades[] = {"#e8f0fe", "#fef7e0", "#e6f4ea", "#fce8e6", "#f3e8fd", "#e0f7fa"};
  // "first_token" is a moment, not a phase: a line of its own, drawn over the bands.
  std::vector<TimelineMark> bands;
  std::vector<TimelineMark> moments;
  for (const TimelineMark& m : marks) (m.phase == "first_token" ? moments : bands).push_back(m);
  for (size_t i = 0; i < bands.size(); ++i) {
    const std::vector<TimelineMark>& marks = bands;
    const double t0 = marks[i].t;
    const double t1 = i + 1 < marks.size() ? marks[i + 1].t : t_end;
    if (t1 - t0 < t_end * 0.002 && i + 1 < marks.size()) continue;  // no room for a label
    const char* shade = kShades[i % (sizeof(kShades) / sizeof(kShades[0]))];
    for (double top : {cpu_top, mem_top}) {
      svg << fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", x(t0), top,
                         std::max(0.5, x(t1) - x(t0)), kPanel, shade);
    }
    svg << fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#9aa0a6\" stroke-dasharray=\"3,3\"/>\n",
                       x(t0), cpu_top - 12, mem_top + kPanel);
    svg << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#3c4043\">{}</text>\n", x(t0) + 2, cpu_top - 4 - 12.0 * static_cast<double>(i % 2),
                       xml_escape(phase_label(marks[i].phase)));
  }
  for (const TimelineMark& m : moments) {
    svg << fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#d93025\" stroke-width=\"1.5\"/>\n"
                       "<text x=\"{3:.1f}\" y=\"{4:.1f}\" fill=\"#d93025\" text-anchor=\"end\">{5}</text>\n",
                       x(m.t), kTop - 12, kTop + 2 * kPanel + kGap, x(m.t) - 3, kTop + kPanel + 16, xml_escape(phase_label(m.phase)));
  }
  // Axes and grid.
  for (int p = 0; p <= 100; p += 25) {
    svg << fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#dadce0\"/>", kLeft, kLeft + plot_w, y_cpu(p), y_cpu(p))
        << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{} %</text>\n", kLeft - 6, y_cpu(p) + 4, p);
  }
  for (int i = 0; i <= 4; ++i) {
    const double gb = mem_max_gb * i / 4;
    svg << fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#dadce0\"/>", kLeft, kLeft + plot_w, y_mem(gb * 1e9), y_mem(gb * 1e9))
        << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.2f} GB</text>\n", kLeft - 6, y_mem(gb * 1e9) + 4, gb);
  }
  const int ticks = 8;
  for (int i = 0; i <= ticks; ++i) {
    const double t = t_end * i / ticks;
    svg << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.1f}</text>\n", x(t), mem_top + kPanel + 16, t);
  }
  svg << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", kLeft + plot_w / 2, mem_top + kPanel + 32,
                     xml_escape(std::string(pick("time (s)", "時間 (秒)"))));
  svg << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-weight=\"bold\">{}</text>\n", kLeft + plot_w + 6, cpu_top + 12,
                     xml_escape(std::string(pick("CPU", "CPU"))));
  svg << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-weight=\"bold\">{}</text>\n", kLeft + plot_w + 6, mem_top + 12,
                     xml_escape(std::string(pick("memory", "メモリ"))));
  // Series.
  auto polyline = [&](auto&& y_of, const char* color, double width) {
    if (samples.empty()) return;
    svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"" << width << "\" points=\"";
    for (const TimelineSample& s : samples) svg << fmt::format("{:.1f},{:.1f} ", x(s.t), y_of(s));
    svg << "\"/>\n";
  };
  polyline([&](const TimelineSample& s) { return y_cpu(s.machine_cpu_percent); }, "#9aa0a6", 1.5);
  polyline([&](const TimelineSample& s) { return y_cpu(s.process_cpu_percent / cpus); }, "#1a73e8", 2);
  polyline([&](const TimelineSample& s) { return y_mem(static_cast<double>(s.model_resident_bytes)); }, "#f9ab00", 1.5);
  polyline([&](const TimelineSample& s) { return y_mem(static_cast<double>(s.rss_bytes)); }, "#188038", 2);
  // Legend.
  const double legend_y = mem_top + kPanel + 52;
  struct Legend {
    const char* color;
    std::string text;
  };
  const Legend legend[] = {
      {"#1a73e8", tr("koto's CPU (% of all {0} cores)", "koto の CPU (全 {0} コアに対する %)", recorder.cpu_count())},
      {"#9aa0a6", std::string(pick("whole machine's CPU", "マシン全体の CPU"))},
      {"#188038", std::string(pick("koto's resident memory", "koto の使用メモリ (常駐)"))},
      {"#f9ab00", std::string(pick("model weights in memory", "メモリ上のモデルの重み"))}};
  double lx = kLeft;
  for (const Legend& l : legend) {
    svg << fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"14\" height=\"4\" fill=\"{}\"/><text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", lx,
                       legend_y - 4, l.color, lx + 18, legend_y, xml_escape(l.text));
    lx += 18 + 7.5 * static_cast<double>(l.text.size()) / 1.6 + 24;
  }
  // Caption: the headline figures.
  std::vector<std::string> parts;
  if (h.load_seconds > 0) parts.push_back(tr("load {0:.2f} s", "読み込み {0:.2f} 秒", h.load_seconds));
  if (h.time_to_first_token_seconds > 0) {
    parts.push_back(tr("first token {0:.2f} s", "最初のトークンまで {0:.2f} 秒", h.time_to_first_token_seconds));
  }
  if (h.tokens_per_second > 0) parts.push_back(tr("{0:.1f} tokens/s", "毎秒 {0:.1f} トークン", h.tokens_per_second));
  if (h.chars_per_second > 0) parts.push_back(tr("{0:.1f} chars/s", "毎秒 {0:.1f} 文字", h.chars_per_second));
  parts.push_back(tr("peak memory {0:.2f} GB", "ピークメモリ {0:.2f} GB", static_cast<double>(peak) / 1e9));
  std::string caption;
  for (const std::string& p : parts) {
    if (!caption.empty()) caption += " · ";
    caption += p;
  }
  svg << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"14\">{}</text>\n", kLeft, legend_y + 28, xml_escape(caption));
  svg << "</svg>\n";
  return svg.str();
}

void write_timeline(const std::string& path, const TimelineRecorder& recorder, const TimelineHeadline& headline) {
  auto write = [](const std::string& file, const std::string& text) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw Error(ErrorCode::kIo, tr("{0}: cannot write the timeline", "{0}: タイムラインを書き込めません", file));
  };
  const std::string svg = timeline_svg(recorder, headline);
  const bool html = path.size() >= 5 && path.compare(path.size() - 5, 5, ".html") == 0;
  if (html) {
    write(path, fmt::format("<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n{}</body></html>\n",
                            language() == Language::kJapanese ? "ja" : "en", xml_escape(headline.title), svg));
  } else {
    write(path, svg);
  }
  write(path + ".json", timeline_json(recorder, headline));
}

}  // namespace koto
