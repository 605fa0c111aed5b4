// A check whose failure ends the process (an assert, a lock-order or thread-rule check), run in a
// forked child so the test can see it: how the child ended. Standard library and POSIX only.
#pragma once

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <functional>

namespace balancer::test {

enum class ChildEnd { ran_through, aborted, other };

// Runs `body` in a child process (only the calling thread lives on there) and says how the child
// ended: it ran through, or SIGABRT ended it (not the test runner's crash report: the parent
// judges), or anything else.
inline ChildEnd run_in_child(const std::function<void()>& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);
    body();
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) return ChildEnd::aborted;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ChildEnd::ran_through;
  return ChildEnd::other;
}

}  // namespace balancer::test
