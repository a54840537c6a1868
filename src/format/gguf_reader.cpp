// GGUF parsing. Layout (little-endian): magic "GGUF", u32 version, u64 n_tensors,
// u64 n_kv, the key/value pairs, the tensor directory, padding to the alignment, then
// the data section. Every read goes through Cursor, which checks it against the end
// of the file first.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <variant>

#include "base/utf8.h"
#include "format/mapped_file.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_summary.h"
#include "koto/i18n.h"

namespace koto {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 4;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kMaxAlignment = 1u << 20;
// Up-front reservation limit for vectors sized by a count read from the file.
constexpr uint64_t kMaxReserve = 4096;

int value_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    case GgufValueType::kString: return 8;   // at least the length field
    case GgufValueType::kArray: return 12;   // at least element type + count
  }
  return 0;
}

bool is_known_value_type(uint32_t t) { return t <= 12; }

}  // namespace

struct GgufFile::State {
  std::optional<MappedFile> mapping;
  std::string path;
  std::string_view bytes;
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<GgufKeyValue> metadata;
  std::unordered_map<std::string_view, size_t> key_index;
  std::vector<GgufTensor> tensors;
  std::unordered_map<std::string_view, size_t> tensor_index;
};

// Parses GGUF bytes into a State. One instance per parse.
class GgufParser {
 public:
  GgufParser(GgufFile::State& state) : s_(state), data_(reinterpret_cast<const uint8_t*>(state.bytes.data())),
                                       size_(state.bytes.size()) {}

  void run() {
    context_ = pick("header", "ヘッダー");
    if (size_ < 4 || read_u32_at(0) != kMagic) {
      fail(ErrorCode::kCorruptFile,
           tr("not a GGUF file (it starts with \"{0}\", not \"GGUF\") — is this a model file?",
              "GGUF ファイルではありません (先頭が \"GGUF\" ではなく \"{0}\") — モデルファイルか確認してください",
              utf8::escape_for_message(s_.bytes.substr(0, 4))));
    }
    pos_ = 4;
    const uint32_t version = read_u32();
    if (version != 2 && version != 3) {
      if (version == 1) {
        fail(ErrorCode::kUnsupported, tr("GGUF version 1 is not supported (only 2 and 3) — convert the model again with a current tool",
                                         "GGUF バージョン 1 には対応していません (2 と 3 のみ) — 新しいツールで変換し直してください"));
      }
      if ((version & 0xFFFF) == 0 && (version >> 16) != 0) {
        fail(ErrorCode::kUnsupported, tr("big-endian GGUF files are not supported", "ビッグエンディアンの GGUF ファイルには対応していません"));
      }
      fail(ErrorCode::kUnsupported, tr("unknown GGUF version {0} (koto reads 2 and 3)",
                                       "不明な GGUF バージョン {0} です (対応は 2 と 3)", version));
    }
    s_.version = version;
    const uint64_t n_tensors = read_u64();
    const uint64_t n_kv = read_u64();
    // Each key/value needs at least 14 bytes and each tensor entry at least 32; a count
    // that cannot fit in the rest of the file is refused before anything is allocated.
    if (n_kv > (size_ - pos_) / 14) {
      fail(ErrorCode::kCorruptFile, tr("claims {0} metadata entries, more than the file can hold — the file is damaged or incomplete",
                                       "メタデータが {0} 個あると書かれていますが、ファイルに収まりません — ファイルが壊れているか不完全です", n_kv));
    }
    if (n_tensors > (size_ - pos_) / 32) {
      fail(ErrorCode::kCorruptFile, tr("claims {0} tensors, more than the file can hold — the file is damaged or incomplete",
                                       "テンソルが {0} 個あると書かれていますが、ファイルに収まりません — ファイルが壊れているか不完全です", n_tensors));
    }
    read_metadata(n_kv);
    read_alignment();
    read_tensor_directory(n_tensors);
    check_tensor_data();
  }

 private:
  [[noreturn]] void fail(ErrorCode code, const std::string& what) {
    throw Error(code, fmt::format("{}: {}", s_.path, what));
  }

