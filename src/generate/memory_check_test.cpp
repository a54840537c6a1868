#include "koto/memory_check.h"

#include <gtest/gtest.h>

#include "koto/error.h"
#include "koto/gguf.h"
#include "test_support.h"

namespace koto {
namespace {

TEST(MemoryCheck, SuggestsTheLargestHalvedContextThatFits) {
  const std::unique_ptr<Model> model = Model::load(fixture_path("models/stories260K.gguf"));
  const uint64_t weights = model->file().file_size();
  const MemoryFit roomy = check_memory(*model, 4096, uint64_t{1} << 40);
  EXPECT_TRUE(roomy.fits);
  EXPECT_EQ(roomy.weights_bytes, weights);
  EXPECT_EQ(roomy.session_bytes, model->session_bytes(4096));

  // Room for 1024 positions but not 2048: 4096 → 2048 → 1024.
  const MemoryFit tight = check_memory(*model, 4096, weights + model->session_bytes(1024));
  EXPECT_FALSE(tight.fits);
  EXPECT_EQ(tight.suggested_n_ctx, 1024);

  const MemoryFit hopeless = check_memory(*model, 4096, weights / 2);
  EXPECT_FALSE(hopeless.fits);
  EXPECT_EQ(hopeless.suggested_n_ctx, 0);

  const MemoryFit unknown = check_memory(*model, 4096, 0);  // nothing known: nothing refused
  EXPECT_TRUE(unknown.fits);
}

TEST(MemoryCheck, RequireMemoryNamesTheSmallerContext) {
  const std::unique_ptr<Model> model = Model::load(fixture_path("models/stories260K.gguf"));
  try {
    require_memory(*model, 2'000'000'000);
    FAIL() << "a 2e9-position KV cache fits nowhere";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("-c "), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(require_memory(*model, 256));
}

}  // namespace
}  // namespace koto
