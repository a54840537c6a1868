// The factory: which Tokenizer a GGUF file asks for.
#include "koto/tokenizer.h"

#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/i18n.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"

namespace koto {

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  const GgufValue* model = file.find("tokenizer.ggml.model");
  if (model == nullptr) {
    throw Error(ErrorCode::kNotFound,
                tr("{0}: the file has no tokenizer (tokenizer.ggml.model is missing)",
                   "{0}: トークナイザーがありません (tokenizer.ggml.model がありません)", file.path()));
  }
  const std::string name = file.get_string("tokenizer.ggml.model");
  if (name == "llama") return std::make_unique<SpmTokenizer>(file);
  if (name == "gpt2") return std::make_unique<BpeTokenizer>(file);
  throw Error(ErrorCode::kUnsupported,
              tr("{0}: tokenizer \"{1}\" (tokenizer.ggml.model) is not supported; koto knows: llama (SentencePiece), "
                 "gpt2 (byte-level BPE)",
                 "{0}: トークナイザー「{1}」(tokenizer.ggml.model) には対応していません。対応しているもの: llama "
                 "(SentencePiece)、gpt2 (バイトレベル BPE)",
                 file.path(), name));
}

}  // namespace koto
