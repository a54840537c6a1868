// The prefix cache: blocks of KV state keyed by chained hashes, in memory under an LRU
// budget and optionally in a folder (see koto/prefix_cache.h for the contract).
#include "koto/prefix_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "koto/error.h"
#include "serving/token_prefix.h"
#include "koto/i18n.h"
#include "koto/model.h"

namespace koto {
namespace {

namespace fs = std::filesystem;

struct Key {
  uint64_t low = 0;
  uint64_t high = 0;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& key) const { return static_cast<size_t>(key.low ^ (key.high * 0x9E3779B97F4A7C15ull)); }
};

Key from_hash(const XXH128_hash_t& hash) { return {hash.low64, hash.high64}; }

// The key of a block: its parent's key and its tokens, so it stands for the whole prefix.
Key chain_key(const Key& parent, std::span<const TokenId> tokens) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, &parent, sizeof(parent));
  XXH3_128bits_update(state, tokens.data(), tokens.size_bytes());
  const Key key = from_hash(XXH3_128bits_digest(state));
  XXH3_freeState(state);
  return key;
}

Key hash_string(std::string_view text, uint64_t seed) { return from_hash(XXH3_128bits_withSeed(text.data(), text.size(), seed)); }

std::string hex(const Key& key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    const uint64_t word = i < 8 ? key.high : key.low;
    const auto byte = static_cast<uint8_t>(word >> (8 * (7 - i % 8)));
    out[2 * i] = kHex[byte >> 4];
    out[2 * i + 1] = kHex[byte & 15];
  }
  return out;
}

bool parse_hex(std::string_view text, Key& key) {
  if (text.size() != 32) return false;
  Key out;
  for (int i = 0; i < 32; ++i) {
    const char c = text[static_cast<size_t>(i)];
    uint64_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    uint64_t& word = i < 16 ? out.high : out.low;
    word = (word << 4) | digit;
  }
  key = out;
  return true;
}

// A block file: this header, the block's tokens (int32), its KV bytes. Little-endian,
// as every machine koto runs on.
constexpr char kMagic[8] = {'K', 'O', 'T', 'O', 'K', 'V', 'C', '1'};
constexpr uint32_t kFormatVersion = 1;
struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t block_tokens;
  uint64_t identity_low, identity_high;  // hash of the model identity
  uint64_t key_low, key_high;
  uint64_t parent_low, parent_high;
  uint64_t bytes_per_position;
  uint32_t n_tokens;
  uint32_t reserved;
  uint64_t checksum;  // XXH3-64 of the tokens, then the KV bytes
};
static_assert(sizeof(FileHeader) == 88);

uint64_t checksum_of(std::span<const TokenId> tokens, std::span<const uint8_t> kv) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, tokens.data(), tokens.size_bytes());
  XXH3_64bits_update(state, kv.data(), kv.size());
  const uint64_t sum = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return sum;
}

// Reads exactly n bytes (false on a short file or an error).
bool read_exact(int fd, void* out, size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    const ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool write_exact(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t put = ::write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    p += put;
    n -= static_cast<size_t>(put);
  }
  return true;
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  // Closes now and reports whether close succeeded (a write error may surface here).
  bool close() {
    const int fd = fd_;
    fd_ = -1;
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  int fd_;
};


}  // namespace

// Anonymous memory mapped and populated by one system call.
struct PrefixCache::Bytes {
  explicit Bytes(size_t n) : size(n) {
    if (n == 0) return;
    void* map = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (map == MAP_FAILED) throw std::bad_alloc();
    data = static_cast<uint8_t*>(map);
  }
  ~Bytes() {
    if (data != nullptr) ::munmap(data, size);
  }
  Bytes(const Bytes&) = delete;
  Bytes& operator=(const Bytes&) = delete;
  std::span<uint8_t> span() { return {data, size}; }
  std::span<const uint8_t> span() const { return {data, size}; }

