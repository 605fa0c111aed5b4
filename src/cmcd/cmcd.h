// Common Media Client Data (CTA-5004): what a player says about its playback on each request,
// as the `CMCD=` query argument or the CMCD-Object, CMCD-Request, CMCD-Session and
// CMCD-Status headers. Version 1 (scalars: `bl=21300,br=3200,bs,sid="6e2f..."`) and version 2
// (hls.js 1.7's default: the same keys, several of them as inner lists, `bl=(21300)`,
// `br=(3200;ot=v)`, `nor=("seg2.ts";r="0-99")`) are both read: the text is a Structured Field
// dictionary (RFC 8941 §3.2), parsed strictly and bounded; a malformed payload is refused whole,
// as RFC 8941 asks, and nothing of it is used. Unknown keys are ignored.
//
// Pure: standard library only, no I/O, no clock. Any thread (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cmcd {

// The keys the product uses; every number as the player sent it (CMCD's units).
struct Data {
  std::optional<int64_t> version;                   // v (absent: 1)
  std::optional<int64_t> buffer_length_ms;          // bl
  std::optional<int64_t> bitrate_kbps;              // br: encoded bitrate of the object
  std::optional<int64_t> top_bitrate_kbps;          // tb
  std::optional<int64_t> measured_throughput_kbps;  // mtp
  std::optional<int64_t> object_duration_ms;        // d
  std::optional<int64_t> live_latency_ms;           // ltc (v2): behind live, on the screen
  bool buffer_starvation = false;                   // bs: starved since the previous request
  bool startup = false;                             // su: needed urgently (startup, seek)
  std::string session_id;                           // sid
  std::string content_id;                           // cid
  std::string object_type;                          // ot: m, a, v, av, i, c, tt, k, o
  std::string stream_type;                          // st: v (VOD), l (live), ll (low-latency)
  std::string play_state;                           // sta (v2): s, p, a, w, k, r, f, e, q, d
  std::string next_object;                          // nor: relative URL of the next object
  std::string next_range;                           // nrr, or nor's `r` parameter (v2)

  bool any() const;  // at least one key was read
};

// Bounds: a payload longer than this, or with more members, is refused.
inline constexpr size_t kMaxPayloadBytes = 4096;
inline constexpr size_t kMaxMembers = 64;
inline constexpr size_t kMaxInnerListItems = 16;
inline constexpr size_t kMaxStringBytes = 512;

// Reads one payload (a header's value, or the query argument's value already percent-decoded)
// into `into`, keys of the payload overriding keys already there. Returns "" when it was read, or
// why it was refused (`into` is then unchanged).
std::string parse_into(std::string_view payload, Data& into);

// The four header names, in the order a request's payloads are read.
inline constexpr std::string_view kHeaderNames[] = {"CMCD-Object", "CMCD-Request", "CMCD-Session",
                                                    "CMCD-Status"};
// The query argument's name.
inline constexpr std::string_view kQueryArgument = "CMCD";

}  // namespace cmcd
