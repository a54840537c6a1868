// Writing GGUF version 3 files: metadata of every value type (including arrays of
// strings and nested arrays) and tensors whose bytes come either from a buffer or from
// a callback that streams them, so a model of several GB never has to sit in memory.
//
// Layout written (little-endian), as the reader expects it: header, key/value pairs in
// the order they were first set, the tensor directory in the order tensors were added,
// zero padding to the alignment, then each tensor's bytes, each padded with zeros to
// the alignment. The alignment is general.alignment when set (a power of two up to
// 1 MiB), else 32.
//
// A GgufWriter is a plain value: not thread-safe, reusable (each write produces the
// whole file again, calling the tensor producers again).
//
// Errors (koto::Error):
//   kInvalidArgument  what the caller asked cannot make a valid file (bad shape, wrong
//                     byte count, duplicate tensor, key that is not UTF-8...); the
//                     message names the key or tensor.
//   kIo               the file system refused (no folder, no permission, disk full);
//                     the message names the path and the reason. The destination is
//                     left as it was: data goes to a temporary file in the same folder
//                     that is renamed over the destination only when complete.
// Exceptions thrown by a tensor producer propagate unchanged, after clean-up.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "koto/gguf.h"
#include "koto/tensor_type.h"

namespace koto {

// An owned metadata value to write: a scalar, a string, or an array. Cheap to move.
class GgufMetaValue {
 public:
  static GgufMetaValue u8(uint8_t v) { return scalar(GgufValueType::kU8, v); }
  static GgufMetaValue i8(int8_t v) { return scalar(GgufValueType::kI8, v); }
  static GgufMetaValue u16(uint16_t v) { return scalar(GgufValueType::kU16, v); }
  static GgufMetaValue i16(int16_t v) { return scalar(GgufValueType::kI16, v); }
  static GgufMetaValue u32(uint32_t v) { return scalar(GgufValueType::kU32, v); }
  static GgufMetaValue i32(int32_t v) { return scalar(GgufValueType::kI32, v); }
  static GgufMetaValue u64(uint64_t v) { return scalar(GgufValueType::kU64, v); }
  static GgufMetaValue i64(int64_t v) { return scalar(GgufValueType::kI64, v); }
  static GgufMetaValue f32(float v) { return scalar(GgufValueType::kF32, v); }
  static GgufMetaValue f64(double v) { return scalar(GgufValueType::kF64, v); }
  static GgufMetaValue boolean(bool v) { return scalar(GgufValueType::kBool, static_cast<uint8_t>(v ? 1 : 0)); }
  static GgufMetaValue string(std::string v);

  // Numeric arrays: T is one of uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t,
  // uint64_t, int64_t, float, double (the element type follows from T).
  template <typename T>
  static GgufMetaValue array(std::span<const T> values);
  static GgufMetaValue bool_array(const std::vector<bool>& values);
  static GgufMetaValue string_array(std::vector<std::string> values);
  // Every element must itself be an array (kInvalidArgument otherwise); their element
  // types may differ.
  static GgufMetaValue array_of_arrays(std::vector<GgufMetaValue> arrays);

  // A deep copy of a value read from a file (for re-writing a model).
  static GgufMetaValue copy_of(const GgufValue& value);

  GgufValueType type() const { return type_; }
  GgufValueType element_type() const { return element_type_; }  // arrays only
  uint64_t size() const { return count_; }                       // arrays only

 private:
  friend class GgufWriter;
  GgufMetaValue() = default;  // only the factories make values, so each is complete
  template <typename T>
  static GgufMetaValue scalar(GgufValueType type, T v);
  static GgufMetaValue numeric_array(GgufValueType element, uint64_t count, const void* data, size_t element_bytes);
  uint64_t encoded_size() const;
  void encode(std::string& out, bool with_type) const;

  GgufValueType type_ = GgufValueType::kU8;
  GgufValueType element_type_ = GgufValueType::kU8;
  uint64_t count_ = 0;
  std::string bytes_;                  // scalar or numeric-array bytes (little-endian), or the string
  std::vector<std::string> strings_;   // string arrays
  std::vector<GgufMetaValue> arrays_;  // arrays of arrays
};

// Receives a streamed tensor's bytes, in order. Created by the writer only.
class GgufDataSink {
 public:
  // Appends bytes. Writing more than the tensor's size throws kInvalidArgument; I/O
  // failures throw kIo.
  void write(const void* data, size_t n);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  uint64_t written() const { return written_; }

  class Output;  // where the bytes go (file or string); private to the writer