  [[noreturn]] void fail_truncated() {
    fail(ErrorCode::kCorruptFile,
         tr("file ends in the middle of {0} (at byte {1} of {2}) — the file is incomplete; download or copy it again",
            "{0} の途中でファイルが終わっています ({2} バイト中 {1} バイト目) — ファイルが不完全です。ダウンロードかコピーをやり直してください",
            context_, pos_, size_));
  }

  void need(uint64_t n) {
    if (n > size_ - pos_) fail_truncated();
  }

  uint32_t read_u32_at(size_t at) const {
    uint32_t v;
    std::memcpy(&v, data_ + at, 4);
    return v;
  }

  template <typename V>
  V read_scalar() {
    need(sizeof(V));
    V v;
    std::memcpy(&v, data_ + pos_, sizeof(V));
    pos_ += sizeof(V);
    return v;
  }
  uint32_t read_u32() { return read_scalar<uint32_t>(); }
  uint64_t read_u64() { return read_scalar<uint64_t>(); }

  std::string_view read_raw_string() {
    const uint64_t length = read_u64();
    need(length);
    std::string_view text(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return text;
  }

  // `describe` names the string for the error message; it runs only on failure.
  template <typename Describe>
  std::string_view read_string(Describe&& describe) {
    std::string_view text = read_raw_string();
    if (!utf8::is_valid(text)) {
      fail(ErrorCode::kCorruptFile,
           tr("{0} is not valid UTF-8 (\"{1}\") — the file is damaged", "{0} が UTF-8 として不正です (\"{1}\") — ファイルが壊れています",
              describe(), utf8::escape_for_message(text)));
    }
    return text;
  }

  GgufValueType read_value_type(std::string_view key) {
    const uint32_t t = read_u32();
    if (!is_known_value_type(t)) {
      fail(ErrorCode::kCorruptFile, tr("key {0} has unknown value type {1} — the file is damaged or from a newer format",
                                       "キー {0} の値の型 {1} が不明です — ファイルが壊れているか、新しい形式です", key, t));
    }
    return static_cast<GgufValueType>(t);
  }

  void read_value(GgufValue& value, GgufValueType type, std::string_view key, int depth) {
    value.type_ = type;
    switch (type) {
      case GgufValueType::kU8: value.u64_ = read_scalar<uint8_t>(); break;
      case GgufValueType::kI8: value.i64_ = read_scalar<int8_t>(); break;
      case GgufValueType::kU16: value.u64_ = read_scalar<uint16_t>(); break;
      case GgufValueType::kI16: value.i64_ = read_scalar<int16_t>(); break;
      case GgufValueType::kU32: value.u64_ = read_scalar<uint32_t>(); break;
      case GgufValueType::kI32: value.i64_ = read_scalar<int32_t>(); break;
      case GgufValueType::kU64: value.u64_ = read_scalar<uint64_t>(); break;
      case GgufValueType::kI64: value.i64_ = read_scalar<int64_t>(); break;
      case GgufValueType::kF32: value.f64_ = read_scalar<float>(); break;
      case GgufValueType::kF64: value.f64_ = read_scalar<double>(); break;
      case GgufValueType::kBool: value.u64_ = read_scalar<uint8_t>() != 0; break;
      case GgufValueType::kString:
        value.string_ = read_string([&] { return tr("the value of key {0}", "キー {0} の値", key); });
        break;
      case GgufValueType::kArray: read_array(value, key, depth); break;
    }
  }

  void read_array(GgufValue& value, std::string_view key, int depth) {
    if (depth >= kMaxArrayDepth) {
      fail(ErrorCode::kCorruptFile, tr("key {0} nests arrays more than {1} deep — the file is damaged",
                                       "キー {0} の配列の入れ子が {1} 段を超えています — ファイルが壊れています", key, kMaxArrayDepth));
    }
    const GgufValueType element = read_value_type(key);
    const uint64_t count = read_u64();
    const uint64_t min_size = static_cast<uint64_t>(value_size(element));
    if (count > (size_ - pos_) / min_size) {
      fail(ErrorCode::kCorruptFile,
           tr("key {0} claims an array of {1} elements, more than the rest of the file holds — the file is damaged or truncated",
              "キー {0} の配列の要素数 {1} がファイルの残りに収まりません — ファイルが壊れているか不完全です", key, count));
    }
    value.element_type_ = element;
    value.count_ = count;
    // Memory grows with the bytes actually parsed, not with the claimed count: a
    // hostile count that passes the size check above must not reserve ~10x the file.
    if (element == GgufValueType::kString) {
      value.strings_.reserve(std::min<uint64_t>(count, kMaxReserve));
      for (uint64_t i = 0; i < count; ++i) {
        value.strings_.push_back(read_string([&] { return tr("element {0} of key {1}", "キー {1} の要素 {0}", i, key); }));
      }
    } else if (element == GgufValueType::kArray) {
      // The elements of an array of arrays carry no type tag of their own: each is an
      // element type, a count and the elements (as gguf-py writes them).
      value.arrays_.reserve(std::min<uint64_t>(count, kMaxReserve));
      for (uint64_t i = 0; i < count; ++i) {
        value.arrays_.emplace_back();
        read_value(value.arrays_.back(), GgufValueType::kArray, key, depth + 1);
      }
    } else {
      value.raw_ = count == 0 ? nullptr : data_ + pos_;
      pos_ += count * min_size;
    }
  }

  void read_metadata(uint64_t n_kv) {
    s_.metadata.reserve(std::min<uint64_t>(n_kv, kMaxReserve));
    std::string_view previous;
    for (uint64_t i = 0; i < n_kv; ++i) {
      context_ = previous.empty() ? tr("metadata entry {0}", "メタデータ {0} 番", i)
                                  : tr("metadata entry {0} (after {1})", "メタデータ {0} 番 ({1} の後)", i, previous);
      GgufKeyValue kv;
      kv.key = read_string([&] { return tr("metadata key {0}", "メタデータのキー {0} 番", i); });
      if (kv.key.empty()) {
        fail(ErrorCode::kCorruptFile, tr("metadata entry {0} has an empty key — the file is damaged",
                                         "メタデータ {0} 番のキーが空です — ファイルが壊れています", i));
      }
      if (s_.key_index.count(kv.key) != 0) {
        fail(ErrorCode::kCorruptFile, tr("key {0} appears twice — the file is damaged", "キー {0} が二度現れます — ファイルが壊れています", kv.key));
      }
      context_ = tr("the value of key {0}", "キー {0} の値", kv.key);
      const GgufValueType type = read_value_type(kv.key);
      read_value(kv.value, type, kv.key, 0);
      s_.key_index.emplace(kv.key, s_.metadata.size());
      s_.metadata.push_back(std::move(kv));
      previous = s_.metadata.back().key;
    }
  }

  void read_alignment() {
    auto it = s_.key_index.find("general.alignment");
    if (it == s_.key_index.end()) return;
    const GgufValue& v = s_.metadata[it->second].value;
    if (!v.is_integer() || v.type() == GgufValueType::kBool) {
      fail(ErrorCode::kCorruptFile, tr("general.alignment has type {0}, expected an unsigned integer",
                                       "general.alignment の型が {0} です (符号なし整数のはず)", gguf_value_type_name(v.type())));
    }
    // Read without the throwing getters: a negative or > 2^63 value must still be
    // reported as a damaged file, not as a caller error.
    const bool negative = v.is_signed_integer() && v.i64_ < 0;
    const uint64_t a = v.u64_;
    if (negative || a == 0 || a > kMaxAlignment || (a & (a - 1)) != 0) {
      fail(ErrorCode::kCorruptFile, tr("general.alignment is {0}; it must be a power of two up to {1} — the file is damaged",
                                       "general.alignment が {0} です。{1} 以下の 2 のべき乗でなければなりません — ファイルが壊れています",
                                       negative ? std::to_string(v.i64_) : std::to_string(a), kMaxAlignment));
    }
    s_.alignment = a;
  }

  void read_tensor_directory(uint64_t n_tensors) {
    s_.tensors.reserve(std::min<uint64_t>(n_tensors, kMaxReserve));
    for (uint64_t i = 0; i < n_tensors; ++i) {
      context_ = tr("tensor entry {0}", "テンソル情報 {0} 番", i);
      GgufTensor t;
      t.name = read_string([&] { return tr("the name of tensor {0}", "テンソル {0} 番の名前", i); });
      if (t.name.empty()) {
        fail(ErrorCode::kCorruptFile, tr("tensor entry {0} has an empty name — the file is damaged",
                                         "テンソル情報 {0} 番の名前が空です — ファイルが壊れています", i));
      }
      if (s_.tensor_index.count(t.name) != 0) {
        fail(ErrorCode::kCorruptFile, tr("tensor {0} appears twice — the file is damaged", "テンソル {0} が二度現れます — ファイルが壊れています", t.name));
      }
      context_ = tr("the entry of tensor {0}", "テンソル {0} の情報", t.name);
      const uint32_t n_dims = read_u32();
      if (n_dims == 0 || n_dims > kMaxDims) {
        fail(ErrorCode::kCorruptFile, tr("tensor {0} has {1} dimensions (1 to {2} allowed) — the file is damaged",
                                         "テンソル {0} の次元数が {1} です (1〜{2}) — ファイルが壊れています", t.name, n_dims, kMaxDims));
      }
      int64_t n_elements = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const auto ne = static_cast<int64_t>(read_u64());
        if (ne <= 0 || ne > std::numeric_limits<int64_t>::max() / n_elements) {
          fail(ErrorCode::kCorruptFile, tr("tensor {0} has an impossible size {1} in dimension {2} — the file is damaged",
                                           "テンソル {0} の次元 {2} の大きさ {1} はありえません — ファイルが壊れています", t.name,
                                           static_cast<uint64_t>(ne), d));
        }
        n_elements *= ne;
        t.shape.push_back(ne);
      }
      const uint32_t type_id = read_u32();
      const std::optional<TensorTypeInfo> info = tensor_type_info(type_id);
      if (!info) {
        fail(ErrorCode::kUnsupported, tr("tensor {0} has unknown type id {1} — the file is damaged or needs a newer koto",
                                         "テンソル {0} の型番号 {1} は不明です — ファイルが壊れているか、新しい koto が必要です", t.name, type_id));
      }
      t.type = info->type;
      if (t.shape[0] % info->block_size != 0) {
        fail(ErrorCode::kCorruptFile, tr("tensor {0} ({1}) has rows of {2} values, not a multiple of the block size {3}",
                                         "テンソル {0} ({1}) の行の長さ {2} がブロック長 {3} の倍数ではありません", t.name,
                                         info->name, t.shape[0], info->block_size));
      }
      const int64_t blocks = n_elements / info->block_size;
      if (blocks > std::numeric_limits<int64_t>::max() / info->block_bytes) {
        fail(ErrorCode::kCorruptFile, tr("tensor {0} is impossibly large — the file is damaged",
                                         "テンソル {0} が大きすぎます — ファイルが壊れています", t.name));
      }
      t.n_elements = n_elements;
      t.n_bytes = static_cast<uint64_t>(blocks * info->block_bytes);
      t.offset = read_u64();
      if (t.offset % s_.alignment != 0) {
        fail(ErrorCode::kCorruptFile, tr("tensor {0} starts at offset {1}, not a multiple of the alignment {2} — the file is damaged",
                                         "テンソル {0} の開始位置 {1} が整列 {2} の倍数ではありません — ファイルが壊れています",
                                         t.name, t.offset, s_.alignment));
      }
      s_.tensor_index.emplace(t.name, s_.tensors.size());
      s_.tensors.push_back(std::move(t));
    }
    const uint64_t padded = (pos_ + s_.alignment - 1) / s_.alignment * s_.alignment;
    s_.data_offset = padded;
  }

