#include "support/fault_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unordered_set>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/herd.h"
#include "support/origin_fixture.h"

namespace balancer::test {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  closedir(d);
  return out;
}

}  // namespace

double seconds_since(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

int64_t rss_kib(pid_t pid) {
  return proc_status_kib(pid, "VmRSS");
}
int64_t rss_file_kib(pid_t pid) {
  return proc_status_kib(pid, "RssFile");
}

int64_t open_fd_count(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (access(dir.c_str(), R_OK) != 0) return -1;
  return static_cast<int64_t>(list_dir(dir).size());
}

// Targets of the entries of /proc/<pid>/fd; nullopt when unreadable.
std::optional<std::vector<std::string>> fd_targets(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (access(dir.c_str(), R_OK) != 0) return std::nullopt;
  std::vector<std::string> out;
  char target[4096];
  for (const auto& name : list_dir(dir)) {
    const ssize_t n = readlink((dir + "/" + name).c_str(), target, sizeof target);
    if (n > 0) out.emplace_back(target, static_cast<size_t>(n));
  }
  return out;
}

int64_t open_fd_count(pid_t pid, std::string_view prefix) {
  const auto targets = fd_targets(pid);
  if (!targets) return -1;
  int64_t n = 0;
  for (const auto& t : *targets) n += t.rfind(prefix, 0) == 0 ? 1 : 0;
  return n;
}

namespace {
// The machine's IPv4 TCP sockets from /proc/net/tcp: local port, remote port, inode.
struct TcpEntry {
  unsigned local_port = 0;
  unsigned remote_port = 0;
  uint64_t inode = 0;
};
std::vector<TcpEntry> tcp_entries() {
  std::vector<TcpEntry> out;
  std::istringstream in(read_text("/proc/net/tcp"));
  std::string line;
  std::getline(in, line);  // header
  const auto port_of = [](const std::string& address) {
    const size_t colon = address.find(':');
    if (colon == std::string::npos) return 0u;
    return static_cast<unsigned>(std::strtoul(address.c_str() + colon + 1, nullptr, 16));
  };
  while (std::getline(in, line)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    std::istringstream fields(line);
    std::string sl, local, remote, st, queues, timer, retransmits, uid, timeout;
    uint64_t inode = 0;
    if (!(fields >> sl >> local >> remote >> st >> queues >> timer >> retransmits >> uid >>
          timeout >> inode) ||
        inode == 0) {
      continue;
    }
    out.push_back({port_of(local), port_of(remote), inode});
  }
  return out;
}
}  // namespace

std::vector<uint64_t> server_socket_inodes(int server_port, const std::vector<int>& client_fds) {
  std::unordered_set<unsigned> client_ports;
  for (int fd : client_fds) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      client_ports.insert(ntohs(addr.sin_port));
  }
  std::vector<uint64_t> inodes;
  for (const TcpEntry& e : tcp_entries()) {
    if (e.local_port == static_cast<unsigned>(server_port) && client_ports.count(e.remote_port))
      inodes.push_back(e.inode);
  }
  return inodes;
}

std::vector<uint64_t> socket_inodes_to(int remote_port) {
  std::vector<uint64_t> inodes;
  for (const TcpEntry& e : tcp_entries()) {
    if (e.remote_port == static_cast<unsigned>(remote_port)) inodes.push_back(e.inode);
  }
  return inodes;
}

size_t open_socket_inodes(pid_t pid, const std::vector<uint64_t>& inodes) {
  const std::unordered_set<uint64_t> wanted(inodes.begin(), inodes.end());
  size_t n = 0;
  for (const auto& t : fd_targets(pid).value_or(std::vector<std::string>{})) {
    if (t.rfind("socket:[", 0) == 0 && wanted.count(std::strtoull(t.c_str() + 8, nullptr, 10))) ++n;
  }
  return n;
}

