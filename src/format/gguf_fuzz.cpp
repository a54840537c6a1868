// libFuzzer target for the GGUF reader (built with clang, ASan and UBSan; see
// src/format/CMakeLists.txt). Any input must either parse or throw koto::Error. A
// parsed file is walked completely (every value, the first and last byte of every
// tensor), summarized as `koto info` would, and written back through GgufWriter: the
// copy must parse to the same metadata and tensors. Anything else — a crash, a
// sanitizer report, another exception type or a mismatch — is a bug.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_summary.h"
#include "koto/gguf_writer.h"

namespace {

volatile uint64_t g_sink;  // keeps the reads below from being optimized away

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void walk(const koto::GgufValue& v) {
  using koto::GgufValueType;
  if (v.is_string()) {
    const std::string_view s = v.as_string();
    if (!s.empty()) g_sink = g_sink + static_cast<uint8_t>(s.front()) + static_cast<uint8_t>(s.back());
    return;
  }
  if (!v.is_array()) {
    const double d = v.as_f64();  // every scalar reads as a number
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    g_sink = g_sink + bits;
    return;
  }
  for (uint64_t i = 0; i < v.size(); ++i) {
    switch (v.element_type()) {
      case GgufValueType::kString: g_sink = g_sink + v.string_at(i).size(); break;
      case GgufValueType::kArray: walk(v.array_at(i)); break;
      case GgufValueType::kF32:
      case GgufValueType::kF64: g_sink = g_sink + static_cast<uint64_t>(v.float_at(i) != 0); break;
      case GgufValueType::kU64:
        try {
          g_sink = g_sink + static_cast<uint64_t>(v.int_at(i));
        } catch (const koto::Error&) {  // above INT64_MAX: refused by design
        }
        break;
      default: g_sink = g_sink + static_cast<uint64_t>(v.int_at(i)); break;
    }
  }
}

std::string_view tensor_bytes(const koto::GgufTensor& t) {
  return {reinterpret_cast<const char*>(t.data), t.n_bytes};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::optional<koto::GgufFile> file;
  try {
    file.emplace(koto::GgufFile::parse(bytes, "fuzz.gguf"));
  } catch (const koto::Error&) {
    return 0;  // refused with a message: the expected outcome for most inputs
  }

  // What `koto info` shows must be computable for any file the reader accepts.
  try {
    const std::string json = koto::gguf_summary_json(koto::summarize_gguf(*file, 0));
    check(!json.empty());
  } catch (const koto::Error&) {  // a key with an unreadable type, named in the message
  }

  koto::GgufWriter copy;
  for (const koto::GgufKeyValue& kv : file->metadata()) {
    walk(kv.value);
    // The reader accepts any integer type for the alignment; the writer writes a u32.
    if (kv.key == "general.alignment") {
      copy.set_alignment(static_cast<uint32_t>(file->alignment()));
    } else {
      copy.set(kv.key, koto::GgufMetaValue::copy_of(kv.value));
    }
  }
  for (const koto::GgufTensor& t : file->tensors()) {
    // Every tensor lies inside the input; touching both ends lets ASan check that.
    check(t.n_bytes > 0 && t.data >= data && t.data + t.n_bytes <= data + size);
    g_sink = g_sink + t.data[0] + t.data[t.n_bytes - 1];
    if (t.name.size() >= 64) return 0;  // readable, but the writer refuses to write it (llama.cpp limit)
    copy.add_tensor(t.name, t.shape, t.type, tensor_bytes(t));
  }

  const std::string written = copy.write_to_string();
  check(written.size() == copy.file_size());
  const koto::GgufFile again = koto::GgufFile::parse(written, "fuzz-copy.gguf");
  check(again.alignment() == file->alignment());
  check(again.metadata().size() == file->metadata().size());
  for (size_t i = 0; i < again.metadata().size(); ++i) {
    check(again.metadata()[i].key == file->metadata()[i].key);
    check(again.metadata()[i].value.type() == file->metadata()[i].value.type() ||
          again.metadata()[i].key == "general.alignment");
    check(again.metadata()[i].value.size() == file->metadata()[i].value.size());
  }
  check(again.tensors().size() == file->tensors().size());
  for (size_t i = 0; i < again.tensors().size(); ++i) {
    const koto::GgufTensor& a = file->tensors()[i];
    const koto::GgufTensor& b = again.tensors()[i];
    check(a.name == b.name && a.shape == b.shape && a.type == b.type);
    check(tensor_bytes(a) == tensor_bytes(b));
  }
  return 0;
}