  void check_tensor_data() {
    if (s_.tensors.empty()) return;
    const uint64_t available = s_.data_offset <= size_ ? size_ - s_.data_offset : 0;
    for (GgufTensor& t : s_.tensors) {
      if (t.offset > available || t.n_bytes > available - t.offset) {
        const uint64_t needed = s_.data_offset + t.offset + t.n_bytes;
        fail(ErrorCode::kCorruptFile,
             tr("tensor {0} runs past the end of the file (file is {1}, needs {2}) — the download is probably incomplete; fetch the file again",
                "テンソル {0} がファイルの終わりを越えています (ファイル {1}、必要 {2}) — ダウンロードが不完全と思われます。もう一度取得してください",
                t.name, format_byte_size(size_), format_byte_size(needed)));
      }
      t.data = data_ + s_.data_offset + t.offset;
    }
    std::vector<const GgufTensor*> by_offset;
    by_offset.reserve(s_.tensors.size());
    for (const GgufTensor& t : s_.tensors) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensor& a = *by_offset[i - 1];
      const GgufTensor& b = *by_offset[i];
      if (a.offset + a.n_bytes > b.offset) {
        fail(ErrorCode::kCorruptFile, tr("tensors {0} and {1} overlap in the data section — the file is damaged",
                                         "テンソル {0} と {1} のデータが重なっています — ファイルが壊れています", a.name, b.name));
      }
    }
  }

  GgufFile::State& s_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string context_;
};

