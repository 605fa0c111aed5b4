// Helpers shared by the fault suite (tests/faults/): /proc readings, the cache node's
// on-disk index as a test sees it, a balancer that restarts on its own port, a tmpfs
// mount, raw idle sockets, and ffmpeg as a live source and as a player whose progress
// is timed. For tests only; unless noted, one thread at a time.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/ffmpeg_args.h"
#include "support/http_client.h"
#include "support/origin_fixture.h"
#include "support/process.h"

namespace balancer::test {

// Seconds from `since` to now.
double seconds_since(Clock::time_point since);

// SHA-256 of `bytes`, lower-case hex.
std::string sha256_hex(std::string_view bytes);

// VmRSS of `pid` in KiB; -1 when unreadable.
int64_t rss_kib(pid_t pid);
// RssFile of `pid` in KiB (file pages mapped into it, part of VmRSS); -1 when unreadable.
int64_t rss_file_kib(pid_t pid);
// Open file descriptors of `pid` (entries of /proc/<pid>/fd); -1 when unreadable.
int64_t open_fd_count(pid_t pid);
// Of those, the ones whose target (socket:[N], a path) starts with `prefix`; -1 when
// unreadable.
int64_t open_fd_count(pid_t pid, std::string_view prefix);
// What each of `pid`'s descriptors refers to ("socket:[123]", a path); nullopt when unreadable.
std::optional<std::vector<std::string>> fd_targets(pid_t pid);
// The inodes of the server-side sockets of the TCP connections from `client_fds` to
// 127.0.0.1:`server_port` (from /proc/net/tcp; a connection the kernel has already torn
// down is absent).
std::vector<uint64_t> server_socket_inodes(int server_port, const std::vector<int>& client_fds);
// How many of `inodes` `pid` still holds open as sockets.
size_t open_socket_inodes(pid_t pid, const std::vector<uint64_t>& inodes);
// Inodes of the machine's TCP sockets connected to `remote_port` (a client's connections to
// a server on this machine, e.g. a node's kept-alive connections to its origin).
std::vector<uint64_t> socket_inodes_to(int remote_port);
// Soft "Max open files" of `pid` from /proc/<pid>/limits; -1 when unreadable, 0 = unlimited.
int64_t max_open_files(pid_t pid);

// Value of a Prometheus series (exact name + labels, e.g. `cache_disk_write_errors_total`)
// in `metrics`; nullopt when absent.
std::optional<double> series_value(const std::string& metrics, const std::string& series);

// What a stopped cache node left in its data directory, checked against the bytes the
// test origin serves for /gen/<size>/<name> keys.
struct ChunkIndexCheck {
  size_t entries = 0;        // index records
  size_t bad_records = 0;    // records that do not decode
  size_t missing_files = 0;  // records whose file is absent
  size_t wrong_size = 0;     // file size differs from the record
  size_t wrong_bytes = 0;    // /gen key whose file is not generated_body(name, size)
  size_t checked_bytes = 0;  // entries whose bytes were compared
  size_t orphan_files = 0;   // files in chunks/ no record names (deleted at the next start)
  size_t tmp_files = 0;      // files in tmp/ (deleted at the next start)
  std::string error;         // the index could not be read at all
  std::vector<std::string> keys;

  // Every record decodes and vouches for a whole, correct file.
  bool intact() const {
    return error.empty() && bad_records == 0 && missing_files == 0 && wrong_size == 0 &&
           wrong_bytes == 0;
  }
  std::string summary() const;
};
// Reads <data_dir>/index (LMDB) and <data_dir>/chunks. Call with the node stopped.
ChunkIndexCheck check_chunk_index(const std::string& data_dir);

// A tmpfs of `size` (e.g. "4m") mounted on `path` (created) for the object's lifetime.
// mounted() is false, with why(), when this process may not mount (not root, no
// CAP_SYS_ADMIN, no tmpfs). Unmounts (lazily) on destruction.
class TmpfsMount {
 public:
  TmpfsMount(std::string path, const std::string& size);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& path() const { return path_; }
  // Bytes used / total on the mount (statvfs); -1 on failure.
  int64_t used_bytes() const;

