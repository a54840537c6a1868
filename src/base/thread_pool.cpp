#include "base/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace koto {
namespace {

// How long an idle thread spins before it sleeps: long enough to span the short serial
// steps between the parallel regions of a forward pass (norms, RoPE, the next
// quantization), short enough that an idle pool costs nothing. A wake-up from the kernel
// took 26 us on average on the 2-core VM this was measured on, against 5 us with this
// spin (llama2-7b decoding, 160 regions per token); 256 pauses (~5 us) were too short.
constexpr auto kSpinTime = std::chrono::microseconds(200);
// Pauses between two looks at the clock.
constexpr int kPausesPerCheck = 64;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Spins a while `value` still holds `old`, then sleeps in the kernel.
template <typename T>
T wait_for_change(const std::atomic<T>& value, T old) {
  const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < kPausesPerCheck; ++i) {
      const T now = value.load(std::memory_order_acquire);
      if (now != old) return now;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= spin_until) break;
  }
  T now;
  while ((now = value.load(std::memory_order_acquire)) == old) value.wait(old, std::memory_order_acquire);
  return now;
}

}  // namespace

int ThreadPool::physical_core_count() {
  // Only the CPUs this process may run on count (taskset, cgroup cpusets); of those,
  // hyper-threads of one core share a (package, core) pair in sysfs.
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
    }
  } else {
    const int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int cpu = 0; cpu < n; ++cpu) cpus.push_back(cpu);
  }
  std::set<std::pair<int, int>> cores;
  for (int cpu : cpus) {
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream core_file(base + "core_id");
    std::ifstream package_file(base + "physical_package_id");
    int core = -1;
    int package = -1;
    if (!(core_file >> core) || !(package_file >> package)) return std::max<int>(1, static_cast<int>(cpus.size()));
    cores.emplace(package, core);
  }
  return std::max<int>(1, static_cast<int>(cores.size()));
}

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = physical_core_count();
  workers_.reserve(n_threads - 1);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(call_mutex_);
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
  }
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run_tasks() {
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_ || failed_.load(std::memory_order_relaxed)) return;
    try {
      (*job_)(task);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;  // the generation at construction; a late-starting worker must not skip a job
  for (;;) {
    seen = wait_for_change(generation_, seen);
    if (stop_.load(std::memory_order_relaxed)) return;
    run_tasks();
    if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) busy_workers_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> lock(call_mutex_);
  job_ = &fn;
  n_tasks_ = n_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  failed_.store(false, std::memory_order_relaxed);
  error_ = nullptr;
  busy_workers_.store(static_cast<int32_t>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();

  run_tasks();

  int32_t busy = busy_workers_.load(std::memory_order_acquire);
  while (busy != 0) busy = wait_for_change(busy_workers_, busy);
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace koto
