// GGUF writing. The header (key/value pairs and tensor directory) is encoded into one
// buffer; tensor bytes then go straight to the output, so a streamed tensor is never
// held in memory by the writer.
#include "koto/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <unordered_set>

#include "base/utf8.h"
#include "koto/error.h"
#include "koto/gguf_summary.h"
#include "koto/i18n.h"

namespace koto {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = 1u << 20;
constexpr uint32_t kMaxDims = 4;
constexpr size_t kMaxTensorName = 64;  // ggml's GGML_MAX_NAME, including its NUL
constexpr size_t kFileBufferBytes = 1u << 20;

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

uint64_t align_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

int element_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    default: return 0;
  }
}

[[noreturn]] void invalid(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, message); }

void check_text(std::string_view text, std::string_view key) {
  if (!utf8::is_valid(text)) {
    invalid(tr("GGUF key {0}: string value is not valid UTF-8 (\"{1}\")", "GGUF キー {0}: 文字列の値が UTF-8 として不正です (\"{1}\")",
               key, utf8::escape_for_message(text)));
  }
}

// Checks every string inside a value before it is accepted, so a write never fails
// half-way because of the caller's metadata.
void check_value_text(const GgufMetaValue& value, std::string_view key, const std::string& bytes,
                      const std::vector<std::string>& strings) {
  if (value.type() == GgufValueType::kString) check_text(bytes, key);
  for (const std::string& s : strings) check_text(s, key);
}

}  // namespace

// ---- GgufMetaValue ----

GgufMetaValue GgufMetaValue::string(std::string v) {
  GgufMetaValue value;
  value.type_ = GgufValueType::kString;
  value.bytes_ = std::move(v);
  return value;
}

GgufMetaValue GgufMetaValue::numeric_array(GgufValueType element, uint64_t count, const void* data,
                                           size_t element_size) {
  GgufMetaValue value;
  value.type_ = GgufValueType::kArray;
  value.element_type_ = element;
  value.count_ = count;
  if (count != 0) value.bytes_.assign(static_cast<const char*>(data), count * element_size);
  return value;
}

GgufMetaValue GgufMetaValue::bool_array(const std::vector<bool>& values) {
  GgufMetaValue value;
  value.type_ = GgufValueType::kArray;
  value.element_type_ = GgufValueType::kBool;
  value.count_ = values.size();
  value.bytes_.reserve(values.size());
  for (bool b : values) value.bytes_.push_back(b ? '\1' : '\0');
  return value;
}

GgufMetaValue GgufMetaValue::string_array(std::vector<std::string> values) {
  GgufMetaValue value;
  value.type_ = GgufValueType::kArray;
  value.element_type_ = GgufValueType::kString;
  value.count_ = values.size();
  value.strings_ = std::move(values);
  return value;
}

GgufMetaValue GgufMetaValue::array_of_arrays(std::vector<GgufMetaValue> arrays) {
  for (size_t i = 0; i < arrays.size(); ++i) {
    if (arrays[i].type_ != GgufValueType::kArray) {
      invalid(tr("element {0} of an array of arrays is a {1}, not an array", "配列の配列の要素 {0} が配列ではなく {1} です", i,
                 gguf_value_type_name(arrays[i].type_)));
    }
  }
  GgufMetaValue value;
  value.type_ = GgufValueType::kArray;
  value.element_type_ = GgufValueType::kArray;
  value.count_ = arrays.size();
  value.arrays_ = std::move(arrays);
  return value;
}

