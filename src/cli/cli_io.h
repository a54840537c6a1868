// Reading a command's input: a whole file, or all of stdin. Header-only, shared by the
// commands that take text (run, tokenize).
#pragma once

#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "koto/error.h"
#include "koto/i18n.h"

namespace koto::cli {

// All bytes of `in`; `name` ("stdin", a path) is for the message. Throws Error(kIo).
inline std::string read_all(std::istream& in, const std::string& name) {
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, tr("{0}: read failed", "{0}: 読み込みに失敗しました", name));
  return bytes.str();
}

// All bytes of the file at `path`, or of stdin when path is "-". Throws Error:
// kNotFound when the file cannot be opened, kIo when reading fails.
inline std::string read_file_or_stdin(const std::string& path) {
  if (path == "-") return read_all(std::cin, "stdin");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, tr("{0}: cannot open the file", "{0}: ファイルを開けません", path));
  return read_all(in, path);
}

// True when stdin is a terminal: reading it would wait for typing, so commands ask
// for their input instead.
inline bool stdin_is_terminal() { return isatty(STDIN_FILENO) != 0; }

}  // namespace koto::cli
