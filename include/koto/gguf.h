// Reading GGUF files (versions 2 and 3): the metadata key/value pairs and the tensor
// directory, with tensor data used in place from a read-only memory mapping (no copy).
//
// Everything the file says is checked before it is used: counts, lengths, shapes,
// types and offsets are compared with the file's size and with sane limits, so a
// damaged or hostile file is refused with a one-line koto::Error (kCorruptFile or
// kUnsupported) naming the file and the offending key or tensor, never a crash, an
// out-of-bounds read or a huge allocation.
//
// A GgufFile is immutable after open() and safe to share between threads. string_view
// and pointer results point into the mapping and live as long as the GgufFile.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "koto/tensor_type.h"

namespace koto {

// Value types as numbered in the format.
enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

std::string_view gguf_value_type_name(GgufValueType type);

// One metadata value: a scalar, a string, or an array (of scalars, strings or arrays).
class GgufValue {
 public:
  GgufValueType type() const { return type_; }
  bool is_integer() const;  // any integer type, and bool
  bool is_signed_integer() const {
    return type_ == GgufValueType::kI8 || type_ == GgufValueType::kI16 || type_ == GgufValueType::kI32 ||
           type_ == GgufValueType::kI64;
  }
  bool is_float() const { return type_ == GgufValueType::kF32 || type_ == GgufValueType::kF64; }
  bool is_string() const { return type_ == GgufValueType::kString; }
  bool is_array() const { return type_ == GgufValueType::kArray; }

  // Scalars. Integer getters accept any integer type (and bool) whose value fits,
  // as_f64 also accepts integers; otherwise they throw kInvalidArgument.
  uint64_t as_u64() const;
  int64_t as_i64() const;
  double as_f64() const;
  bool as_bool() const;
  std::string_view as_string() const;

  // Arrays. An array of arrays holds arrays whose element types may differ (each
  // nested array is stored as its element type, count and elements, with no tag).
  GgufValueType element_type() const { return element_type_; }
  uint64_t size() const { return count_; }
  int64_t int_at(uint64_t i) const;      // integer (or bool) elements
  double float_at(uint64_t i) const;     // float or integer elements
  std::string_view string_at(uint64_t i) const;
  const GgufValue& array_at(uint64_t i) const;  // nested arrays
  // Raw little-endian element bytes of a numeric array (unaligned; may be null if empty).
  const uint8_t* raw_data() const { return raw_; }

 private:
  friend class GgufParser;
  GgufValueType type_ = GgufValueType::kU8;
  GgufValueType element_type_ = GgufValueType::kU8;
  union {
    uint64_t u64_;
    int64_t i64_;
    double f64_;
  };
  std::string_view string_;
  uint64_t count_ = 0;
  const uint8_t* raw_ = nullptr;
  std::vector<std::string_view> strings_;  // string arrays
  std::vector<GgufValue> arrays_;          // arrays of arrays

 public:
  GgufValue() : u64_(0) {}
};

struct GgufKeyValue {
  std::string_view key;
  GgufValue value;
};

// A tensor as the directory describes it, with its bytes in the mapping.
struct GgufTensor {
  std::string_view name;
  std::vector<int64_t> shape;  // ne: shape[0] is the row length (fastest-varying)
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;         // from the start of the data section
  const uint8_t* data = nullptr;
  uint64_t n_bytes = 0;
  int64_t n_elements = 0;

  int64_t rows() const { return shape.empty() ? 0 : n_elements / shape[0]; }
  int64_t row_length() const { return shape.empty() ? 0 : shape[0]; }
};

class GgufFile {
 public:
  // Maps and parses `path`. Throws koto::Error: kNotFound / kIo when the file cannot be
  // opened or mapped, kCorruptFile when its contents are inconsistent, kUnsupported for
  // a version or tensor type koto does not know.
  static GgufFile open(const std::string& path);

  // Parses bytes that the caller keeps alive for the life of the result (tests,
  // fuzzing). `name` is used in error messages.
  static GgufFile parse(std::string_view bytes, const std::string& name);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const;
  uint32_t version() const;
  uint64_t alignment() const;        // general.alignment, 32 when absent
  uint64_t file_size() const;
  uint64_t data_offset() const;      // where the data section starts in the file
  // The whole file as mapped (or as given to parse), valid for the life of this object.
  std::string_view bytes() const;

  const std::vector<GgufKeyValue>& metadata() const;
  const GgufValue* find(std::string_view key) const;  // nullptr if absent

  // Typed look-ups: the default when the key is absent; kCorruptFile (naming the key)
  // when it is present with a type that cannot be read as asked.
  std::string get_string(std::string_view key, std::string_view fallback = {}) const;
  uint64_t get_u64(std::string_view key, uint64_t fallback) const;
  int64_t get_i64(std::string_view key, int64_t fallback) const;
  double get_f64(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;

  const std::vector<GgufTensor>& tensors() const;
  const GgufTensor* find_tensor(std::string_view name) const;  // nullptr if absent

  // The architecture named by general.architecture ("" when absent).
  std::string_view architecture() const;

 private:
  friend class GgufParser;
  struct State;
  explicit GgufFile(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace koto