  uint8_t* data = nullptr;
  size_t size;
};

struct PrefixCache::Source {
  std::shared_ptr<const Bytes> kv;  // in memory, or null: read the file of `key`
  Key key;
};

struct PrefixCache::State {
  struct Node {
    Key key;
    Key parent;
    std::vector<TokenId> tokens;                     // this block's tokens (1 .. block_tokens)
    std::shared_ptr<const Bytes> kv;                 // null while only on disk
    bool on_disk = false;
    bool write_pending = false;
    uint64_t file_bytes = 0;
    std::list<Key>::iterator memory_position;  // valid while kv is set
    std::list<Key>::iterator disk_position;    // valid while on_disk
  };

  struct WriteJob {
    Key key;
    Key parent;
    std::vector<TokenId> tokens;
    std::shared_ptr<const Bytes> kv;
  };

  State(std::string identity, size_t bytes_per_position, PrefixCacheOptions options,
        std::function<void(const std::string&)> warn)
      : identity_key(hash_string(identity, 0)),
        bytes_per_position(bytes_per_position),
        options(std::move(options)),
        warn(std::move(warn)) {}

  bool enabled() const { return options.memory_bytes > 0 && bytes_per_position > 0; }
  bool disk_enabled() const { return enabled() && !folder.empty(); }
  int32_t block_tokens() const { return options.block_tokens; }

  Key root(std::string_view partition) const { return hash_string(partition, identity_key.low ^ identity_key.high); }

  std::string file_path(const Key& key) const { return folder + "/" + hex(key) + ".kvb"; }

  // Called from the owning thread and the writer's.
  void say(const std::string& message) {
    const std::lock_guard<std::mutex> lock(warn_mutex);
    if (warn) warn(message);
  }

  Node* node(const Key& key) {
    auto it = nodes.find(key);
    return it == nodes.end() ? nullptr : &it->second;
  }

  // ---- LRU bookkeeping: front = most recently used ----

  void touch(Node& n) {
    if (n.kv) memory_lru.splice(memory_lru.begin(), memory_lru, n.memory_position);
    if (n.on_disk) {
      disk_lru.splice(disk_lru.begin(), disk_lru, n.disk_position);
      // The order survives a restart through the file times.
      ::utimensat(AT_FDCWD, file_path(n.key).c_str(), nullptr, 0);
    }
  }

