#include "support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#ifndef BALANCER_BINARY_DIR
#error "BALANCER_BINARY_DIR must be defined by the build"
#endif

extern char** environ;

namespace balancer::test {
namespace {

// Closes a file descriptor on scope exit unless released.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

// Resolves a program name through PATH the way execvp would; "" when not found.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path_env = std::getenv("PATH");
  const std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

bool is_executable_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return i;
}

// Position just after `"key"` followed by optional spaces and ':'; npos when absent.
size_t find_value(std::string_view line, std::string_view key) {
  const std::string quoted = "\"" + std::string(key) + "\"";
  size_t pos = 0;
  while ((pos = line.find(quoted, pos)) != std::string_view::npos) {
    size_t i = skip_space(line, pos + quoted.size());
    if (i < line.size() && line[i] == ':') return skip_space(line, i + 1);
    pos += quoted.size();
  }
  return std::string_view::npos;
}

}  // namespace

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
  const Deadline deadline = Clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(poll, deadline - now));
  }
}

TempDir::TempDir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = (tmp != nullptr && tmp[0] != '\0') ? tmp : "/tmp";
  templ += "/";
  templ += prefix;
  templ += "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error(errno_text(("mkdtemp " + templ).c_str(), errno));
  }
  path_ = std::move(templ);
}

