// Model files in 2 MB pages. Decoding streams every weight once per token; through
// 4 KB pages that is a TLB miss every 4 KB the hardware prefetchers cannot run past,
// and on this project's VM llama2-7b Q5_0 decoded at 9.0 tokens/s from 4 KB pages
// against 11.8 from 2 MB pages (65.7 -> 83.4 % of the same run's read of the file).
//
// Linux maps a file's pages 2 MB at a time when its page cache holds them in 2 MB
// folios (file systems with large folios: ext4 from Linux 6.16, XFS, ...). Reads through
// a mapping bring pages in as such folios (MADV_HUGEPAGE, which MappedFile sets, asks
// for them); pages already in the page cache keep the size they were written or read in
// (on this project's VM the 7B's repacked cache, written by koto, stayed in small
// folios, and after days of other work part of a model file too): prepare_huge_pages
// drops those so the next reads bring them back whole.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace koto {

// A byte range of one file mapping (from offset 0 of the file).
struct MappedRange {
  const uint8_t* begin;
  const uint8_t* end;
};

// Bytes of the mapping that starts at `mapping` that this process has resident (Rss)
// and maps with 2 MB pages (FilePmdMapped), from /proc/self/smaps; both -1 when it
// cannot be read.
struct MappedPages {
  int64_t resident_bytes = -1;
  int64_t huge_bytes = -1;
};
MappedPages mapped_pages(const void* mapping);

enum class HugePages {
  kAlready,      // the ranges' resident pages are mapped 2 MB at a time (or none are resident)
  kDropped,      // they sat in small pages and were dropped: the next reads bring them back whole
  kUnavailable,  // this kernel, file system or mapping cannot (or other processes map them)
};

// For the ranges of the file at `path` mapped at `mapping`: when their resident pages
// are in small pages and a test on one 2 MB piece shows the kernel would bring them back
// in 2 MB pages, drops them from this process and from the page cache (MADV_DONTNEED,
// POSIX_FADV_DONTNEED) — the caller then reads them in again. Touches one byte per
// resident 2 MB piece; never changes the file.
HugePages prepare_huge_pages(const std::string& path, const uint8_t* mapping, std::span<const MappedRange> ranges);

}  // namespace koto
