// Content steering: the multivariant playlist listing its variants once per pathway
// (PATHWAY-ID, rendition groups renamed per pathway, look-alikes given stable ids,
// everything else kept once), the playlists it leaves alone, and the steering
// manifest. Every steered master must pass the players' rules (support/steering_rules.h).
#include <doctest/doctest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hls/steering.h"
#include "support/hls_test_support.h"
#include "support/steering_rules.h"

using hls::PathwayCopy;
using hls::steered_master;
using test_support::steering_rules_problem;

namespace {

// The same master as the balancer renders it for pathway `query` ("" = the default copy).
std::string copy_for(const std::string& query) {
  const std::string q = query.empty() ? "?v=1" : "?v=1&" + query;
  return "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n"
         "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",DEFAULT=YES,URI=\"/hls/c/"
         "en.m3u8" +
         q +
         "\"\n"
         "#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"aud\"\n"
         "/hls/c/hi.m3u8" +
         q +
         "\n"
         "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"/hls/c/hi-if.m3u8" +
         q +
         "\"\n"
         "#EXT-X-SESSION-DATA:DATA-ID=\"com.example.title\",VALUE=\"Demo\"\n";
}

}  // namespace

TEST_CASE("steering: every pathway lists every variant, with its own URIs and rendition groups") {
  const std::string a = copy_for(""), b = copy_for("pathway=b"),
                    origin = copy_for("pathway=origin");
  auto out = steered_master({{"a", a}, {"b", b}, {"origin", origin}},
                            "http://bal.test/steering/c?v=1", "a");
  REQUIRE(out.has_value());
  CHECK(*out ==
        "#EXTM3U\n"
        "#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://bal.test/steering/c?v=1\",PATHWAY-ID=\"a\"\n"
        "#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-SESSION-DATA:DATA-ID=\"com.example.title\",VALUE=\"Demo\"\n"
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud@a\",NAME=\"English\",DEFAULT=YES,URI=\"/hls/c/"
        "en.m3u8?v=1\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"aud@a\","
        "PATHWAY-ID=\"a\"\n"
        "/hls/c/hi.m3u8?v=1\n"
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"/hls/c/hi-if.m3u8?v=1\",PATHWAY-ID=\"a\"\n"
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud@b\",NAME=\"English\",DEFAULT=YES,URI=\"/hls/c/"
        "en.m3u8?v=1&pathway=b\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"aud@b\","
        "PATHWAY-ID=\"b\"\n"
        "/hls/c/hi.m3u8?v=1&pathway=b\n"
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"/hls/c/"
        "hi-if.m3u8?v=1&pathway=b\",PATHWAY-ID=\"b\"\n"
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud@origin\",NAME=\"English\",DEFAULT=YES,"
        "URI=\"/hls/c/en.m3u8?v=1&pathway=origin\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"aud@origin\","
        "PATHWAY-ID=\"origin\"\n"
        "/hls/c/hi.m3u8?v=1&pathway=origin\n"
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"/hls/c/hi-if.m3u8?v=1&pathway=origin\","
        "PATHWAY-ID=\"origin\"\n");
  CHECK(steering_rules_problem(*out) == "");
  // The oracle has teeth: the source as it was, a group shared by two pathways, a relative URI.
  CHECK(steering_rules_problem(a).find("a variant without PATHWAY-ID") == 0);
  std::string shared_group = *out;
  for (size_t at; (at = shared_group.find("aud@b")) != std::string::npos;)
    shared_group.replace(at, 5, "aud@a");
  CHECK(steering_rules_problem(shared_group).find("AUDIO group aud@a spans pathways a and b") == 0);
  CHECK(steering_rules_problem(*steered_master({{"a", a}, {"b", b}}, "/steering/c", "a"))
            .find("SERVER-URI") == 0);
}

