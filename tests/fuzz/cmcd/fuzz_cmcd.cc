// Fuzz target for the CMCD reader: any bytes as one payload. parse_into must never crash or
// overflow (ASan, UBSan); a refused payload leaves the report exactly as it was; an accepted one
// parses again to the same report (reading is idempotent: a key read twice keeps its value).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "cmcd/cmcd.h"
#include "fuzz/fuzz_check.h"

namespace {

bool same(const cmcd::Data& a, const cmcd::Data& b) {
  return a.version == b.version && a.buffer_length_ms == b.buffer_length_ms &&
         a.bitrate_kbps == b.bitrate_kbps && a.top_bitrate_kbps == b.top_bitrate_kbps &&
         a.measured_throughput_kbps == b.measured_throughput_kbps &&
         a.object_duration_ms == b.object_duration_ms &&
         a.buffer_starvation == b.buffer_starvation && a.startup == b.startup &&
         a.session_id == b.session_id && a.content_id == b.content_id &&
         a.object_type == b.object_type && a.stream_type == b.stream_type &&
         a.play_state == b.play_state && a.next_object == b.next_object &&
         a.next_range == b.next_range;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  cmcd::Data before;
  before.session_id = "before";
  before.buffer_length_ms = 1;
  cmcd::Data report = before;
  const std::string error = cmcd::parse_into(payload, report);
  if (!error.empty()) {
    FUZZ_CHECK(same(report, before));
    return 0;
  }
  FUZZ_CHECK(payload.size() <= cmcd::kMaxPayloadBytes);
  FUZZ_CHECK(report.session_id.size() <= cmcd::kMaxStringBytes);
  FUZZ_CHECK(!report.buffer_length_ms || *report.buffer_length_ms >= 0);
  cmcd::Data again = report;
  FUZZ_CHECK(cmcd::parse_into(payload, again).empty());
  FUZZ_CHECK(same(again, report));
  return 0;
}