  // From the end of a chain back to its root, so ancestors are always more recent.
  void touch_chain(const std::vector<Key>& chain) {
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      if (Node* n = node(*it)) touch(*n);
    }
  }

  void forget(const Key& key) {
    auto it = nodes.find(key);
    if (it == nodes.end()) return;
    Node& n = it->second;
    if (n.kv) {
      memory_lru.erase(n.memory_position);
      memory_used -= n.kv->size;
    }
    if (n.on_disk) {
      disk_lru.erase(n.disk_position);
      disk_used -= n.file_bytes;
    }
    auto siblings = children.find(n.parent);
    if (siblings != children.end()) {
      std::erase(siblings->second, key);
      if (siblings->second.empty()) children.erase(siblings);
    }
    nodes.erase(it);
  }

  void drop_from_memory(Node& n) {
    memory_lru.erase(n.memory_position);
    memory_used -= n.kv->size;
    n.kv.reset();
  }

  void drop_from_disk(Node& n) {
    ::unlink(file_path(n.key).c_str());
    disk_lru.erase(n.disk_position);
    disk_used -= n.file_bytes;
    n.on_disk = false;
  }

  void evict_memory() {
    while (memory_used > options.memory_bytes && !memory_lru.empty()) {
      Node& n = *node(memory_lru.back());
      drop_from_memory(n);
      if (!n.on_disk && !n.write_pending) forget(n.key);
    }
  }

  void evict_disk() {
    while (disk_used > options.disk_bytes && !disk_lru.empty()) {
      Node& n = *node(disk_lru.back());
      drop_from_disk(n);
      if (!n.kv && !n.write_pending) forget(n.key);
    }
  }

  // ---- Disk ----

  // Reads and checks a block file's header and tokens; on success fills `header` and
  // `tokens` and leaves the descriptor at the KV bytes. `why` says what was wrong.
  bool read_block_head(int fd, uint64_t file_size, const Key& expected, FileHeader& header,
                       std::vector<TokenId>& tokens, std::string& why) const {
    if (!read_exact(fd, &header, sizeof(header))) {
      why = pick("shorter than its header", "ヘッダーより短い");
      return false;
    }
    if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0 || header.version != kFormatVersion) {
      why = pick("not a koto KV cache file of this version", "このバージョンの koto KV キャッシュファイルではない");
      return false;
    }
    if (Key{header.identity_low, header.identity_high} != identity_key ||
        header.bytes_per_position != bytes_per_position ||
        header.block_tokens != static_cast<uint32_t>(block_tokens())) {
      why = pick("made for another model, KV type or block size", "別のモデル・KV の型・ブロック長のためのもの");
      return false;
    }
    if (header.n_tokens == 0 || header.n_tokens > header.block_tokens) {
      why = pick("bad token count", "トークン数が不正");
      return false;
    }
    const uint64_t expected_size =
        sizeof(FileHeader) + uint64_t{header.n_tokens} * sizeof(TokenId) + header.n_tokens * bytes_per_position;
    if (file_size != expected_size) {
      why = tr("size {0} bytes, expected {1}", "大きさが {0} バイト (正しくは {1})", file_size, expected_size);
      return false;
    }
    tokens.resize(header.n_tokens);
    if (!read_exact(fd, tokens.data(), tokens.size() * sizeof(TokenId))) {
      why = pick("truncated", "途中で切れている");
      return false;
    }
    const Key key{header.key_low, header.key_high};
    const Key parent{header.parent_low, header.parent_high};
    if (key != expected || chain_key(parent, tokens) != key) {
      why = pick("its key does not match its tokens", "キーがトークンと一致しない");
      return false;
    }
    return true;
  }

  void reject_file(const std::string& path, const std::string& why) {
    ++rejected_files;
    say(tr("prefix cache: ignored and deleted {0} ({1})", "プレフィックスキャッシュ: {0} を無視して削除しました ({1})",
           path, why));
    ::unlink(path.c_str());
  }

  // Reads the headers of the folder's block files into disk-only nodes.
  void scan_folder() {
    std::error_code ec;
    struct Found {
      Key key;
      Key parent;
      std::vector<TokenId> tokens;
      uint64_t bytes;
      fs::file_time_type time;
    };
    std::vector<Found> found;
    for (const fs::directory_entry& entry : fs::directory_iterator(folder, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.ends_with(".tmp")) {  // an interrupted write
        fs::remove(entry.path(), ec);
        continue;
      }
      Key key;
      if (!name.ends_with(".kvb") || !parse_hex(std::string_view(name).substr(0, name.size() - 4), key)) continue;
      const std::string path = entry.path().string();
      FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      struct stat st {};
      if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) continue;
      FileHeader header;
      Found f;
      std::string why;
      if (!read_block_head(fd.get(), static_cast<uint64_t>(st.st_size), key, header, f.tokens, why)) {
        reject_file(path, why);
        continue;
      }
      f.key = key;
      f.parent = {header.parent_low, header.parent_high};
      f.bytes = static_cast<uint64_t>(st.st_size);
      f.time = entry.last_write_time(ec);
      found.push_back(std::move(f));
    }
    // Most recent first, but every block after its parent, so eviction takes leaves
    // before the prefixes they hang from.
    std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.time > b.time; });
    std::unordered_map<Key, size_t, KeyHash> index;
    for (size_t i = 0; i < found.size(); ++i) index[found[i].key] = i;
    std::vector<bool> placed(found.size(), false);
    std::vector<size_t> order;
    for (size_t i = 0; i < found.size(); ++i) {
      std::vector<size_t> path;
      for (size_t at = i; !placed[at];) {
        placed[at] = true;
        path.push_back(at);
        auto parent = index.find(found[at].parent);
        if (parent == index.end()) break;
        at = parent->second;
      }
      order.insert(order.end(), path.rbegin(), path.rend());
    }
    for (size_t i : order) {
      Found& f = found[i];
      Node& n = nodes[f.key];
      n.key = f.key;
      n.parent = f.parent;
      n.tokens = std::move(f.tokens);
      n.on_disk = true;
      n.file_bytes = f.bytes;
      n.disk_position = disk_lru.insert(disk_lru.end(), f.key);
      disk_used += f.bytes;
      children[f.parent].push_back(f.key);
    }
    evict_disk();
  }

  // Reads a block's KV bytes from its file into `into` (sized to them) and checks
  // them; false, and the block forgotten with a warning, when the file is missing or
  // damaged.
  bool read_block(Node& n, std::vector<uint8_t>& into) {
    const std::string path = file_path(n.key);
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    std::string why;
    bool ok = fd.get() >= 0 && ::fstat(fd.get(), &st) == 0;
    if (!ok) why = std::strerror(errno);
    FileHeader header;
    std::vector<TokenId> tokens;
    if (ok) ok = read_block_head(fd.get(), static_cast<uint64_t>(st.st_size), n.key, header, tokens, why);
    if (ok && tokens != n.tokens) {
      ok = false;
      why = pick("its tokens changed since start-up", "起動後にトークンが変わった");
    }
    if (ok) {
      into.resize(tokens.size() * bytes_per_position);  // a reused buffer: its pages are already there
      ok = read_exact(fd.get(), into.data(), into.size());
      if (!ok) why = pick("truncated", "途中で切れている");
    }
    if (ok && checksum_of(tokens, into) != header.checksum) {
      ok = false;
      why = pick("checksum mismatch (damaged)", "チェックサムが一致しない (破損)");
    }
    if (!ok) {
      n.on_disk = false;
      disk_lru.erase(n.disk_position);
      disk_used -= n.file_bytes;
      reject_file(path, why);
      if (!n.kv) forget(n.key);
      return false;
    }
    ++disk_loads;
    return true;
  }

  void writer_loop() {
    // Writing is background work: on a machine with few cores it must not take time
    // from the threads that generate (a 7B model writes half a MB per position).
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);
    std::unique_lock<std::mutex> lock(writer_mutex);
    while (true) {
      writer_cv.wait(lock, [&] { return stop_writer || !jobs.empty(); });
      if (jobs.empty()) return;  // stop_writer, nothing left
      WriteJob job = std::move(jobs.front());
      jobs.pop_front();
      lock.unlock();
      const uint64_t bytes = write_block(job);
      lock.lock();
      written.emplace_back(job.key, bytes);
      --writes_in_flight;
      if (writes_in_flight == 0) idle_cv.notify_all();
    }
  }

  // Writes one block file (temporary name, then rename); returns its size, 0 on failure.
  uint64_t write_block(const WriteJob& job) {
    FileHeader header{};
    std::memcpy(header.magic, kMagic, sizeof(kMagic));
    header.version = kFormatVersion;
    header.block_tokens = static_cast<uint32_t>(block_tokens());
    header.identity_low = identity_key.low;
    header.identity_high = identity_key.high;
    header.key_low = job.key.low;
    header.key_high = job.key.high;
    header.parent_low = job.parent.low;
    header.parent_high = job.parent.high;
    header.bytes_per_position = bytes_per_position;
    header.n_tokens = static_cast<uint32_t>(job.tokens.size());
    header.checksum = checksum_of(job.tokens, job.kv->span());
    const std::string path = file_path(job.key);
    const std::string temporary = path + ".tmp";
    FileDescriptor fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    bool ok = fd.get() >= 0 && write_exact(fd.get(), &header, sizeof(header)) &&
              write_exact(fd.get(), job.tokens.data(), job.tokens.size() * sizeof(TokenId)) &&
              write_exact(fd.get(), job.kv->data, job.kv->size);
    const int saved_errno = errno;
    ok = fd.close() && ok;
    if (ok) ok = ::rename(temporary.c_str(), path.c_str()) == 0;
    if (!ok) {
      ::unlink(temporary.c_str());
      const std::string reason = std::strerror(saved_errno != 0 ? saved_errno : errno);
      say(tr("prefix cache: cannot write {0} ({1}); the block stays in memory only",
             "プレフィックスキャッシュ: {0} を書き込めません ({1})。このブロックはメモリにだけ置きます", path, reason));
      return 0;
    }
    ++disk_writes;
    return sizeof(header) + job.tokens.size() * sizeof(TokenId) + job.kv->size;
  }

  // Takes the writer's results into the index (on the owning thread).
  void collect_writes() {
    std::vector<std::pair<Key, uint64_t>> done;
    {
      std::lock_guard<std::mutex> lock(writer_mutex);
      done.swap(written);
    }
    for (const auto& [key, bytes] : done) {
      Node* n = node(key);
      if (n == nullptr) {  // forgotten meanwhile: its file has no place in the index
        if (bytes > 0) ::unlink(file_path(key).c_str());
        continue;
      }
      n->write_pending = false;
      if (bytes == 0) {
        if (!n->kv) forget(key);
        continue;
      }
      n->on_disk = true;
      n->file_bytes = bytes;
      disk_used += bytes;
      // Just behind its parent when that is on disk: an ancestor stays more recent.
      Node* parent = node(n->parent);
      n->disk_position = parent != nullptr && parent->on_disk
                             ? disk_lru.insert(std::next(parent->disk_position), key)
                             : disk_lru.insert(disk_lru.begin(), key);
    }
    evict_disk();
  }

  void publish_stats() {
    stat_memory_bytes = memory_used;
    stat_memory_blocks = memory_lru.size();
    stat_disk_bytes = disk_used;
    stat_disk_blocks = disk_lru.size();
  }

  const Key identity_key;
  const size_t bytes_per_position;
  const PrefixCacheOptions options;
  std::function<void(const std::string&)> warn;
  std::mutex warn_mutex;  // the writer warns from its thread
  std::string folder;

  std::unordered_map<Key, Node, KeyHash> nodes;
  std::unordered_map<Key, std::vector<Key>, KeyHash> children;  // parent → blocks that follow it
  std::list<Key> memory_lru;
  std::list<Key> disk_lru;
  uint64_t memory_used = 0;
  uint64_t disk_used = 0;

  std::mutex writer_mutex;
  std::condition_variable writer_cv;
  std::condition_variable idle_cv;
  std::deque<WriteJob> jobs;
  std::vector<std::pair<Key, uint64_t>> written;  // (key, file bytes or 0 on failure)
  size_t writes_in_flight = 0;
  bool stop_writer = false;
  std::thread writer;

  std::vector<uint8_t> read_buffer;  // blocks read from disk pass through here

  std::atomic<uint64_t> stat_memory_bytes{0}, stat_memory_blocks{0}, stat_disk_bytes{0}, stat_disk_blocks{0};
  std::atomic<uint64_t> lookups{0}, hit_tokens{0}, disk_loads{0}, disk_writes{0}, rejected_files{0};
};

