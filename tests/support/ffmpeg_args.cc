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

std::vector<std::string> live_ladder_args(const std::string& dir,
                                          const std::vector<LadderRung>& rungs) {
  std::string filter = "[0:v]split=" + std::to_string(rungs.size());
  for (size_t i = 0; i < rungs.size(); ++i) filter += "[v" + std::to_string(i) + "]";
  std::vector<std::string> maps, bitrates;
  std::string stream_map;
  for (size_t i = 0; i < rungs.size(); ++i) {
    const std::string n = std::to_string(i);
    std::string label = "[v" + n + "]";
    if (!rungs[i].scale.empty()) {
      filter += ";" + label + "scale=" + rungs[i].scale + "[s" + n + "]";
      label = "[s" + n + "]";
    }
    maps.insert(maps.end(), {"-map", label, "-map", "1:a"});
    bitrates.insert(bitrates.end(), {"-b:v:" + n, rungs[i].bitrate});
    stream_map += (i ? " v:" : "v:") + n + ",a:" + n;
  }
  std::vector<std::string> out = ffmpeg_args({ffmpeg_test_input({}),
                                              {"-filter_complex", filter},
                                              maps,
                                              x264_args("ultrafast"),
                                              bitrates,
                                              aac_args(),
                                              live_hls_args()});
  out.insert(out.end(), {"-master_pl_name", "master.m3u8", "-var_stream_map", stream_map,
                         "-hls_segment_filename", dir + "/live/v%v/seg_%05d.ts",
                         dir + "/live/v%v/index.m3u8"});
  return out;
}

}  // namespace balancer::test
