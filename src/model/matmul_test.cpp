// matmul and matmul_shared_input against the kernels' own row products.
#include "model/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "koto/tensor_type.h"
#include "tensor/kernels.h"
#include "tools/random_blocks.h"

namespace koto::model {
namespace {

struct OwnedMatrix {
  std::vector<uint8_t> bytes;
  Matrix m;
};

OwnedMatrix random_matrix(TensorType type, int64_t n_in, int64_t n_out, uint64_t seed) {
  static tools::RandomBlockPools pools(0.02f, 5);
  OwnedMatrix o;
  o.m.type = type;
  o.m.n_in = n_in;
  o.m.n_out = n_out;
  o.m.row_bytes = tensor_row_bytes(type, n_in);
  o.bytes.resize(static_cast<size_t>(o.m.row_bytes * n_out));
  for (int64_t r = 0; r < n_out; ++r) {
    pools.get(type).fill_row(o.bytes.data() + r * o.m.row_bytes, n_in, seed);
  }
  o.m.data = o.bytes.data();
  return o;
}

// The products of Q/K/V-like matrices of three types (two activation layouts and one
// float type) from one call equal separate matmul calls, for one vector and a batch,
// on one thread and on two.
TEST(MatmulTest, SharedInputEqualsSeparateProducts) {
  constexpr int64_t kIn = 512;
  const OwnedMatrix a = random_matrix(TensorType::kQ4_K, kIn, 96, 1);
  const OwnedMatrix b = random_matrix(TensorType::kQ8_0, kIn, 40, 2);
  const OwnedMatrix c = random_matrix(TensorType::kQ6_K, kIn, 33, 3);
  const OwnedMatrix f = random_matrix(TensorType::kF16, kIn, 17, 4);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (int64_t batch : {int64_t{1}, int64_t{7}}) {
      std::vector<float> x(static_cast<size_t>(batch * kIn));
      for (float& v : x) v = normal(rng);
      for (bool with_float : {false, true}) {
        const std::vector<const OwnedMatrix*> ms =
            with_float ? std::vector<const OwnedMatrix*>{&a, &f, &c}
                       : std::vector<const OwnedMatrix*>{&a, &b, &c};
        std::vector<std::vector<float>> want(3), got(3);
        for (size_t i = 0; i < 3; ++i) {
          want[i].assign(static_cast<size_t>(batch * ms[i]->m.n_out), NAN);
          got[i].assign(static_cast<size_t>(batch * ms[i]->m.n_out), NAN);
          matmul(pool, ms[i]->m, x.data(), batch, want[i].data());
        }
        matmul_shared_input(pool,
                            {{&ms[0]->m, got[0].data()}, {&ms[1]->m, got[1].data()},
                             {&ms[2]->m, got[2].data()}},
                            x.data(), batch);
        for (size_t i = 0; i < 3; ++i) {
          for (size_t j = 0; j < want[i].size(); ++j) {
            ASSERT_FALSE(std::isnan(got[i][j])) << "product " << i << " value " << j;
            // Row grouping may change the kernels' float rounding, nothing more.
            ASSERT_NEAR(got[i][j], want[i][j], 1e-4 * (1 + std::fabs(want[i][j])))
                << "threads " << threads << " batch " << batch << " product " << i << " value " << j;
          }
        }
      }
    }
  }
}

// One vector through matmul equals the kernels' row products on the rows.
TEST(MatmulTest, MatchesKernelRowProducts) {
  constexpr int64_t kIn = 256;
  const OwnedMatrix a = random_matrix(TensorType::kQ5_0, kIn, 50, 6);
  std::vector<float> x(kIn);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x) v = normal(rng);
  ThreadPool pool(2);
  std::vector<float> y(50, NAN);
  matmul(pool, a.m, x.data(), 1, y.data());
  kernels::Q8Activations q8;
  kernels::quantize_activations(x.data(), 1, kIn, q8, kernels::q8_layout(a.m.type));
  std::vector<float> want(50);
  kernels::matmul_q8(a.m.type, a.m.data, q8, want.data(), 50, 0, 50);
  for (int64_t r = 0; r < 50; ++r) EXPECT_FLOAT_EQ(y[r], want[r]) << r;
}

}  // namespace
}  // namespace koto::model
