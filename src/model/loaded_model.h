// The Model behind koto::Model::load: the mapped file, its hyperparameters, the
// weights found and checked in it, the tokenizer and the thread pool sessions use.
#pragma once

#include <memory>
#include <mutex>

#include "base/thread_pool.h"
#include "format/mapped_file.h"
#include "koto/gguf.h"
#include "koto/model.h"
#include "model/architecture.h"
#include "model/weights.h"

namespace koto::model {

struct ForwardScratch;

class LoadedModel final : public Model {
 public:
  LoadedModel(GgufFile file, const Architecture& architecture, ModelParams params, Weights weights,
              std::unique_ptr<Tokenizer> tokenizer, int n_threads, std::unique_ptr<MappedFile> repacked = nullptr,
              RepackReport repack_report = {});
  ~LoadedModel() override;

  const ModelParams& params() const override { return params_; }
  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  const GgufFile& file() const override { return file_; }
  int n_threads() const override { return pool_.size(); }
  const RepackReport& repack_report() const override { return repack_report_; }
  uint64_t touch_weights(const std::function<bool(uint64_t done, uint64_t total)>& progress) const override;
  MappedMemory mapped_memory() const override;
  uint64_t session_bytes(int32_t n_ctx) const override;
  std::unique_ptr<Session> new_session(const SessionOptions& options) const override;
  void eval_batch(std::span<BatchEntry> entries) const override;

  const Architecture& architecture() const { return architecture_; }
  const Weights& weights() const { return weights_; }
  // Shared by the sessions; parallel_for calls from several sessions take turns.
  ThreadPool& pool() const { return pool_; }

 private:
  GgufFile file_;  // owns the mapping the weights point into
  std::unique_ptr<MappedFile> repacked_;  // the Q5_0R cache some weights point into, or null
  RepackReport repack_report_;
  const Architecture& architecture_;
  ModelParams params_;
  Weights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  mutable ThreadPool pool_;
  // Activations of a forward pass, made at the first use (an eval or touch_weights) and
  // lent to one call at a time; scratch_locked() is called with scratch_mutex_ held.
  ForwardScratch& scratch_locked() const;
  // fn(path, mapping, size) for the model file and the repacked cache (when mapped).
  void for_each_mapping(const std::function<void(const std::string&, const uint8_t*, size_t)>& fn) const;
  mutable std::mutex scratch_mutex_;
  mutable std::unique_ptr<ForwardScratch> scratch_;
};

// Reads the hyperparameters and checks and collects every tensor the forward pass
// needs (model_loader.cpp). Throws koto::Error naming the file and what is wrong.
ModelParams read_model_params(const GgufFile& file, const Architecture& architecture);
Weights read_weights(const GgufFile& file, const Architecture& architecture, const ModelParams& params);

}  // namespace koto::model
