#include "base/op_profile.h"

namespace koto::profile {

Counters& counters() {
  static Counters c;
  return c;
}

std::string_view op_name(Op op) {
  switch (op) {
    case Op::kEmbed: return "embed";
    case Op::kNorm: return "norm";
    case Op::kQuantize: return "quantize";
    case Op::kMatmul: return "matmul";
    case Op::kRope: return "rope";
    case Op::kKvStore: return "kv_store";
    case Op::kAttention: return "attention";
    case Op::kActivation: return "activation";
    case Op::kResidual: return "residual";
    case Op::kOutput: return "output";
    case Op::kSampling: return "sampling";
    case Op::kCount: break;
  }
  return "?";
}

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }

void reset() {
  Counters& c = counters();
  for (auto& v : c.wall_ns) v.store(0, std::memory_order_relaxed);
  for (auto& v : c.matmul_busy_ns) v.store(0, std::memory_order_relaxed);
  for (auto& v : c.matmul_bytes) v.store(0, std::memory_order_relaxed);
  for (auto& v : c.matmul_ops) v.store(0, std::memory_order_relaxed);
  c.parallel_wall_ns.store(0, std::memory_order_relaxed);
  c.parallel_capacity_ns.store(0, std::memory_order_relaxed);
  c.parallel_busy_ns.store(0, std::memory_order_relaxed);
  c.parallel_regions.store(0, std::memory_order_relaxed);
}

Snapshot snapshot() {
  const Counters& c = counters();
  Snapshot s;
  for (size_t i = 0; i < s.wall_ns.size(); ++i) s.wall_ns[i] = c.wall_ns[i].load(std::memory_order_relaxed);
  for (size_t i = 0; i < s.matmul_busy_ns.size(); ++i) {
    s.matmul_busy_ns[i] = c.matmul_busy_ns[i].load(std::memory_order_relaxed);
    s.matmul_bytes[i] = c.matmul_bytes[i].load(std::memory_order_relaxed);
    s.matmul_ops[i] = c.matmul_ops[i].load(std::memory_order_relaxed);
  }
  s.parallel_wall_ns = c.parallel_wall_ns.load(std::memory_order_relaxed);
  s.parallel_capacity_ns = c.parallel_capacity_ns.load(std::memory_order_relaxed);
  s.parallel_busy_ns = c.parallel_busy_ns.load(std::memory_order_relaxed);
  s.parallel_regions = c.parallel_regions.load(std::memory_order_relaxed);
  return s;
}

}  // namespace koto::profile
