#include "model/repack_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "koto/data_dir.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_identity.h"
#include "koto/i18n.h"
#include "tensor/kernels.h"
#include "tensor/kernel_table.h"
#include "tensor/repack.h"

namespace koto::model {
namespace {

constexpr char kMagic[8] = {'K', 'O', 'T', 'O', 'Q', '5', 'R', '1'};
constexpr uint64_t kPage = 4096;
constexpr uint64_t kAutoMinBytes = uint64_t{64} << 20;
constexpr uint64_t kSpaceMargin = uint64_t{64} << 20;  // left free on the cache's disk
constexpr int kSampledPages = 64;
constexpr size_t kChunkBytes = size_t{8} << 20;  // repacked and written at a time

uint64_t round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

// A repacked tensor: its rows in the source, its place in the cache.
struct Entry {
  const uint8_t* source;
  uint64_t source_offset;
  uint64_t bytes;
  int64_t n_in;
  uint64_t cache_offset = 0;
};

struct Plan {
  std::vector<Entry> entries;
  std::string header;  // without the sample hash (its last 16 bytes are zero)
  uint64_t data_bytes = 0;
};

// The matrices that would be repacked, each data pointer once, in file order.
std::vector<Matrix*> q5_0_matrices(Weights& w) {
  std::vector<Matrix*> all;
  for (LayerWeights& l : w.layers) {
    for (Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) all.push_back(m);
  }
  all.push_back(&w.output);
  std::erase_if(all, [](const Matrix* m) { return m->type != TensorType::kQ5_0; });
  return all;
}

void put(std::string& out, const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
void put_u64(std::string& out, uint64_t v) { put(out, &v, sizeof(v)); }

Plan make_plan(const GgufFile& file, const std::string& identity, const std::vector<Matrix*>& matrices) {
  std::map<const uint8_t*, Entry> by_source;
  const auto* base = reinterpret_cast<const uint8_t*>(file.bytes().data());
  for (const Matrix* m : matrices) {
    by_source.emplace(m->data, Entry{m->data, static_cast<uint64_t>(m->data - base),
                                     static_cast<uint64_t>(m->row_bytes * m->n_out), m->n_in});
  }
  Plan plan;
  for (auto& [source, entry] : by_source) plan.entries.push_back(entry);
  std::string& h = plan.header;
  put(h, kMagic, sizeof(kMagic));
  put_u64(h, file.bytes().size());
  put(h, identity.data(), identity.size());
  put_u64(h, plan.entries.size());
  const uint64_t header_bytes = round_up(h.size() + 8 + 24 * plan.entries.size() + 16, kPage);
  put_u64(h, header_bytes);
  uint64_t at = header_bytes;
  for (Entry& e : plan.entries) {
    e.cache_offset = at;
    put_u64(h, e.source_offset);
    put_u64(h, e.bytes);
    put_u64(h, e.cache_offset);
    at = round_up(at + e.bytes, kPage);
  }
  plan.data_bytes = at - header_bytes;
  h.resize(header_bytes, '\0');  // the sample hash goes in the last 16 bytes
  return plan;
}

// XXH3-128 of 64 pages spread evenly over [begin, end) of a cache file's bytes.
XXH128_hash_t sample_hash(const uint8_t* bytes, uint64_t begin, uint64_t end) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  const uint64_t span = end - begin;
  for (int i = 0; i < kSampledPages; ++i) {
    const uint64_t at = begin + span / kSampledPages * static_cast<uint64_t>(i);
    XXH3_128bits_update(state, bytes + at, std::min(kPage, end - at));
  }
  const XXH128_hash_t hash = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return hash;
}

// The mapping of a valid cache file at path, or null.
std::unique_ptr<MappedFile> open_valid(const std::filesystem::path& path, const Plan& plan) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return nullptr;
  std::unique_ptr<MappedFile> map;
  try {
    map = std::make_unique<MappedFile>(path.string());
  } catch (const Error&) {
    return nullptr;
  }
  const uint64_t header_bytes = plan.header.size();
  if (map->size() != header_bytes + plan.data_bytes) return nullptr;
  if (std::memcmp(map->data(), plan.header.data(), header_bytes - 16) != 0) return nullptr;
  const XXH128_hash_t want = sample_hash(map->data(), header_bytes, map->size());
  if (std::memcmp(map->data() + header_bytes - 16, &want, 16) != 0) return nullptr;
  return map;
}

// Drops the source pages of the repacked tensors from this process and, where no one
// else maps them, from the page cache: they are never read again.
void release_source(const GgufFile& file, const Entry& e) {
  const auto* base = reinterpret_cast<const uint8_t*>(file.bytes().data());
  const uint64_t begin = round_up(e.source_offset, kPage);
  const uint64_t end = (e.source_offset + e.bytes) / kPage * kPage;
  if (end <= begin) return;
  ::madvise(const_cast<uint8_t*>(base + begin), end - begin, MADV_DONTNEED);
  const int fd = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::posix_fadvise(fd, static_cast<off_t>(begin), static_cast<off_t>(end - begin), POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

bool write_all(int fd, const void* data, size_t n, uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t done = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) return false;
    p += done;
    n -= static_cast<size_t>(done);
    offset += static_cast<uint64_t>(done);
  }
  return true;
}

// Writes the cache file at `path` (through a temporary name); "" or the problem.
std::string build(const GgufFile& file, const Plan& plan, const std::filesystem::path& path,
                  const LoadOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  const std::string dir = path.parent_path().string();
  struct statvfs fs {};
  const uint64_t total = plan.header.size() + plan.data_bytes;
  if (::statvfs(dir.c_str(), &fs) == 0 && static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < total + kSpaceMargin) {
    return tr("not enough free space in {0} for the repacked weights ({1} MiB)",
              "{0} に並べ替えた重み ({1} MiB) を置く空き容量がありません", dir, total >> 20);
  }
  static std::atomic<int> counter{0};
  const std::string tmp =
      path.string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return tr("cannot write the repacked weights in {0} ({1})", "{0} に並べ替えた重みを書き込めません ({1})", dir,
              std::strerror(errno));
  }
  const auto fail = [&](int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return tr("cannot write the repacked weights to {0} ({1})", "並べ替えた重みを {0} に書き込めません ({1})", tmp,
              std::strerror(err));
  };
  std::vector<uint8_t> chunk(kChunkBytes);
  uint64_t done = 0;
  for (const Entry& e : plan.entries) {
    const int64_t row_bytes = tensor_row_bytes(TensorType::kQ5_0, e.n_in);
    const int64_t rows_per_chunk = std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes) / row_bytes);
    if (static_cast<size_t>(rows_per_chunk * row_bytes) > chunk.size()) chunk.resize(static_cast<size_t>(rows_per_chunk * row_bytes));
    const int64_t n_rows = static_cast<int64_t>(e.bytes) / row_bytes;
    for (int64_t r = 0; r < n_rows; r += rows_per_chunk) {
      const int64_t rows = std::min(rows_per_chunk, n_rows - r);
      for (int64_t i = 0; i < rows; ++i) {
        kernels::repack_q5_0_row(e.source + (r + i) * row_bytes, chunk.data() + i * row_bytes, e.n_in);
      }
      if (!write_all(fd, chunk.data(), static_cast<size_t>(rows * row_bytes), e.cache_offset + r * row_bytes)) {
        return fail(errno == 0 ? ENOSPC : errno);
      }
      done += static_cast<uint64_t>(rows * row_bytes);
      if (options.progress) options.progress(done, plan.data_bytes);
    }
    release_source(file, e);
  }
  // The padding after the last tensor, then the header with the hash of the data.
  if (::ftruncate(fd, static_cast<off_t>(total)) != 0) return fail(errno);
  void* map = ::mmap(nullptr, total, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return fail(errno);
  const XXH128_hash_t hash = sample_hash(static_cast<const uint8_t*>(map), plan.header.size(), total);
  ::munmap(map, total);
  std::string header = plan.header;
  std::memcpy(header.data() + header.size() - 16, &hash, 16);
  if (!write_all(fd, header.data(), header.size(), 0)) return fail(errno == 0 ? ENOSPC : errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return tr("cannot write the repacked weights to {0} ({1})", "並べ替えた重みを {0} に書き込めません ({1})", tmp,
              std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return tr("cannot write the repacked weights to {0} ({1})", "並べ替えた重みを {0} に書き込めません ({1})",
              path.string(), std::strerror(err));
  }
  if (options.progress) options.progress(plan.data_bytes, plan.data_bytes);
  return "";
}

RepackMode effective_mode(RepackMode mode) {
  if (mode != RepackMode::kAuto) return mode;
  const char* env = std::getenv("KOTO_REPACK");
  const std::string_view value = env ? env : "";
  if (value == "off" || value == "0") return RepackMode::kOff;
  if (value == "on" || value == "1") return RepackMode::kOn;
  return RepackMode::kAuto;
}

std::filesystem::path cache_path_for(const std::string& identity, const std::string& cache_dir) {
  const std::filesystem::path dir = cache_dir.empty() ? koto_data_dir() / "cache" : std::filesystem::path(cache_dir);
  return dir / (identity + ".q5_0r");
}

}  // namespace

