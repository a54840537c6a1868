// A cache of KV state for token prefixes, so a prompt prefix that was processed once (a
// system prompt, a document, the earlier turns of a conversation) is never processed
// again: not by another request, not in another slot, not after a restart.
//
// Structure. Token sequences are cut into blocks of block_tokens tokens. A block is
// known by a key chained from its parent's key and its own tokens (XXH3, 128 bits), so
// one key stands for the whole prefix up to the block's end; the chain starts from a
// root derived from the partition (one per API key, so one user's prompts never serve
// another's, whose timing could reveal them). Full blocks may have children; a trailing
// part of a sequence (fewer tokens) is stored as a leaf block. A look-up follows full
// blocks as far as they match and then takes the longest matching start of any child,
// so a prefix is reused to the exact token, not only to a block boundary. Every block
// also keeps its own tokens and is compared token by token, so a hash collision can
// only cause a miss, never wrong state.
//
// Memory. Blocks hold the KV bytes of their positions (Session::read_kv). Their total
// stays under memory_bytes: the least recently used blocks go first, and a block is
// always used more recently than its descendants (a look-up or store touches a chain
// from its end back to its root), so eviction takes leaves before the prefixes they
// hang from.
//
// Disk (optional). With a folder, every new block is also written there, in the
// background, as one file `<key>.kvb` under a sub-folder named after the model's
// identity (gguf_identity + KV type + cache format), with a header, its tokens, its KV
// bytes and a checksum. At start-up the folder's headers are read (not the KV bytes);
// a block that is on disk but not in memory is loaded when a look-up needs it. Files
// that are damaged, truncated, of another format or inconsistent are ignored with a
// warning and deleted — never trusted. The folder's total stays under disk_bytes
// (least recently used first; file times carry the order across restarts).
//
// Thread-safety: one thread uses a PrefixCache (the scheduler's); the background
// writer only reads blocks, which never change once made. stats() may be called from
// any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "koto/tokenizer.h"

namespace koto {

class Session;

struct PrefixCacheOptions {
  uint64_t memory_bytes = 1ull << 30;  // KV bytes kept in memory; 0 turns the cache off
  std::string disk_dir;                // "" : memory only
  uint64_t disk_bytes = 4ull << 30;    // bytes of files kept in disk_dir
  int32_t block_tokens = 32;           // tokens per block (1 to 4096)
};

struct PrefixCacheStats {
  uint64_t memory_bytes = 0;   // KV bytes held in memory
  uint64_t memory_blocks = 0;
  uint64_t disk_bytes = 0;     // bytes of the cache's files
  uint64_t disk_blocks = 0;
  uint64_t lookups = 0;
  uint64_t hit_tokens = 0;     // positions restored by restore()
  uint64_t disk_loads = 0;     // blocks read back from disk
  uint64_t disk_writes = 0;    // blocks written to disk
  uint64_t rejected_files = 0; // damaged or foreign files ignored and deleted
};

class PrefixCache {
 public:
  // model_identity: what the KV bytes belong to (gguf_identity of the model file plus
  // anything else that changes them, like the KV type); bytes_per_position:
  // Session::kv_bytes_per_position(). `warn` receives one translated line per ignored
  // file or disk failure (may be empty). Throws kInvalidArgument for a bad block size,
  // kIo when disk_dir cannot be created. Reads the folder's headers when there is one.
  PrefixCache(std::string model_identity, size_t bytes_per_position, PrefixCacheOptions options,
              std::function<void(const std::string&)> warn = {});
  // Waits for pending disk writes.
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // KV bytes of one block (memory mapped in one go: page by page would cost a fault per
  // 4 KB, which dominates copying on virtual machines).
  struct Bytes;

  // Where a matched block's bytes are: in memory, or in a file (read by restore).
  struct Source;

  // The longest cached prefix of `tokens`, at most max_tokens long. The match keeps its
  // in-memory blocks alive until it is destroyed, whatever the cache evicts meanwhile.
  class Match {
   public:
    int32_t tokens() const { return tokens_; }

   private:
    friend class PrefixCache;
    // The matched blocks in order: block i holds positions from i * block_tokens; the
    // last one may be used only in part.
    std::vector<std::shared_ptr<const Source>> blocks_;
    int32_t tokens_ = 0;
  };
  Match find(std::string_view partition, std::span<const TokenId> tokens, int32_t max_tokens);

  // Appends the matched positions [from, match.tokens()) to `session`, whose first
  // `from` positions must hold the same tokens (session.n_past() == from). Returns the
  // position reached: match.tokens(), or less when a block's file turned out damaged or
  // missing (it is then ignored with a warning, deleted, and the rest not restored).
  // Throws kInvalidArgument when from is out of range or the session's KV layout differs.
  int32_t restore(const Match& match, int32_t from, Session& session);

  // Stores the KV state `session` holds for tokens[0 .. tokens.size()) (the session's
  // first tokens.size() positions), block by block; blocks already cached are only
  // marked as used. Then evicts down to the memory budget.
  void store(std::string_view partition, std::span<const TokenId> tokens, const Session& session);

  // Waits until every block stored so far is on disk (or failed to be written).
  void flush();

  PrefixCacheStats stats() const;
  const PrefixCacheOptions& options() const;
  // The folder holding this model's files ("" without a disk cache).
  const std::string& model_folder() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace koto
