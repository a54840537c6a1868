// Will a session fit in memory? Checked before the KV cache is allocated, so a context
// that is too large is refused with a useful message instead of the system swapping or
// the process being killed.
//
// The estimate is the file size (the mapped weights, all of which generation touches)
// plus Model::session_bytes(n_ctx), against available_memory_bytes() (MemAvailable).
// Thread-safe: reads only.
#pragma once

#include <cstdint>

#include "koto/model.h"

namespace koto {

struct MemoryFit {
  bool fits = true;              // also true when the available memory is unknown
  uint64_t weights_bytes = 0;    // the model file
  uint64_t session_bytes = 0;    // KV cache and scratch for n_ctx positions
  uint64_t available_bytes = 0;  // 0: unknown (nothing was checked)
  // When it does not fit: the largest context n_ctx/2, n_ctx/4, ... (>= 256) that does;
  // 0 when none does.
  int32_t suggested_n_ctx = 0;
};

// n_ctx > 0. available_bytes defaults to available_memory_bytes().
MemoryFit check_memory(const Model& model, int32_t n_ctx);
MemoryFit check_memory(const Model& model, int32_t n_ctx, uint64_t available_bytes);

// Throws koto::Error(kOutOfMemory) when check_memory says it does not fit; the message
// gives the sizes and the smaller context to use (as `koto run -c N`), or says that
// even a small context does not fit.
void require_memory(const Model& model, int32_t n_ctx);

}  // namespace koto
