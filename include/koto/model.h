// A loaded model and the state of one sequence run through it.
//
// Model::load maps the GGUF file (weights are used in place, never copied), reads
// the hyperparameters of a supported architecture (llama, qwen2, qwen3), checks every
// tensor it needs (name, shape, type) and builds the tokenizer. A Model is immutable
// and can be shared by several Sessions (one per sequence); a Session is not
// thread-safe, but uses the model's thread pool for its own work.
//
// Several sequences share one forward pass through Model::eval_batch: the rows of all
// of them go through each weight matrix together (the weights are read once for all),
// while attention stays per sequence over that sequence's own KV cache. This is what a
// server's continuous batching runs on.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "koto/tensor_type.h"
#include "koto/tokenizer.h"

namespace koto {

class GgufFile;

struct ModelParams {
  std::string architecture;  // "llama", "qwen2", "qwen3"
  std::string name;          // general.name, "" when absent
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;   // context length the model was trained for
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;      // key_length when present, else n_embd / n_head
  int32_t n_ff = 0;
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // positions are multiplied by this (linear RoPE scaling)
  bool rope_neox = false;    // pairs (i, i + d/2) instead of (2i, 2i + 1)
  int64_t n_params = 0;
};

// Whether Model::load repacks Q5_0 weights into Q5_0R, the layout koto's AVX-512
// kernels read fastest (same bytes, another order; results bit for bit the same). The
// repacked weights live in a cache file built once, with progress, and mapped like the
// model, so they take no extra memory; the model's own Q5_0 pages are then never read.
enum class RepackMode {
  kAuto,  // when the CPU runs the AVX-512 kernels and the model has >= 64 MiB of Q5_0
          // matrices; KOTO_REPACK=off or on overrides it
  kOff,
  kOn,    // whenever there is a Q5_0 matrix (tests)
};

struct LoadOptions {
  int n_threads = 0;  // 0: one per physical core
  RepackMode repack = RepackMode::kAuto;
  // Folder of the repacked weights' cache files; "": koto_data_dir() / "cache".
  std::string cache_dir;
  // Called while a cache file is built (bytes done, bytes in all), from the loading thread.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// What Model::load did about repacking.
struct RepackReport {
  std::string cache_path;     // the cache file mapped, "" when nothing was repacked
  const uint8_t* mapped = nullptr;  // its mapping, valid while the model lives
  uint64_t mapped_bytes = 0;
  uint64_t bytes = 0;         // weight bytes read from it
  int n_tensors = 0;
  bool built = false;         // built by this load (else reused)
  double build_seconds = 0;
  // Why weights that could have been repacked were not (cannot write the cache, no
  // space): a message for the user, in their language; "" otherwise.
  std::string problem;
};

struct SessionOptions {
  int32_t n_ctx = 0;  // 0: min(n_ctx_train, 4096)
  // Element type of the KV cache: kF16 (half the memory) or kF32 (bit-closer to a
  // float32 reference). Other types are refused with kInvalidArgument.
  TensorType kv_type = TensorType::kF16;
};

class Session;

// One session's part of a batched forward pass (Model::eval_batch).
struct BatchEntry {
  Session* session = nullptr;        // not owned; a session of this model, at most once per call
  std::span<const TokenId> tokens;   // appended at session->n_past(); not empty
  bool all_logits = false;           // logits of every token, or of the last one only
  // Filled by eval_batch: what Session::eval would return for these tokens (or, with
  // hidden_states, the hidden states). Valid until the session's next evaluation.
  std::span<const float> logits;
  // Instead of logits: the final hidden state of every token, rmsnorm(x) * output_norm
  // (the vector the output head multiplies), [tokens][n_embd]; for embeddings.
  bool hidden_states = false;
};

// The repacked weights' cache file Model::load uses for `file` with this cache_dir
// (LoadOptions), whether or not it exists: removing a model removes it too.
std::string repack_cache_path(const GgufFile& file, const std::string& cache_dir = "");

class Model {
 public:
  // Throws koto::Error: kNotFound/kIo (file), kCorruptFile (damaged file: a missing
  // key or tensor, a tensor whose shape contradicts the hyperparameters, inconsistent
  // head counts; the message names the file, the key or tensor, expected and found),
  // kUnsupported (architecture, tensor type or RoPE scaling koto does not run, naming
  // it and listing what is supported).
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& options = {});