int64_t max_open_files(pid_t pid) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/limits"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(14));
    std::string soft;
    fields >> soft;
    return soft == "unlimited" ? 0 : std::strtoll(soft.c_str(), nullptr, 10);
  }
  return -1;
}

std::optional<double> series_value(const std::string& metrics, const std::string& series) {
  return metric_value(metrics, series);
}

// ---- the cache node's index ----

std::string ChunkIndexCheck::summary() const {
  std::ostringstream out;
  if (!error.empty()) return "index unreadable: " + error;
  out << entries << " entries (" << checked_bytes << " compared with origin's bytes), "
      << bad_records << " undecodable, " << missing_files << " missing files, " << wrong_size
      << " wrong sizes, " << wrong_bytes << " wrong bytes, " << orphan_files << " orphan files, "
      << tmp_files << " tmp files";
  return out.str();
}

ChunkIndexCheck check_chunk_index(const std::string& data_dir) {
  ChunkIndexCheck check;
  const std::string chunks = data_dir + "/chunks/";
  check.tmp_files = list_dir(data_dir + "/tmp").size();
  MDB_env* env = nullptr;
  if (mdb_env_create(&env) != 0) {
    check.error = "mdb_env_create";
    return check;
  }
  mdb_env_set_maxdbs(env, 4);
  mdb_env_set_mapsize(env, size_t{1} << 30);
  int rc = mdb_env_open(env, (data_dir + "/index").c_str(), MDB_RDONLY | MDB_NOTLS, 0640);
  MDB_txn* txn = nullptr;
  if (rc == 0) rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  MDB_dbi dbi = 0;
  if (rc == 0) rc = mdb_dbi_open(txn, "chunks", 0, &dbi);
  std::unordered_set<std::string> referenced;
  if (rc == MDB_NOTFOUND) {
    rc = 0;  // no chunk was ever committed
  } else if (rc == 0) {
    MDB_cursor* cursor = nullptr;
    rc = mdb_cursor_open(txn, dbi, &cursor);
    MDB_val k, v;
    while (rc == 0 && mdb_cursor_get(cursor, &k, &v, MDB_NEXT) == 0) {
      ++check.entries;
      const std::string key(static_cast<const char*>(k.mv_data), k.mv_size);
      check.keys.push_back(key);
      const auto fields =
          split_fields(std::string_view(static_cast<const char*>(v.mv_data), v.mv_size), '\n');
      const bool v1 = fields.size() == 8 && fields[0] == "v1";
      const bool v2 = fields.size() == 13 && fields[0] == "v2";
      const bool v3 = fields.size() >= 15 && fields[0] == "v3";  // v2 + grace + Date + kept headers
      if ((!v1 && !v2 && !v3) || fields[7].empty() || fields[7].find('/') != std::string::npos) {
        ++check.bad_records;
        continue;
      }
      const uint64_t size = std::strtoull(fields[1].c_str(), nullptr, 10);
      referenced.insert(fields[7]);
      struct stat st {};
      if (stat((chunks + fields[7]).c_str(), &st) != 0) {
        ++check.missing_files;
        continue;
      }
      if (static_cast<uint64_t>(st.st_size) != size) {
        ++check.wrong_size;
        continue;
      }
      if (auto gen = generated_target(key)) {
        ++check.checked_bytes;
        if (gen->first != size ||
            read_text(chunks + fields[7]) != generated_body(gen->second, gen->first)) {
          ++check.wrong_bytes;
        }
      }
    }
    if (cursor != nullptr) mdb_cursor_close(cursor);
  }
  if (rc != 0) check.error = mdb_strerror(rc);
  if (txn != nullptr) mdb_txn_abort(txn);
  mdb_env_close(env);
  for (const auto& name : list_dir(data_dir + "/chunks")) {
    if (!referenced.count(name)) ++check.orphan_files;
  }
  return check;
}

// ---- TmpfsMount ----

