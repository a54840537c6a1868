#include "model/loaded_model.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

#include "koto/error.h"
#include "koto/i18n.h"
#include "format/huge_pages.h"
#include "model/transformer.h"

namespace koto::model {
namespace {

constexpr int32_t kDefaultContextLimit = 4096;
constexpr int32_t kMaxContext = 1 << 24;

}  // namespace

LoadedModel::LoadedModel(GgufFile file, const Architecture& architecture, ModelParams params, Weights weights,
                         std::unique_ptr<Tokenizer> tokenizer, int n_threads, std::unique_ptr<MappedFile> repacked,
                         RepackReport repack_report)
    : file_(std::move(file)),
      repacked_(std::move(repacked)),
      repack_report_(std::move(repack_report)),
      architecture_(architecture),
      params_(std::move(params)),
      weights_(std::move(weights)),
      tokenizer_(std::move(tokenizer)),
      pool_(n_threads) {}

LoadedModel::~LoadedModel() = default;

void LoadedModel::eval_batch(std::span<BatchEntry> entries) const {
  const std::lock_guard<std::mutex> lock(scratch_mutex_);
  eval_transformer_batch(*this, scratch_locked(), entries);
}

ForwardScratch& LoadedModel::scratch_locked() const {
  if (scratch_ == nullptr) scratch_ = std::make_unique<ForwardScratch>(params_);
  return *scratch_;
}

uint64_t LoadedModel::touch_weights(const std::function<bool(uint64_t done, uint64_t total)>& progress) const {
  // The matrices' byte ranges, page-aligned and merged (a tied output is the embedding).
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  auto add = [&](const Matrix& m) {
    if (m.data == nullptr) return;
    const auto begin = reinterpret_cast<uintptr_t>(m.data);
    ranges.emplace_back(begin / page * page, (begin + static_cast<uintptr_t>(m.n_out * m.row_bytes) + page - 1) / page * page);
  };
  add(weights_.token_embd);
  add(weights_.output);
  for (const LayerWeights& layer : weights_.layers) {
    for (const Matrix* m : {&layer.wq, &layer.wk, &layer.wv, &layer.wo, &layer.w_gate, &layer.w_up, &layer.w_down}) add(*m);
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uintptr_t, uintptr_t>> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  uint64_t total = 0;
  for (const auto& r : merged) total += r.second - r.first;
  // Pages the page cache holds small (the repacked cache just written, say) are dropped
  // where they would come back 2 MB at a time: the reads below then bring them back so.
  for_each_mapping([&](const std::string& path, const uint8_t* base, size_t size) {
    std::vector<MappedRange> inside;
    for (const auto& [begin, end] : merged) {
      if (begin >= reinterpret_cast<uintptr_t>(base) && end <= reinterpret_cast<uintptr_t>(base) + size) {
        inside.push_back({reinterpret_cast<const uint8_t*>(begin), reinterpret_cast<const uint8_t*>(end)});
      }
    }
    if (!inside.empty()) prepare_huge_pages(path, base, inside);
  });
  {
    // The forward pass's scratch too (6 MB on a 1.5B model, written page by page the
    // first time: ~1,600 page faults of 18 us each on that VM).
    const std::lock_guard<std::mutex> lock(scratch_mutex_);
    scratch_locked();
  }
  // MADV_POPULATE_READ (Linux 5.14) reads a range in with one call (large reads from
  // disk) and fills this process's page tables. A read of one byte per page from here
  // follows: under a virtual machine the first access of a page through this mapping can
  // still cost a trip to the hypervisor, which the populate does not pay. Measured on
  // this project's VM (qwen2.5-1.5b, 1 GB, pages in the page cache): after the populate
  // alone the first token took 440-730 ms against 45-90 ms for the next; the reads took
  // 370 ms and the first token then 118 ms.
#ifndef MADV_POPULATE_READ
  constexpr int MADV_POPULATE_READ = 22;
#endif
  const uintptr_t chunk = std::clamp<uintptr_t>((total / 16) / page * page, page, uintptr_t{32} << 20);
  uint64_t done = 0;
  bool populate = true;
  for (const auto& r : merged) {
    for (uintptr_t at = r.first; at < r.second; at += chunk) {
      const uintptr_t end = std::min(r.second, at + chunk);
      if (populate && ::madvise(reinterpret_cast<void*>(at), end - at, MADV_POPULATE_READ) != 0) populate = false;
      for (uintptr_t p = at; p < end; p += page) (void)*reinterpret_cast<const volatile uint8_t*>(p);
      done += end - at;
      if (progress && !progress(done, total)) return done;
    }
  }
  return total;
}

void LoadedModel::for_each_mapping(const std::function<void(const std::string&, const uint8_t*, size_t)>& fn) const {
  const std::string_view bytes = file_.bytes();
  if (!bytes.empty()) fn(file_.path(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (repacked_ != nullptr && repacked_->size() > 0) fn(repack_report_.cache_path, repacked_->data(), repacked_->size());
}

Model::MappedMemory LoadedModel::mapped_memory() const {
  MappedMemory total{0, 0};
  for_each_mapping([&](const std::string&, const uint8_t* base, size_t) {
    const MappedPages pages = mapped_pages(base);
    if (pages.resident_bytes < 0 || total.resident_bytes < 0) {
      total = {-1, -1};
      return;
    }
    total.resident_bytes += pages.resident_bytes;
    total.huge_bytes += pages.huge_bytes;
  });
  return total;
}

uint64_t LoadedModel::session_bytes(int32_t n_ctx) const {
  return transformer_session_bytes(params_, n_ctx, SessionOptions{}.kv_type, pool_.size());
}

std::unique_ptr<Session> LoadedModel::new_session(const SessionOptions& options) const {
  const int32_t n_ctx = options.n_ctx > 0 ? options.n_ctx : std::min(params_.n_ctx_train, kDefaultContextLimit);
  if (n_ctx > kMaxContext) {
    throw Error(ErrorCode::kInvalidArgument, tr("context of {0} positions is too large (at most {1})",
                                                "コンテキスト長 {0} は大きすぎます (最大 {1})", n_ctx, kMaxContext));
  }
  if (options.kv_type != TensorType::kF16 && options.kv_type != TensorType::kF32 &&
      options.kv_type != TensorType::kQ8_0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("KV cache type {0} is not supported (supported: F16, Q8_0, F32)",
                   "KV キャッシュの型 {0} には対応していません (対応: F16, Q8_0, F32)", tensor_type_name(options.kv_type)));
  }
  if (options.kv_type == TensorType::kQ8_0 && params_.head_dim % 32 != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("a Q8_0 KV cache needs a head size that is a multiple of 32 (this model's is {0}); use F16",
                   "Q8_0 の KV キャッシュにはヘッドの次元が 32 の倍数である必要があります (このモデルは {0})。F16 を使ってください",
                   params_.head_dim));
  }
  try {
    return new_transformer_session(*this, n_ctx, options.kv_type);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kOutOfMemory,
                tr("not enough memory for a context of {0} positions (needs about {1} MiB); use a smaller context",
                   "コンテキスト長 {0} に必要なメモリ (約 {1} MiB) が足りません。コンテキストを小さくしてください", n_ctx,
                   transformer_session_bytes(params_, n_ctx, options.kv_type, pool_.size()) >> 20));
  }
}

}  // namespace koto::model
