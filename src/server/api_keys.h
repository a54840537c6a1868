// The API keys a server accepts, and the check of an Authorization header against them.
//
// Keys come from a file (--api-key-file: one key per line; blank lines and lines
// starting with # are skipped) and/or the KOTO_API_KEY environment variable — never
// from the command line, which other users can read with `ps`. Only digests of the
// keys are kept. A presented key is hashed with a per-process random seed and compared
// with every key's digest without an early exit, so the time a check takes says
// nothing about how much of a key was right; every failure gives the same answer.
//
// Each key has a stable partition name (a digest with a fixed seed, never the key),
// which keeps the prefix cache of one key's users apart from another's.
//
// Thread-safe after construction.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace koto::server {

class ApiKeys {
 public:
  ApiKeys();  // no keys: every request is allowed

  // Reads `file` (may be "") and adds `env_value` (may be null or empty). Throws
  // koto::Error: kIo when the file cannot be read, kInvalidArgument for a key shorter
  // than kMinKeyLength or one with spaces or control characters (naming the line).
  static ApiKeys load(const std::string& file, const char* env_value);
  static constexpr size_t kMinKeyLength = 8;

  bool empty() const { return keys_.empty(); }
  size_t size() const { return keys_.size(); }

  // For a header "Bearer KEY" naming a known key: that key's partition name. nullopt
  // for anything else (missing, malformed, unknown).
  std::optional<std::string> check(std::string_view authorization_header) const;

  // The partition name of a key (for tests and logs); "" when there are no keys.
  static std::string partition_of(std::string_view key);

 private:
  void add(std::string_view key);

  struct Key {
    std::array<uint64_t, 2> digest;  // seeded with seed_
    std::string partition;
  };
  uint64_t seed_;
  std::vector<Key> keys_;
};

}  // namespace koto::server
