// Matrix products of a weight matrix with a batch of activation vectors, split over
// the thread pool by output rows.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>

#include "base/thread_pool.h"
#include "model/weights.h"

namespace koto::model {

// kFast: 8-bit activations for block-quantized weights (see below). kFloat32: float
// activations for every weight type, the reference computation.
enum class MatmulPrecision { kFast, kFloat32 };

// y[b][r] = dot(W row r, x[b]) for b in [0, batch) and r in [0, w.n_out); x is
// [batch][w.n_in], y is [batch][w.n_out], both row-major float32.
//
// Block-quantized weights (Q4_0 ... IQ4_XS) with kFast: x is rounded to 8 bits per value (a scale
// per 32 values) once per call and the kernels' matmul_q8 multiplies integer codes,
// reading each weight row once for the whole batch; see kernels.h for the accuracy
// contract. Float weights (F32, F16, BF16) keep float activations: one vector uses the
// kernels' matvec on the stored rows; several vectors read the weights once for the
// batch, each thread decoding a tile of rows to float32 and multiplying every vector
// with it while it is in cache.
void matmul(ThreadPool& pool, const Matrix& w, const float* x, int64_t batch, float* y,
            MatmulPrecision precision = MatmulPrecision::kFast);

// Several products of the same input: y_i = W_i x for every (W_i, y_i) in `products`
// (each W_i.n_in equal to the input's width), as matmul computes them. With kFast and
// block-quantized weights the input is quantized once per activation layout and all
// products' rows are split over the pool in one parallel region: for Q/K/V and
// gate/up, one thread hand-off instead of three or two. Results are those of separate
// matmul calls (up to the kernels' float rounding, which may depend on how rows are
// grouped).
struct MatmulProduct {
  const Matrix* w;
  float* y;  // [batch][w->n_out]
};
void matmul_shared_input(ThreadPool& pool, std::initializer_list<MatmulProduct> products,
                         const float* x, int64_t batch,
                         MatmulPrecision precision = MatmulPrecision::kFast);

// parallel_for, but run on the calling thread when the whole job is smaller than a
// thread hand-off is worth (work: rough multiply-adds in all tasks together).
void parallel_for_work(ThreadPool& pool, int64_t n_tasks, int64_t work,
                       const std::function<void(int64_t)>& fn);

}  // namespace koto::model
