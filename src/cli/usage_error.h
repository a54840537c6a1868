// A bad command line found by a command after CLI11 parsed it (an option value out of
// range, two inputs that exclude each other, no input at all). main.cpp prints it like
// a CLI11 parse error and exits with kExitUsage (2); koto::Error from the library, even
// kInvalidArgument, means the work failed and exits with kExitFailure (1).
#pragma once

#include <stdexcept>
#include <string>

namespace koto::cli {

class UsageError : public std::runtime_error {
 public:
  // `message` is already in the user's language (built with tr()).
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace koto::cli
