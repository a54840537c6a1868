// Where a forward pass spends its time (`koto bench --profile`): wall time per
// operation on the thread that drives the pass, busy time of the matrix-product tasks
// per weight type, and how long threads wait inside parallel regions.
//
// Off by default; when off, a Scope costs one relaxed atomic load. When on, every
// counter is a relaxed atomic add, so passes may run on any thread. The figures are
// process-wide: profile one model at a time.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace koto::profile {

// Steps of a forward pass (transformer.cpp), plus sampling (the caller's).
enum class Op : int {
  kEmbed,       // token embeddings decoded, RoPE angles
  kNorm,        // RMS norms (also qwen3's q/k norms)
  kQuantize,    // activations rounded to 8 bits for the integer matrix products
  kMatmul,      // matrix products (split by weight type below)
  kRope,        // rotary position embedding of q and k (and qwen2's biases)
  kKvStore,     // k and v written into the cache
  kAttention,   // scores, softmax, weighted sum of values
  kActivation,  // silu(gate) * up
  kResidual,    // x += block output
  kOutput,      // logits copied to their sessions
  kSampling,    // choosing the next token from the logits
  kCount
};
inline constexpr int kOpCount = static_cast<int>(Op::kCount);
inline constexpr int kTypeSlots = 40;  // ggml type ids

std::string_view op_name(Op op);  // "matmul", "attention", ...

struct Counters {
  std::array<std::atomic<int64_t>, kOpCount> wall_ns{};
  std::array<std::atomic<int64_t>, kTypeSlots> matmul_busy_ns{};  // by weight type id
  std::array<std::atomic<int64_t>, kTypeSlots> matmul_bytes{};    // weight bytes read, by type
  std::array<std::atomic<int64_t>, kTypeSlots> matmul_ops{};      // 2 x multiply-adds, by type
  std::atomic<int64_t> parallel_wall_ns{0};      // wall time of parallel regions
  std::atomic<int64_t> parallel_capacity_ns{0};  // wall time x threads of those regions
  std::atomic<int64_t> parallel_busy_ns{0};      // time spent inside tasks
  std::atomic<int64_t> parallel_regions{0};
};

// A copy of the counters at one moment.
struct Snapshot {
  std::array<int64_t, kOpCount> wall_ns{};
  std::array<int64_t, kTypeSlots> matmul_busy_ns{};
  std::array<int64_t, kTypeSlots> matmul_bytes{};
  std::array<int64_t, kTypeSlots> matmul_ops{};
  int64_t parallel_wall_ns = 0;
  int64_t parallel_capacity_ns = 0;
  int64_t parallel_busy_ns = 0;
  int64_t parallel_regions = 0;
};

inline std::atomic<bool> g_enabled{false};
Counters& counters();

inline bool enabled() { return g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);
void reset();
Snapshot snapshot();

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void add(std::atomic<int64_t>& counter, int64_t value) { counter.fetch_add(value, std::memory_order_relaxed); }

// Adds the wall time from construction to destruction to `op` (when profiling is on).
class Scope {
 public:
  explicit Scope(Op op) : op_(op), start_(enabled() ? now_ns() : 0) {}
  ~Scope() { stop(); }
  // Ends the scope early (later calls and the destructor add nothing).
  void stop() {
    if (start_ != 0) add(counters().wall_ns[static_cast<size_t>(op_)], now_ns() - start_);
    start_ = 0;
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Op op_;
  int64_t start_;
};

}  // namespace koto::profile