TmpfsMount::TmpfsMount(std::string path, const std::string& size) : path_(std::move(path)) {
  std::error_code ec;
  std::filesystem::create_directories(path_, ec);
  if (ec) {
    why_ = "cannot create " + path_ + ": " + ec.message();
    return;
  }
  const std::string options = "size=" + size + ",mode=0750";
  if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
    why_ = std::string("mount -t tmpfs: ") + std::strerror(errno);
    return;
  }
  mounted_ = true;
}

TmpfsMount::~TmpfsMount() {
  if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
}

int64_t TmpfsMount::used_bytes() const {
  struct statvfs st {};
  if (::statvfs(path_.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>((st.f_blocks - st.f_bfree) * st.f_frsize);
}

// ---- sockets ----

int connect_local(int port, int rcvbuf, const char* source) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (source != nullptr) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    if (inet_pton(AF_INET, source, &from.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool raise_descriptor_limit(size_t needed) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur < needed && limit.rlim_max >= needed) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, needed * 2);
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur >= needed;
}

size_t count_closed_by_peer(const std::vector<int>& fds) {
  std::vector<pollfd> polls;
  polls.reserve(fds.size());
  for (int fd : fds) polls.push_back(pollfd{fd, POLLIN | POLLRDHUP, 0});
  if (::poll(polls.data(), polls.size(), 0) < 0) return 0;
  size_t closed = 0;
  char buf[4096];
  for (const auto& p : polls) {
    if (p.revents == 0) continue;
    if (p.revents & (POLLERR | POLLHUP | POLLRDHUP)) {
      ++closed;
      continue;
    }
    // Readable: drain what the server sent (an error reply) and look for EOF.
    ssize_t n = 0;
    for (int i = 0; i < 64 && (n = ::recv(p.fd, buf, sizeof buf, MSG_DONTWAIT)) > 0; ++i) {
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) ++closed;
  }
  return closed;
}

std::string peek_status_line(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  constexpr std::string_view kPrefix = "HTTP/1.1 ";
  char buf[16];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) < 0) return "";
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return "";
    if (n >= static_cast<ssize_t>(kPrefix.size() + 3))
      return std::string_view(buf, static_cast<size_t>(n)).starts_with(kPrefix)
                 ? std::string(buf + kPrefix.size(), 3)
                 : "";
  }
  return "";
}

// ---- playlists ----

std::string MediaPlaylist::last_host() const {
  if (uris.empty() || uris.back().rfind("http://", 0) != 0) return "";
  return uris.back().substr(0, uris.back().find('/', 7));
}

MediaPlaylist fetch_media_playlist(const std::string& url, std::chrono::milliseconds timeout) {
  MediaPlaylist p;
  const HttpResponse r = http_get(url, {}, timeout);
  p.status = r.status;
  if (r.status != 200) return p;
  std::istringstream lines(r.body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("#EXT-X-MEDIA-SEQUENCE:", 0) == 0)
      p.media_sequence = std::strtoll(line.c_str() + 22, nullptr, 10);
    if (!line.empty() && line[0] != '#') p.uris.push_back(line);
  }
  return p;
}

// ---- ffmpeg ----

std::vector<std::string> ffmpeg_live_source_args(const std::string& dir) {
  return ffmpeg_args(
      {ffmpeg_test_input({}),
       {"-map", "0:v", "-map", "1:a"},
       x264_args("ultrafast"),
       {"-b:v", "300k"},
       aac_args(),
       live_hls_args(),
       {"-hls_segment_filename", dir + "/live/seg_%05d.ts", dir + "/live/index.m3u8"}});
}

LivePlaybackStack::LivePlaybackStack(const std::string& channel) {
  std::filesystem::create_directories(root + "/live");
  start_source();
  origin = std::make_unique<TestOrigin>(serving_files(root));
  node =
      std::make_unique<CacheNodeProcess>(dir.file("cache"), origin->base_url(),
                                         std::vector<std::string>{"node_id=venue-a", "site=venue"});
  balancer = std::make_unique<BalancerProcess>(
      dir, origin->base_url(), channels_json({channel}),
      caches_json({cache_json("venue-a", "venue", node->port())}));
  node_host = "http://127.0.0.1:" + std::to_string(node->port());
  poll_url = playlist_url("poll");
  REQUIRE(wait_until([&] { return fetch_media_playlist(poll_url).uris.size() >= 3; },
                     std::chrono::seconds(30), std::chrono::milliseconds(100)));
  REQUIRE(balancer->wait_cache_usable("venue-a", true, std::chrono::seconds(10)));
}

