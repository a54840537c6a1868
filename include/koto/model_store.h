// The local model store and `koto pull`.
//
// Store: one folder — $KOTO_HOME/models, else $XDG_DATA_HOME/koto/models, else
// ~/.local/share/koto/models — with the hub's names kept (OWNER/REPO/FILE.gguf) and an
// index, models.json, written atomically (a temporary file renamed over it), recording
// each model's source, SHA-256, size, date and last use.
//
// Pull: a reference (hf.co/OWNER/REPO/FILE.gguf, an https URL of such a file, or
// OWNER/REPO:QUANT, picked from the hub's file listing) is resolved against a hub
// endpoint (--endpoint, KOTO_HF_ENDPOINT, HF_ENDPOINT, default https://huggingface.co;
// HF_TOKEN for gated models; proxies from the usual environment variables), its size
// and SHA-256 read from the headers (X-Linked-Size, X-Linked-ETag), free disk space
// checked, and the file downloaded with libcurl into FILE.part — resumed with Range and
// If-Range after a dropped connection (retried with back-off) or an interrupted run —
// verified against the SHA-256, then moved into the store. A mismatch deletes the
// download and says so.
//
// Thread-safety: a ModelStore is used by one thread at a time; pulls of different
// files may run in different processes.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace koto {

struct StoredModel {
  std::string name;     // OWNER/REPO/FILE.gguf
  std::string path;     // absolute
  std::string source;   // the URL it was downloaded from
  std::string sha256;   // hex
  uint64_t size = 0;
  int64_t downloaded = 0;  // Unix seconds
  int64_t last_used = 0;   // Unix seconds; 0 = never
};

struct PullProgress {
  uint64_t done = 0;   // bytes of the file present (resumed bytes included)
  uint64_t total = 0;
  uint64_t transferred = 0;  // bytes received by this run
  double seconds = 0;
};

struct PullOptions {
  std::string endpoint;  // "" = from the environment, else https://huggingface.co
  // Told the file's size before the download starts (e.g. to say whether it will fit).
  std::function<void(const std::string& name, uint64_t size)> before_download;
  std::string token;     // "" = HF_TOKEN
  int max_retries = 5;
  const std::atomic<bool>* cancel = nullptr;  // Ctrl-C: stop, keep the .part
  std::function<void(const PullProgress&)> progress;
};

struct PullResult {
  StoredModel model;
  uint64_t transferred = 0;  // bytes received by this run (the rest was resumed or already there)
  bool already_present = false;
};

class ModelStore {
 public:
  // The default folder (see above).
  static std::filesystem::path default_root();
  explicit ModelStore(std::filesystem::path root = default_root());

  const std::filesystem::path& root() const { return root_; }
  std::vector<StoredModel> list() const;
  // By full name, by REPO/FILE, by FILE or by FILE without .gguf (unique matches only).
  std::optional<StoredModel> find(const std::string& name) const;
  // Deletes the file and its index entry; false when there is no such model.
  bool remove(const std::string& name);
  void touch(const std::string& name);  // last_used = now

  // Downloads `reference` into the store (see above). Throws koto::Error: kInvalidArgument
  // (a reference koto cannot read), kNotFound (unknown repo or file; QUANT matching
  // nothing or several files: the message lists the GGUF files), kUnavailable (401/403:
  // how to get access; the network; cancelled — the .part stays for the next pull),
  // kCorruptFile (checksum mismatch: the download is deleted), kIo (disk full, write).
  PullResult pull(const std::string& reference, const PullOptions& options = {});

 private:
  void save(const std::vector<StoredModel>& models) const;
  std::filesystem::path root_;
};

// The hub endpoint from options, KOTO_HF_ENDPOINT or HF_ENDPOINT, else https://huggingface.co.
std::string hub_endpoint(const std::string& option);

// The built-in catalogue of Japanese-capable models: short names for `koto pull NAME`
// and `-m NAME`. Each row was checked against the hub's model page unless `verified` is
// false (README lists which).
struct CatalogueEntry {
  const char* name;         // "elyza-7b", "tinyswallow-1.5b"...
  const char* repo;         // OWNER/REPO on the hub
  const char* file;         // the GGUF file
  uint64_t size;            // bytes, as the hub lists it (0: unknown)
  const char* license;
  const char* about_en;
  const char* about_ja;
  bool verified;
};
std::span<const CatalogueEntry> model_catalogue();
const CatalogueEntry* find_in_catalogue(const std::string& name);

}  // namespace koto
