// Fuzz target for the HLS playlist library: parse, render with several mappers,
// re-parse, and abort on any broken invariant.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "hls/playlist.h"
#include "hls/rewrite.h"
#include "hls/uri.h"
#include "hls/window.h"
#include "support/hls_tags.h"

namespace {

constexpr std::string_view kBases[] = {
    "https://origin.example/live/channel/index.m3u8?token=abc&v=%7B%24x%7D",
    "http://a/b/c/d;p?q",
    "https://o.example",
};

// Codes parse_playlist() documents.
bool known_error(const std::string& code) {
  static const char* const kCodes[] = {"too_large",
                                       "bad_base_url",
                                       "empty_playlist",
                                       "missing_header",
                                       "duplicate_header",
                                       "mixed_playlist",
                                       "bad_attribute_list",
                                       "bad_uri",
                                       "undefined_variable",
                                       "duplicate_variable",
                                       "bad_extinf",
                                       "bad_target_duration",
                                       "bad_media_sequence",
                                       "bad_discontinuity_sequence",
                                       "bad_skip"};
  for (const char* c : kCodes) {
    if (code == c) return true;
  }
  return false;
}

std::string role_uri(const hls::UriSlot& slot) {
  return "https://" + std::string(hls::role_name(slot.role)) +
         ".example/r?u=" + hls::percent_encode_component(slot.uri);
}

bool uri_is_clean(std::string_view uri) {
  if (!hls::is_absolute_uri(uri) || hls::has_forbidden_uri_chars(uri)) return false;
  for (char ch : uri) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80 || c == ' ' || c == '"' || c == '<' || c == '>' || c == '{' || c == '}') {
      return false;
    }
  }
  return true;
}

void check_facts(const hls::Playlist& pl) {
  const auto& slots = pl.tmpl.slots();
  auto role_of = [&](size_t i) {
    FUZZ_CHECK(i < slots.size());
    return slots[i].role;
  };
  for (const auto& v : pl.master.variants) {
    if (v.uri_slot) FUZZ_CHECK(role_of(*v.uri_slot) == hls::Role::playlist);
  }
  for (const auto& r : pl.master.renditions) {
    if (r.uri_slot) FUZZ_CHECK(role_of(*r.uri_slot) == hls::Role::playlist);
  }
  for (const auto& k : pl.master.session_keys) {
    if (k.uri_slot) FUZZ_CHECK(role_of(*k.uri_slot) == hls::Role::key);
  }
  for (const auto& k : pl.media.keys) {
    if (k.uri_slot) FUZZ_CHECK(role_of(*k.uri_slot) == hls::Role::key);
  }
  uint64_t expected_sequence = pl.media.media_sequence + pl.media.skipped_segments.value_or(0);
  for (const auto& s : pl.media.segments) {
    FUZZ_CHECK(role_of(s.uri_slot) == hls::Role::chunk);
    if (s.map_slot) FUZZ_CHECK(role_of(*s.map_slot) == hls::Role::chunk);
    if (s.duration) FUZZ_CHECK(*s.duration >= 0);
    FUZZ_CHECK(s.sequence == expected_sequence++);
  }
  for (const auto& p : pl.media.parts) {
    FUZZ_CHECK(role_of(p.uri_slot) == hls::Role::chunk);
    FUZZ_CHECK(p.segment_index <= pl.media.segments.size());
  }
  for (const auto& h : pl.media.preload_hints) {
    if (h.uri_slot) FUZZ_CHECK(role_of(*h.uri_slot) == hls::Role::chunk);
  }
  for (const auto& r : pl.media.rendition_reports) {
    if (r.uri_slot) FUZZ_CHECK(role_of(*r.uri_slot) == hls::Role::playlist);
  }
  if (pl.kind == hls::PlaylistKind::master) {
    FUZZ_CHECK(pl.media.segments.empty() && pl.media.parts.empty());
  } else {
    FUZZ_CHECK(pl.master.variants.empty() && pl.master.renditions.empty());
  }
}