GgufMetaValue GgufMetaValue::copy_of(const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::kU8: return u8(static_cast<uint8_t>(v.as_u64()));
    case GgufValueType::kI8: return i8(static_cast<int8_t>(v.as_i64()));
    case GgufValueType::kU16: return u16(static_cast<uint16_t>(v.as_u64()));
    case GgufValueType::kI16: return i16(static_cast<int16_t>(v.as_i64()));
    case GgufValueType::kU32: return u32(static_cast<uint32_t>(v.as_u64()));
    case GgufValueType::kI32: return i32(static_cast<int32_t>(v.as_i64()));
    case GgufValueType::kU64: return u64(v.as_u64());
    case GgufValueType::kI64: return i64(v.as_i64());
    case GgufValueType::kF32: return f32(static_cast<float>(v.as_f64()));
    case GgufValueType::kF64: return f64(v.as_f64());
    case GgufValueType::kBool: return boolean(v.as_bool());
    case GgufValueType::kString: return string(std::string(v.as_string()));
    case GgufValueType::kArray: break;
  }
  const GgufValueType element = v.element_type();
  if (element == GgufValueType::kString) {
    std::vector<std::string> strings;
    strings.reserve(v.size());
    for (uint64_t i = 0; i < v.size(); ++i) strings.emplace_back(v.string_at(i));
    return string_array(std::move(strings));
  }
  if (element == GgufValueType::kArray) {
    std::vector<GgufMetaValue> arrays;
    arrays.reserve(v.size());
    for (uint64_t i = 0; i < v.size(); ++i) arrays.push_back(copy_of(v.array_at(i)));
    return array_of_arrays(std::move(arrays));
  }
  // Numeric and bool arrays: the raw bytes, as stored (bools keep their byte values).
  return numeric_array(element, v.size(), v.raw_data(), static_cast<size_t>(element_bytes(element)));
}

uint64_t GgufMetaValue::encoded_size() const {
  switch (type_) {
    case GgufValueType::kString: return 8 + bytes_.size();
    case GgufValueType::kArray: {
      uint64_t n = 4 + 8;
      if (element_type_ == GgufValueType::kString) {
        for (const std::string& s : strings_) n += 8 + s.size();
      } else if (element_type_ == GgufValueType::kArray) {
        for (const GgufMetaValue& a : arrays_) n += a.encoded_size();
      } else {
        n += bytes_.size();
      }
      return n;
    }
    default: return bytes_.size();
  }
}

void GgufMetaValue::encode(std::string& out, bool with_type) const {
  if (with_type) put<uint32_t>(out, static_cast<uint32_t>(type_));
  switch (type_) {
    case GgufValueType::kString: put_string(out, bytes_); return;
    case GgufValueType::kArray:
      put<uint32_t>(out, static_cast<uint32_t>(element_type_));
      put<uint64_t>(out, count_);
      if (element_type_ == GgufValueType::kString) {
        for (const std::string& s : strings_) put_string(out, s);
      } else if (element_type_ == GgufValueType::kArray) {
        for (const GgufMetaValue& a : arrays_) a.encode(out, /*with_type=*/false);  // nested arrays carry no tag
      } else {
        out.append(bytes_);
      }
      return;
    default: out.append(bytes_); return;
  }
}

// ---- outputs ----

class GgufDataSink::Output {
 public:
  virtual ~Output() = default;
  virtual void write(const void* data, size_t n) = 0;
};

void GgufDataSink::write(const void* data, size_t n) {
  if (n > limit_ - written_) {
    invalid(tr("tensor {0}: the data producer wrote more than the tensor's {1} bytes",
               "テンソル {0}: データの生成側がテンソルの大きさ {1} バイトを超えて書きました", tensor_, limit_));
  }
  out_.write(data, n);
  written_ += n;
}

namespace {

class StringOutput final : public GgufDataSink::Output {
 public:
  explicit StringOutput(std::string& out) : out_(out) {}
  void write(const void* data, size_t n) override { out_.append(static_cast<const char*>(data), n); }

 private:
  std::string& out_;
};

[[noreturn]] void io_failure(const std::string& path, int err, uint64_t needed) {
  if (err == ENOSPC || err == EDQUOT) {
    throw Error(ErrorCode::kIo, tr("{0}: the disk is full (the file needs {1}) — free some space or write to another folder",
                                   "{0}: ディスクがいっぱいです (ファイルに {1} 必要) — 空きを作るか別のフォルダに書いてください", path,
                                   format_byte_size(needed)));
  }
  if (err == EFBIG) {
    throw Error(ErrorCode::kIo, tr("{0}: the file would be too large for this file system or limit ({1})",
                                   "{0}: このファイルシステムまたは制限に対してファイルが大きすぎます ({1})", path,
                                   format_byte_size(needed)));
  }
  throw Error(ErrorCode::kIo, tr("{0}: writing failed ({1})", "{0}: 書き込みに失敗しました ({1})", path, std::strerror(err)));
}

// Buffered writes to a file descriptor; failures name the destination path.
class FileOutput final : public GgufDataSink::Output {
 public:
  FileOutput(int fd, const std::string& path, uint64_t total) : fd_(fd), path_(path), total_(total) {
    buffer_.reserve(kFileBufferBytes);
  }

