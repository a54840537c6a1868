#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace koto {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskExactlyOnce) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  for (int64_t n : {0, 1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> counts(static_cast<size_t>(n));
    pool.parallel_for(n, [&](int64_t i) { counts[static_cast<size_t>(i)].fetch_add(1); });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(counts[static_cast<size_t>(i)].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPoolTest, UsesWorkerThreads) {
  ThreadPool pool(2);
  std::atomic<int> other_thread{0};
  const std::thread::id caller = std::this_thread::get_id();
  pool.parallel_for(64, [&](int64_t) {
    if (std::this_thread::get_id() != caller) other_thread.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  });
  EXPECT_GT(other_thread.load(), 0);
}

TEST(ThreadPoolTest, ManySmallJobsInARow) {
  ThreadPool pool(2);
  int64_t total = 0;
  std::vector<int64_t> partial(4);
  for (int round = 0; round < 5000; ++round) {
    pool.parallel_for(4, [&](int64_t i) { partial[static_cast<size_t>(i)] = i + round; });
    for (int64_t v : partial) total += v;
  }
  EXPECT_EQ(total, 5000 * 6 + 4 * (4999 * 5000 / 2));
}

TEST(ThreadPoolTest, RethrowsTheTaskException) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(100,
                                 [](int64_t i) {
                                   if (i == 37) throw std::runtime_error("task 37");
                                 }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int> count{0};
  pool.parallel_for(10, [&](int64_t) { count.fetch_add(1); });
  EXPECT_EQ(count.load(), 10);
}

TEST(ThreadPoolTest, CallsFromSeveralThreadsAreSerialized) {
  ThreadPool pool(2);
  std::atomic<int> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&] {
      for (int r = 0; r < 100; ++r) pool.parallel_for(8, [&](int64_t) { total.fetch_add(1); });
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(total.load(), 3 * 100 * 8);
}

// CPU time of this process in clock ticks (utime + stime from /proc/self/stat).
long process_cpu_ticks() {
  std::ifstream stat("/proc/self/stat");
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 1; i <= 15 && stat >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

TEST(ThreadPoolTest, IdleWorkersSleep) {
  ThreadPool pool(4);
  pool.parallel_for(16, [](int64_t) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the spin phase end
  const long before = process_cpu_ticks();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const long used = process_cpu_ticks() - before;
  // Three spinning workers would burn ~90 ticks (at 100 Hz) in 300 ms.
  EXPECT_LE(used, 3 * sysconf(_SC_CLK_TCK) / 100) << "ticks used while idle: " << used;
}

TEST(ThreadPoolTest, DefaultIsPhysicalCores) {
  EXPECT_GE(ThreadPool::physical_core_count(), 1);
  ThreadPool pool;
  EXPECT_EQ(pool.size(), ThreadPool::physical_core_count());
}

}  // namespace
}  // namespace koto
