#include "support/ll_origin_fixture.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "support/ffmpeg_args.h"
#include "support/http_client.h"
#include "support/origin_fixture.h"

namespace balancer::test {

bool make_cmaf_material(const std::string& path, int seconds, int kbps, std::string* error,
                        int part_ms) {
  ChildProcess ffmpeg;
  const std::vector<std::string> argv = ffmpeg_args(
      {ffmpeg_test_input({.video = "640x360:rate=30", .tone = false, .realtime = false}),
       {"-t", std::to_string(seconds)},
       x264_args("veryfast"),
       {"-b:v", std::to_string(kbps) + "k"},
       {"-f", "mp4", "-movflags", "cmaf+frag_keyframe+empty_moov+default_base_moof",
        "-frag_duration", std::to_string(part_ms * 1000), path}});
  std::string start_error;
  if (!ffmpeg.start(argv, {}, {}, &start_error)) {
    if (error != nullptr) *error = start_error;
    return false;
  }
  const std::optional<int> status = ffmpeg.wait_exit(deadline_in(std::chrono::seconds(120)));
  if (status != 0) {
    if (error != nullptr) *error = ffmpeg.stderr_text();
    return false;
  }
  return true;
}

LlOrigin::LlOrigin(const LlOriginOptions& options) {
  const std::string binary = binary_path("ll_origin");
  if (binary.empty()) throw std::runtime_error("ll_origin not found under " + binary_dir());
  std::vector<std::string> argv{binary, "--port", "0", "--segment",
                                std::to_string(options.segment_s)};
  if (options.window > 0) argv.insert(argv.end(), {"--window", std::to_string(options.window)});
  for (const auto& [name, file] : options.renditions)
    argv.insert(argv.end(), {"--rendition", name + "=" + file});
  if (options.byterange) argv.push_back("--byterange");
  if (options.clock_start_ms > 0)
    argv.insert(argv.end(), {"--clock-start-ms", std::to_string(options.clock_start_ms)});
  if (options.first_msn > 0)
    argv.insert(argv.end(), {"--first-msn", std::to_string(options.first_msn)});
  std::string error;
  if (!process_.start(argv, {}, {}, &error)) throw std::runtime_error(error);
  port_ = process_.wait_for_listening_port(deadline_in(std::chrono::seconds(10)));
  if (port_ <= 0)
    throw std::runtime_error("ll_origin did not start; stderr:\n" + process_.stderr_text());
}

std::string LlOrigin::url(std::string_view path) const {
  return local_url(port_, path);
}

namespace {

int64_t field(const std::string& json, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":";
  const size_t at = json.find(key);
  return at == std::string::npos ? -1 : std::stoll(json.substr(at + key.size()));
}

}  // namespace

int64_t LlOrigin::count(std::string_view path_and_query) const {
  return field(http_get(url("/__stats?path=" + url_encode(path_and_query))).body, "count");
}

int64_t LlOrigin::total() const {
  return field(http_get(url("/__stats")).body, "total");
}

int64_t LlOrigin::parts_published() const {
  return field(http_get(url("/__stats")).body, "parts_published");
}

int64_t LlOrigin::requests_of_kind(std::string_view kind) const {
  return std::max<int64_t>(0, field(http_get(url("/__stats")).body, kind));
}

int64_t LlOrigin::next_msn() const {
  return field(http_get(url("/__stats")).body, "next_msn");
}

bool LlOrigin::fault(std::string_view query) const {
  return http_get(url("/__fault?" + std::string(query))).status == 200;
}

}  // namespace balancer::test
