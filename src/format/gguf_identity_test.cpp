#include "koto/gguf_identity.h"

#include <gtest/gtest.h>

#include <string>

#include "koto/gguf.h"
#include "koto/gguf_writer.h"
#include "test_support.h"

namespace koto {
namespace {

// A copy of stories260K with `edit` applied, as bytes.
std::string edited_copy(const std::function<void(GgufWriter&, const GgufFile&)>& edit) {
  const GgufFile file = GgufFile::open(fixture_path("models/stories260K.gguf"));
  GgufWriter writer;
  for (const GgufKeyValue& kv : file.metadata()) writer.set(kv.key, GgufMetaValue::copy_of(kv.value));
  edit(writer, file);
  return writer.write_to_string();
}

void add_tensors(GgufWriter& writer, const GgufFile& file, bool flip_one_weight) {
  for (const GgufTensor& tensor : file.tensors()) {
    std::string data(reinterpret_cast<const char*>(tensor.data), tensor.n_bytes);
    // The first tensor's first bytes lie in the first sampled page.
    if (flip_one_weight && &tensor == &file.tensors().front()) data[0] ^= 1;
    writer.add_tensor_owned(tensor.name, tensor.shape, tensor.type, std::move(data));
  }
}

TEST(GgufIdentity, SameContentSameIdentityAnyChangeAnother) {
  const GgufFile original = GgufFile::open(fixture_path("models/stories260K.gguf"));
  const std::string id = gguf_identity(original);
  ASSERT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);

  const std::string same = edited_copy([](GgufWriter& w, const GgufFile& f) { add_tensors(w, f, false); });
  EXPECT_EQ(gguf_identity(GgufFile::parse(same, "same")), id);

  const std::string renamed = edited_copy([](GgufWriter& w, const GgufFile& f) {
    w.set_string("general.name", "別のモデル");
    add_tensors(w, f, false);
  });
  EXPECT_NE(gguf_identity(GgufFile::parse(renamed, "renamed")), id);

  const std::string flipped = edited_copy([](GgufWriter& w, const GgufFile& f) { add_tensors(w, f, true); });
  EXPECT_NE(gguf_identity(GgufFile::parse(flipped, "flipped")), id);
}

}  // namespace
}  // namespace koto
