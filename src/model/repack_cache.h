// The repacked-weights cache behind LoadOptions::repack (koto/model.h): Q5_0 matrices
// in the Q5_0R layout (tensor/repack.h), in a file built once per model and mapped
// like the model itself.
//
// The file, <cache_dir>/<gguf identity>.q5_0r: a header (a multiple of 4 KiB) naming
// the source (size and gguf_identity), every repacked tensor (its offset and size in
// the source, its offset here, 4 KiB aligned) and an XXH3 of 64 pages sampled over the
// repacked data; then the data. A file is used only when its header is exactly the one
// this source would get and the sampled pages hash the same, else it is rebuilt. It is
// written to a temporary name and renamed, so readers never see half a file, and two
// processes building at once each finish a whole one.
#pragma once

#include <memory>

#include "format/mapped_file.h"
#include "koto/model.h"
#include "model/weights.h"

namespace koto {
class GgufFile;
}

namespace koto::model {

// Points the Q5_0 matrices of `weights` (and token_embd when it is also the output) at
// their repacked copy, as options.repack decides, building the cache file if needed;
// returns its mapping (null when nothing was repacked) and fills `report`. A cache that
// cannot be written (no space, no permission) is not an error: the weights stay as
// they are and report.problem says why.
std::unique_ptr<MappedFile> repack_weights(const GgufFile& file, Weights& weights, const LoadOptions& options,
                                           RepackReport& report);

}  // namespace koto::model
