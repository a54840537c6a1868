// Where koto keeps its files (the model store, the document index, chat history):
// $KOTO_HOME, else $XDG_DATA_HOME/koto, else ~/.local/share/koto. Reads the
// environment on every call; thread-safe.
#pragma once

#include <filesystem>

namespace koto {

std::filesystem::path koto_data_dir();

}  // namespace koto
