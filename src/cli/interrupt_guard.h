// Ctrl-C for the commands that do long work: while an InterruptGuard lives, SIGINT sets
// interrupted() (read between tokens or transfer chunks) instead of ending the process;
// with `second_ends_process`, a second Ctrl-C ends it at once. The previous handler is
// put back when the guard goes. One guard at a time (the flag is the process's).
#pragma once

#include <atomic>
#include <csignal>

namespace koto::cli {

class InterruptGuard {
 public:
  explicit InterruptGuard(bool second_ends_process) {
    flag().store(false);
    struct sigaction action {};
    action.sa_handler = second_ends_process ? &on_signal_once : &on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_);
  }
  ~InterruptGuard() { sigaction(SIGINT, &previous_, nullptr); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  static std::atomic<bool>& flag() {
    static std::atomic<bool> interrupted{false};
    static_assert(std::atomic<bool>::is_always_lock_free, "the flag is written from a signal handler");
    return interrupted;
  }
  static bool interrupted() { return flag().load(std::memory_order_relaxed); }

 private:
  static void on_signal(int) { flag().store(true, std::memory_order_relaxed); }
  static void on_signal_once(int) {
    flag().store(true, std::memory_order_relaxed);
    std::signal(SIGINT, SIG_DFL);
  }
  struct sigaction previous_ {};
};

}  // namespace koto::cli
