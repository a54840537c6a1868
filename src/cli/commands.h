// The koto command line: each subcommand is a row in kCommands (main.cpp). A command
// registers its options on its CLI11 subcommand and returns the function that runs it
// after parsing. Commands only parse input and format output; the work is in the
// engine library.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace koto::cli {

// Runs the command after its options were parsed; returns the process exit code.
using CommandRunner = std::function<int()>;
using CommandDefiner = CommandRunner (*)(CLI::App& command);

struct Command {
  const char* name;
  const char* help_en;
  const char* help_ja;
  CommandDefiner define;
};

// Exit codes shared by all commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // the work failed (bad file, unsupported model...)
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitInterrupted = 130;

CommandRunner define_info(CLI::App& command);
CommandRunner define_tokenize(CLI::App& command);
CommandRunner define_run(CLI::App& command);
CommandRunner define_logits(CLI::App& command);
CommandRunner define_synth(CLI::App& command);
CommandRunner define_quantize(CLI::App& command);
CommandRunner define_bench(CLI::App& command);
CommandRunner define_serve(CLI::App& command);
CommandRunner define_index(CLI::App& command);
CommandRunner define_search(CLI::App& command);
CommandRunner define_ask(CLI::App& command);
CommandRunner define_embed(CLI::App& command);
CommandRunner define_chat(CLI::App& command);
CommandRunner define_pull(CLI::App& command);
CommandRunner define_models(CLI::App& command);
CommandRunner define_rm(CLI::App& command);

}  // namespace koto::cli
