// Runs the built `koto` executable (KOTO_CLI_PATH, set by src/cli/CMakeLists.txt) for
// end-to-end tests of the command line: exit code and what it printed.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace koto::testing {

struct CliResult {
  int exit_code = -1;      // -1 when the process did not exit normally (a signal)
  int signal = 0;          // the signal that ended it, else 0
  std::string output;      // stdout and stderr together
};

inline CliResult cli_result_of(int status) {
  CliResult result;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

// `koto ARGUMENTS` through the shell (quote paths yourself; redirections such as
// "< /dev/null" work) with KOTO_LANG=language and the assignments in `environment`
// ("NAME=value ...", quoted for the shell).
inline CliResult run_koto(const std::string& language, const std::string& arguments,
                          const std::string& environment = "") {
  const std::string command =
      "env KOTO_LANG=" + language + " " + environment + " '" KOTO_CLI_PATH "' " + arguments + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  CliResult result = cli_result_of(::pclose(pipe));
  result.output = std::move(output);
  return result;
}

// `koto ARGUMENTS` with stdout a pipe whose reading end is already closed, as after
// `koto ... | head` once head has exited; stderr is captured. Deterministic: every
// write to stdout fails with EPIPE (or raises SIGPIPE where it is not ignored).
inline CliResult run_koto_with_closed_stdout(const std::string& language, const std::string& arguments) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe(out_pipe) != 0) return {};
  if (::pipe(err_pipe) != 0) return {};
  ::close(out_pipe[0]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::close(out_pipe[1]);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    const std::string command = "exec env KOTO_LANG=" + language + " '" KOTO_CLI_PATH "' " + arguments;
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  std::string output;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(err_pipe[0], buffer, sizeof(buffer))) > 0) output.append(buffer, static_cast<size_t>(n));
  ::close(err_pipe[0]);
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return {};
  CliResult result = cli_result_of(status);
  result.output = std::move(output);
  return result;
}

}  // namespace koto::testing
