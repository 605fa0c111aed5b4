// Every playlist of the shared public corpus (and of our fuzz seed corpus) is
// either rewritten correctly or rejected with the expected, clear error.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "support/hls_test_support.h"

namespace {

namespace fs = std::filesystem;

enum class Outcome { accepted, tolerated, rejected };

struct Expected {
  Outcome outcome;
  // tolerated: the set of warning codes; rejected: the error code.
  std::set<std::string> codes;
};

// Expected outcome for every corpus file that is not accepted cleanly, plus every
// file SOURCES.md lists as malformed or non-conforming. Any file not listed here
// must parse with no warning at all.
const std::map<std::string, Expected>& corpus_expectations() {
  using O = Outcome;
  static const std::map<std::string, Expected> table = {
      // Header not on line 1 (blank or "#" comment lines first): tolerated.
      {"003_rfc8216-8.6-master-alt-audio.m3u8", {O::tolerated, {"late_header"}}},
      {"004_rfc8216-8.7-master-alt-video.m3u8", {O::tolerated, {"late_header"}}},
      {"005_rfc8216-8.8-master-session-data-uri.m3u8", {O::tolerated, {"late_header"}}},
      {"009_master-leading-blanklines-session-data-key-comma-uri.m3u8",
       {O::tolerated, {"late_header"}}},
      {"013_master-iframe-playlists-relative.m3u8", {O::tolerated, {"late_header"}}},
      {"015_master-image-stream-inf-uri.m3u8", {O::tolerated, {"late_header"}}},
      {"021_master-hlsv7-hdr-comment-before-extm3u.m3u8", {O::tolerated, {"late_header"}}},
      {"041_live-sliding-window.m3u8", {O::tolerated, {"late_header"}}},
      {"042_live-discontinuity-program-date-time.m3u8", {O::tolerated, {"late_header"}}},
      {"045_event-pdt-query-strings.m3u8", {O::tolerated, {"late_header"}}},
      {"050_live-gap-segments.m3u8", {O::tolerated, {"late_header"}}},
      {"067_iframes-only-byterange.m3u8", {O::tolerated, {"late_header"}}},
      {"084_aes128-dotdot-segments-multiple-keys.m3u8", {O::tolerated, {"late_header"}}},
      {"107_llhls-signed-query-parts-reports-no-msn.m3u8", {O::tolerated, {"late_header"}}},
      {"120_rfc8216-8.10-daterange-scte35.m3u8", {O::tolerated, {"late_header"}}},
      {"121_cue-out-elemental-asset.m3u8", {O::tolerated, {"late_header"}}},
      {"122_cue-out-oatcls-pdt.m3u8", {O::tolerated, {"late_header"}}},
      {"123_cue-out-envivio-cue-span.m3u8", {O::tolerated, {"late_header"}}},
      // Last EXTINF has no URI line (the segment is not listed).
      {"046_live-akamai-token-slash-in-query.m3u8", {O::tolerated, {"late_header", "missing_uri"}}},
      {"128_cue-out-in-usp-timestamp-map.m3u8", {O::tolerated, {"missing_uri"}}},
      // No TARGETDURATION.
      {"124_daterange-x-ad-url-attribute.m3u8",
       {O::tolerated, {"late_header", "missing_target_duration"}}},
      {"145_header-only.m3u8", {O::tolerated, {"missing_target_duration"}}},
      {"155_extinf-title-with-comma.m3u8",
       {O::tolerated, {"late_header", "missing_target_duration"}}},
      // QUERYPARAM "foo" is not in the corpus base URL; no URI uses it.
      {"019_master-ext-x-define-queryparam.m3u8", {O::tolerated, {"missing_queryparam"}}},
      // URI lines after EXT-X-MEDIA / I-FRAME-STREAM-INF: rewritten as playlists.
      {"031_master-stray-uri-lines-after-media-and-iframe.m3u8", {O::tolerated, {"stray_uri"}}},
      // EXT-X-SESSION-KEY in a media playlist: rewritten as a key.
      {"058_vod-relative-dotdot-dot-slash.m3u8", {O::tolerated, {"misplaced_tag"}}},
      {"086_session-key-in-media-playlist.m3u8", {O::tolerated, {"late_header", "misplaced_tag"}}},
      // BYTERANGE without offset after a different resource (RFC 8216 4.3.2.2).
      {"065_byterange-ts-single-file.m3u8", {O::tolerated, {"byterange_without_offset"}}},
      {"070_byterange-invalid-no-offset.m3u8", {O::tolerated, {"byterange_without_offset"}}},
      {"105_llhls-byterange-parts-preload-unknown-type.m3u8",
       {O::tolerated, {"bad_attribute_value", "byterange_without_offset"}}},
      // URI lines without EXTINF: still segments (chunks), so never left relative.
      {"093_iframes-only-map-no-extinf.m3u8",
       {O::tolerated, {"missing_target_duration", "segment_without_extinf"}}},
      {"150_junk-line-messy.m3u8", {O::tolerated, {"late_header", "segment_without_extinf"}}},
      {"156_gap-without-extinf-no-final-newline.m3u8", {O::tolerated, {"segment_without_extinf"}}},
      // EXT-X-KEY IV=...ff",URI="..." : the URI is unambiguous.
      {"151_key-malformed-iv-stray-quote.m3u8", {O::tolerated, {"irregular_attribute_list"}}},
      {"140_bom-simple-media.m3u8", {O::tolerated, {"bom"}}},
      // EXT-X-SCTE35 with U+201D "quotes" is an unknown tag: kept byte for byte.
      {"130_scte35-smart-quotes-in-attributes.m3u8", {O::accepted, {}}},
      // Rejected.
      {"063_vod-windows-paths.m3u8", {O::rejected, {"missing_header"}}},  // line 1 is "\"
      {"143_missing-extm3u.m3u8", {O::rejected, {"missing_header"}}},
      {"144_empty-file.m3u8", {O::rejected, {"empty_playlist"}}},
      {"146_broken-syntax-glued-tags.m3u8", {O::rejected, {"missing_header"}}},
      {"147_two-playlists-concatenated.m3u8", {O::rejected, {"duplicate_header"}}},
      {"148_iptv-radio-negative-duration-no-final-newline.m3u8", {O::rejected, {"bad_extinf"}}},
      {"149_iptv-extinf-attributes-extvlcopt.m3u8", {O::rejected, {"bad_extinf"}}},
      {"152_unknown-tags-and-attributes-roundtrip.m3u8", {O::rejected, {"mixed_playlist"}}},
  };
  return table;
}

// Files SOURCES.md lists as malformed or non-conforming: each must have an entry.
const char* const kMalformed[] = {
    "031", "063", "070", "086", "093", "105", "130", "140", "143", "144", "146", "147", "148",
    "149", "150", "151", "152", "155", "156", "003", "004", "005", "009", "013", "015", "021",
    "041", "042", "045", "046", "050", "067", "084", "107", "120", "121", "122", "123", "124"};

hls::ParseOptions corpus_options() {
  hls::ParseOptions options;
  // 113 imports a variable from its (absent) master playlist.
  options.imported_variables = {{"mvpVariable", "mvp"}};
  return options;
}

std::vector<fs::path> playlists_in(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".m3u8")
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("shared corpus: every playlist is rewritten correctly or rejected as the table says") {
  const fs::path dir = fs::path(BALANCER_SHARED_DIR) / "hls-corpus";
  if (!fs::is_directory(dir)) {
    MESSAGE("skipped: ", dir.string(), " is not present");
    return;
  }
  const auto& table = corpus_expectations();
  for (const char* prefix : kMalformed) {
    bool listed = std::any_of(table.begin(), table.end(),
                              [&](const auto& e) { return e.first.starts_with(prefix); });
    INFO("malformed file ", prefix, " needs an expected outcome");
    CHECK(listed);
  }

  const hls::ParseOptions options = corpus_options();
  std::map<Outcome, int> counts;
  const auto files = playlists_in(dir);
  CHECK(files.size() == 114);
  for (const auto& path : files) {
    const std::string name = path.filename().string();
    CAPTURE(name);
    auto source = hls_test::read_file(path);
    REQUIRE(source.has_value());
    auto it = table.find(name);
    const Expected expected = it == table.end() ? Expected{Outcome::accepted, {}} : it->second;
    auto result = hls::parse_playlist(*source, hls_test::kBase, options);
    if (expected.outcome == Outcome::rejected) {
      REQUIRE_FALSE(result.ok());
      CHECK(expected.codes.count(result.error().code) == 1);
      CHECK(result.error().message.size() > 10);
      ++counts[Outcome::rejected];
      continue;
    }
    INFO("error: ", result.ok() ? std::string() : result.error().message);
    REQUIRE(result.ok());
    std::set<std::string> codes;
    for (const auto& w : result->warnings) {
      codes.insert(w.code);
      CHECK(w.message.starts_with(w.line ? "line " : "no "));
    }
    CHECK(codes == expected.codes);
    ++counts[codes.empty() ? Outcome::accepted : Outcome::tolerated];
    hls_test::check_rewrite_properties(*result, *source, options);
  }
  MESSAGE("corpus: ", counts[Outcome::accepted], " accepted, ", counts[Outcome::tolerated],
          " tolerated with warnings, ", counts[Outcome::rejected], " rejected");
}

TEST_CASE("shared corpus: facts of a few well-known playlists") {
  const fs::path dir = fs::path(BALANCER_SHARED_DIR) / "hls-corpus";
  if (!fs::is_directory(dir)) {
    MESSAGE("skipped: ", dir.string(), " is not present");
    return;
  }
  auto load = [&](const char* name) {
    auto source = hls_test::read_file(dir / name);
    REQUIRE(source.has_value());
    return hls_test::parse_ok(*source, corpus_options());
  };
  auto rfc_master = load("001_rfc8216-8.4-master.m3u8");
  CHECK(rfc_master.kind == hls::PlaylistKind::master);
  CHECK(rfc_master.master.variants.size() == 4);

  auto llhls = load("100_llhls-spec-example-blocking-reload.m3u8");
  CHECK(llhls.media.server_control.can_block_reload);
  CHECK_FALSE(llhls.media.parts.empty());
  CHECK_FALSE(llhls.media.preload_hints.empty());
  CHECK_FALSE(llhls.media.rendition_reports.empty());

  auto delta = load("101_llhls-spec-example-delta-update-skip.m3u8");
  CHECK(delta.media.is_delta_update());

  auto define = load("018_master-ext-x-define-variables.m3u8");
  for (const auto& slot : define.tmpl.slots()) CHECK(slot.uri.find("{$") == std::string::npos);
  CHECK(define.tmpl.slots().back().uri == "https://example.com/sec/avc1.64001f/2.m3u8");

  auto steering = load("010_master-content-steering-pathways.m3u8");
  CHECK(steering.tmpl.slots()[0].role == hls::Role::other);
  CHECK(steering.tmpl.slots()[0].uri == "https://origin.example/steering?video=00012");
}

TEST_CASE("own seed corpus: every playlist that parses satisfies the rewrite properties") {
  const fs::path dir = fs::path(BALANCER_SOURCE_DIR) / "tests/fuzz/hls_playlist/corpus";
  REQUIRE(fs::is_directory(dir));
  hls::ParseOptions options;
  options.imported_variables = {{"imp", "imported/v"}, {"x", "X"}};
  int parsed = 0;
  int rejected = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.starts_with(".")) continue;
    CAPTURE(name);
    auto source = hls_test::read_file(entry.path());
    REQUIRE(source.has_value());
    auto result = hls::parse_playlist(*source, hls_test::kBase, options);
    if (name.starts_with("reject_")) {
      CHECK_FALSE(result.ok());
    }
    if (!result.ok()) {
      ++rejected;
      continue;
    }
    ++parsed;
    hls_test::check_rewrite_properties(*result, *source, options);
  }
  CHECK(parsed >= 20);
  MESSAGE("seed corpus: ", parsed, " parsed, ", rejected, " rejected");
}
