// A fixed set of worker threads that run the iterations of a parallel loop.
//
// parallel_for(n_tasks, fn) calls fn(i) once for every i in [0, n_tasks), spread over
// the workers and the calling thread (which works too), and returns when all calls are
// done. Tasks are handed out one at a time from a shared counter, so a thread that
// gets less CPU time (the machine may be shared) simply takes fewer tasks.
//
// Idle workers sleep: after a job they spin for up to 200 microseconds (the next matrix
// product usually follows at once), then block in the kernel (futex), so no core stays
// busy once generation stops. The destructor wakes and joins every worker.
//
// Thread-safety: parallel_for may be called from several threads; the calls are run
// one after another. fn must not call parallel_for on the same pool (it would
// deadlock). If fn throws, the first exception is rethrown by parallel_for after all
// started tasks have finished; the remaining tasks are skipped.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace koto {

class ThreadPool {
 public:
  // n_threads counts the calling thread: ThreadPool(2) starts one worker.
  // 0 means one thread per physical core (see physical_core_count()).
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads that take part in a parallel_for, the caller included (>= 1).
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn);

  // Physical cores among the CPUs this process may run on (sched_getaffinity), counting
  // hyper-threads of one core once; at least 1.
  static int physical_core_count();

 private:
  void worker_loop();
  void run_tasks();

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time

  // The current job. Written by the caller before generation_ is bumped; read by
  // workers after they see the new generation.
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<uint32_t> generation_{0};  // bumped to start a job; 0xFFFFFFFF never used for stop
  std::atomic<int32_t> busy_workers_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace koto
