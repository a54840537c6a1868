// Helpers shared by the tokenizer tests: the reference cases (JSON lines of
// {"text": ..., "ids": [...]}, produced by the reference tokenizer) and the fixture
// tokenizers, loaded once per test binary.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "koto/gguf.h"
#include "koto/tokenizer.h"
#include "test_support.h"

namespace koto::testing {

struct TokenizerCase {
  std::string text;
  std::vector<TokenId> ids;
};

// The cases of a .jsonl fixture (relative to the fixtures folder). A missing or empty
// file fails the calling test.
inline std::vector<TokenizerCase> read_tokenizer_cases(const std::string& relative) {
  std::vector<TokenizerCase> cases;
  std::ifstream in(fixture_path(relative));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    cases.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<TokenId>>()});
  }
  EXPECT_FALSE(cases.empty()) << relative << ": no cases";
  return cases;
}

// The tokenizer of a fixture GGUF file, built on first use and kept (tokenizers are
// immutable and thread-safe, and copy what they need from the file).
inline const Tokenizer& fixture_tokenizer(const std::string& relative) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  std::unique_ptr<Tokenizer>& tokenizer = loaded[relative];
  if (!tokenizer) tokenizer = Tokenizer::from_gguf(GgufFile::open(fixture_path(relative)));
  return *tokenizer;
}

}  // namespace koto::testing
