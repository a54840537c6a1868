// "Will it fit?" before anything is loaded: the weights (mapped) + the KV cache for a
// context + scratch (koto/gguf_summary.h's estimate), against the memory available now —
// MemAvailable, and the cgroup's limit minus its usage when the process runs under one.
// When it does not fit, the largest context (halving from the asked one, >= 256) that
// does is given. Pure reads of the file's header and /proc, /sys; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "koto/gguf.h"

namespace koto {

// MemAvailable, lowered to the cgroup v2 limit minus usage when that is smaller; 0 when unknown.
uint64_t memory_available_now();

struct ModelFitSummary {
  std::string architecture;
  std::string quantization;   // the tensor type holding most bytes ("Q4_K", "Q5_0"...)
  int64_t parameters = 0;
  int64_t context = 0;        // the context the estimate is for
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes = 0;
  uint64_t scratch_bytes = 0;
  uint64_t needed_bytes = 0;
  uint64_t available_bytes = 0;  // 0: unknown (then fits is true)
  bool fits = true;
  int64_t context_that_fits = 0;  // when !fits: a smaller context that fits, 0 when none does
};

// n_ctx <= 0: the default context (min(trained, 4096)).
ModelFitSummary summarize_fit(const GgufFile& file, int64_t n_ctx, uint64_t available_bytes = memory_available_now());

// The analysis for people, several lines in the user's language, ending with what to do
// when it does not fit.
std::string format_fit(const ModelFitSummary& fit);
// One line: "fits: needs 4.93 GB of 20.1 GB available (context 4096)".
std::string format_fit_line(const GgufFile& file, int64_t n_ctx);

}  // namespace koto
