// Tokenizers read from a GGUF file's tokenizer.* keys:
//   - "llama": SentencePiece-style (score-driven merges, byte fallback, space prefix);
//   - "gpt2":  byte-level BPE with the pre-tokenizer named by tokenizer.ggml.pre
//              (qwen2, llama-bpe, default).
// A Tokenizer is immutable after construction and safe to use from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace koto {

class GgufFile;

using TokenId = int32_t;

class Tokenizer {
 public:
  // Builds the tokenizer the file describes. Throws koto::Error: kUnsupported for an
  // unknown tokenizer.ggml.model or pre-tokenizer (naming it and listing the supported
  // ones), kCorruptFile for inconsistent vocabulary data, kNotFound when the file has
  // no tokenizer.ggml.model. The result copies what it needs: `file` may be closed.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);

  virtual ~Tokenizer() = default;

  // Text to ids. With add_bos the BOS id is put first (callers normally pass
  // add_bos_by_default()). With parse_special, the text of control and user-defined
  // tokens ("<|im_start|>") becomes those tokens; otherwise it is ordinary text.
  // Throws kUnsupported only for text the vocabulary cannot express at all (no byte
  // token and no unknown token for it).
  virtual std::vector<TokenId> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;

  // The bytes one token contributes to output text: byte tokens give their raw byte,
  // SentencePiece's U+2581 becomes a space, control tokens give "" (or their text
  // with show_special). Bytes of one character may be spread over several tokens.
  virtual std::string token_bytes(TokenId id, bool show_special = false) const = 0;

  // Ids back to text, exactly inverting encode() for text it produced (SentencePiece's
  // dummy-prefix space is removed). Invalid UTF-8 in the result is kept as bytes.
  // token_bytes, decode and piece throw kInvalidArgument for an id outside
  // 0..vocab_size()-1; the other id queries answer false for it.
  virtual std::string decode(std::span<const TokenId> ids, bool show_special = false) const = 0;

  // True when decoding drops one leading space of the first piece (SentencePiece's
  // dummy prefix); streaming output must do the same.
  virtual bool strips_leading_space() const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual std::string_view piece(TokenId id) const = 0;  // the vocabulary string as stored
  virtual std::optional<TokenId> find_piece(std::string_view piece) const = 0;
  // The control or user-defined token whose text is exactly `text` (what parse_special
  // recognises); nullopt when there is none, even if an ordinary piece reads so.
  virtual std::optional<TokenId> find_special(std::string_view text) const = 0;
  virtual bool is_control(TokenId id) const = 0;
  // End of generation: EOS, EOT and similar (<|im_end|>, <|eot_id|>, <|endoftext|>).
  virtual bool is_end_of_generation(TokenId id) const = 0;

  virtual std::optional<TokenId> bos() const = 0;
  virtual std::optional<TokenId> eos() const = 0;
  virtual bool add_bos_by_default() const = 0;
  virtual std::string_view model_name() const = 0;  // "llama" or "gpt2"
  virtual std::string_view pre_tokenizer() const = 0;  // "" for llama
};

}  // namespace koto
