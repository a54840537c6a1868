// Matrix products of a weight matrix with a batch of activation vectors, split over
// the thread pool by output rows.
#pragma once

#include <cstdint>
#include <functional>

#include "base/thread_pool.h"
#include "model/weights.h"

namespace koto::model {

// y[b][r] = dot(W row r, x[b]) for b in [0, batch) and r in [0, w.n_out); x is
// [batch][w.n_in], y is [batch][w.n_out], both row-major float32.
//
// One vector uses the kernels' matvec straight on the stored blocks. Several vectors
// read the weights once for the whole batch: each thread decodes a tile of rows to
// float32 and multiplies every vector of the batch with it while it is in cache.
void matmul(ThreadPool& pool, const Matrix& w, const float* x, int64_t batch, float* y);

// parallel_for, but run on the calling thread when the whole job is smaller than a
// thread hand-off is worth (work: rough multiply-adds in all tasks together).
void parallel_for_work(ThreadPool& pool, int64_t n_tasks, int64_t work,
                       const std::function<void(int64_t)>& fn);

}  // namespace koto::model