PrefixCache::PrefixCache(std::string model_identity, size_t bytes_per_position, PrefixCacheOptions options,
                         std::function<void(const std::string&)> warn) {
  if (options.block_tokens < 1 || options.block_tokens > 4096) {
    throw Error(ErrorCode::kInvalidArgument, tr("prefix cache block of {0} tokens is out of range (1 to 4096)",
                                                "プレフィックスキャッシュのブロック長 {0} は範囲外です (1〜4096)",
                                                options.block_tokens));
  }
  const std::string identity_text = model_identity;
  state_ = std::make_unique<State>(std::move(model_identity), bytes_per_position, std::move(options), std::move(warn));
  State& s = *state_;
  if (s.enabled() && !s.options.disk_dir.empty()) {
    s.folder = (fs::path(s.options.disk_dir) / hex(hash_string(identity_text, 1))).string();
    std::error_code ec;
    fs::create_directories(s.folder, ec);
    if (ec) {
      throw Error(ErrorCode::kIo, tr("{0}: cannot create the prefix cache folder ({1}); check --cache-dir",
                                     "{0}: プレフィックスキャッシュのフォルダーを作れません ({1})。--cache-dir を確認してください",
                                     s.folder, ec.message()));
    }
    s.scan_folder();
    s.writer = std::thread([&s] { s.writer_loop(); });
  }
  s.publish_stats();
}

