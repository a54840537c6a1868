#include "format/huge_pages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "format/mapped_file.h"

namespace koto {
namespace {

constexpr size_t kHuge = size_t{2} << 20;

// 8 x 2 MB of bytes that differ from page to page, written through the page cache in
// small writes (so the page cache holds them in small pages, as after a download).
std::vector<uint8_t> write_file(const std::string& path) {
  std::vector<uint8_t> bytes(8 * kHuge);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  std::ofstream out(path, std::ios::binary);
  for (size_t at = 0; at < bytes.size(); at += 4096) out.write(reinterpret_cast<const char*>(&bytes[at]), 4096);
  return bytes;
}

uint64_t sum_pages(const uint8_t* data, size_t size) {
  uint64_t sum = 0;
  for (size_t at = 0; at < size; at += 4096) sum += data[at];
  return sum;
}

TEST(HugePages, SmallPagesAreDroppedAndComeBackWholeWithTheSameBytes) {
  const std::string path = (std::filesystem::path(::testing::TempDir()) / "koto_huge_pages_重み.bin").string();
  const std::vector<uint8_t> bytes = write_file(path);
  const MappedFile map(path);
  ASSERT_EQ(map.size(), bytes.size());
  (void)sum_pages(map.data(), map.size());  // in this process's page tables, as after a first read
  const MappedRange all{map.data(), map.data() + map.size()};

  const HugePages first = prepare_huge_pages(path, map.data(), {&all, 1});
  // Read back (from disk where pages were dropped): the same bytes.
  ASSERT_EQ(std::memcmp(map.data(), bytes.data(), bytes.size()), 0);
  const MappedPages pages = mapped_pages(map.data());
  EXPECT_EQ(pages.resident_bytes, static_cast<int64_t>(bytes.size()));
  std::printf("prepare_huge_pages on a file written in 4 KB writes: %s; %lld of %lld bytes in 2 MB pages\n",
              first == HugePages::kDropped ? "dropped" : first == HugePages::kAlready ? "already" : "unavailable",
              static_cast<long long>(pages.huge_bytes), static_cast<long long>(pages.resident_bytes));
  if (first == HugePages::kDropped) {
    // Every whole 2 MB piece came back as one 2 MB page, and a second call finds nothing to do.
    EXPECT_EQ(pages.huge_bytes, static_cast<int64_t>(bytes.size()));
    EXPECT_EQ(prepare_huge_pages(path, map.data(), {&all, 1}), HugePages::kAlready);
    EXPECT_EQ(mapped_pages(map.data()).huge_bytes, static_cast<int64_t>(bytes.size()));
  } else if (first == HugePages::kAlready) {
    EXPECT_EQ(pages.huge_bytes, static_cast<int64_t>(bytes.size()));
  }
  std::filesystem::remove(path);
}

TEST(HugePages, OnlyTheRangesGivenAreTouched) {
  const std::string path = (std::filesystem::path(::testing::TempDir()) / "koto_huge_pages_range.bin").string();
  const std::vector<uint8_t> bytes = write_file(path);
  const MappedFile map(path);
  // The second half only: the first half of the mapping stays out of this process.
  const MappedRange half{map.data() + 4 * kHuge, map.data() + 8 * kHuge};
  (void)sum_pages(half.begin, 4 * kHuge);
  const HugePages outcome = prepare_huge_pages(path, map.data(), {&half, 1});
  ASSERT_EQ(std::memcmp(half.begin, bytes.data() + 4 * kHuge, 4 * kHuge), 0);
  const MappedPages pages = mapped_pages(map.data());
  EXPECT_EQ(pages.resident_bytes, static_cast<int64_t>(4 * kHuge));
  if (outcome != HugePages::kUnavailable) {
    EXPECT_EQ(pages.huge_bytes, static_cast<int64_t>(4 * kHuge));
  }
  std::filesystem::remove(path);
}

TEST(HugePages, AnAddressThatStartsNoMappingIsUnknown) {
  std::vector<uint8_t> heap(1 << 16);
  const MappedPages pages = mapped_pages(heap.data() + 100);
  EXPECT_EQ(pages.resident_bytes, -1);
  EXPECT_EQ(pages.huge_bytes, -1);
  // And nothing is dropped from memory that is not a file's mapping at a 2 MB boundary.
  const MappedRange r{heap.data(), heap.data() + heap.size()};
  EXPECT_EQ(prepare_huge_pages("/nonexistent/koto", heap.data() + 100, {&r, 1}), HugePages::kUnavailable);
}

}  // namespace
}  // namespace koto
