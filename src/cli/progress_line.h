// A progress line on stderr for long writes: percent, bytes and MB/s. On a terminal
// the line is redrawn in place (at most every 0.2 s); otherwise one line per 10%.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "koto/i18n.h"

namespace koto::cli {

class ProgressLine {
 public:
  explicit ProgressLine(std::string_view label_en, std::string_view label_ja)
      : label_(pick(label_en, label_ja)), tty_(::isatty(STDERR_FILENO) != 0), start_(Clock::now()), last_(start_) {}

  void update(uint64_t done, uint64_t total) {
    if (total == 0 || finished_) return;  // the end is shown once, however often it is reported
    const auto now = Clock::now();
    const int percent = static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total));
    if (tty_) {
      if (done < total && now - last_ < std::chrono::milliseconds(200)) return;
    } else if (percent / 10 == last_decile_ && done < total) {
      return;
    }
    last_ = now;
    last_decile_ = percent / 10;
    finished_ = done >= total;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    // No rate until a tenth of a second has passed: the first chunks would show absurd ones.
    const std::string rate =
        seconds >= 0.1 ? fmt::format("  {:.0f} MB/s", static_cast<double>(done) / 1e6 / seconds) : std::string();
    std::fprintf(stderr, "%s%s %3d%%  %.1f / %.1f MB%s%s", tty_ ? "\r" : "", std::string(label_).c_str(), percent,
                 static_cast<double>(done) / 1e6, static_cast<double>(total) / 1e6, rate.c_str(), tty_ ? "   " : "\n");
    if (tty_ && done >= total) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string_view label_;
  bool tty_;
  Clock::time_point start_;
  Clock::time_point last_;
  int last_decile_ = -1;
  bool finished_ = false;
};

}  // namespace koto::cli