PrefixCache::~PrefixCache() {
  State& s = *state_;
  if (s.writer.joinable()) {
    {
      std::lock_guard<std::mutex> lock(s.writer_mutex);
      s.stop_writer = true;
    }
    s.writer_cv.notify_all();
    s.writer.join();
  }
}

PrefixCache::Match PrefixCache::find(std::string_view partition, std::span<const TokenId> tokens, int32_t max_tokens) {
  State& s = *state_;
  Match match;
  if (!s.enabled()) return match;
  s.collect_writes();
  ++s.lookups;
  const size_t limit = std::min(tokens.size(), static_cast<size_t>(std::max(max_tokens, 0)));
  const size_t block = static_cast<size_t>(s.block_tokens());
  Key current = s.root(partition);
  size_t position = 0;
  std::vector<Key> chain;
  // Whole blocks, as far as they match.
  while (position + block <= limit) {
    const std::span<const TokenId> slice = tokens.subspan(position, block);
    const Key key = chain_key(current, slice);
    State::Node* n = s.node(key);
    if (n == nullptr || !std::equal(n->tokens.begin(), n->tokens.end(), slice.begin(), slice.end())) break;
    match.blocks_.push_back(std::make_shared<const Source>(Source{n->kv, key}));
    chain.push_back(key);
    current = key;
    position += block;
  }
  // Then the longest matching start of any block that follows (full or partial).
  auto followers = s.children.find(current);
  if (position < limit && followers != s.children.end()) {
    const std::span<const TokenId> rest = tokens.subspan(position, limit - position);
    std::vector<std::pair<size_t, Key>> candidates;
    for (const Key& key : followers->second) {
      const size_t n = serving::common_prefix_length(s.node(key)->tokens, rest);
      if (n > 0) candidates.emplace_back(n, key);
    }
    std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    if (!candidates.empty()) {
      const auto& [n, key] = candidates.front();
      match.blocks_.push_back(std::make_shared<const Source>(Source{s.node(key)->kv, key}));
      chain.push_back(key);
      position += n;
    }
  }
  match.tokens_ = static_cast<int32_t>(position);
  s.touch_chain(chain);
  s.evict_memory();
  s.publish_stats();
  return match;
}

