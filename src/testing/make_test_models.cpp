// koto_test_models OUT_DIR: writes the chain models (chain_model.h) that the end-to-end
// tests of `koto serve` run on: chain.gguf (repeats 「の大日生語長」), chain-once.gguf
// (says it once, then </s>) and slow-chain.gguf (a few ms per token, 4096 positions).
#include <filesystem>
#include <iostream>

#include "chain_model.h"
#include "koto/error.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: koto_test_models OUT_DIR\n";
    return 2;
  }
  try {
    const std::filesystem::path out = argv[1];
    std::filesystem::create_directories(out);
    koto::testing::write_chain_model((out / "chain.gguf").string(), {.name = "chain"});
    koto::testing::write_chain_model((out / "chain-once.gguf").string(), {.end_after_one_cycle = true, .name = "chain-once"});
    koto::testing::write_slow_chain_model((out / "slow-chain.gguf").string());
  } catch (const koto::Error& e) {
    std::cerr << "koto_test_models: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