// Same shape: kind, slots (role, tag, quoted), tag sequence, main fact counts.
void check_same_shape(const hls::Playlist& a, const hls::Playlist& b) {
  FUZZ_CHECK(a.kind == b.kind);
  FUZZ_CHECK(a.tmpl.slots().size() == b.tmpl.slots().size());
  for (size_t i = 0; i < a.tmpl.slots().size(); ++i) {
    const auto& x = a.tmpl.slots()[i];
    const auto& y = b.tmpl.slots()[i];
    FUZZ_CHECK(x.role == y.role && x.tag == y.tag && x.quoted == y.quoted && x.line == y.line);
  }
  FUZZ_CHECK(hls_test::tag_sequence(a.tmpl.source()) == hls_test::tag_sequence(b.tmpl.source()));
  FUZZ_CHECK(a.master.variants.size() == b.master.variants.size());
  FUZZ_CHECK(a.master.renditions.size() == b.master.renditions.size());
  FUZZ_CHECK(a.media.segments.size() == b.media.segments.size());
  FUZZ_CHECK(a.media.parts.size() == b.media.parts.size());
  FUZZ_CHECK(a.media.media_sequence == b.media.media_sequence);
  FUZZ_CHECK(a.media.endlist == b.media.endlist);
}

// What a transform returned parsed (hls/window.h) is what parsing its text gives: the same
// facts, literals and slots. Warnings aside.
bool same_as_parsed(const hls::Playlist& built, const hls::Playlist& parsed) {
  bool same = built.kind == parsed.kind && built.version == parsed.version &&
              built.independent_segments == parsed.independent_segments &&
              built.variables == parsed.variables && built.master == parsed.master &&
              built.media == parsed.media && built.tmpl.literals() == parsed.tmpl.literals() &&
              built.tmpl.slots().size() == parsed.tmpl.slots().size();
  for (size_t i = 0; same && i < built.tmpl.slots().size(); ++i) {
    const hls::UriSlot& a = built.tmpl.slots()[i];
    const hls::UriSlot& b = parsed.tmpl.slots()[i];
    same = a.role == b.role && a.quoted == b.quoted && a.tag == b.tag &&
           a.attribute == b.attribute && a.uri == b.uri && a.original == b.original &&
           a.line == b.line;
  }
  if (!same) std::fprintf(stderr, "a transform's playlist differs from its text parsed\n");
  return same;
}

