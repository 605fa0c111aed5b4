#include "support/ffmpeg_args.h"

#include <unistd.h>

namespace balancer::test {

bool have_ffmpeg() {
  return access("/usr/bin/ffmpeg", X_OK) == 0;
}

std::vector<std::string> ffmpeg_args(std::initializer_list<std::vector<std::string>> pieces) {
  std::vector<std::string> out;
  for (const auto& piece : pieces) out.insert(out.end(), piece.begin(), piece.end());
  return out;
}

std::vector<std::string> ffmpeg_test_input(const FfmpegTestSource& source) {
  std::vector<std::string> out = {"ffmpeg", "-hide_banner", "-loglevel", "error", "-y"};
  if (source.realtime) out.push_back("-re");
  out.insert(out.end(), {"-f", "lavfi", "-i", "testsrc2=size=" + source.video});
  if (source.tone)
    out.insert(out.end(), {"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"});
  return out;
}

std::vector<std::string> x264_args(const std::string& preset, int gop) {
  return {"-c:v",          "libx264", "-preset",           preset,        "-tune",
          "zerolatency",   "-g",      std::to_string(gop), "-keyint_min", std::to_string(gop),
          "-sc_threshold", "0",       "-pix_fmt",          "yuv420p"};
}

std::vector<std::string> aac_args() {
  return {"-c:a", "aac", "-b:a", "48k", "-ac", "2"};
}

std::vector<std::string> live_hls_args() {
  return {"-f",
          "hls",
          "-hls_time",
          "2",
          "-hls_list_size",
          "10",
          "-hls_flags",
          "delete_segments+independent_segments+temp_file"};
}

}  // namespace balancer::test
