#include "server/api_keys.h"

#include <xxhash.h>

#include <fstream>
#include <random>

#include "base/utf8.h"
#include "koto/error.h"
#include "koto/i18n.h"

namespace koto::server {
namespace {

constexpr uint64_t kPartitionSeed = 0x6b6f746f2d6b6579ull;  // fixed: partitions must survive restarts

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

void check_key(std::string_view key, const std::string& where) {
  if (key.size() < ApiKeys::kMinKeyLength) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("{0}: an API key of {1} characters is too short to be safe (at least {2})",
                   "{0}: {1} 文字の API キーは短すぎて安全ではありません ({2} 文字以上にしてください)", where, key.size(),
                   ApiKeys::kMinKeyLength));
  }
  for (unsigned char c : key) {
    if (c <= 0x20 || c == 0x7f) {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("{0}: an API key must not contain spaces or control characters",
                     "{0}: API キーに空白や制御文字を含めることはできません", where));
    }
  }
}

}  // namespace

ApiKeys::ApiKeys() : seed_(std::random_device{}() * 0x100000001ull ^ std::random_device{}()) {}

ApiKeys ApiKeys::load(const std::string& file, const char* env_value) {
  ApiKeys keys;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) {
      throw Error(ErrorCode::kIo, tr("--api-key-file {0}: cannot read the file", "--api-key-file {0}: ファイルを読めません", file));
    }
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      const std::string_view key = trim(line);
      if (key.empty() || key.front() == '#') continue;
      check_key(key, fmt::format("{}:{}", file, number));
      keys.add(key);
    }
    if (keys.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  tr("--api-key-file {0}: the file holds no key (one per line)", "--api-key-file {0}: キーがありません (1 行に 1 つ)", file));
    }
  }
  if (env_value != nullptr && *env_value != '\0') {
    const std::string_view key = trim(env_value);
    check_key(key, "KOTO_API_KEY");
    keys.add(key);
  }
  return keys;
}

void ApiKeys::add(std::string_view key) {
  const XXH128_hash_t digest = XXH3_128bits_withSeed(key.data(), key.size(), seed_);
  keys_.push_back({{digest.low64, digest.high64}, partition_of(key)});
}

std::string ApiKeys::partition_of(std::string_view key) {
  const XXH128_hash_t digest = XXH3_128bits_withSeed(key.data(), key.size(), kPartitionSeed);
  return fmt::format("key-{:016x}{:016x}", digest.high64, digest.low64);
}

std::optional<std::string> ApiKeys::check(std::string_view header) const {
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view presented;
  if (header.size() > kBearer.size() && header.substr(0, kBearer.size()) == kBearer) {
    presented = trim(header.substr(kBearer.size()));
  }
  const XXH128_hash_t digest = XXH3_128bits_withSeed(presented.data(), presented.size(), seed_);
  const Key* found = nullptr;
  for (const Key& key : keys_) {
    const uint64_t difference = (key.digest[0] ^ digest.low64) | (key.digest[1] ^ digest.high64);
    // No branch on the secret: every key is compared, the match is selected with a mask.
    const bool equal = difference == 0;
    found = equal ? &key : found;
  }
  if (found == nullptr || presented.empty()) return std::nullopt;
  return found->partition;
}

}  // namespace koto::server