  void write(const void* data, size_t n) override {
    if (buffer_.size() + n <= kFileBufferBytes) {
      buffer_.append(static_cast<const char*>(data), n);
      return;
    }
    flush();
    if (n >= kFileBufferBytes) {
      write_all(static_cast<const char*>(data), n);
    } else {
      buffer_.append(static_cast<const char*>(data), n);
    }
  }

  void flush() {
    write_all(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

 private:
  void write_all(const char* p, size_t n) {
    while (n > 0) {
      const ssize_t done = ::write(fd_, p, std::min<size_t>(n, 1u << 30));
      if (done < 0) {
        if (errno == EINTR) continue;
        io_failure(path_, errno, total_);
      }
      if (done == 0) io_failure(path_, ENOSPC, total_);
      p += done;
      n -= static_cast<size_t>(done);
    }
  }

  int fd_;
  const std::string& path_;
  uint64_t total_;
  std::string buffer_;
};

// The temporary file of an atomic write: closed and removed unless committed.
class TempFile {
 public:
  TempFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Closes the descriptor; returns errno, or 0.
  int close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result == 0 ? 0 : errno;
  }
  void commit() { committed_ = true; }

 private:
  int fd_;
  std::string path_;
  bool committed_ = false;
};

TempFile create_temp_beside(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0;; ++attempt) {
    std::string temp = fmt::format("{}.tmp-{}-{}", path, ::getpid(), counter.fetch_add(1));
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return TempFile(fd, std::move(temp));
    const int err = errno;
    if (err == EEXIST && attempt < 100) continue;
    if (err == ENOENT || err == ENOTDIR) {
      throw Error(ErrorCode::kIo, tr("{0}: cannot create the file: its folder does not exist",
                                     "{0}: ファイルを作れません。フォルダが存在しません", path));
    }
    if (err == ENOSPC || err == EDQUOT) io_failure(path, err, 0);
    throw Error(ErrorCode::kIo, tr("{0}: cannot create the file ({1}) — check the folder and its permissions",
                                   "{0}: ファイルを作れません ({1}) — フォルダとその権限を確認してください", path, std::strerror(err)));
  }
}

}  // namespace

// ---- GgufWriter ----

struct GgufWriter::State {
  struct Entry {
    std::string key;
    GgufMetaValue value;
  };
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    TensorType type;
    uint64_t n_bytes = 0;
    std::string_view borrowed;
    std::string owned;
    GgufTensorProducer producer;
    bool use_owned = false;
  };
  std::vector<Entry> metadata;
  std::vector<Tensor> tensors;
  std::unordered_set<std::string> tensor_names;

  Entry* find(std::string_view key) {
    for (Entry& e : metadata) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }

  // Validates and appends a tensor without data; returns it for the caller to fill.
  Tensor& add(std::string_view name, std::vector<int64_t> shape, TensorType type) {
    if (name.empty() || !utf8::is_valid(name)) {
      invalid(tr("tensor name \"{0}\" is empty or not valid UTF-8", "テンソル名 \"{0}\" が空か UTF-8 として不正です",
                 utf8::escape_for_message(name)));
    }
    if (name.size() >= kMaxTensorName) {
      invalid(tr("tensor name {0} is {1} bytes long; llama.cpp and other readers allow at most {2}",
                 "テンソル名 {0} が {1} バイトあります。llama.cpp などが読めるのは {2} バイトまでです", name, name.size(),
                 kMaxTensorName - 1));
    }
    if (tensor_names.count(std::string(name)) != 0) {
      invalid(tr("tensor {0} is added twice", "テンソル {0} が二度追加されています", name));
    }
    if (shape.empty() || shape.size() > kMaxDims) {
      invalid(tr("tensor {0} has {1} dimensions (1 to {2} allowed)", "テンソル {0} の次元数が {1} です (1〜{2})", name,
                 shape.size(), kMaxDims));
    }
    int64_t n_elements = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] <= 0 || shape[d] > std::numeric_limits<int64_t>::max() / n_elements) {
        invalid(tr("tensor {0} has an impossible size {1} in dimension {2}", "テンソル {0} の次元 {2} の大きさ {1} はありえません",
                   name, shape[d], d));
      }
      n_elements *= shape[d];
    }
    const TensorTypeInfo& info = tensor_type_info(type);
    if (shape[0] % info.block_size != 0) {
      invalid(tr("tensor {0} ({1}) has rows of {2} values, not a multiple of the block size {3}",
                 "テンソル {0} ({1}) の行の長さ {2} がブロック長 {3} の倍数ではありません", name, info.name, shape[0],
                 info.block_size));
    }
    const int64_t blocks = n_elements / info.block_size;
    if (blocks > std::numeric_limits<int64_t>::max() / info.block_bytes) {
      invalid(tr("tensor {0} is impossibly large", "テンソル {0} が大きすぎます", name));
    }
    Tensor t;
    t.name = std::string(name);
    t.shape = std::move(shape);
    t.type = type;
    t.n_bytes = static_cast<uint64_t>(blocks * info.block_bytes);
    tensor_names.insert(t.name);
    tensors.push_back(std::move(t));
    return tensors.back();
  }
};