TempDir::~TempDir() {
  remove();
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

std::string TempDir::file(std::string_view name) const {
  return path_ + "/" + std::string(name);
}

void TempDir::remove() {
  if (path_.empty()) return;
  const char* keep = std::getenv("BALANCER_KEEP_TEMP");
  if (keep != nullptr && std::string_view(keep) == "1") {
    std::fprintf(stderr, "keeping temp dir %s\n", path_.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  path_.clear();
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  stop_reader();
}

bool ChildProcess::start(std::vector<std::string> argv,
                         std::vector<std::pair<std::string, std::string>> env,
                         std::string working_dir, std::string* error) {
  ChildOptions options;
  options.argv = std::move(argv);
  options.env = std::move(env);
  options.working_dir = std::move(working_dir);
  return start(options, error);
}

bool ChildProcess::start(const ChildOptions& options, std::string* error) {
  auto fail = [&](std::string message) {
    if (error != nullptr) *error = std::move(message);
    return false;
  };
  if (pid_ > 0) return fail("ChildProcess::start called twice");
  if (options.argv.empty()) return fail("empty argv");
  const std::string program = find_program(options.argv[0]);
  if (program.empty()) return fail(options.argv[0] + ": not found in PATH");

  // Everything the child needs is prepared before fork: after fork in a threaded
  // process only async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : options.env) replaced = replaced || k == key;
    if (!replaced) env_strings.emplace_back(entry);
  }
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  Fd stderr_fd;
  if (options.stderr_mode == StderrMode::capture) {
    if (options.stderr_path.empty()) {
      try {
        stderr_dir_.emplace("child-stderr");
      } catch (const std::exception& e) {
        return fail(e.what());
      }
      stderr_path_ = stderr_dir_->file("stderr.log");
    } else {
      stderr_path_ = options.stderr_path;
    }
    stderr_fd = Fd(::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (stderr_fd.get() < 0) return fail(errno_text(("open " + stderr_path_).c_str(), errno));
  }
  Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) return fail(errno_text("open /dev/null", errno));

  std::array<int, 2> out{-1, -1};
  if (::pipe2(out.data(), O_CLOEXEC) != 0) return fail(errno_text("pipe2", errno));
  Fd out_r(out[0]), out_w(out[1]);
  std::array<int, 2> status_pipe{-1, -1};  // exec failure reports errno here
  if (::pipe2(status_pipe.data(), O_CLOEXEC) != 0) return fail(errno_text("pipe2", errno));
  Fd status_r(status_pipe[0]), status_w(status_pipe[1]);
  Fd stop(::eventfd(0, EFD_CLOEXEC));
  if (stop.get() < 0) return fail(errno_text("eventfd", errno));

  const pid_t parent = ::getpid();
  const char* workdir = options.working_dir.empty() ? nullptr : options.working_dir.c_str();
  const rlimit files{static_cast<rlim_t>(options.max_open_files),
                     static_cast<rlim_t>(options.max_open_files)};
  const pid_t pid = ::fork();
  if (pid < 0) return fail(errno_text("fork", errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    int err = 0;
    if (::dup2(null_fd.get(), STDIN_FILENO) < 0 || ::dup2(out_w.get(), STDOUT_FILENO) < 0 ||
        (stderr_fd.get() >= 0 && ::dup2(stderr_fd.get(), STDERR_FILENO) < 0) ||
        (workdir != nullptr && ::chdir(workdir) != 0) ||
        (options.max_open_files > 0 && ::setrlimit(RLIMIT_NOFILE, &files) != 0)) {
      err = errno;
    } else {
      ::execve(program.c_str(), argv.data(), envp.data());
      err = errno;
    }
    [[maybe_unused]] const ssize_t n = ::write(status_w.get(), &err, sizeof err);
    ::_exit(127);
  }

  pid_ = pid;
  out_w.reset();
  status_w.reset();
  int child_errno = 0;
  ssize_t n = 0;
  do {
    n = ::read(status_r.get(), &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    reap(true);
    pid_ = -1;
    return fail(errno_text(("cannot start " + program).c_str(), child_errno));
  }

  stop_fd_ = stop.release();
  reader_ = std::thread([this, fd = out_r.release()] { reader_loop(fd); });
  return true;
}

void ChildProcess::reader_loop(int fd) {
  Fd owned(fd);
  std::string partial;
  std::array<char, 16384> buf{};
  std::array<pollfd, 2> fds{pollfd{fd, POLLIN, 0}, pollfd{stop_fd_, POLLIN, 0}};
  while (true) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    partial.append(buf.data(), static_cast<size_t>(n));
    std::vector<std::string> complete;
    size_t start = 0;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = partial.substr(start, nl - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      complete.push_back(std::move(line));
    }
    partial.erase(0, start);
    if (!complete.empty()) {
      std::lock_guard lock(mutex_);
      for (auto& line : complete) lines_.push_back(std::move(line));
      cv_.notify_all();
    }
  }
  std::lock_guard lock(mutex_);
  if (!partial.empty()) lines_.push_back(std::move(partial));
  stdout_closed_ = true;
  cv_.notify_all();
}

void ChildProcess::stop_reader() {
  if (!reader_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(stop_fd_, &one, sizeof one);
  reader_.join();
  ::close(stop_fd_);
  stop_fd_ = -1;
}

bool ChildProcess::reap(bool block) {
  if (pid_ <= 0 || exit_code_) return exit_code_.has_value();
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  if (r < 0) {
    exit_code_ = 255;  // not our child any more (reaped elsewhere)
  } else if (WIFEXITED(status)) {
    exit_code_ = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit_code_ = 128 + WTERMSIG(status);
  } else {
    return false;
  }
  return true;
}

bool ChildProcess::running() {
  return pid_ > 0 && !reap(false);
}

std::optional<std::string> ChildProcess::wait_for_line(
    const std::function<bool(std::string_view)>& predicate, Deadline deadline) {
  std::unique_lock lock(mutex_);
  while (true) {
    for (; next_line_ < lines_.size(); ++next_line_) {
      if (predicate(lines_[next_line_])) return lines_[next_line_++];
    }
    if (stdout_closed_) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next_line_ == lines_.size()) {
      return std::nullopt;
    }
  }
}

int ChildProcess::wait_for_listening_port(Deadline deadline, int* tls_port) {
  const auto line = wait_for_line(
      [](std::string_view l) { return parse_listening_port(l).has_value(); }, deadline);
  if (tls_port != nullptr)
    *tls_port = line ? parse_listening_port(*line, "tls_port").value_or(0) : 0;
  return line ? *parse_listening_port(*line) : -1;
}

std::vector<std::string> ChildProcess::stdout_lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::string ChildProcess::stderr_text() const {
  if (stderr_path_.empty()) return {};
  std::ifstream in(stderr_path_, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void ChildProcess::terminate() {
  if (running()) ::kill(pid_, SIGTERM);
}

void ChildProcess::kill() {
  if (running()) ::kill(pid_, SIGKILL);
}

std::optional<int> ChildProcess::wait_exit(Deadline deadline) {
  if (pid_ <= 0) return std::nullopt;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (wait_until([this] { return reap(false); }, std::max(left, std::chrono::milliseconds(0)),
                 std::chrono::milliseconds(2))) {
    return exit_code_;
  }
  return std::nullopt;
}

std::optional<int> parse_listening_port(std::string_view line, std::string_view key) {
  const size_t first = skip_space(line, 0);
  if (first >= line.size() || line[first] != '{') return std::nullopt;
  const size_t ev = find_value(line, "event");
  if (ev == std::string_view::npos || line.substr(ev, 11) != "\"listening\"") return std::nullopt;
  const size_t p = find_value(line, key);
  if (p == std::string_view::npos) return std::nullopt;
  int port = 0;
  size_t i = p;
  for (; i < line.size() && line[i] >= '0' && line[i] <= '9' && port <= 65535; ++i) {
    port = port * 10 + (line[i] - '0');
  }
  if (i == p || port <= 0 || port > 65535) return std::nullopt;
  return port;
}

std::string binary_dir() {
  return BALANCER_BINARY_DIR;
}

int64_t proc_status_kib(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + ":", 0) == 0)
      return std::strtoll(line.c_str() + name.size() + 1, nullptr, 10);
  }
  return -1;
}

// Ticks (1/100 s) of CPU `pid` has used, user + system; -1 when unreadable.
int64_t cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t end_of_name = text.rfind(')');
  if (end_of_name == std::string::npos) return -1;
  std::istringstream fields(text.substr(end_of_name + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  // Fields after the name start at 3 (state); utime and stime are 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return utime + stime;
}

std::string binary_path(std::string_view name) {
  namespace fs = std::filesystem;
  const std::string n(name);
  const char* servers_dir = getenv("BALANCER_SERVERS_DIR");
  if (servers_dir != nullptr && *servers_dir != '\0' && (n == "balancer" || n == "cache_node")) {
    const fs::path server = fs::path(servers_dir) / "src" / n / n;
    return is_executable_file(server) ? server.string() : std::string();
  }
  const fs::path build(BALANCER_BINARY_DIR);
  std::vector<fs::path> candidates{build / "src" / n / n, build / "tests" / "support" / n};
  std::error_code ec;
  for (const char* sub : {"src", "tests"}) {
    for (fs::directory_iterator it(build / sub, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec)) candidates.push_back(it->path() / n);
    }
  }
  candidates.push_back(build / n);
  for (const auto& c : candidates) {
    if (is_executable_file(c)) return c.string();
  }
  return {};
}

std::string servers_sanitizer() {
#if defined(__SANITIZE_ADDRESS__)
  return "address";
#elif defined(__SANITIZE_THREAD__)
  return "thread";
#else
  const char* env = getenv("BALANCER_SERVERS_SANITIZER");
  return env != nullptr ? env : "";
#endif
}

int test_threads() {
  const char* env = getenv("BALANCER_TEST_THREADS");
  int n = env != nullptr ? atoi(env) : 1;
  return n > 0 ? n : 1;
}

int env_count(const char* name, int fallback, int most) {
  const char* text = getenv(name);
  const int value = text != nullptr ? atoi(text) : 0;
  return value >= 1 && value <= most ? value : fallback;
}

std::vector<std::string> threads_args() {
  return {"--set", "threads=" + std::to_string(test_threads())};
}

}  // namespace balancer::test