 private:
  friend class GgufWriter;
  GgufDataSink(Output& out, std::string_view tensor, uint64_t limit) : out_(out), tensor_(tensor), limit_(limit) {}
  Output& out_;
  std::string_view tensor_;
  uint64_t limit_;
  uint64_t written_ = 0;
};

// Produces one tensor's bytes into the sink: exactly the tensor's byte size
// (tensor_row_bytes(type, shape[0]) × rows), else the write fails with kInvalidArgument.
// Called once per write, in directory order.
using GgufTensorProducer = std::function<void(GgufDataSink& sink)>;

class GgufWriter {
 public:
  GgufWriter();
  GgufWriter(GgufWriter&&) noexcept;
  GgufWriter& operator=(GgufWriter&&) noexcept;
  ~GgufWriter();

  // Sets a key (replacing its value, keeping its position, when it exists). Throws
  // kInvalidArgument for an empty or non-UTF-8 key or string. general.alignment must
  // be a u32 power of two up to 1 MiB.
  void set(std::string_view key, GgufMetaValue value);
  void set_string(std::string_view key, std::string value) { set(key, GgufMetaValue::string(std::move(value))); }
  void set_u32(std::string_view key, uint32_t value) { set(key, GgufMetaValue::u32(value)); }
  void set_f32(std::string_view key, float value) { set(key, GgufMetaValue::f32(value)); }
  void set_alignment(uint32_t alignment) { set("general.alignment", GgufMetaValue::u32(alignment)); }
  bool remove(std::string_view key);  // false when absent
  const GgufMetaValue* find(std::string_view key) const;

  // Adds a tensor (name: UTF-8, 1 to 63 bytes so llama.cpp can load it; shape as
  // GgufTensor::shape: shape[0] is the row length, 1 to 4 dimensions, each > 0;
  // shape[0] a multiple of the type's block size). Throws
  // kInvalidArgument naming the tensor for a bad name, shape, duplicate or byte count.
  //
  // Borrowed bytes: `data` must stay valid until the last write (a mapped GgufFile, say).
  void add_tensor(std::string_view name, std::vector<int64_t> shape, TensorType type, std::string_view data);
  // Owned bytes.
  void add_tensor_owned(std::string_view name, std::vector<int64_t> shape, TensorType type, std::string data);
  // Streamed bytes: `producer` runs during each write.
  void add_tensor(std::string_view name, std::vector<int64_t> shape, TensorType type, GgufTensorProducer producer);

  size_t tensor_count() const;
  uint64_t alignment() const;
  // Size in bytes of the file a write would produce.
  uint64_t file_size() const;

  // Writes the file atomically (temporary file in the same folder, flushed to disk,
  // then renamed over `path`). Errors: see the top of this header.
  void write_file(const std::string& path) const;
  // Writes the file to an open descriptor (pipe, stdout, device) from its current
  // position, not atomically; `name` stands for it in messages. The caller keeps
  // ownership of `fd`. Errors: kIo, kInvalidArgument as above.
  void write_to_fd(int fd, const std::string& name) const;
  // The whole file in memory (tests, small files).
  std::string write_to_string() const;

 private:
  struct State;
  void write_to(GgufDataSink::Output& out) const;
  std::unique_ptr<State> state_;
};

// ---- template definitions ----

template <typename T>
GgufMetaValue GgufMetaValue::scalar(GgufValueType type, T v) {
  GgufMetaValue value;
  value.type_ = type;
  value.bytes_.resize(sizeof(T));
  std::memcpy(value.bytes_.data(), &v, sizeof(T));  // x86-64 and ARM64 are little-endian
  return value;
}

template <typename T>
GgufMetaValue GgufMetaValue::array(std::span<const T> values) {
  GgufValueType element;
  if constexpr (std::is_same_v<T, uint8_t>) element = GgufValueType::kU8;
  else if constexpr (std::is_same_v<T, int8_t>) element = GgufValueType::kI8;
  else if constexpr (std::is_same_v<T, uint16_t>) element = GgufValueType::kU16;
  else if constexpr (std::is_same_v<T, int16_t>) element = GgufValueType::kI16;
  else if constexpr (std::is_same_v<T, uint32_t>) element = GgufValueType::kU32;
  else if constexpr (std::is_same_v<T, int32_t>) element = GgufValueType::kI32;
  else if constexpr (std::is_same_v<T, uint64_t>) element = GgufValueType::kU64;
  else if constexpr (std::is_same_v<T, int64_t>) element = GgufValueType::kI64;
  else if constexpr (std::is_same_v<T, float>) element = GgufValueType::kF32;
  else if constexpr (std::is_same_v<T, double>) element = GgufValueType::kF64;
  else static_assert(sizeof(T) == 0, "not a GGUF numeric element type");
  return numeric_array(element, values.size(), values.data(), sizeof(T));
}

}  // namespace koto