namespace {
void check_size(std::string_view name, uint64_t have, uint64_t want) {
  if (have != want) {
    invalid(tr("tensor {0}: {1} bytes of data given, its shape and type need {2}",
               "テンソル {0}: データが {1} バイトですが、形と型から {2} バイト必要です", name, have, want));
  }
}
}  // namespace

GgufWriter::GgufWriter() : state_(std::make_unique<State>()) {}
GgufWriter::GgufWriter(GgufWriter&&) noexcept = default;
GgufWriter& GgufWriter::operator=(GgufWriter&&) noexcept = default;
GgufWriter::~GgufWriter() = default;

void GgufWriter::set(std::string_view key, GgufMetaValue value) {
  if (key.empty() || !utf8::is_valid(key)) {
    invalid(tr("GGUF key \"{0}\" is empty or not valid UTF-8", "GGUF キー \"{0}\" が空か UTF-8 として不正です",
               utf8::escape_for_message(key)));
  }
  // Strings nest only through arrays of arrays; check them all.
  auto check = [&](auto& self, const GgufMetaValue& v) -> void {
    check_value_text(v, key, v.bytes_, v.strings_);
    for (const GgufMetaValue& inner : v.arrays_) self(self, inner);
  };
  check(check, value);
  if (key == "general.alignment") {
    uint32_t a = 0;
    if (value.type_ == GgufValueType::kU32) std::memcpy(&a, value.bytes_.data(), 4);
    if (value.type_ != GgufValueType::kU32 || a == 0 || a > kMaxAlignment || (a & (a - 1)) != 0) {
      invalid(tr("general.alignment must be a u32 power of two up to {0}", "general.alignment は {0} 以下の 2 のべき乗 (u32) でなければなりません",
                 kMaxAlignment));
    }
  }
  if (State::Entry* e = state_->find(key)) {
    e->value = std::move(value);
    return;
  }
  state_->metadata.push_back({std::string(key), std::move(value)});
}

bool GgufWriter::remove(std::string_view key) {
  auto& m = state_->metadata;
  auto it = std::find_if(m.begin(), m.end(), [&](const State::Entry& e) { return e.key == key; });
  if (it == m.end()) return false;
  m.erase(it);
  return true;
}

const GgufMetaValue* GgufWriter::find(std::string_view key) const {
  const State::Entry* e = state_->find(key);
  return e == nullptr ? nullptr : &e->value;
}

void GgufWriter::add_tensor(std::string_view name, std::vector<int64_t> shape, TensorType type, std::string_view data) {
  // Check the size before adding so a refused tensor leaves the writer unchanged.
  State probe;
  const uint64_t n_bytes = probe.add(name, shape, type).n_bytes;
  check_size(name, data.size(), n_bytes);
  state_->add(name, std::move(shape), type).borrowed = data;
}

void GgufWriter::add_tensor_owned(std::string_view name, std::vector<int64_t> shape, TensorType type, std::string data) {
  State probe;
  const uint64_t n_bytes = probe.add(name, shape, type).n_bytes;
  check_size(name, data.size(), n_bytes);
  State::Tensor& t = state_->add(name, std::move(shape), type);
  t.owned = std::move(data);
  t.use_owned = true;
}

void GgufWriter::add_tensor(std::string_view name, std::vector<int64_t> shape, TensorType type,
                            GgufTensorProducer producer) {
  if (!producer) invalid(tr("tensor {0}: no data producer given", "テンソル {0}: データの生成関数がありません", name));
  state_->add(name, std::move(shape), type).producer = std::move(producer);
}