std::string LivePlaybackStack::playlist_url(const std::string& viewer) const {
  return balancer->url("/hls/live/files/live/index.m3u8?cache=venue-a&viewer=" + viewer);
}

void LivePlaybackStack::start_source() {
  source = std::make_unique<ChildProcess>();
  REQUIRE(source->start(ffmpeg_live_source_args(root)));
}

TimedPlayer::TimedPlayer(const std::string& url, int seconds) {
  started_ = process_.start({"ffmpeg", "-hide_banner", "-loglevel", "warning", "-i", url, "-t",
                             std::to_string(seconds), "-f", "null", "-progress", "pipe:1",
                             "-nostats", "-"});
  if (started_) reader_ = std::thread([this] { pump(); });
}

TimedPlayer::~TimedPlayer() {
  kill();
  stop_ = true;
  if (reader_.joinable()) reader_.join();
}

void TimedPlayer::pump() {
  double last = -1;
  // Bounded by the player's life: its stdout closes when it exits (killed at the latest by
  // the destructor, which also sets stop_).
  while (!stop_) {
    const Deadline deadline = deadline_in(std::chrono::milliseconds(200));
    auto line = process_.wait_for_line(
        [](std::string_view l) { return l.rfind("out_time_us=", 0) == 0; }, deadline);
    if (!line) {
      // nullopt well before the deadline: stdout closed, the player has exited.
      if (deadline - Clock::now() > std::chrono::milliseconds(50)) break;
      continue;
    }
    if (line->find("N/A") != std::string::npos) continue;
    const double media = std::strtod(line->c_str() + 12, nullptr) / 1e6;
    if (media > last) {
      last = media;
      std::lock_guard lock(mutex_);
      advances_.push_back(Sample{Clock::now(), media});
    }
  }
}

double TimedPlayer::media_s() const {
  std::lock_guard lock(mutex_);
  return advances_.empty() ? 0 : advances_.back().media_s;
}

bool TimedPlayer::wait_media(double media, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return media_s() >= media; }, timeout, std::chrono::milliseconds(50));
}

Clock::time_point TimedPlayer::last_advance() const {
  std::lock_guard lock(mutex_);
  return advances_.empty() ? Clock::time_point{} : advances_.back().at;
}

std::optional<Clock::time_point> TimedPlayer::first_advance_after(Clock::time_point after) const {
  std::lock_guard lock(mutex_);
  for (const auto& s : advances_) {
    if (s.at >= after) return s.at;
  }
  return std::nullopt;
}

double TimedPlayer::longest_stall(Clock::time_point from, Clock::time_point to) const {
  std::lock_guard lock(mutex_);
  double longest = 0;
  std::optional<Clock::time_point> previous;
  for (const auto& s : advances_) {
    if (s.at > to) break;
    if (s.at >= from && previous)
      longest = std::max(longest, std::chrono::duration<double>(s.at - *previous).count());
    previous = s.at;
  }
  return longest;
}

std::optional<int> TimedPlayer::wait_exit(std::chrono::milliseconds timeout) {
  return process_.wait_exit(deadline_in(timeout));
}

bool TimedPlayer::running() {
  return process_.running();
}

void TimedPlayer::kill() {
  if (started_) {
    process_.kill();
    process_.wait_exit(deadline_in(std::chrono::seconds(5)));
  }
}

size_t TimedPlayer::stderr_count(std::string_view needle) const {
  const std::string text = process_.stderr_text();
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace balancer::test
