#include "koto/gguf_identity.h"

#include <xxhash.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "koto/gguf.h"

namespace koto {
namespace {

constexpr uint64_t kSampledPages = 64;
constexpr uint64_t kPageBytes = 4096;

struct StateDeleter {
  void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
};

}  // namespace

std::string gguf_identity(const GgufFile& file) {
  const std::string_view bytes = file.bytes();
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  XXH3_128bits_reset(state.get());
  const uint64_t size = bytes.size();
  XXH3_128bits_update(state.get(), &size, sizeof(size));
  const uint64_t header = std::min<uint64_t>(file.data_offset(), size);
  XXH3_128bits_update(state.get(), bytes.data(), header);
  const uint64_t data_bytes = size - header;
  if (data_bytes > 0) {
    for (uint64_t i = 0; i < kSampledPages; ++i) {
      const uint64_t offset = header + data_bytes / kSampledPages * i;
      const uint64_t n = std::min(kPageBytes, size - offset);
      XXH3_128bits_update(state.get(), bytes.data() + offset, n);
    }
  }
  const XXH128_hash_t hash = XXH3_128bits_digest(state.get());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    const uint64_t word = i < 8 ? hash.high64 : hash.low64;
    const int shift = 8 * (7 - i % 8);
    const auto byte = static_cast<uint8_t>(word >> shift);
    out[2 * i] = kHex[byte >> 4];
    out[2 * i + 1] = kHex[byte & 15];
  }
  return out;
}

}  // namespace koto