// ---- GgufValue ----

std::string_view gguf_value_type_name(GgufValueType type) {
  static constexpr std::string_view kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(type);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

namespace {
[[noreturn]] void wrong_type(GgufValueType have, std::string_view want) {
  throw Error(ErrorCode::kInvalidArgument, tr("value has type {0}, not {1}", "値の型は {0} で、{1} ではありません",
                                              gguf_value_type_name(have), want));
}
}  // namespace

bool GgufValue::is_integer() const {
  switch (type_) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kU16: case GgufValueType::kI16:
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kU64: case GgufValueType::kI64:
    case GgufValueType::kBool:
      return true;
    default:
      return false;
  }
}

uint64_t GgufValue::as_u64() const {
  if (!is_integer()) wrong_type(type_, "integer");
  if (is_signed_integer()) {
    if (i64_ < 0) wrong_type(type_, "unsigned integer");
    return static_cast<uint64_t>(i64_);
  }
  return u64_;
}

int64_t GgufValue::as_i64() const {
  if (!is_integer()) wrong_type(type_, "integer");
  if (is_signed_integer()) return i64_;
  if (u64_ > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) wrong_type(type_, "i64");
  return static_cast<int64_t>(u64_);
}

double GgufValue::as_f64() const {
  if (is_float()) return f64_;
  if (is_integer()) return is_signed_integer() ? static_cast<double>(i64_) : static_cast<double>(u64_);
  wrong_type(type_, "number");
}

