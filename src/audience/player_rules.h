// What a real HLS player decides, as pure functions of what it has seen: when to reload a
// live media playlist (RFC 8216 §6.3.4), where to start in a live window (near the edge, as
// hls.js and ExoPlayer do), and which variant to play (top, bottom, or by throughput as an
// ABR player does). Any thread; no state beyond ThroughputEstimate's own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace audience {

// RFC 8216 §6.3.4: after a load that found the playlist changed (or the first load), wait
// at least the target duration before reloading, measured from when that load began; after
// a load that found it unchanged, wait half the target duration.
double reload_delay_s(double target_duration_s, bool changed);

// The index of the segment a live player starts with: the newest one that still leaves at
// least `hold_back_s` of media after its start (hls.js: 3 target durations; ExoPlayer: the
// playlist's HOLD-BACK, else 3 target durations). 0 when the window is shorter.
size_t live_start_index(const std::vector<double>& segment_durations, double hold_back_s);

enum class VariantPolicy : std::uint8_t { top, bottom, abr };
// "top", "bottom", "abr"; nullopt for anything else.
std::optional<VariantPolicy> parse_variant_policy(std::string_view text);
std::string_view variant_policy_name(VariantPolicy policy);

// Index into `bandwidths` (bits/s of each variant) to play. top: the highest; bottom: the
// lowest; abr: the highest at or below `safety` × the estimate, else the lowest (also the
// choice before any estimate). Precondition: `bandwidths` is not empty.
size_t choose_variant(VariantPolicy policy, const std::vector<uint64_t>& bandwidths,
                      std::optional<double> estimate_bps, double safety = 0.8);

// A throughput estimate from segment downloads: two exponentially weighted averages over
// download time (half-lives of 2 s and 8 s, as hls.js keeps a fast and a slow one) and the
// lower of the two, so a drop is believed at once and a rise only once it lasts.
class ThroughputEstimate {
 public:
  // One download of `bytes` that took `seconds` (ignored when not positive).
  void add(uint64_t bytes, double seconds);
  // nullopt before the first sample.
  std::optional<double> bps() const;

 private:
  struct Ewma {
    double half_life_s;
    double estimate = 0;
    double total_weight = 0;
    void add(double weight_s, double value);
    double value() const;
  };
  Ewma fast_{2.0};
  Ewma slow_{8.0};
  bool any_ = false;
};

}  // namespace audience

namespace audience {

// `url` with query parameter `name` set to `value` (replacing its first occurrence, else
// appended); the fragment, if any, is kept last. `value` is used as given (already encoded).
std::string with_query_param(std::string_view url, std::string_view name, std::string_view value);

// The value of attribute `name` in one tag line ("#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"a\""),
// quotes removed; nullopt when absent.
std::optional<std::string> tag_attribute(std::string_view line, std::string_view name);

}  // namespace audience
