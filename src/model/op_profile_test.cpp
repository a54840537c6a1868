// The per-operation counters behind `koto bench --profile`, on the real tiny model: one
// generated token must count exactly the multiply-adds and weight bytes of every
// matrix product, and every step of the pass must show time.
#include "base/op_profile.h"

#include <gtest/gtest.h>

#include "koto/gguf.h"
#include "koto/model.h"
#include "test_support.h"

namespace koto {
namespace {

class ProfileOn {
 public:
  ProfileOn() {
    profile::reset();
    profile::set_enabled(true);
  }
  ~ProfileOn() { profile::set_enabled(false); }
};

TEST(OpProfile, CountsEveryMatrixProductOfOneToken) {
  LoadOptions load;
  load.n_threads = 2;
  const auto model = Model::load(fixture_path("models/stories260K.gguf"), load);
  SessionOptions session_options;
  session_options.n_ctx = 16;
  session_options.kv_type = TensorType::kF32;  // float activations: the float matmul path
  const auto session = model->new_session(session_options);
  session->eval(std::vector<TokenId>{1, 2, 3});

  // Every 2-D tensor but the embedding table is multiplied once per token.
  int64_t elements = 0;
  int64_t bytes = 0;
  for (const GgufTensor& t : model->file().tensors()) {
    if (t.shape.size() < 2 || t.name == "token_embd.weight") continue;
    elements += t.shape[0] * t.shape[1];
    bytes += static_cast<int64_t>(t.n_bytes);
  }
  {
    const ProfileOn on;
    const TokenId token = 4;
    session->eval(std::span<const TokenId>(&token, 1));
  }
  const profile::Snapshot s = profile::snapshot();
  const auto f32 = static_cast<size_t>(TensorType::kF32);
  EXPECT_EQ(s.matmul_ops[f32], 2 * elements);
  EXPECT_EQ(s.matmul_bytes[f32], bytes);
  EXPECT_GT(s.matmul_busy_ns[f32], 0);
  for (profile::Op op : {profile::Op::kEmbed, profile::Op::kNorm, profile::Op::kMatmul, profile::Op::kRope,
                         profile::Op::kKvStore, profile::Op::kAttention, profile::Op::kActivation,
                         profile::Op::kResidual, profile::Op::kOutput}) {
    EXPECT_GT(s.wall_ns[static_cast<size_t>(op)], 0) << profile::op_name(op);
  }
  EXPECT_EQ(s.wall_ns[static_cast<size_t>(profile::Op::kSampling)], 0);  // the caller's, not the pass's
  EXPECT_GE(s.parallel_capacity_ns, s.parallel_busy_ns);
}

TEST(OpProfile, CountsNothingWhenOff) {
  profile::reset();
  const auto model = Model::load(fixture_path("models/stories260K.gguf"));
  const auto session = model->new_session(SessionOptions{});
  session->eval(std::vector<TokenId>{1, 2, 3});
  const profile::Snapshot s = profile::snapshot();
  for (int64_t v : s.wall_ns) EXPECT_EQ(v, 0);
  for (int64_t v : s.matmul_ops) EXPECT_EQ(v, 0);
  EXPECT_EQ(s.parallel_regions, 0);
}

}  // namespace
}  // namespace koto