std::unique_ptr<MappedFile> repack_weights(const GgufFile& file, Weights& weights, const LoadOptions& options,
                                           RepackReport& report) {
  const RepackMode mode = effective_mode(options.repack);
  if (mode == RepackMode::kOff) return nullptr;
  std::vector<Matrix*> matrices = q5_0_matrices(weights);
  if (matrices.empty()) return nullptr;
  if (mode == RepackMode::kAuto) {
    // Only where the AVX-512 kernels read Q5_0R directly, and only when the weights are
    // too large to stay in the caches anyway.
    uint64_t bytes = 0;
    for (const Matrix* m : matrices) bytes += static_cast<uint64_t>(m->row_bytes * m->n_out);
    if (kernels::active_kernel_table().isa != kernels::Isa::kAvx512 || bytes < kAutoMinBytes) return nullptr;
  }
  const std::string identity = gguf_identity(file);
  const Plan plan = make_plan(file, identity, matrices);
  const std::filesystem::path path = cache_path_for(identity, options.cache_dir);

  std::unique_ptr<MappedFile> map = open_valid(path, plan);
  if (map == nullptr) {
    const auto start = std::chrono::steady_clock::now();
    report.problem = build(file, plan, path, options);
    if (!report.problem.empty()) return nullptr;
    report.built = true;
    report.build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    map = open_valid(path, plan);
    if (map == nullptr) {
      report.problem = tr("the repacked weights in {0} did not read back; using the model's own",
                          "{0} の並べ替えた重みを読み戻せませんでした。モデルの重みをそのまま使います", path.string());
      return nullptr;
    }
  }
  // Every matrix (and token_embd, when it is the output) on the same source bytes moves.
  std::map<const uint8_t*, const uint8_t*> moved;
  for (const Entry& e : plan.entries) moved[e.source] = map->data() + e.cache_offset;
  auto repoint = [&moved](Matrix& m) {
    if (m.type != TensorType::kQ5_0) return;
    const auto it = moved.find(m.data);
    if (it == moved.end()) return;
    m.data = it->second;
    m.type = TensorType::kQ5_0R;
  };
  for (Matrix* m : matrices) repoint(*m);
  repoint(weights.token_embd);
  report.cache_path = path.string();
  report.mapped = map->data();
  report.mapped_bytes = map->size();
  report.bytes = plan.data_bytes;
  report.n_tensors = static_cast<int>(plan.entries.size());
  return map;
}

}  // namespace koto::model

namespace koto {

std::string repack_cache_path(const GgufFile& file, const std::string& cache_dir) {
  return model::cache_path_for(gguf_identity(file), cache_dir).string();
}

}  // namespace koto