  virtual ~Model() = default;
  virtual const ModelParams& params() const = 0;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual const GgufFile& file() const = 0;
  virtual int n_threads() const = 0;
  virtual const RepackReport& repack_report() const = 0;
  // Reads the pages of every weight matrix the forward pass streams into memory (the
  // repacked copy where there is one), so the first answer does not wait for page
  // faults: what a resident server does before it says it is ready, `koto chat` while
  // the first question is typed, and `koto run` and `koto bench` after loading. Where
  // the kernel and file system can, it first drops weight pages the page cache holds in
  // small pages, so that they come back 2 MB at a time (format/huge_pages.h).
  // `progress` (bytes done, bytes in all) is called after each of at least 16 chunks
  // (at most 32 MiB each); returning false stops there. Returns the bytes touched. Safe
  // while the model answers on other threads.
  virtual uint64_t touch_weights(const std::function<bool(uint64_t done, uint64_t total)>& progress) const = 0;
  // The model's mapped files' pages this process has resident, and how many of those
  // bytes it maps 2 MB at a time (decoding streams every weight once per token: 4 KB
  // pages made llama2-7b decode 1.2x slower on a 2-core VM); -1 when unknown.
  struct MappedMemory {
    int64_t resident_bytes = -1;
    int64_t huge_bytes = -1;
  };
  virtual MappedMemory mapped_memory() const = 0;

  // Bytes a session of n_ctx positions needs besides the mapped weights (KV cache and
  // scratch buffers, with the default kv_type), so callers can refuse a context that
  // will not fit.
  virtual uint64_t session_bytes(int32_t n_ctx) const = 0;

  virtual std::unique_ptr<Session> new_session(const SessionOptions& options = {}) const = 0;

  // Runs every entry's tokens as Session::eval would, in one forward pass per up to 64
  // rows in total (longer inputs take several passes, in order). Each session's results
  // are those of evaluating it alone, up to the float rounding of the matrix kernels
  // (which may depend on how many rows share a pass). All sessions must have the same
  // kv_type. Throws kInvalidArgument, with nothing evaluated, for a session of another
  // model, a session given twice, mixed KV types, or any entry Session::eval would
  // refuse. Thread-safety: calls on one model are serialised.
  virtual void eval_batch(std::span<BatchEntry> entries) const = 0;
};

class Session {
 public:
  virtual ~Session() = default;

  // Runs `tokens` at positions n_past() .. n_past() + size - 1 (prefill when several),
  // appending them to the KV cache. Returns the logits [n_vocab] of the last token, or
  // with all_logits the logits of every token, [tokens.size()][n_vocab] row-major.
  // The span is valid until the next call. Throws kInvalidArgument when the tokens
  // would run past n_ctx() or an id is out of range.
  virtual std::span<const float> eval(std::span<const TokenId> tokens, bool all_logits = false) = 0;

  // Like eval, but returns the final hidden state of every token instead of logits:
  // rmsnorm(x_final) * output_norm, [tokens.size()][n_embd] (sentence embeddings pool
  // these). The output head is not run.
  virtual std::span<const float> eval_hidden(std::span<const TokenId> tokens) = 0;

  virtual int32_t n_past() const = 0;
  virtual int32_t n_ctx() const = 0;
  // The most tokens one eval may take with every token's logits bit-identical to
  // evaluating the tokens one at a time (the kernels' arithmetic per vector is the same
  // up to this many vectors at once); at least 1. Lookup decoding checks no more, so
  // greedy output never changes with it.
  virtual int32_t exact_rows() const = 0;
  // Forgets positions >= n (keeps a shared prefix for reuse); n >= n_past() changes
  // nothing. Throws kInvalidArgument for n < 0.
  virtual void truncate(int32_t n) = 0;

  // ---- The KV cache as bytes, for a prefix cache that outlives this session ----
  // The bytes of one position are the keys and values of every layer, in a layout
  // private to koto that is the same for every session of one model with one kv_type.

  virtual TensorType kv_type() const = 0;
  // Bytes of cached keys and values that one position takes (all layers).
  virtual size_t kv_bytes_per_position() const = 0;
  // Copies positions [begin, end) to `out`, which must hold exactly
  // (end - begin) * kv_bytes_per_position() bytes. Throws kInvalidArgument unless
  // 0 <= begin <= end <= n_past() and the size is right.
  virtual void read_kv(int32_t begin, int32_t end, std::span<uint8_t> out) const = 0;
  // Appends positions n_past() .. n_past() + count - 1 from bytes read_kv produced (in a
  // session of the same model and kv_type), as if their tokens had been evaluated here:
  // count = in.size() / kv_bytes_per_position(). Throws kInvalidArgument when the size
  // is not a whole number of positions or the positions would run past n_ctx().
  virtual void append_kv(std::span<const uint8_t> in) = 0;
};

}  // namespace koto
