#include "format/huge_pages.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

namespace koto {
namespace {

constexpr uintptr_t kHuge = uintptr_t{2} << 20;

uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

void touch(uintptr_t at) { (void)*reinterpret_cast<const volatile uint8_t*>(at); }

// PAGEMAP_SCAN (Linux 6.7; Debian 12's headers predate it, so the interface is declared
// here as the kernel's documentation gives it): which mapped pages are 2 MB pages.
struct PmScanArg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct PageRegion {
  uint64_t start, end, categories;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr uint64_t kPageIsPresent = 1 << 3;
constexpr uint64_t kPageIsHuge = 1 << 6;

class PageScan {
 public:
  PageScan() : fd_(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) {
    // Usable when a scan of a page of our own stack answers.
    if (fd_ >= 0 && regions(address(&fd_) / 4096 * 4096, 4096) < 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~PageScan() {
    if (fd_ >= 0) ::close(fd_);
  }
  PageScan(const PageScan&) = delete;
  PageScan& operator=(const PageScan&) = delete;
  bool ok() const { return fd_ >= 0; }
  // Whether the 2 MB piece at `at` is mapped, and as one 2 MB page.
  bool huge(uintptr_t at) {
    return regions(at, kHuge) == 1 && region_.start == at && region_.end == at + kHuge &&
           (region_.categories & kPageIsHuge) != 0;
  }

 private:
  // The present pages of [at, at + bytes) as regions of like pages (at most one kept).
  int regions(uintptr_t at, uintptr_t bytes) {
    PmScanArg arg{};
    arg.size = sizeof(arg);
    arg.start = at;
    arg.end = at + bytes;
    arg.vec = address(&region_);
    arg.vec_len = 1;
    arg.category_anyof_mask = kPageIsPresent;
    arg.return_mask = kPageIsPresent | kPageIsHuge;
    region_ = {};
    return ::ioctl(fd_, kPagemapScan, &arg);
  }
  int fd_;
  PageRegion region_{};
};

}  // namespace

MappedPages mapped_pages(const void* mapping) {
  MappedPages pages;
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) return pages;
  const uintptr_t start = address(mapping);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    // A mapping's first line: "start-end perms offset dev inode path"; its fields follow
    // as "Name:   value kB".
    const size_t dash = line.find('-');
    const bool header = dash != std::string::npos && dash > 0 &&
                        line.find_first_not_of("0123456789abcdef") == dash;
    if (header) {
      if (inside) break;
      inside = std::strtoull(line.c_str(), nullptr, 16) == start;
      if (inside) pages.resident_bytes = pages.huge_bytes = 0;
      continue;
    }
    if (!inside) continue;
    const auto field = [&](const char* name, int64_t& out) {
      const size_t n = std::strlen(name);
      if (line.compare(0, n, name) == 0) out = static_cast<int64_t>(std::strtoull(line.c_str() + n, nullptr, 10)) * 1024;
    };
    field("Rss:", pages.resident_bytes);
    field("FilePmdMapped:", pages.huge_bytes);
  }
  return pages;
}

HugePages prepare_huge_pages(const std::string& path, const uint8_t* mapping, std::span<const MappedRange> ranges) {
  // A 2 MB page needs the address and the file offset 2 MB-aligned alike: the mapping
  // starts at offset 0, so it must start on a 2 MB boundary (Linux places large file
  // mappings so).
  const uintptr_t base = address(mapping);
  if (base % kHuge != 0) return HugePages::kUnavailable;
  // The whole 2 MB pieces of the ranges that have any page in the page cache (a piece
  // partly there cannot be read into one 2 MB folio either).
  const long page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> in_core(kHuge / static_cast<uintptr_t>(page));
  std::vector<uintptr_t> resident;
  for (const MappedRange& r : ranges) {
    for (uintptr_t at = (address(r.begin) + kHuge - 1) / kHuge * kHuge; at + kHuge <= address(r.end); at += kHuge) {
      if (::mincore(reinterpret_cast<void*>(at), kHuge, in_core.data()) != 0) continue;
      if (std::any_of(in_core.begin(), in_core.end(), [](unsigned char c) { return (c & 1) != 0; })) {
        resident.push_back(at);
      }
    }
  }
  if (resident.empty()) return HugePages::kAlready;
  // Map them: a piece held in a 2 MB folio is mapped whole by its first access.
  for (const uintptr_t at : resident) touch(at);
  PageScan scan;
  std::vector<uintptr_t> small;
  if (scan.ok()) {
    for (const uintptr_t at : resident) {
      if (!scan.huge(at)) small.push_back(at);
    }
  } else {
    // No PAGEMAP_SCAN (before Linux 6.7): only the count is known; when pieces are
    // missing, all are taken as small.
    const MappedPages pages = mapped_pages(mapping);
    if (pages.huge_bytes < 0) return HugePages::kUnavailable;
    if (static_cast<uint64_t>(pages.huge_bytes) < resident.size() * kHuge) small = resident;
  }
  if (small.empty()) return HugePages::kAlready;

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return HugePages::kUnavailable;
  // Pages not yet written back (a file just written) cannot be dropped: write them now.
  ::fdatasync(fd);
  const auto drop = [&](uintptr_t at) {
    ::madvise(reinterpret_cast<void*>(at), kHuge, MADV_DONTNEED);
    ::posix_fadvise(fd, static_cast<off_t>(at - base), static_cast<off_t>(kHuge), POSIX_FADV_DONTNEED);
  };
  // The test: drop one piece and read it back. If it comes back in a 2 MB page, so
  // will the rest (with only the count, measure it after the drop).
  const uintptr_t probe = small.front();
  drop(probe);
  const int64_t dropped = scan.ok() ? 0 : mapped_pages(mapping).huge_bytes;
  touch(probe);
  const bool works = scan.ok() ? scan.huge(probe)
                               : dropped >= 0 && mapped_pages(mapping).huge_bytes - dropped >= static_cast<int64_t>(kHuge);
  if (works) {
    for (size_t i = 1; i < small.size(); ++i) drop(small[i]);
  }
  ::close(fd);
  return works ? HugePages::kDropped : HugePages::kUnavailable;
}

}  // namespace koto