int32_t PrefixCache::restore(const Match& match, int32_t from, Session& session) {
  State& s = *state_;
  if (from < 0 || from > match.tokens_ || session.n_past() != from ||
      session.kv_bytes_per_position() != s.bytes_per_position) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("cannot restore cached positions {0} to {1} into a session at position {2}",
                   "キャッシュの位置 {0}〜{1} を位置 {2} のセッションに戻せません", from, match.tokens_,
                   session.n_past()));
  }
  const int32_t block = s.block_tokens();
  int32_t position = from;
  while (position < match.tokens_) {
    const int32_t index = position / block;
    const int32_t end = std::min((index + 1) * block, match.tokens_);
    const Source& source = *match.blocks_[static_cast<size_t>(index)];
    const uint8_t* bytes = nullptr;
    if (source.kv) {
      bytes = source.kv->data;
    } else {
      State::Node* node = s.node(source.key);
      if (node == nullptr || !node->on_disk || !s.read_block(*node, s.read_buffer)) break;
      bytes = s.read_buffer.data();
    }
    const size_t offset = static_cast<size_t>(position - index * block) * s.bytes_per_position;
    session.append_kv(std::span<const uint8_t>(bytes + offset, static_cast<size_t>(end - position) * s.bytes_per_position));
    position = end;
  }
  s.hit_tokens += static_cast<uint64_t>(position - from);
  s.publish_stats();
  return position;
}

