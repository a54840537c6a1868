// A read-only memory mapping of a whole file (RAII, move-only). Model weights are used
// in place from it, so loading costs page-table set-up, not copying.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace koto {

class MappedFile {
 public:
  // Throws koto::Error (kNotFound, kIo) naming the path.
  explicit MappedFile(const std::string& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view bytes() const { return {reinterpret_cast<const char*>(data_), size_}; }

  // Hints that [offset, offset + length) will be read soon, sequentially (readahead).
  void advise_will_need(size_t offset, size_t length) const;

 private:
  void release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace koto