bool GgufValue::as_bool() const {
  if (type_ != GgufValueType::kBool) wrong_type(type_, "bool");
  return u64_ != 0;
}

std::string_view GgufValue::as_string() const {
  if (type_ != GgufValueType::kString) wrong_type(type_, "string");
  return string_;
}

namespace {
void check_index(uint64_t i, uint64_t count) {
  if (i >= count) {
    throw Error(ErrorCode::kInvalidArgument, tr("array index {0} out of range (size {1})", "配列の添字 {0} が範囲外です (要素数 {1})", i, count));
  }
}
}  // namespace

int64_t GgufValue::int_at(uint64_t i) const {
  if (type_ != GgufValueType::kArray) wrong_type(type_, "array");
  check_index(i, count_);
  const uint8_t* p = raw_;
  auto load = [&](auto v) {
    std::memcpy(&v, p + i * sizeof(v), sizeof(v));
    return v;
  };
  switch (element_type_) {
    case GgufValueType::kU8: return load(uint8_t{});
    case GgufValueType::kBool: return load(uint8_t{}) != 0;
    case GgufValueType::kI8: return load(int8_t{});
    case GgufValueType::kU16: return load(uint16_t{});
    case GgufValueType::kI16: return load(int16_t{});
    case GgufValueType::kU32: return load(uint32_t{});
    case GgufValueType::kI32: return load(int32_t{});
    case GgufValueType::kI64: return load(int64_t{});
    case GgufValueType::kU64: {
      const uint64_t v = load(uint64_t{});
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) wrong_type(element_type_, "i64");
      return static_cast<int64_t>(v);
    }
    default: wrong_type(element_type_, "integer");
  }
}