size_t GgufWriter::tensor_count() const { return state_->tensors.size(); }

uint64_t GgufWriter::alignment() const {
  const State::Entry* e = state_->find("general.alignment");
  if (e == nullptr) return kDefaultAlignment;
  uint32_t a;
  std::memcpy(&a, e->value.bytes_.data(), 4);  // checked by set()
  return a;
}

uint64_t GgufWriter::file_size() const {
  uint64_t n = 4 + 4 + 8 + 8;
  for (const State::Entry& e : state_->metadata) n += 8 + e.key.size() + 4 + e.value.encoded_size();
  for (const State::Tensor& t : state_->tensors) n += 8 + t.name.size() + 4 + 8 * t.shape.size() + 4 + 8;
  const uint64_t a = alignment();
  n = align_up(n, a);
  for (const State::Tensor& t : state_->tensors) n += align_up(t.n_bytes, a);
  return n;
}

void GgufWriter::write_to(GgufDataSink::Output& out) const {
  const uint64_t a = alignment();
  std::string header;
  put<uint32_t>(header, kMagic);
  put<uint32_t>(header, kVersion);
  put<uint64_t>(header, state_->tensors.size());
  put<uint64_t>(header, state_->metadata.size());
  for (const State::Entry& e : state_->metadata) {
    put_string(header, e.key);
    e.value.encode(header, /*with_type=*/true);
  }
  uint64_t offset = 0;
  for (const State::Tensor& t : state_->tensors) {
    put_string(header, t.name);
    put<uint32_t>(header, static_cast<uint32_t>(t.shape.size()));
    for (int64_t ne : t.shape) put<uint64_t>(header, static_cast<uint64_t>(ne));
    put<uint32_t>(header, static_cast<uint32_t>(t.type));
    put<uint64_t>(header, offset);
    offset += align_up(t.n_bytes, a);
  }
  header.resize(align_up(header.size(), a), '\0');
  out.write(header.data(), header.size());

  const std::string zeros(a, '\0');
  for (const State::Tensor& t : state_->tensors) {
    if (t.producer) {
      GgufDataSink sink(out, t.name, t.n_bytes);
      t.producer(sink);
      if (sink.written() != t.n_bytes) {
        invalid(tr("tensor {0}: the data producer wrote {1} bytes, the tensor needs {2}",
                   "テンソル {0}: データの生成側が書いたのは {1} バイトですが、{2} バイト必要です", t.name, sink.written(),
                   t.n_bytes));
      }
    } else {
      const std::string_view data = t.use_owned ? std::string_view(t.owned) : t.borrowed;
      out.write(data.data(), data.size());
    }
    out.write(zeros.data(), align_up(t.n_bytes, a) - t.n_bytes);
  }
}

std::string GgufWriter::write_to_string() const {
  std::string result;
  result.reserve(file_size());
  StringOutput out(result);
  write_to(out);
  return result;
}

void GgufWriter::write_to_fd(int fd, const std::string& name) const {
  FileOutput out(fd, name, file_size());
  write_to(out);
  out.flush();
}

void GgufWriter::write_file(const std::string& path) const {
  const uint64_t total = file_size();
  TempFile temp = create_temp_beside(path);
  // Reserve the space first so a full disk is reported before hours of quantizing,
  // not at the end. File systems without fallocate simply skip this.
  if (total > 0 && ::fallocate(temp.fd(), 0, 0, static_cast<off_t>(total)) != 0) {
    const int err = errno;
    if (err == ENOSPC || err == EDQUOT || err == EFBIG) io_failure(path, err, total);
  }
  write_to_fd(temp.fd(), path);
  if (::fsync(temp.fd()) != 0) io_failure(path, errno, total);
  if (const int err = temp.close(); err != 0) io_failure(path, err, total);
  if (::rename(temp.path().c_str(), path.c_str()) != 0) {
    const int err = errno;
    throw Error(ErrorCode::kIo, tr("{0}: cannot move the finished file into place ({1})",
                                   "{0}: 書き終えたファイルを所定の場所に移せません ({1})", path, std::strerror(err)));
  }
  temp.commit();
  // Make the rename itself durable; failure here loses nothing already written.
  const std::string parent = std::filesystem::path(path).parent_path().string();
  const int dir_fd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace koto
