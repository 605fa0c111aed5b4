// Child processes, temporary directories and deadline waits for tests.
//
// Waiting on a condition with a deadline (wait_until, ChildProcess::wait_for_line,
// ChildProcess::wait_exit) is the only way tests wait: no bare sleeps to synchronise.
// Unless noted, a class instance is used from one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace balancer::test {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// Now + `timeout`.
inline Deadline deadline_in(std::chrono::milliseconds timeout) {
  return Clock::now() + timeout;
}

// Polls `condition` every `poll` until it returns true (→ true) or `timeout` passes
// (→ false; the condition is checked one last time at the deadline).
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds(10));

// A fresh directory (mkdtemp under $TMPDIR, else /tmp), removed recursively on
// destruction unless the environment has BALANCER_KEEP_TEMP=1. Throws
// std::runtime_error when the directory cannot be created.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "balancer-test");
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name; does not create anything.
  std::string file(std::string_view name) const;

 private:
  void remove();
  std::string path_;
};

// Where the child's stderr goes.
enum class StderrMode {
  capture,       // to a file (ChildOptions::stderr_path, or a private temp dir); see stderr_text()
  pass_through,  // inherited from the test process
};

struct ChildOptions {
  std::vector<std::string> argv;  // argv[0] is the program: a path, or a name looked up in PATH
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) ours
  std::string working_dir;                               // empty: inherit
  StderrMode stderr_mode = StderrMode::capture;
  std::string stderr_path;  // capture only; empty: a file in a temp dir owned by the child
  int max_open_files = 0;   // > 0: the child's RLIMIT_NOFILE (soft and hard), set before exec
};

// A child process with stdout read through a pipe by a background thread (so a chatty
// child never blocks on a full pipe) and stderr captured to a file or passed through.
// The child gets SIGKILL if the test process dies (PR_SET_PDEATHSIG). The destructor
// SIGKILLs and reaps a child that is still running. Not movable: hold it in a
// std::optional or std::unique_ptr. PR_SET_PDEATHSIG follows the thread that called
// start(), so start children from a thread that outlives them (the test's own thread).
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts the child. False with `error` set (exec failure included) on failure.
  // May be called once per instance.
  bool start(const ChildOptions& options, std::string* error = nullptr);

  // Convenience: start({argv, env, working_dir}) with stderr captured.
  bool start(std::vector<std::string> argv,
             std::vector<std::pair<std::string, std::string>> env = {},
             std::string working_dir = {}, std::string* error = nullptr);

  pid_t pid() const { return pid_; }
  bool running();  // reaps the child if it has exited

  // Next unread stdout line (without '\n') for which `predicate` is true, consuming it
  // and every unread line before it; nullopt at the deadline or when stdout closed
  // before such a line.
  std::optional<std::string> wait_for_line(const std::function<bool(std::string_view)>& predicate,
                                           Deadline deadline);

  // Waits for the {"event":"listening",...,"port":N} line that our servers and
  // test_origin print once bound (extra keys allowed, any order). Returns the port,
  // or -1 at the deadline / when the child exits first.
  // With `tls_port`, also stores the line's "tls_port" there (0 without a TLS listener).
  int wait_for_listening_port(Deadline deadline, int* tls_port = nullptr);

  // Every stdout line received so far, read or not.
  std::vector<std::string> stdout_lines() const;
  // Contents of the captured stderr file ("" when passed through or unreadable).
  std::string stderr_text() const;
  const std::string& stderr_path() const { return stderr_path_; }

  void terminate();  // SIGTERM; no-op when not running
  void kill();       // SIGKILL; no-op when not running

  // Waits for the child to exit; returns its exit code, or 128 + signal number when a
  // signal ended it; nullopt at the deadline or when never started.
  std::optional<int> wait_exit(Deadline deadline);

 private:
  void reader_loop(int fd);
  bool reap(bool block);
  void stop_reader();

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::optional<TempDir> stderr_dir_;
  std::string stderr_path_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;  // guarded by mutex_
  size_t next_line_ = 0;            // guarded by mutex_; first unread line
  bool stdout_closed_ = false;      // guarded by mutex_
  int stop_fd_ = -1;                // eventfd that wakes the reader thread to stop
  std::thread reader_;
};

// Parses `{"event":"listening",...,"port":N,...}`; nullopt for any other line.
std::optional<int> parse_listening_port(std::string_view line, std::string_view key = "port");

// The figure of the `name` line ("VmRSS", "RssAnon": kB) of /proc/<pid>/status; -1 when
// the line or the process is not there.
int64_t proc_status_kib(pid_t pid, const std::string& name);

// Ticks (1/100 s) of CPU `pid` has used, user + system; -1 when unreadable.
int64_t cpu_ticks(pid_t pid);

// Path of one of our binaries in the build tree: <build>/src/<dir>/<name>,
// <build>/tests/support/<name>, <build>/tests/<dir>/<name> or <build>/<name>, where
// <build> is BALANCER_BINARY_DIR. "" when none exists. The servers (balancer,
// cache_node) come from BALANCER_SERVERS_DIR's tree instead when that is set: the
// sanitizer passes run these clients against instrumented servers.
std::string binary_path(std::string_view name);

// The sanitizer the servers under test were built with: "address", "thread" or ""
// (this build's own, or BALANCER_SERVERS_SANITIZER beside BALANCER_SERVERS_DIR).
// RSS and latency bounds mean nothing under one; counts and limits still hold.
std::string servers_sanitizer();

// Root of the build tree (BALANCER_BINARY_DIR compiled in).
std::string binary_dir();

// Event loops the servers under test run with: BALANCER_TEST_THREADS (ctest
// registers every integration test once with 1 and once with 2), default 1.
int test_threads();
// A count a test takes from the environment variable `name` (a scale asked for by hand), or
// `fallback` when it is unset or not within 1..`most`.
int env_count(const char* name, int fallback, int most);
// {"--set", "threads=<test_threads()>"}, for a server's command line.
std::vector<std::string> threads_args();

}  // namespace balancer::test
