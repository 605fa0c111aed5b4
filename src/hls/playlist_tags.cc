// One handler per HLS tag (RFC 8216bis section 4.4), called by the parser's line
// loop through the tag table in playlist.cc.
#include <algorithm>
#include <cmath>

#include "hls/playlist_parser.h"

namespace hls::parser_internal {

// Only reached after the header, so this is a second one.
bool Parser::on_extm3u(std::string_view /*tag*/, std::string_view /*value*/, size_t line) {
  return fail("duplicate_header", line, "second #EXTM3U: two playlists concatenated in one body");
}

bool Parser::on_extinf(std::string_view /*tag*/, std::string_view value, size_t line) {
  if (pending_.has_extinf) {
    warn("missing_uri", pending_.extinf_line, "#EXTINF is not followed by a URI line");
  }
  size_t comma = value.find(',');
  std::string_view duration = trim_blanks(value.substr(0, comma));
  auto d = parse_decimal_float(duration);
  if (!d) {
    return fail("bad_extinf", line,
                "#EXTINF duration " + shown(duration) + " is not a non-negative decimal number");
  }
  pending_.has_extinf = true;
  pending_.extinf_line = line;
  pending_.duration = d;
  return true;
}

bool Parser::on_byterange(std::string_view /*tag*/, std::string_view value, size_t line) {
  auto r = parse_byte_range(trim_blanks(value));
  if (!r) {
    warn("bad_attribute_value", line,
         "#EXT-X-BYTERANGE " + shown(value) + " is not <length>[@<offset>] (ignored)");
  } else {
    pending_.byte_range = ByteRange{r->length, r->offset};
    pending_.byte_range_line = line;
  }
  return true;
}

bool Parser::on_discontinuity(std::string_view /*tag*/, std::string_view /*value*/,
                              size_t /*line*/) {
  pending_.discontinuity = true;
  return true;
}

bool Parser::on_gap(std::string_view /*tag*/, std::string_view /*value*/, size_t /*line*/) {
  pending_.gap = true;
  return true;
}

bool Parser::on_program_date_time(std::string_view /*tag*/, std::string_view value,
                                  size_t /*line*/) {
  pending_.program_date_time = std::string(trim_blanks(value));
  return true;
}

bool Parser::on_key(std::string_view tag, std::string_view value, size_t line) {
  return add_key(attributes(value, tag, line), false, tag, line);
}

bool Parser::on_session_key(std::string_view tag, std::string_view value, size_t line) {
  return add_key(attributes(value, tag, line), true, tag, line);
}

bool Parser::on_map(std::string_view tag, std::string_view value, size_t line) {
  std::optional<size_t> slot;
  if (!take_required_uri(attributes(value, tag, line), "URI", Role::chunk, tag, line, slot)) {
    return false;
  }
  current_map_ = slot;
  return true;
}

bool Parser::on_part(std::string_view tag, std::string_view value, size_t line) {
  AttributeList attrs = attributes(value, tag, line);
  std::optional<size_t> slot;
  if (!take_required_uri(attrs, "URI", Role::chunk, tag, line, slot)) return false;
  if (!slot) return true;  // warned; a part without a URI is not kept
  Part part;
  part.segment_index = pl_->media.segments.size();
  part.duration = attr_float(attrs, "DURATION", tag, line);
  part.uri_slot = *slot;
  part.independent = attr_yes(attrs, "INDEPENDENT");
  part.gap = attr_yes(attrs, "GAP");
  part.byte_range = attr_byte_range(attrs, "BYTERANGE", tag, line);
  part.line = line;
  pl_->media.parts.push_back(std::move(part));
  return true;
}

bool Parser::on_preload_hint(std::string_view tag, std::string_view value, size_t line) {
  AttributeList attrs = attributes(value, tag, line);
  PreloadHint hint;
  hint.line = line;
  if (!take_required_uri(attrs, "URI", Role::chunk, tag, line, hint.uri_slot)) return false;
  hint.type = attr_text(attrs, "TYPE");
  if (hint.type != "PART" && hint.type != "MAP") {
    warn("bad_attribute_value", line,
         "#EXT-X-PRELOAD-HINT TYPE=" + shown(hint.type) + " is neither PART nor MAP");
  }
  hint.byterange_start = attr_int(attrs, "BYTERANGE-START", tag, line);
  hint.byterange_length = attr_int(attrs, "BYTERANGE-LENGTH", tag, line);
  pl_->media.preload_hints.push_back(std::move(hint));
  return true;
}

bool Parser::on_rendition_report(std::string_view tag, std::string_view value, size_t line) {
  AttributeList attrs = attributes(value, tag, line);
  RenditionReport report;
  report.line = line;
  if (!take_required_uri(attrs, "URI", Role::playlist, tag, line, report.uri_slot)) return false;
  report.last_msn = attr_int(attrs, "LAST-MSN", tag, line);
  report.last_part = attr_int(attrs, "LAST-PART", tag, line);
  pl_->media.rendition_reports.push_back(std::move(report));
  return true;
}

bool Parser::on_skip(std::string_view tag, std::string_view value, size_t line) {
  AttributeList attrs = attributes(value, tag, line);
  const Attribute* a = attrs.find("SKIPPED-SEGMENTS");
  auto n = a ? parse_decimal_integer(a->value) : std::nullopt;
  if (!n) return fail("bad_skip", line, "#EXT-X-SKIP needs SKIPPED-SEGMENTS=<decimal integer>");
  MediaInfo& media = pl_->media;
  if (media.skipped_segments) return fail("bad_skip", line, "second #EXT-X-SKIP");
  if (!media.segments.empty()) {
    return fail("bad_skip", line, "#EXT-X-SKIP after the first segment");
  }
  media.skipped_segments = *n;
  return true;
}

bool Parser::on_part_inf(std::string_view tag, std::string_view value, size_t line) {
  pl_->media.part_target = attr_float(attributes(value, tag, line), "PART-TARGET", tag, line);
  return true;
}

bool Parser::on_server_control(std::string_view tag, std::string_view value, size_t line) {
  AttributeList attrs = attributes(value, tag, line);
  ServerControl& sc = pl_->media.server_control;
  sc.can_block_reload = attr_yes(attrs, "CAN-BLOCK-RELOAD");
  sc.can_skip_until = attr_float(attrs, "CAN-SKIP-UNTIL", tag, line);
  sc.can_skip_dateranges = attr_yes(attrs, "CAN-SKIP-DATERANGES");
  sc.hold_back = attr_float(attrs, "HOLD-BACK", tag, line);
  sc.part_hold_back = attr_float(attrs, "PART-HOLD-BACK", tag, line);
  return true;
}

bool Parser::on_daterange(std::string_view tag, std::string_view value, size_t line) {
  ++pl_->media.dateranges;
  // Kept as it is, except the HLS Interstitials URIs, which a client fetches.
  if (value.find("X-ASSET-") == std::string_view::npos) return true;
  AttributeList attrs = attributes(value, tag, line);
  const Attribute* asset_uri = attrs.find("X-ASSET-URI");
  const Attribute* asset_list = attrs.find("X-ASSET-LIST");
  // Slots must be in source order.
  std::string_view order[2] = {"X-ASSET-URI", "X-ASSET-LIST"};
  if (asset_uri && asset_list && asset_list->value_pos < asset_uri->value_pos) {
    std::swap(order[0], order[1]);
  }
  for (std::string_view name : order) {
    std::optional<size_t> slot;
    if (!take_uri(attrs, name, Role::other, tag, line, slot)) return false;
  }
  return true;
}

// The URI is on the next line; handle_uri_line() fills it in.
bool Parser::on_stream_inf(std::string_view tag, std::string_view value, size_t line) {
  AttributeList attrs = attributes(value, tag, line);
  MasterInfo& master = pl_->master;
  master.variants.push_back(variant_facts(attrs, Variant::Kind::stream, tag, line));
  pending_variant_ = master.variants.size() - 1;
  pending_variant_line_ = line;
  return true;
}

bool Parser::on_iframe_stream_inf(std::string_view tag, std::string_view value, size_t line) {
  return add_iframe_or_image_variant(Variant::Kind::iframe, tag, value, line);
}

bool Parser::on_image_stream_inf(std::string_view tag, std::string_view value, size_t line) {
  return add_iframe_or_image_variant(Variant::Kind::image, tag, value, line);
}

// Unlike EXT-X-STREAM-INF, these carry their URI as an attribute.
bool Parser::add_iframe_or_image_variant(Variant::Kind kind, std::string_view tag,
                                         std::string_view value, size_t line) {
  AttributeList attrs = attributes(value, tag, line);
  Variant v = variant_facts(attrs, kind, tag, line);
  if (!take_required_uri(attrs, "URI", Role::playlist, tag, line, v.uri_slot)) return false;
  pl_->master.variants.push_back(std::move(v));
  return true;
}

bool Parser::on_media(std::string_view tag, std::string_view value, size_t line) {
  AttributeList attrs = attributes(value, tag, line);
  Rendition r;
  r.line = line;
  if (!take_uri(attrs, "URI", Role::playlist, tag, line, r.uri_slot)) return false;
  r.type = attr_text(attrs, "TYPE");
  r.group_id = attr_text(attrs, "GROUP-ID");
  r.name = attr_text(attrs, "NAME");
  r.language = attr_text(attrs, "LANGUAGE");
  r.is_default = attr_yes(attrs, "DEFAULT");
  r.autoselect = attr_yes(attrs, "AUTOSELECT");
  pl_->master.renditions.push_back(std::move(r));
  return true;
}

// No facts are kept; the URI is taken only so that it is rewritten.
bool Parser::on_session_data(std::string_view tag, std::string_view value, size_t line) {
  std::optional<size_t> slot;
  return take_uri(attributes(value, tag, line), "URI", Role::other, tag, line, slot);
}

bool Parser::on_content_steering(std::string_view tag, std::string_view value, size_t line) {
  std::optional<size_t> slot;
  return take_required_uri(attributes(value, tag, line), "SERVER-URI", Role::other, tag, line,
                           slot);
}

bool Parser::on_define(std::string_view tag, std::string_view value, size_t line) {
  return define_variable(attributes(value, tag, line), line);
}

bool Parser::on_target_duration(std::string_view /*tag*/, std::string_view value, size_t line) {
  std::string_view v = trim_blanks(value);
  auto n = parse_decimal_integer(v);
  if (!n) {
    auto f = parse_decimal_float(v);
    if (!f || *f > 1e15) {
      return fail("bad_target_duration", line,
                  "#EXT-X-TARGETDURATION " + shown(v) + " is not a decimal integer");
    }
    warn("bad_attribute_value", line,
         "#EXT-X-TARGETDURATION " + shown(v) + " is not an integer (rounded up)");
    n = static_cast<uint64_t>(std::ceil(*f));
  }
  if (seen_target_duration_) {
    warn("duplicate_tag", line, "second #EXT-X-TARGETDURATION (ignored)");
  } else {
    pl_->media.target_duration = n;
    seen_target_duration_ = true;
  }
  return true;
}

bool Parser::on_media_sequence(std::string_view /*tag*/, std::string_view value, size_t line) {
  auto n = parse_decimal_integer(trim_blanks(value));
  if (!n) {
    return fail("bad_media_sequence", line,
                "#EXT-X-MEDIA-SEQUENCE " + shown(value) + " is not a decimal integer");
  }
  if (seen_media_sequence_) {
    warn("duplicate_tag", line, "second #EXT-X-MEDIA-SEQUENCE (ignored)");
  } else {
    pl_->media.media_sequence = *n;
    seen_media_sequence_ = true;
  }
  return true;
}

bool Parser::on_discontinuity_sequence(std::string_view /*tag*/, std::string_view value,
                                       size_t line) {
  auto n = parse_decimal_integer(trim_blanks(value));
  if (!n) {
    return fail("bad_discontinuity_sequence", line,
                "#EXT-X-DISCONTINUITY-SEQUENCE " + shown(value) + " is not a decimal integer");
  }
  pl_->media.discontinuity_sequence = *n;
  return true;
}

bool Parser::on_endlist(std::string_view /*tag*/, std::string_view /*value*/, size_t /*line*/) {
  pl_->media.endlist = true;
  return true;
}

bool Parser::on_playlist_type(std::string_view /*tag*/, std::string_view value, size_t line) {
  std::string_view v = trim_blanks(value);
  if (v == "VOD") {
    pl_->media.type = PlaylistType::vod;
  } else if (v == "EVENT") {
    pl_->media.type = PlaylistType::event;
  } else {
    warn("bad_attribute_value", line,
         "#EXT-X-PLAYLIST-TYPE " + shown(v) + " is neither VOD nor EVENT (ignored)");
  }
  return true;
}

bool Parser::on_iframes_only(std::string_view /*tag*/, std::string_view /*value*/,
                             size_t /*line*/) {
  pl_->media.iframes_only = true;
  return true;
}

bool Parser::on_independent_segments(std::string_view /*tag*/, std::string_view /*value*/,
                                     size_t /*line*/) {
  pl_->independent_segments = true;
  return true;
}

// The first valid one wins.
bool Parser::on_version(std::string_view /*tag*/, std::string_view value, size_t line) {
  auto n = parse_decimal_integer(trim_blanks(value));
  if (!n) {
    warn("bad_attribute_value", line,
         "#EXT-X-VERSION " + shown(value) + " is not a decimal integer (ignored)");
  } else if (!pl_->version) {
    pl_->version = n;
  }
  return true;
}

}  // namespace hls::parser_internal