TEST_CASE(
    "steering: look-alike variants and renditions get stable ids, so Media3 tells them apart") {
  auto copy = [](const std::string& q) {
    return "#EXTM3U\n"
           "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"lo\",NAME=\"en\",URI=\"lo-en.m3u8" +
           q +
           "\"\n"
           "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"hi\",NAME=\"en\",URI=\"hi-en.m3u8" +
           q +
           "\"\n"
           "#EXT-X-STREAM-INF:BANDWIDTH=500000,AUDIO=\"lo\"\nmain.m3u8" +
           q +
           "\n"
           "#EXT-X-STREAM-INF:BANDWIDTH=500000,AUDIO=\"hi\"\nbackup.m3u8" +
           q + "\n";
  };
  const std::string a = copy(""), b = copy("?pathway=b");
  auto out = steered_master({{"a", a}, {"b", b}}, "http://x/s", "a");
  REQUIRE(out.has_value());
  CHECK(out->find(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"hi@b\",NAME=\"en\",URI=\"hi-en.m3u8?pathway=b\","
            "STABLE-RENDITION-ID=\"r1\"\n") != std::string::npos);
  CHECK(out->find("#EXT-X-STREAM-INF:BANDWIDTH=500000,AUDIO=\"lo@a\",STABLE-VARIANT-ID=\"v0\","
                  "PATHWAY-ID=\"a\"\n"
                  "main.m3u8\n") != std::string::npos);
  CHECK(steering_rules_problem(*out) == "");
  // Without the ids Media3 would group main and backup as one stream.
  std::string without_ids = *out;
  for (const char* attr : {",STABLE-VARIANT-ID=\"v0\"", ",STABLE-VARIANT-ID=\"v1\""}) {
    for (size_t at; (at = without_ids.find(attr)) != std::string::npos;)
      without_ids.erase(at, std::string(attr).size());
  }
  CHECK(steering_rules_problem(without_ids).find("two look-alike variants") == 0);
  // Distinct variants get no ids.
  auto distinct = steered_master({{"a", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv\n"},
                                  {"b", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv?pathway=b\n"}},
                                 "http://x/s", "a");
  REQUIRE(distinct.has_value());
  CHECK(distinct->find("STABLE") == std::string::npos);
}

TEST_CASE("steering: CRLF line ends and a BOM are kept") {
  auto out = steered_master(
      {{"a", "\xEF\xBB\xBF#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\nv.m3u8"},
       {"b", "\xEF\xBB\xBF#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\nv.m3u8?pathway=b"}},
      "http://x/s", "a");
  REQUIRE(out.has_value());
  CHECK(*out ==
        "\xEF\xBB\xBF#EXTM3U\r\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://x/"
        "s\",PATHWAY-ID=\"a\"\r\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"a\"\r\nv.m3u8\r\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"b\"\r\nv.m3u8?pathway=b\r\n");
}

TEST_CASE("steering: playlists and inputs it leaves alone") {
  const std::string m = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
  const std::string mb = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8?pathway=b\n";
  CHECK(steered_master({{"a", m}, {"b", mb}}, "http://x/s", "a").has_value());
  CHECK_FALSE(steered_master({{"a", m}, {"b", mb}}, "http://x/s\"x", "a").has_value());
  CHECK_FALSE(steered_master({{"a", m}, {"b", mb}}, "http://x/s\nx", "a").has_value());
  CHECK_FALSE(steered_master({{"a", m}, {"b", mb}}, "", "a").has_value());
  CHECK_FALSE(steered_master({}, "http://x/s", "a").has_value());
  CHECK_FALSE(
      steered_master({{"a", m}, {"b", mb}}, "http://x/s", "c").has_value());  // no such start
  CHECK(steered_master({{"a", m}, {"b", mb}}, "http://x/s", "b")
            ->find("PATHWAY-ID=\"b\"\n#EXT-X-STREAM-INF") != std::string::npos);
  CHECK_FALSE(steered_master({{"a", m}, {"a", mb}}, "http://x/s", "a").has_value());  // repeated id
  CHECK_FALSE(
      steered_master({{"a/b", m}, {"b", mb}}, "http://x/s", "a").has_value());  // invalid id
  // Copies of different shapes.
  CHECK_FALSE(steered_master({{"a", m}, {"b", mb + "#EXT-X-STREAM-INF:BANDWIDTH=2\nw\n"}},
                             "http://x/s", "a")
                  .has_value());
  CHECK_FALSE(steered_master({{"a", "#EXTM3U\n#EXTINF:2,\nseg1.ts\n"}}, "http://x/s", "a")
                  .has_value());  // media
  CHECK_FALSE(steered_master({{"a", "#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"}}, "http://x/s", "a")
                  .has_value());
  CHECK_FALSE(steered_master({{"a", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"}}, "http://x/s", "a")
                  .has_value());
  CHECK_FALSE(steered_master({{"a",
                               "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"x\"\n"
                               "#EXT-X-STREAM-INF:BANDWIDTH=1\nv\n"}},
                             "http://x/s", "a")
                  .has_value());
  CHECK_FALSE(
      steered_master({{"a", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"x\"\nv\n"}},
                     "http://x/s", "a")
          .has_value());
}

TEST_CASE("steering: the manifest orders the pathways") {
  CHECK(hls::steering_manifest(30, {"venue-b", "origin"}) ==
        "{\"VERSION\":1,\"TTL\":30,\"PATHWAY-PRIORITY\":[\"venue-b\",\"origin\"]}\n");
  CHECK(hls::valid_pathway_id("venue-a.1_x"));
  CHECK_FALSE(hls::valid_pathway_id("a/b"));
  CHECK_FALSE(hls::valid_pathway_id(""));
  CHECK_FALSE(hls::valid_pathway_id(std::string(65, 'a')));
}

TEST_CASE(
    "steering: the manifest offers the other pathways as clones of the listed one, with the "
    "balancer's host and their own pathway parameter") {
  const std::string manifest =
      hls::steering_manifest(30, {"venue-b", "origin"},
                             {{"venue-b", "venue-a", "tv.example:8443", {{"pathway", "venue-b"}}},
                              {"origin", "venue-a", "tv.example:8443", {{"pathway", "origin"}}}});
  CHECK(manifest ==
        "{\"VERSION\":1,\"TTL\":30,\"PATHWAY-PRIORITY\":[\"venue-b\",\"origin\"],"
        "\"PATHWAY-CLONES\":["
        "{\"BASE-ID\":\"venue-a\",\"ID\":\"venue-b\",\"URI-REPLACEMENT\":{\"HOST\":"
        "\"tv.example:8443\",\"PARAMS\":{\"pathway\":\"venue-b\"}}},"
        "{\"BASE-ID\":\"venue-a\",\"ID\":\"origin\",\"URI-REPLACEMENT\":{\"HOST\":"
        "\"tv.example:8443\",\"PARAMS\":{\"pathway\":\"origin\"}}}]}\n");
  // Without a host, HOST is left out; PARAMS stays (video.js reads it unguarded); strings are
  // escaped.
  CHECK(hls::steering_manifest(5, {"a"}, {{"b", "a", "", {{"k\"", "v\\\n"}}}}) ==
        "{\"VERSION\":1,\"TTL\":5,\"PATHWAY-PRIORITY\":[\"a\"],\"PATHWAY-CLONES\":[{\"BASE-ID\":"
        "\"a\",\"ID\":\"b\",\"URI-REPLACEMENT\":{\"PARAMS\":{\"k\\\"\":\"v\\\\\\u000a\"}}}]}\n");
}

TEST_CASE(
    "steering: a master of one pathway lists each variant once, with PATHWAY-ID, and names its "
    "manifest: what a player without steering sees") {
  const std::string master =
      "#EXTM3U\n#EXT-X-VERSION:3\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=2000000\nhi.m3u8?v=1&pathway=venue-a\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=500000\nlo.m3u8?v=1&pathway=venue-a\n";
  auto steered =
      steered_master({{"venue-a", master}}, "http://b/steering/c?v=1&pathway=venue-a", "venue-a");
  REQUIRE(steered);
  CHECK(*steered ==
        "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://b/steering/"
        "c?v=1&pathway=venue-a\",PATHWAY-ID=\"venue-a\"\n#EXT-X-VERSION:3\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=2000000,PATHWAY-ID=\"venue-a\"\nhi.m3u8?v=1&pathway=venue-a\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=500000,PATHWAY-ID=\"venue-a\"\nlo.m3u8?v=1&pathway=venue-a\n");
  CHECK(steering_rules_problem(*steered) == "");
}

TEST_CASE("steering: a bare media playlist's master of one variant is offered on every pathway") {
  const std::string entry = "/hls/c/index.m3u8?viewer=x&pathway=";
  CHECK(hls::one_variant_master(entry + ".", 1000000) ==
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000000\n/hls/c/index.m3u8?viewer=x&pathway=.\n");
  std::vector<std::string> texts;
  for (const char* id : {".", "a", "origin"})
    texts.push_back(hls::one_variant_master(entry + id, 1000000));
  auto steered = steered_master({{".", texts[0]}, {"a", texts[1]}, {"origin", texts[2]}},
                                "http://b/steering/c", "a");
  REQUIRE(steered);
  CHECK(*steered ==
        "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://b/steering/c\",PATHWAY-ID=\"a\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1000000,PATHWAY-ID=\".\"\n" +
            entry +
            ".\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=1000000,PATHWAY-ID=\"a\"\n" +
            entry +
            "a\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=1000000,PATHWAY-ID=\"origin\"\n" +
            entry + "origin\n");
  CHECK(steering_rules_problem(*steered) == "");
  // Media3 refuses to start on a pathway no variant declares.
  std::string unknown_start = *steered;
  unknown_start.replace(unknown_start.find("PATHWAY-ID=\"a\""), 14,
                        "PATHWAY-ID=\"z\"");  // the tag's
  CHECK(steering_rules_problem(unknown_start).find("the steering tag's PATHWAY-ID z") == 0);
}

TEST_CASE(
    "steering: a template's steered shape renders, for any URIs, pathway and steering URI, the "
    "bytes steered_master() makes of that copy, and refuses what it refuses") {
  using Mapper = std::function<std::string(const hls::UriSlot&)>;
  const std::vector<std::string> masters = {
      copy_for(""),  // a rendition group, an I-frame variant, session data
      // A byte order mark, CRLF, a session key, look-alike variants, no last line end.
      "\xEF\xBB\xBF#EXTM3U\r\n#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"k.bin\"\r\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1\r\nv.m3u8\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\n  w.m3u8",
      // Look-alike renditions, one with a stable id of its own, in two groups.
      "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"en.m3u8\"\n"
      "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"b\",NAME=\"en\",URI=\"en2.m3u8\",STABLE-RENDITION-ID="
      "\"x\"\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"b\",NAME=\"en\",URI=\"en3.m3u8\"\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv.m3u8\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=2,AUDIO=\"b\"\nw.m3u8\n",
      "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"x\"\nv.m3u8\n",  // the origin steers
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns.ts\n",               // a media playlist
  };
  const std::vector<Mapper> uris = {
      hls_test::identity_mapper,
      [](const hls::UriSlot& slot) { return "/hls/c" + std::string(slot.original) + "?v=1"; },
      [](const hls::UriSlot& slot) { return slot.uri + "?PATHWAY-ID=x"; },  // steering refuses
      [](const hls::UriSlot&) { return std::string("a\"b\nc d"); },         // escaped
  };
  size_t steered = 0, compared = 0;
  for (const std::string& master : masters) {
    INFO(master);
    const hls::Playlist parsed = hls_test::parse_ok(master);
    const std::optional<hls::SteeredShape> shape = hls::SteeredShape::of(parsed.tmpl);
    for (const Mapper& uri_of : uris) {
      const std::string copy = hls::render(parsed.tmpl, uri_of);
      hls::SlotTexts slot_texts;
      hls::render_slot_texts(slot_texts, parsed.tmpl, uri_of);
      for (const std::string id : {"venue-a", "origin", "a/b"}) {
        for (const std::string server : {"http://b/steering/c?v=1", "", "http://b/\"x"}) {
          const std::optional<std::string> expected = steered_master({{id, copy}}, server, id);
          const std::optional<std::string> got =
              shape ? shape->render(parsed.tmpl, slot_texts, id, server) : std::nullopt;
          CHECK(got == expected);
          ++compared;
          steered += expected.has_value();
        }
      }
    }
  }
  CHECK(compared == 5 * 4 * 3 * 3);
  CHECK(steered == 3 * 3 * 2);  // three steerable masters, three of the URIs, two valid ids
}