 private:
  std::string path_;
  bool mounted_ = false;
  std::string why_;
};

// A TCP connection to 127.0.0.1:`port` with a receive buffer of about `rcvbuf` bytes
// (0: the default), blocking connect, from `source` (another 127/8 address: another client) or
// 127.0.0.1; -1 on failure. The caller closes it.
int connect_local(int port, int rcvbuf = 0, const char* source = nullptr);
// Sends all of `bytes` on `fd`; false on error.
bool send_all(int fd, std::string_view bytes);
// Lets this process open `needed` descriptors: its soft open-file limit raised towards the hard
// one (its children inherit it); false when even the hard limit is below `needed`.
bool raise_descriptor_limit(size_t needed);
// How many of `fds` the peer has closed (readable with EOF or an error; pending data is
// drained and does not count). Does not block.
size_t count_closed_by_peer(const std::vector<int>& fds);
// The status code of the reply arriving on `fd` ("200"), read with MSG_PEEK so nothing is
// consumed; "" when no status line came within `timeout`.
std::string peek_status_line(int fd, std::chrono::milliseconds timeout);

// A media playlist as a player sees it.
struct MediaPlaylist {
  long status = 0;
  int64_t media_sequence = -1;
  std::vector<std::string> uris;
  // "http://127.0.0.1:<port>" of the last URI ("" when relative or none).
  std::string last_host() const;
};
MediaPlaylist fetch_media_playlist(const std::string& url,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(2));

// ffmpeg making a live HLS stream (test pattern + tone, one 320x180 variant, 2 s segments,
// a 10-segment window) into <dir>/live/index.m3u8 and <dir>/live/seg_NNNNN.ts.
std::vector<std::string> ffmpeg_live_source_args(const std::string& dir);

// A live stream played through one cache node ("venue-a", site "venue") and the balancer:
// ffmpeg (ffmpeg_live_source_args) writing <dir>/origin/live, test_origin serving it,
// `channel` (a channels.json entry) naming it. Construct it once have_ffmpeg() holds; it
// returns when the balancer's playlist lists three segments and the node is usable.
struct LivePlaybackStack {
  explicit LivePlaybackStack(const std::string& channel = channel_json("live",
                                                                       "/files/live/index.m3u8"));
  // The live playlist through the balancer for viewer `viewer`, on the node.
  std::string playlist_url(const std::string& viewer) const;
  // Starts ffmpeg (again) on the same folder.
  void start_source();

  TempDir dir;
  std::string root = dir.file("origin");
  std::unique_ptr<ChildProcess> source;
  std::unique_ptr<TestOrigin> origin;
  std::unique_ptr<CacheNodeProcess> node;
  std::unique_ptr<BalancerProcess> balancer;
  std::string node_host;  // "http://127.0.0.1:<node port>"
  std::string poll_url;   // playlist_url("poll")
};

// ffmpeg as a player of `url` for at most `seconds` of media, decoding to nowhere and
// printing -progress on stdout. A background thread stamps each progress line on arrival.
class TimedPlayer {
 public:
  struct Sample {
    Clock::time_point at;
    double media_s;  // out_time in seconds
  };
  TimedPlayer(const std::string& url, int seconds);
  ~TimedPlayer();
  TimedPlayer(const TimedPlayer&) = delete;
  TimedPlayer& operator=(const TimedPlayer&) = delete;

  bool started() const { return started_; }
  // Media seconds decoded so far.
  double media_s() const;
  // Waits until at least `media_s` seconds are decoded; false at the deadline or exit.
  bool wait_media(double media_s, std::chrono::milliseconds timeout) const;
  // True while the process has not exited (test thread only).
  bool running();
  // When the media time last advanced (steady clock); epoch when never.
  Clock::time_point last_advance() const;
  // First moment at or after `after` when the media time advanced; nullopt when none yet.
  std::optional<Clock::time_point> first_advance_after(Clock::time_point after) const;
  // Longest wall time between two advances of the media time among samples in
  // [from, to] (the interval from the last advance before `from` counts too), seconds.
  double longest_stall(Clock::time_point from, Clock::time_point to) const;
  // Waits for the process to exit; exit code (128 + signal) or nullopt at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // Kills the process (when the test is done with it).
  void kill();
  // Occurrences of `needle` in the player's stderr.
  size_t stderr_count(std::string_view needle) const;
  std::string stderr_text() const { return process_.stderr_text(); }

 private:
  void pump();
  ChildProcess process_;
  bool started_ = false;
  mutable std::mutex mutex_;
  std::vector<Sample> advances_;  // guarded by mutex_: samples where the media time grew
  std::atomic<bool> stop_{false};
  std::thread reader_;
};

}  // namespace balancer::test