void PrefixCache::store(std::string_view partition, std::span<const TokenId> tokens, const Session& session) {
  State& s = *state_;
  if (!s.enabled() || tokens.empty()) return;
  s.collect_writes();
  const size_t n_tokens = std::min(tokens.size(), static_cast<size_t>(session.n_past()));
  const size_t block = static_cast<size_t>(s.block_tokens());
  Key current = s.root(partition);
  std::vector<Key> chain;
  for (size_t position = 0; position < n_tokens;) {
    const size_t length = std::min(block, n_tokens - position);
    const std::span<const TokenId> slice = tokens.subspan(position, length);
    const Key key = chain_key(current, slice);
    State::Node* n = s.node(key);
    if (n != nullptr && !std::equal(n->tokens.begin(), n->tokens.end(), slice.begin(), slice.end())) {
      break;  // a hash collision: leave the existing block alone
    }
    if (n == nullptr) {
      auto kv = std::make_shared<Bytes>(length * s.bytes_per_position);
      session.read_kv(static_cast<int32_t>(position), static_cast<int32_t>(position + length), kv->span());
      State::Node& created = s.nodes[key];
      created.key = key;
      created.parent = current;
      created.tokens.assign(slice.begin(), slice.end());
      created.kv = kv;
      created.memory_position = s.memory_lru.insert(s.memory_lru.begin(), key);
      s.memory_used += kv->size;
      s.children[current].push_back(key);
      if (s.disk_enabled()) {
        created.write_pending = true;
        {
          std::lock_guard<std::mutex> lock(s.writer_mutex);
          s.jobs.push_back({key, current, created.tokens, kv});
          ++s.writes_in_flight;
        }
        s.writer_cv.notify_one();
      }
    }
    chain.push_back(key);
    if (length < block) break;
    current = key;
    position += length;
  }
  s.touch_chain(chain);
  s.evict_memory();
  s.publish_stats();
}

void PrefixCache::flush() {
  State& s = *state_;
  if (s.writer.joinable()) {
    std::unique_lock<std::mutex> lock(s.writer_mutex);
    s.idle_cv.wait(lock, [&] { return s.writes_in_flight == 0; });
  }
  s.collect_writes();
  s.publish_stats();
}

PrefixCacheStats PrefixCache::stats() const {
  const State& s = *state_;
  PrefixCacheStats out;
  out.memory_bytes = s.stat_memory_bytes;
  out.memory_blocks = s.stat_memory_blocks;
  out.disk_bytes = s.stat_disk_bytes;
  out.disk_blocks = s.stat_disk_blocks;
  out.lookups = s.lookups;
  out.hit_tokens = s.hit_tokens;
  out.disk_loads = s.disk_loads;
  out.disk_writes = s.disk_writes;
  out.rejected_files = s.rejected_files;
  return out;
}

const PrefixCacheOptions& PrefixCache::options() const { return state_->options; }
const std::string& PrefixCache::model_folder() const { return state_->folder; }

}  // namespace koto
