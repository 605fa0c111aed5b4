// Helpers shared by the hls tests: parsing with a fixed playlist URL, the
// mappers used by the rewrite properties, and tag extraction.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "hls/playlist.h"
#include "hls/rewrite.h"
#include "hls/uri.h"
#include "support/hls_tags.h"

namespace hls_test {

inline constexpr std::string_view kBase =
    "https://origin.example/live/channel/index.m3u8?token=abc";

// Parses and REQUIREs success (the error message is shown on failure).
inline hls::Playlist parse_ok(std::string_view text, const hls::ParseOptions& options = {},
                              std::string_view base = kBase) {
  auto result = hls::parse_playlist(text, base, options);
  INFO("error: ", result.ok() ? std::string() : result.error().message);
  REQUIRE(result.ok());
  return std::move(result).value();
}

// Parses and REQUIREs failure.
inline hls::Issue parse_error(std::string_view text, const hls::ParseOptions& options = {},
                              std::string_view base = kBase) {
  auto result = hls::parse_playlist(text, base, options);
  REQUIRE_FALSE(result.ok());
  return result.error();
}

// Warning codes, in order.
inline std::vector<std::string> warning_codes(const hls::Playlist& pl) {
  std::vector<std::string> codes;
  for (const auto& w : pl.warnings) codes.push_back(w.code);
  return codes;
}

inline std::string identity_mapper(const hls::UriSlot& slot) {
  return std::string(slot.original);
}

// "https://<role>.example/r?u=<resolved URI, percent-encoded>".
inline std::string role_mapper(const hls::UriSlot& slot) {
  return "https://" + std::string(hls::role_name(slot.role)) +
         ".example/r?u=" + hls::percent_encode_component(slot.uri);
}

// The role each slot tag must get.
inline hls::Role expected_role(std::string_view tag) {
  if (tag == "EXTINF" || tag == "EXT-X-MAP" || tag == "EXT-X-PART" || tag == "EXT-X-PRELOAD-HINT") {
    return hls::Role::chunk;
  }
  if (tag == "EXT-X-KEY" || tag == "EXT-X-SESSION-KEY") return hls::Role::key;
  if (tag == "EXT-X-SESSION-DATA" || tag == "EXT-X-CONTENT-STEERING" || tag == "EXT-X-DATERANGE") {
    return hls::Role::other;
  }
  return hls::Role::playlist;  // STREAM-INF, I-FRAME/IMAGE-STREAM-INF, MEDIA, RENDITION-REPORT,
                               // stray
}

inline std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The rewrite property: identity render is byte-for-byte; a role render parses
// again with the same tags and slots, each URI on its role's host and carrying
// the original resolved URI.
inline void check_rewrite_properties(const hls::Playlist& pl, std::string_view source,
                                     const hls::ParseOptions& options = {},
                                     std::string_view base = kBase) {
  CHECK(hls::render(pl.tmpl, identity_mapper) == source);
  for (const auto& slot : pl.tmpl.slots()) {
    INFO("slot tag ", std::string(slot.tag), " line ", slot.line);
    CHECK(slot.role == expected_role(slot.tag));
  }

  const std::string rewritten = hls::render(pl.tmpl, role_mapper);
  auto again = hls::parse_playlist(rewritten, base, options);
  INFO("re-parse error: ", again.ok() ? std::string() : again.error().message);
  REQUIRE(again.ok());
  CHECK(again->kind == pl.kind);
  CHECK(tag_sequence(rewritten) == tag_sequence(source));
  REQUIRE(again->tmpl.slots().size() == pl.tmpl.slots().size());
  for (size_t i = 0; i < pl.tmpl.slots().size(); ++i) {
    const hls::UriSlot& before = pl.tmpl.slots()[i];
    const hls::UriSlot& after = again->tmpl.slots()[i];
    INFO("slot ", i, " line ", before.line, " ", before.uri);
    CHECK(after.role == before.role);
    CHECK(after.tag == before.tag);
    const std::string host = "https://" + std::string(hls::role_name(before.role)) + ".example/";
    CHECK(after.uri.starts_with(host));
    CHECK(hls::query_param(after.uri, "u") == before.uri);
  }
  CHECK(again->master.variants.size() == pl.master.variants.size());
  CHECK(again->media.segments.size() == pl.media.segments.size());
}

// A playlist a transform returned parsed (hls/window.h) is what parsing its text makes of it:
// the same facts, literals and slots (bytes, URIs, roles, tags, lines). Warnings aside.
inline void check_as_parsed(const hls::Playlist& built, const hls::ParseOptions& options = {},
                            std::string_view base = kBase) {
  const hls::Playlist parsed = parse_ok(built.tmpl.source(), options, base);
  CHECK(built.kind == parsed.kind);
  CHECK(built.version == parsed.version);
  CHECK(built.independent_segments == parsed.independent_segments);
  CHECK(built.variables == parsed.variables);
  CHECK(built.master == parsed.master);
  CHECK(built.media == parsed.media);
  CHECK(built.tmpl.literals() == parsed.tmpl.literals());
  REQUIRE(built.tmpl.slots().size() == parsed.tmpl.slots().size());
  auto facts = [](const hls::UriSlot& s) {
    return std::make_tuple(s.role, s.quoted, s.tag, s.attribute, s.uri, s.original, s.line);
  };
  for (size_t i = 0; i < built.tmpl.slots().size(); ++i) {
    const hls::UriSlot& slot = built.tmpl.slots()[i];
    INFO("slot ", i, " line ", slot.line, " ", slot.uri);
    CHECK((facts(slot) == facts(parsed.tmpl.slots()[i])));
    CHECK(slot.original.data() >= built.tmpl.source().data());  // a view into its own bytes
  }
}

}  // namespace hls_test
