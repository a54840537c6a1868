#include "format/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "koto/error.h"
#include "koto/i18n.h"

namespace koto {
namespace {

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile::MappedFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw Error(ErrorCode::kNotFound,
                  tr("{0}: no such file — check the path", "{0}: ファイルがありません — パスを確認してください", path));
    }
    throw Error(ErrorCode::kIo, tr("{0}: cannot open ({1})", "{0}: 開けません ({1})", path, std::strerror(err)));
  }
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(ErrorCode::kIo, tr("{0}: cannot stat ({1})", "{0}: 情報を取得できません ({1})", path, std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kIo,
                tr("{0}: is a folder, not a model file", "{0}: フォルダです。モデルファイルを指定してください", path));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) return;  // an empty file maps to nothing; the parser reports it
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    throw Error(ErrorCode::kIo, tr("{0}: cannot map into memory ({1})", "{0}: メモリにマップできません ({1})", path,
                                   std::strerror(errno)));
  }
  data_ = static_cast<const uint8_t*>(p);
  // 2 MB pages where the kernel can (format/huge_pages.h): pages read in through this
  // mapping then come in 2 MB folios. Ignored where transparent huge pages are off.
  if (size_ >= (size_t{2} << 20)) ::madvise(p, size_, MADV_HUGEPAGE);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

void MappedFile::advise_will_need(size_t offset, size_t length) const {
  if (data_ == nullptr || offset >= size_) return;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t start = offset / page * page;
  const size_t end = std::min(size_, offset + length);
  ::madvise(const_cast<uint8_t*>(data_) + start, end - start, MADV_WILLNEED);
}

}  // namespace koto
