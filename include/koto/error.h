// koto::Error is the one exception type the engine throws. It carries a category
// (ErrorCode) so callers can react to the kind of failure, and a one-line message,
// already in the user's language (see koto/i18n.h), that names the file or input
// and, where there is one, what to do about it.
//
// Front ends catch koto::Error at their boundary and print what(); they never need
// to parse the message.
#pragma once

#include <stdexcept>
#include <string>

namespace koto {

enum class ErrorCode {
  kInvalidArgument,  // the caller passed something that cannot work (bad option, bad id)
  kNotFound,         // a file, key, tensor or token that was asked for does not exist
  kIo,               // the operating system refused (open, mmap, read, write)
  kCorruptFile,      // a file's bytes contradict its own format (truncated, bad offsets...)
  kUnsupported,      // well-formed, but koto does not implement it (type, architecture...)
  kOutOfMemory,      // the work would not fit in memory
  kCancelled,        // stopped on request (Ctrl-C, a client that went away)
  kUnavailable,      // cannot be taken now (a full queue, shutting down); the same call may work later
  kInternal,         // a bug in koto
};

// The short English name of a category ("corrupt file"), for logs and tests.
const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}

  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace koto