// A live copy continued of the source's lines alone (the balancer's, after a switch: the first
// third of the segments left out, numbers moved, reports renumbered, the end tag held back) is
// spliced as what its text parses to, and lists the source's last segment last.
void check_continuation(const hls::Playlist& pl, std::string_view base,
                        const hls::ParseOptions& options) {
  const auto& segments = pl.media.segments;
  if (pl.kind != hls::PlaylistKind::media || pl.media.is_delta_update()) return;
  hls::Continuation plan;
  plan.first_segment = segments.size() / 3;
  plan.media_sequence = 1000 + plan.first_segment;
  plan.discontinuity_sequence = 3;
  plan.report_msn_offset = 1000 - static_cast<int64_t>(pl.media.media_sequence % 1000);
  auto copy = hls::continued(pl, plan, base, options);
  if (!copy) std::fprintf(stderr, "continued copy failed: %s\n", copy.error().message.c_str());
  FUZZ_CHECK(copy.ok());
  auto again = hls::parse_playlist(copy->tmpl.source(), base, options);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(same_as_parsed(*copy, *again));
  FUZZ_CHECK(!again->media.endlist);
  FUZZ_CHECK(again->media.segments.size() == segments.size() - plan.first_segment);
  if (!segments.empty()) {
    FUZZ_CHECK(again->tmpl.slots()[again->media.segments.back().uri_slot].uri ==
               pl.tmpl.slots()[segments.back().uri_slot].uri);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string_view base = kBases[size % std::size(kBases)];
  hls::ParseOptions options;
  options.imported_variables = {{"imp", "imported/v"}, {"x", "X"}};

  auto parsed = hls::parse_playlist(input, base, options);
  if (!parsed) {
    FUZZ_CHECK(known_error(parsed.error().code));
    FUZZ_CHECK(!parsed.error().message.empty());
    return 0;
  }
  const hls::Playlist& pl = *parsed;
  const hls::Template& tmpl = pl.tmpl;

  // Structure: literals and originals tile the source exactly.
  FUZZ_CHECK(tmpl.literals().size() == tmpl.slots().size() + 1);
  FUZZ_CHECK(tmpl.source() == input);
  size_t total = 0;
  for (auto lit : tmpl.literals()) total += lit.size();
  FUZZ_CHECK(total == tmpl.literal_bytes());
  for (const auto& slot : tmpl.slots()) {
    total += slot.original.size();
    FUZZ_CHECK(uri_is_clean(slot.uri));
    // Resolution is idempotent: an absolute result resolves to itself.
    FUZZ_CHECK(hls::resolve_uri(base, slot.uri) == slot.uri);
    FUZZ_CHECK(!slot.original.empty());
    FUZZ_CHECK(slot.original.find_first_of("\r\n") == std::string_view::npos);
    if (slot.quoted) FUZZ_CHECK(slot.original.find('"') == std::string_view::npos);
  }
  FUZZ_CHECK(total == input.size());
  for (const auto& w : pl.warnings) FUZZ_CHECK(!w.code.empty() && !w.message.empty());
  check_facts(pl);

  // Identity mapper reproduces the input byte for byte.
  const std::string same =
      hls::render(tmpl, [](const hls::UriSlot& s) { return std::string(s.original); });
  FUZZ_CHECK(same == input);

  // Role mapper: the rewrite parses again, with the same shape and the mapped URIs.
  const std::string rewritten = hls::render(tmpl, role_uri);
  auto again = hls::parse_playlist(rewritten, base, options);
  if (!again) {
    std::fprintf(stderr, "re-parse failed: %s\n", again.error().message.c_str());
  }
  FUZZ_CHECK(again.ok());
  check_same_shape(pl, *again);
  for (size_t i = 0; i < tmpl.slots().size(); ++i) {
    FUZZ_CHECK(again->tmpl.slots()[i].uri == role_uri(tmpl.slots()[i]));
  }

  // Hostile mapper (bytes taken from the input): escaping keeps the structure.
  // The re-parse may reject the URIs themselves, nothing else.
  const std::string_view noise = input.substr(size / 2, 40);
  size_t counter = 0;
  const std::string hostile_text = hls::render(tmpl, [&](const hls::UriSlot&) {
    std::string r(noise.substr(0, (counter++ % (noise.size() + 1))));
    if (r.empty()) r = "x";
    return r;
  });
  auto hostile = hls::parse_playlist(hostile_text, base, options);
  if (hostile) {
    check_same_shape(pl, *hostile);
  } else {
    const std::string& code = hostile.error().code;
    if (code != "bad_uri" && code != "undefined_variable") {
      std::fprintf(stderr, "hostile re-parse failed: %s\n", hostile.error().message.c_str());
    }
    FUZZ_CHECK(code == "bad_uri" || code == "undefined_variable");
  }

  // A window of the newest half of the segments parses again, numbered as the source did,
  // and ends where the source ends.
  const auto& segments = pl.media.segments;
  if (pl.kind == hls::PlaylistKind::media && !pl.media.is_delta_update() && segments.size() >= 2) {
    const size_t keep = segments.size() / 2;
    auto window = hls::newest_segments(pl, keep);
    FUZZ_CHECK(window.ok());
    auto cut = hls::parse_playlist(window->tmpl.source(), base, options);
    if (!cut) std::fprintf(stderr, "window re-parse failed: %s\n", cut.error().message.c_str());
    FUZZ_CHECK(cut.ok());
    FUZZ_CHECK(same_as_parsed(*window, *cut));
    FUZZ_CHECK(cut->media.segments.size() == keep);
    FUZZ_CHECK(cut->media.segments.front().sequence == segments[segments.size() - keep].sequence);
    FUZZ_CHECK(cut->tmpl.slots()[cut->media.segments.back().uri_slot].uri ==
               tmpl.slots()[segments.back().uri_slot].uri);
    FUZZ_CHECK(cut->media.discontinuity_sequence >= pl.media.discontinuity_sequence);
    FUZZ_CHECK(cut->media.parts.size() <= pl.media.parts.size());
  }

  check_continuation(pl, base, options);

  // A delta update parses again, numbered as the source, ends where the source ends, and
  // lists exactly the slots it says, each with the source slot's URI.
  if (pl.kind == hls::PlaylistKind::media && !pl.media.is_delta_update() &&
      pl.media.server_control.can_skip_until) {
    auto delta = hls::delta_update(pl);
    FUZZ_CHECK(delta.ok());
    auto skipped = hls::parse_playlist(delta->playlist.tmpl.source(), base, options);
    if (!skipped)
      std::fprintf(stderr, "delta re-parse failed: %s\n", skipped.error().message.c_str());
    FUZZ_CHECK(skipped.ok());
    FUZZ_CHECK(same_as_parsed(delta->playlist, *skipped));
    FUZZ_CHECK(skipped->media.media_sequence == pl.media.media_sequence);
    FUZZ_CHECK(skipped->media.skipped_segments.value_or(0) == delta->skipped);
    FUZZ_CHECK(skipped->media.segments.size() + delta->skipped == segments.size());
    FUZZ_CHECK(skipped->tmpl.slots().size() == delta->slots.size());
    for (size_t i = 0; i < delta->slots.size() && i < skipped->tmpl.slots().size(); ++i) {
      FUZZ_CHECK(skipped->tmpl.slots()[i].uri == tmpl.slots()[delta->slots[i]].uri);
    }
  }
  return 0;
}
