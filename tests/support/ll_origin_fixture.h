// LlOrigin: an ll_origin child process (the low-latency HLS origin, tests/support/ll_origin.cc)
// on 127.0.0.1 with an ephemeral port, publishing CMAF material that ffmpeg makes for the
// test (make_cmaf_material). For tests only; one thread at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/ffmpeg_args.h"
#include "support/process.h"

namespace balancer::test {

// Encodes `seconds` of a test pattern to `path` as CMAF fMP4: a keyframe every second,
// fragments (parts) of `part_ms` (so four of about 0.25 s a second by default), video only.
// False (with ffmpeg's stderr in `error`) when ffmpeg fails.
bool make_cmaf_material(const std::string& path, int seconds, int kbps,
                        std::string* error = nullptr, int part_ms = 250);

struct LlOriginOptions {
  std::vector<std::pair<std::string, std::string>> renditions;  // name, CMAF file
  double segment_s = 1.0;
  int window = 0;  // segments listed; 0: ll_origin's own, long enough for delta updates
  bool byterange = false;
  int64_t clock_start_ms = 0;  // a shared clock (ll_origin --clock-start-ms); 0: its own
  uint64_t first_msn = 0;
};

class LlOrigin {
 public:
  // Starts ll_origin from the build tree; throws std::runtime_error with its stderr on failure.
  explicit LlOrigin(const LlOriginOptions& options);
  int port() const { return port_; }
  std::string url(std::string_view path) const;  // "http://127.0.0.1:<port>" + path
  // Requests counted for exactly `path_and_query` as asked.
  int64_t count(std::string_view path_and_query) const;
  int64_t total() const;
  // Parts published so far (all renditions publish together) and the segment being written.
  int64_t parts_published() const;
  // Requests counted for a kind: "master", "other", "<rendition>/<playlist|init|part|segment>".
  int64_t requests_of_kind(std::string_view kind) const;
  int64_t next_msn() const;
  // GET /__fault?<query>.
  bool fault(std::string_view query) const;
  ChildProcess& process() { return process_; }

 private:
  ChildProcess process_;
  int port_ = 0;
};

}  // namespace balancer::test
