#include "model/matmul.h"

#include <algorithm>
#include <vector>

#include "base/op_profile.h"
#include "tensor/kernels.h"

namespace koto::model {
namespace {

// Below this many multiply-adds, waking the workers costs more than it saves.
constexpr int64_t kMinParallelWork = 1 << 15;
// Tiles of decoded rows are kept near this size so they stay in L2 while every vector
// of the batch passes over them.
constexpr int64_t kTileBytes = 64 * 1024;
// Rows of a product's smallest task (matmul_shared_input): a multiple of the kernels'
// rows per pass.
constexpr int64_t kTaskRows = 16;

int64_t rows_per_task(const ThreadPool& pool, int64_t n_rows) {
  // A few tasks per thread, so a thread slowed down by other processes takes fewer.
  const int64_t n_tasks = std::min<int64_t>(n_rows, static_cast<int64_t>(pool.size()) * 4);
  return (n_rows + n_tasks - 1) / n_tasks;
}

}  // namespace

void parallel_for_work(ThreadPool& pool, int64_t n_tasks, int64_t work,
                       const std::function<void(int64_t)>& fn) {
  const bool serial = work < kMinParallelWork || pool.size() == 1;
  if (!profile::enabled()) {
    if (serial) {
      for (int64_t i = 0; i < n_tasks; ++i) fn(i);
    } else {
      pool.parallel_for(n_tasks, fn);
    }
    return;
  }
  // Profiled: how long the region took, and how much of its threads' time went into
  // tasks (the rest is hand-off, waiting for the slowest thread, or another process).
  profile::Counters& c = profile::counters();
  const int64_t start = profile::now_ns();
  auto timed = [&](int64_t i) {
    const int64_t t0 = profile::now_ns();
    fn(i);
    profile::add(c.parallel_busy_ns, profile::now_ns() - t0);
  };
  if (serial) {
    for (int64_t i = 0; i < n_tasks; ++i) timed(i);
  } else {
    pool.parallel_for(n_tasks, timed);
  }
  const int64_t wall = profile::now_ns() - start;
  profile::add(c.parallel_wall_ns, wall);
  profile::add(c.parallel_capacity_ns, wall * (serial ? 1 : pool.size()));
  profile::add(c.parallel_regions, 1);
}

namespace {

// Profiling: a task's time and the weight bytes it read, under its weight type.
void record_matmul_task(const Matrix& w, int64_t rows, int64_t batch, int64_t ns) {
  const size_t type = static_cast<size_t>(w.type);
  if (type >= profile::kTypeSlots) return;
  profile::add(profile::counters().matmul_busy_ns[type], ns);
  profile::add(profile::counters().matmul_bytes[type], rows * w.row_bytes);
  profile::add(profile::counters().matmul_ops[type], 2 * rows * w.n_in * batch);
}

// Quantizes x into `out` in `layout`, on all threads when the batch is large.
void quantize_input(ThreadPool& pool, const float* x, int64_t batch, int64_t n_in,
                    kernels::Q8Layout layout, kernels::Q8Activations& out) {
  kernels::resize_activations(batch, n_in, layout, out);
  if (batch == 1) {
    kernels::quantize_activation_vectors(x, 0, 1, out);
    return;
  }
  // A prompt's vectors are quantized by all threads: on one it was ~10% of prefill.
  const int64_t per_task = (batch + pool.size() - 1) / pool.size();
  parallel_for_work(pool, (batch + per_task - 1) / per_task, batch * n_in, [&](int64_t task) {
    kernels::quantize_activation_vectors(x, task * per_task,
                                         std::min(batch, (task + 1) * per_task), out);
  });
}

}  // namespace

void matmul_shared_input(ThreadPool& pool, std::initializer_list<MatmulProduct> products,
                         const float* x, int64_t batch, MatmulPrecision precision) {
  bool integer = precision == MatmulPrecision::kFast;
  for (const MatmulProduct& p : products) integer = integer && kernels::has_q8_kernels(p.w->type);
  if (!integer) {
    for (const MatmulProduct& p : products) matmul(pool, *p.w, x, batch, p.y, precision);
    return;
  }
  // One quantized copy of x per layout the weight types read (at most two). The buffers
  // are the calling thread's; the tasks (on other threads) use them by reference.
  thread_local kernels::Q8Activations buffers[2];
  const int64_t n_in = products.begin()->w->n_in;
  bool quantized[2] = {false, false};
  int64_t total_rows = 0;
  int64_t work = 0;
  {
    const profile::Scope scope(profile::Op::kQuantize);
    for (const MatmulProduct& p : products) {
      const int layout = static_cast<int>(kernels::q8_layout(p.w->type));
      if (!quantized[layout]) {
        quantize_input(pool, x, batch, n_in, kernels::q8_layout(p.w->type), buffers[layout]);
        quantized[layout] = true;
      }
      total_rows += p.w->n_out;
      work += p.w->n_out * n_in * batch;
    }
  }
  struct Task {
    const MatmulProduct* product;
    int64_t begin;
    int64_t end;
  };
  // The calling thread's, reused: this runs several times per layer and token.
  // (A thread_local named inside the lambda would be each worker's own, hence the
  // plain references below.)
  thread_local std::vector<Task> task_list;
  std::vector<Task>& tasks = task_list;
  tasks.clear();
  // Tasks never span two products, and shrink as the rows run out: each takes half a
  // thread's share of the rows left (in multiples of kTaskRows), so the first are large
  // and the last small, and the threads finish close together. With tasks of equal
  // size, a thread finishing first waited for the other's last task: on llama2-7b
  // (2 threads) a region's calling thread waited 38 us on average, ~5% of decoding.
  const int64_t threads = pool.size();
  int64_t remaining = total_rows;
  for (const MatmulProduct& p : products) {
    for (int64_t begin = 0; begin < p.w->n_out;) {
      const int64_t share = threads == 1 ? remaining : remaining / (2 * threads);
      const int64_t rows = std::min(p.w->n_out - begin, std::max(kTaskRows, share / kTaskRows * kTaskRows));
      tasks.push_back({&p, begin, begin + rows});
      begin += rows;
      remaining -= rows;
    }
  }
  kernels::Q8Activations* layouts = buffers;
  const profile::Scope scope(profile::Op::kMatmul);
  const bool profiling = profile::enabled();
  parallel_for_work(pool, static_cast<int64_t>(tasks.size()), work, [&](int64_t i) {
    const Task& t = tasks[static_cast<size_t>(i)];
    const Matrix& w = *t.product->w;
    const int64_t start = profiling ? profile::now_ns() : 0;
    kernels::matmul_q8(w.type, w.data, layouts[static_cast<int>(kernels::q8_layout(w.type))],
                       t.product->y + t.begin, w.n_out, t.begin, t.end);
    if (profiling) record_matmul_task(w, t.end - t.begin, batch, profile::now_ns() - start);
  });
}

void matmul(ThreadPool& pool, const Matrix& w, const float* x, int64_t batch, float* y,
            MatmulPrecision precision) {
  const int64_t n_in = w.n_in;
  const int64_t n_out = w.n_out;
  const int64_t chunk = rows_per_task(pool, n_out);
  const int64_t n_tasks = (n_out + chunk - 1) / chunk;
  const int64_t work = n_out * n_in * batch;

  if (precision == MatmulPrecision::kFast && kernels::has_q8_kernels(w.type)) {
    // Quantized weights: 8-bit activations, the same path as several products share.
    matmul_shared_input(pool, {{&w, y}}, x, batch, precision);
    return;
  }
  const profile::Scope scope(profile::Op::kMatmul);
  const bool profiling = profile::enabled();

  if (batch == 1) {
    parallel_for_work(pool, n_tasks, work, [&](int64_t task) {
      const int64_t begin = task * chunk;
      const int64_t end = std::min(n_out, begin + chunk);
      const int64_t start = profiling ? profile::now_ns() : 0;
      kernels::matvec(w.type, w.data, n_in, x, y + begin, begin, end);
      if (profiling) record_matmul_task(w, end - begin, batch, profile::now_ns() - start);
    });
    return;
  }

  const int64_t tile_rows = std::clamp<int64_t>(kTileBytes / (n_in * 4), 1, 64);
  parallel_for_work(pool, n_tasks, work, [&](int64_t task) {
    const int64_t begin = task * chunk;
    const int64_t end = std::min(n_out, begin + chunk);
    const int64_t start = profiling ? profile::now_ns() : 0;
    thread_local std::vector<float> tile;
    for (int64_t r0 = begin; r0 < end; r0 += tile_rows) {
      const int64_t rows = std::min(tile_rows, end - r0);
      const float* tile_data;
      if (w.type == TensorType::kF32) {
        tile_data = reinterpret_cast<const float*>(w.row(r0));
      } else {
        tile.resize(static_cast<size_t>(rows * n_in));
        for (int64_t r = 0; r < rows; ++r) kernels::dequantize_row(w.type, w.row(r0 + r), &tile[r * n_in], n_in);
        tile_data = tile.data();
      }
      for (int64_t b = 0; b < batch; ++b) {
        kernels::matvec(TensorType::kF32, tile_data, n_in, x + b * n_in, y + b * n_out + r0, 0, rows);
      }
    }
    if (profiling) record_matmul_task(w, end - begin, batch, profile::now_ns() - start);
  });
}

}  // namespace koto::model
