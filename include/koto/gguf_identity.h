// A fingerprint of a GGUF file's content, for caches that must never be applied to
// another model (the prefix cache on disk keys its files by it).
//
// gguf_identity hashes (XXH3, 128 bits) the file size, every byte before the tensor
// data (header, metadata, tensor directory) and 64 pages of 4 KiB spread evenly over
// the tensor data. It reads a few MB whatever the file's size, so it is cheap at every
// start-up; a file re-quantized, re-converted or edited in its metadata gets another
// identity. It is not a cryptographic checksum: it does not detect a deliberate change
// to unsampled weight bytes (use the download's SHA-256 for that).
#pragma once

#include <string>

namespace koto {

class GgufFile;

// 32 lowercase hex digits. Thread-safe (reads the mapping only).
std::string gguf_identity(const GgufFile& file);

}  // namespace koto
