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

// A handshake, not a timing guess: each of two tasks waits until both have started.
// A pool that ran every task on one thread would leave the first one waiting until its
// (generous) timeout, and both would then report the same thread.
TEST(ThreadPoolTest, UsesWorkerThreads) {
  ThreadPool pool(2);
  std::atomic<int> started{0};
  std::thread::id ran_on[2];
  bool met[2] = {false, false};
  pool.parallel_for(2, [&](int64_t i) {
    ran_on[i] = std::this_thread::get_id();
    started.fetch_add(1);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (started.load() < 2 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
    met[i] = started.load() == 2;
  });
  EXPECT_TRUE(met[0] && met[1]) << "the two tasks never ran at the same time";
  EXPECT_NE(ran_on[0], ran_on[1]);
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

// "No core left spinning": idle workers must block, not poll. Measured as this
// process's CPU time over half a second of idleness. Three spinning workers would use
// about 1.5 s of CPU on an idle machine, and still well over a core's worth on a
// loaded one (each spinning thread gets its share of the CPUs), while blocked workers
// use nothing. The bound, a quarter of one core (plus one tick of /proc granularity),
// is far from both, so a busy machine or a late wake-up cannot make it flaky.
TEST(ThreadPoolTest, IdleWorkersSleep) {
  ThreadPool pool(4);
  pool.parallel_for(16, [](int64_t) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the spin phase end
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  const long before = process_cpu_ticks();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long used = process_cpu_ticks() - before;
  EXPECT_LE(used, ticks_per_second / 2 / 4 + 1) << "ticks used while idle: " << used << " of " << ticks_per_second
                                                << " per second";
}

TEST(ThreadPoolTest, DefaultIsPhysicalCores) {
  EXPECT_GE(ThreadPool::physical_core_count(), 1);
  ThreadPool pool;
  EXPECT_EQ(pool.size(), ThreadPool::physical_core_count());
}

}  // namespace
}  // namespace koto
