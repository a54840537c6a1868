#include <fmt/format.h>

#include "cli/commands.h"
#include "koto/gguf.h"
#include "koto/i18n.h"

namespace koto::cli {

CommandRunner define_info(CLI::App& command) {
  auto path = std::make_shared<std::string>();
  command.add_option("model", *path, std::string(pick("GGUF model file", "GGUF モデルファイル")))->required();
  return [path] {
    const GgufFile file = GgufFile::open(*path);
    fmt::print("{}: GGUF v{}, {} tensors, {} keys\n", file.path(), file.version(), file.tensors().size(),
               file.metadata().size());
    return kExitOk;
  };
}

}  // namespace koto::cli
