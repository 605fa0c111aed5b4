// CMCD payloads as the players send them (hls.js 1.7 v2 by default and v1 when asked, Media3's
// headers, Shaka's query), and payloads that must be refused whole.
#include "cmcd/cmcd.h"

#include <doctest/doctest.h>

#include <string>

namespace {

cmcd::Data parsed(std::string_view payload) {
  cmcd::Data d;
  const std::string error = cmcd::parse_into(payload, d);
  INFO("payload: ", std::string(payload), " error: ", error);
  CHECK(error.empty());
  return d;
}

std::string refused(std::string_view payload) {
  cmcd::Data d;
  d.session_id = "kept";
  const std::string error = cmcd::parse_into(payload, d);
  CHECK(d.session_id == "kept");  // nothing of a refused payload is used
  CHECK_FALSE(d.buffer_length_ms);
  return error;
}

}  // namespace

TEST_CASE("cmcd: a v1 query payload (hls.js with version 1, Shaka Player)") {
  const auto d = parsed(
      R"(bl=21300,br=3200,bs,cid="demo",d=4004,mtp=25400,nor="seg00042.ts",nrr="12323-48763",ot=v,)"
      R"(sf=h,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=l,su,tb=6000)");
  CHECK(d.buffer_length_ms == 21300);
  CHECK(d.bitrate_kbps == 3200);
  CHECK(d.buffer_starvation);
  CHECK(d.content_id == "demo");
  CHECK(d.object_duration_ms == 4004);
  CHECK(d.measured_throughput_kbps == 25400);
  CHECK(d.next_object == "seg00042.ts");
  CHECK(d.next_range == "12323-48763");
  CHECK(d.object_type == "v");
  CHECK(d.session_id == "6e2fb550-c457-11e9-bb97-0800200c9a66");
  CHECK(d.stream_type == "l");
  CHECK(d.startup);
  CHECK(d.top_bitrate_kbps == 6000);
  CHECK_FALSE(d.version);
}

TEST_CASE(
    "cmcd: a v2 payload (hls.js 1.7's default): inner lists, play state, nor with its range") {
  const auto d = parsed(
      R"(bl=(21300),br=(3200;ot=v 128;ot=a),cid="demo",mtp=(25400),nor=("seg2.ts";r="0-99"),ot=av,)"
      R"(sid="abc",sta=p,su=?0,v=2)");
  CHECK(d.version == 2);
  CHECK(d.buffer_length_ms == 21300);
  CHECK(d.bitrate_kbps == 3200);  // the first item
  CHECK(d.measured_throughput_kbps == 25400);
  CHECK(d.next_object == "seg2.ts");
  CHECK(d.next_range == "0-99");
  CHECK(d.play_state == "p");
  CHECK_FALSE(d.startup);  // ?0
  CHECK_FALSE(d.buffer_starvation);
}

TEST_CASE("cmcd: a low-latency player's v2 report: stream type ll, part duration, latency") {
  const auto d = parsed(R"(bl=(600),br=(1200),d=267,ltc=950,ot=v,sid="ll-1",st=ll,v=2)");
  CHECK(d.stream_type == "ll");
  CHECK(d.object_duration_ms == 267);
  CHECK(d.live_latency_ms == 950);
  CHECK(d.any());
  // A negative latency is no latency.
  CHECK_FALSE(parsed(R"(ltc=-5,sid="x")").live_latency_ms);
}

TEST_CASE("cmcd: Media3's four headers read one after another into one report") {
  cmcd::Data d;
  CHECK(cmcd::parse_into("br=840,d=4000,ot=v,tb=1500", d).empty());
  CHECK(cmcd::parse_into("bl=3500, dl=2000, mtp=12000, nor=\"seg3.ts\", su", d).empty());
  CHECK(cmcd::parse_into("cid=\"venue\",sf=h,sid=\"s-1\",st=l", d).empty());
  CHECK(cmcd::parse_into("bs,rtp=15000", d).empty());
  CHECK(d.bitrate_kbps == 840);
  CHECK(d.buffer_length_ms == 3500);
  CHECK(d.measured_throughput_kbps == 12000);
  CHECK(d.session_id == "s-1");
  CHECK(d.buffer_starvation);
  CHECK(d.startup);
  CHECK(d.any());
}

TEST_CASE(
    "cmcd: decimals are rounded, unknown and custom keys ignored, the last duplicate counts") {
  const auto d =
      parsed(R"(bl=100.5,com.example-myNumericKey=500,pr=1.08,x-custom="a",bl=200,mtp=99.49)");
  CHECK(d.buffer_length_ms == 200);
  CHECK(d.measured_throughput_kbps == 99);
  CHECK(parsed("").any() == false);
  CHECK(parsed("   ").any() == false);
}

TEST_CASE("cmcd: malformed payloads are refused whole, with a reason") {
  for (std::string_view bad :
       {"bl=", "bl=abc\"", "=1", "Bl=1", "bl=1,", "bl=1,,br=2", "bl=1;", "sid=\"open",
        "sid=\"a\\x\"", "bl=(1 2", "bl=(1,2)", "bl=1234567890123456", "bl=1.2345", "bl=-", "bs=?2",
        "nor=:abc", "bl=1 br=2", "sid=\"\x01\"", "bl=1\tbr=2"}) {
    INFO("payload: ", std::string(bad));
    CHECK_FALSE(refused(bad).empty());
  }
}

TEST_CASE("cmcd: bounds: long payloads, many keys, long strings and lists are refused") {
  CHECK_FALSE(refused(std::string(cmcd::kMaxPayloadBytes + 1, 'a')).empty());
  std::string many;
  for (size_t i = 0; i <= cmcd::kMaxMembers; ++i) many += (i ? ",k" : "k") + std::to_string(i);
  CHECK_FALSE(refused(many).empty());
  CHECK_FALSE(refused("sid=\"" + std::string(cmcd::kMaxStringBytes + 1, 'x') + "\"").empty());
  std::string list = "bl=(";
  for (size_t i = 0; i <= cmcd::kMaxInnerListItems; ++i) list += "1 ";
  CHECK_FALSE(refused(list + ")").empty());
  // Negative numbers parse but are not used for the non-negative quantities.
  CHECK_FALSE(parsed("bl=-5").buffer_length_ms);
}