double GgufValue::float_at(uint64_t i) const {
  if (type_ != GgufValueType::kArray) wrong_type(type_, "array");
  check_index(i, count_);
  if (element_type_ == GgufValueType::kF32) {
    float v;
    std::memcpy(&v, raw_ + i * 4, 4);
    return v;
  }
  if (element_type_ == GgufValueType::kF64) {
    double v;
    std::memcpy(&v, raw_ + i * 8, 8);
    return v;
  }
  return static_cast<double>(int_at(i));
}

std::string_view GgufValue::string_at(uint64_t i) const {
  if (type_ != GgufValueType::kArray || element_type_ != GgufValueType::kString) wrong_type(element_type_, "string array");
  check_index(i, count_);
  return strings_[i];
}

const GgufValue& GgufValue::array_at(uint64_t i) const {
  if (type_ != GgufValueType::kArray || element_type_ != GgufValueType::kArray) wrong_type(element_type_, "array of arrays");
  check_index(i, count_);
  return arrays_[i];
}

// ---- GgufFile ----

GgufFile::GgufFile(std::unique_ptr<State> state) : state_(std::move(state)) {}
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::string& path) {
  auto state = std::make_unique<State>();
  state->path = path;
  state->mapping.emplace(path);
  state->bytes = state->mapping->bytes();
  GgufParser(*state).run();
  return GgufFile(std::move(state));
}

GgufFile GgufFile::parse(std::string_view bytes, const std::string& name) {
  auto state = std::make_unique<State>();
  state->path = name;
  state->bytes = bytes;
  GgufParser(*state).run();
  return GgufFile(std::move(state));
}

const std::string& GgufFile::path() const { return state_->path; }
uint32_t GgufFile::version() const { return state_->version; }
uint64_t GgufFile::alignment() const { return state_->alignment; }
uint64_t GgufFile::file_size() const { return state_->bytes.size(); }
uint64_t GgufFile::data_offset() const { return state_->data_offset; }
const std::vector<GgufKeyValue>& GgufFile::metadata() const { return state_->metadata; }
std::string_view GgufFile::bytes() const { return state_->bytes; }
const std::vector<GgufTensor>& GgufFile::tensors() const { return state_->tensors; }

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = state_->key_index.find(key);
  return it == state_->key_index.end() ? nullptr : &state_->metadata[it->second].value;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = state_->tensor_index.find(name);
  return it == state_->tensor_index.end() ? nullptr : &state_->tensors[it->second];
}

namespace {
template <typename F>
auto typed_get(const GgufFile& file, std::string_view key, F&& read) -> decltype(read(std::declval<const GgufValue&>())) {
  const GgufValue* v = file.find(key);
  try {
    return read(*v);
  } catch (const Error& e) {
    throw Error(ErrorCode::kCorruptFile, fmt::format("{}: {} {}: {}", file.path(), pick("key", "キー"), key, e.what()));
  }
}
}  // namespace

std::string GgufFile::get_string(std::string_view key, std::string_view fallback) const {
  if (find(key) == nullptr) return std::string(fallback);
  return std::string(typed_get(*this, key, [](const GgufValue& v) { return v.as_string(); }));
}
uint64_t GgufFile::get_u64(std::string_view key, uint64_t fallback) const {
  if (find(key) == nullptr) return fallback;
  return typed_get(*this, key, [](const GgufValue& v) { return v.as_u64(); });
}
int64_t GgufFile::get_i64(std::string_view key, int64_t fallback) const {
  if (find(key) == nullptr) return fallback;
  return typed_get(*this, key, [](const GgufValue& v) { return v.as_i64(); });
}
double GgufFile::get_f64(std::string_view key, double fallback) const {
  if (find(key) == nullptr) return fallback;
  return typed_get(*this, key, [](const GgufValue& v) { return v.as_f64(); });
}
bool GgufFile::get_bool(std::string_view key, bool fallback) const {
  if (find(key) == nullptr) return fallback;
  return typed_get(*this, key, [](const GgufValue& v) { return v.as_bool(); });
}

std::string_view GgufFile::architecture() const {
  const GgufValue* v = find("general.architecture");
  return v != nullptr && v->is_string() ? v->as_string() : std::string_view{};
}

}  // namespace koto
