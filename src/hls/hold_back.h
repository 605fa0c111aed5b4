// A channel's target latency behind live, as the operator sets it, written into a media
// playlist's EXT-X-SERVER-CONTROL: HOLD-BACK, and PART-HOLD-BACK when the playlist has parts
// (players that honour them, Media3 by default and hls.js, start and stay that far behind the
// live edge, so that the phones in a stand play the same moment). Within RFC 8216bis §4.4.3.8's
// bounds: HOLD-BACK at least three target durations, PART-HOLD-BACK at least twice the part
// target; a target below a bound is raised to it.
//
// Pure: no I/O, no clock, no globals.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hls {

struct HoldBack {
  double hold_back_s = 0;
  std::optional<double> part_hold_back_s;  // for a playlist with parts
};

// What a playlist of `target_duration_s` (and `part_target_s`, when it has parts) says for a
// target latency of `target_s`.
HoldBack hold_back_for(double target_s, double target_duration_s,
                       std::optional<double> part_target_s);

// `text` (a media playlist) with its EXT-X-SERVER-CONTROL's HOLD-BACK and PART-HOLD-BACK set
// for `target_s` (the tag is added after EXT-X-TARGETDURATION when it has none); its other
// attributes and every other line are kept as they are. nullopt when `text` has no
// EXT-X-TARGETDURATION (a master playlist) or its value is not a number.
std::optional<std::string> with_hold_back(std::string_view text, double target_s);

}  // namespace hls
