// ffmpeg command lines of the tests' encoders: the test pattern (and a tone) encoded the way
// a live encoder would (x264, a keyframe every GOP, no scene cuts), written as HLS or CMAF.
// The pieces go one after another: ffmpeg_args({ffmpeg_test_input(...), x264_args(...), ...}).
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

namespace balancer::test {

// Whether ffmpeg is installed (the tests that need it say "skipped" otherwise).
bool have_ffmpeg();

// In a test: ends it (with a MESSAGE that it was skipped) when ffmpeg is not installed.
#define SKIP_WITHOUT_FFMPEG()                      \
  do {                                             \
    if (!::balancer::test::have_ffmpeg()) {        \
      MESSAGE("skipped: ffmpeg is not installed"); \
      return;                                      \
    }                                              \
  } while (false)

// The pieces, in order.
std::vector<std::string> ffmpeg_args(std::initializer_list<std::vector<std::string>> pieces);

struct FfmpegTestSource {
  std::string video = "320x180:rate=15";  // testsrc2's size and frame rate
  bool tone = true;                       // a 440 Hz tone as the second input
  bool realtime = true;                   // -re: frames at their own pace, as a live encoder
};
// "ffmpeg -hide_banner -loglevel error -y [-re] -f lavfi -i testsrc2=... [-f lavfi -i sine=...]".
std::vector<std::string> ffmpeg_test_input(const FfmpegTestSource& source);

// "-c:v libx264 -preset <preset> -tune zerolatency -g <gop> -keyint_min <gop> -sc_threshold 0
// -pix_fmt yuv420p": a keyframe every `gop` frames and nowhere else.
std::vector<std::string> x264_args(const std::string& preset, int gop = 30);

// "-c:a aac -b:a 48k -ac 2".
std::vector<std::string> aac_args();

// A live HLS window: 2 s segments, 10 in the playlist, old ones deleted, each written under a
// temporary name first.
std::vector<std::string> live_hls_args();

// One variant of a live ladder: its size ("" keeps the input's) and video bitrate ("300k").
struct LadderRung {
  std::string scale;
  std::string bitrate;
};
// The whole command of a live encoder: ffmpeg_test_input's pattern and tone encoded into one
// variant per rung (x264 ultrafast, AAC), written as live HLS under `dir`: live/master.m3u8
// and live/v<N>/index.m3u8 with live/v<N>/seg_<NNNNN>.ts.
std::vector<std::string> live_ladder_args(const std::string& dir,
                                          const std::vector<LadderRung>& rungs);

}  // namespace balancer::test
