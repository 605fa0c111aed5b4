#include "hls/playlist.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "hls/playlist_parser.h"

namespace hls {
namespace parser_internal {

// The tags the parser recognises; any other tag is kept as it is.
// EXT-X-SESSION-KEY is master-only in the RFC, but is found in media playlists and
// is harmless there (players ignore it), so it does not decide the kind.
const Parser::TagInfo Parser::kTags[] = {
    {"EXTM3U", Scope::neutral, &Parser::on_extm3u},
    {"EXTINF", Scope::media, &Parser::on_extinf},
    {"EXT-X-BYTERANGE", Scope::media, &Parser::on_byterange},
    {"EXT-X-DISCONTINUITY", Scope::media, &Parser::on_discontinuity},
    {"EXT-X-GAP", Scope::media, &Parser::on_gap},
    {"EXT-X-PROGRAM-DATE-TIME", Scope::media, &Parser::on_program_date_time},
    {"EXT-X-KEY", Scope::media, &Parser::on_key},
    {"EXT-X-SESSION-KEY", Scope::neutral, &Parser::on_session_key},
    {"EXT-X-MAP", Scope::media, &Parser::on_map},
    {"EXT-X-PART", Scope::media, &Parser::on_part},
    {"EXT-X-PRELOAD-HINT", Scope::media, &Parser::on_preload_hint},
    {"EXT-X-RENDITION-REPORT", Scope::media, &Parser::on_rendition_report},
    {"EXT-X-SKIP", Scope::media, &Parser::on_skip},
    {"EXT-X-PART-INF", Scope::media, &Parser::on_part_inf},
    {"EXT-X-SERVER-CONTROL", Scope::media, &Parser::on_server_control},
    {"EXT-X-DATERANGE", Scope::media, &Parser::on_daterange},
    {"EXT-X-STREAM-INF", Scope::master, &Parser::on_stream_inf},
    {"EXT-X-I-FRAME-STREAM-INF", Scope::master, &Parser::on_iframe_stream_inf},
    {"EXT-X-IMAGE-STREAM-INF", Scope::master, &Parser::on_image_stream_inf},
    {"EXT-X-MEDIA", Scope::master, &Parser::on_media},
    {"EXT-X-SESSION-DATA", Scope::master, &Parser::on_session_data},
    {"EXT-X-CONTENT-STEERING", Scope::master, &Parser::on_content_steering},
    {"EXT-X-DEFINE", Scope::neutral, &Parser::on_define},
    {"EXT-X-TARGETDURATION", Scope::media, &Parser::on_target_duration},
    {"EXT-X-MEDIA-SEQUENCE", Scope::media, &Parser::on_media_sequence},
    {"EXT-X-DISCONTINUITY-SEQUENCE", Scope::media, &Parser::on_discontinuity_sequence},
    {"EXT-X-ENDLIST", Scope::media, &Parser::on_endlist},
    {"EXT-X-PLAYLIST-TYPE", Scope::media, &Parser::on_playlist_type},
    {"EXT-X-I-FRAMES-ONLY", Scope::media, &Parser::on_iframes_only},
    {"EXT-X-INDEPENDENT-SEGMENTS", Scope::neutral, &Parser::on_independent_segments},
    {"EXT-X-VERSION", Scope::neutral, &Parser::on_version},
    // Listed only because it marks a media playlist; kept as it is.
    {"EXT-X-BITRATE", Scope::media, nullptr},
};

const Parser::TagInfo* Parser::find_tag(std::string_view name) {
  for (const TagInfo& t : kTags) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

void Parser::prescan(size_t start) {
  // Only as far as the first tag that belongs to one kind (usually line 2 or 3): the main pass
  // finds a tag of the other kind. (A scan to the end for it was a sixth of a media playlist's
  // parse.)
  LineReader reader(src_, start);
  std::string_view raw;
  while (reader.next(raw)) {
    std::string_view text = trim_blanks(raw);
    if (!text.starts_with("#EXT")) continue;
    const TagInfo* info = find_tag(split_tag(text).name);
    if (!info || info->scope == Scope::neutral) continue;
    kind_ = info->scope == Scope::master ? PlaylistKind::master : PlaylistKind::media;
    first_kind_tag_ = info->name;
    first_kind_tag_line_ = reader.number();
    return;
  }
}

bool Parser::run(Playlist& pl) {
  pl_ = &pl;
  if (src_.size() > options_.max_bytes) {
    return fail("too_large", 0,
                "playlist is " + std::to_string(src_.size()) + " bytes, over the limit of " +
                    std::to_string(options_.max_bytes) + " bytes");
  }
  if (!is_absolute_uri(base_) || has_forbidden_uri_chars(base_)) {
    return fail("bad_base_url", 0, "playlist URL " + shown(base_) + " is not an absolute URI");
  }
  size_t start = 0;
  if (src_.starts_with(kBom)) {
    start = kBom.size();
    warn("bom", 1, "UTF-8 byte order mark before #EXTM3U (ignored)");
  }
  if (start == src_.size()) return fail("empty_playlist", 0, "playlist is empty");
  prescan(start);
  pl.kind = kind_;

  LineReader reader(src_, start);
  std::string_view raw;
  while (reader.next(raw)) {
    if (!handle_line(raw, reader.number())) return false;
  }
  if (!seen_header_) return fail("missing_header", 0, "no #EXTM3U header");
  finish();
  return true;
}

bool Parser::handle_line(std::string_view raw, size_t line) {
  std::string_view text = trim_blanks(raw);
  if (text.empty()) return true;
  if (!seen_header_) {
    if (text == "#EXTM3U") {
      seen_header_ = true;
      if (line > 1) warn("late_header", line, "#EXTM3U is not the first line");
      return true;
    }
    if (text.starts_with("#EXTM3U")) {
      return fail("missing_header", line,
                  "#EXTM3U must be alone on its line, found " + shown(text));
    }
    if (text.starts_with("#EXT")) {
      return fail("missing_header", line, "tag before #EXTM3U: " + shown(text));
    }
    if (text.front() == '#') return true;  // comment before the header (RFC prose, notes)
    return fail("missing_header", line, "expected #EXTM3U, found " + shown(text));
  }
  if (text.front() == '#') {
    if (!text.starts_with("#EXT")) return true;  // comment
    return handle_tag(text, line);
  }
  return handle_uri_line(text, line);
}

bool Parser::substitute(std::string_view in, std::string& out, size_t line, bool strict) {
  out.clear();
  size_t i = 0;
  while (true) {
    size_t p = in.find("{$", i);
    if (p == std::string_view::npos) break;
    size_t j = p + 2;
    while (j < in.size() && is_var_char(in[j])) ++j;
    if (j == p + 2 || j >= in.size() || in[j] != '}') {
      out.append(in.substr(i, p + 2 - i));  // not a variable reference
      i = p + 2;
      continue;
    }
    std::string_view name = in.substr(p + 2, j - p - 2);
    auto it = vars_.find(name);
    if (it != vars_.end()) {
      // Bounds the memory a few short references to a long value can claim.
      expanded_bytes_ += it->second.size();
      if (expanded_bytes_ > options_.max_bytes) {
        if (!strict) return false;
        return fail("too_large", line,
                    "variable substitution expands the playlist beyond the limit of " +
                        std::to_string(options_.max_bytes) + " bytes");
      }
    }
    if (it == vars_.end()) {
      if (strict) {
        return fail(
            "undefined_variable", line,
            "URI " + shown(in) + " references undefined variable {$" + std::string(name) + "}");
      }
      out.append(in.substr(i, j + 1 - i));
    } else {
      out.append(in.substr(i, p - i));
      out.append(it->second);
    }
    i = j + 1;
  }
  out.append(in.substr(i));
  return true;
}

std::string Parser::attr_text(const AttributeList& attrs, std::string_view name) {
  const Attribute* a = attrs.find(name);
  if (!a) return {};
  std::string out;
  if (vars_.empty() || a->value.find("{$") == std::string_view::npos ||
      !substitute(a->value, out, 0, /*strict=*/false)) {
    out.assign(a->value);
  }
  return out;
}

template <typename Number>
std::optional<Number> Parser::attr_number(const AttributeList& attrs, std::string_view name,
                                          std::string_view tag, size_t line,
                                          std::optional<Number> (*parse)(std::string_view),
                                          const char* what) {
  const Attribute* a = attrs.find(name);
  if (!a) return std::nullopt;
  auto v = parse(a->value);
  if (!v) {
    warn("bad_attribute_value", line,
         "#" + std::string(tag) + " " + std::string(name) + "=" + shown(a->value) + " is not a " +
             what + " (ignored)");
  }
  return v;
}

std::optional<uint64_t> Parser::attr_int(const AttributeList& attrs, std::string_view name,
                                         std::string_view tag, size_t line) {
  return attr_number(attrs, name, tag, line, parse_decimal_integer, "decimal integer");
}

std::optional<double> Parser::attr_float(const AttributeList& attrs, std::string_view name,
                                         std::string_view tag, size_t line) {
  return attr_number(attrs, name, tag, line, parse_decimal_float, "decimal number");
}

bool Parser::attr_yes(const AttributeList& attrs, std::string_view name) {
  const Attribute* a = attrs.find(name);
  return a && a->value == "YES";
}

std::optional<ByteRange> Parser::attr_byte_range(const AttributeList& attrs, std::string_view name,
                                                 std::string_view tag, size_t line) {
  if (!attrs.find(name)) return std::nullopt;
  std::string text = attr_text(attrs, name);
  auto r = parse_byte_range(text);
  if (!r) {
    warn("bad_attribute_value", line,
         "#" + std::string(tag) + " " + std::string(name) + "=" + shown(text) +
             " is not a byte range (ignored)");
    return std::nullopt;
  }
  return ByteRange{r->length, r->offset};
}

AttributeList Parser::attributes(std::string_view value, std::string_view tag, size_t line) {
  AttributeList attrs = parse_attribute_list(value);
  std::string_view problem =
      attrs.minor_problem.empty() ? attrs.fatal_problem : attrs.minor_problem;
  if (!problem.empty()) {
    warn("irregular_attribute_list", line,
         "#" + std::string(tag) + " attribute list has " + std::string(problem));
  }
  return attrs;
}

bool Parser::add_slot(std::string_view original, bool quoted, Role role, std::string_view tag,
                      std::string_view attribute, size_t line, size_t& index) {
  std::string_view ref = original;
  if (original.find("{$") != std::string_view::npos) {
    if (!substitute(original, scratch_, line, /*strict=*/true)) return false;
    ref = scratch_;
  }
  auto where = [&] { return tag.empty() ? std::string("URI line") : "#" + std::string(tag); };
  if (ref.empty()) return fail("bad_uri", line, where() + " has an empty URI");
  const UriBytesFound found = find_uri_bytes(ref);
  if (found.forbidden) {
    return fail("bad_uri", line,
                where() + " URI " + shown(ref) + " contains a control character or a backslash");
  }
  std::optional<std::string> resolved = resolve_uri(base_parts_, ref);
  if (!resolved) {
    return fail("bad_uri", line, where() + " URI " + shown(ref) + " cannot be resolved");
  }
  if (slots_.size() >= options_.max_uris) {
    return fail("too_large", line,
                "more than " + std::to_string(options_.max_uris) + " URIs in one playlist");
  }
  UriSlot slot;
  slot.role = role;
  slot.quoted = quoted;
  slot.tag = tag;
  slot.attribute = attribute;
  // Resolution adds no byte to escape: only the reference's or the base's can need it.
  if (found.escaped || base_has_escaped_bytes_) escape_uri_chars_in_place(*resolved);
  slot.uri = std::move(*resolved);
  slot.original = original;
  slot.line = line;
  index = slots_.size();
  slots_.push_back(std::move(slot));
  return true;
}

bool Parser::take_uri(const AttributeList& attrs, std::string_view attr_name, Role role,
                      std::string_view tag, size_t line, std::optional<size_t>& slot) {
  slot.reset();
  auto where = [&] { return "#" + std::string(tag); };
  if (!attrs.fatal_problem.empty()) {
    return fail("bad_attribute_list", line,
                where() + " attribute list has " + std::string(attrs.fatal_problem) +
                    ", so its URI cannot be located reliably");
  }
  if (attrs.count(attr_name) > 1) {
    return fail("bad_attribute_list", line,
                where() + " has more than one " + std::string(attr_name) + " attribute");
  }
  const Attribute* a = attrs.find(attr_name);
  if (!a) return true;
  if (!a->quoted) {
    return fail("bad_attribute_list", line,
                where() + " " + std::string(attr_name) + " must be a quoted string, found " +
                    shown(a->value));
  }
  if (attr_name == "URI") {
    // Some clients find the URI with a regular expression over the whole line;
    // make sure they cannot pick a different one than we rewrite.
    for (const Attribute& other : attrs.attrs) {
      if (&other != a && other.value.find("URI=") != std::string_view::npos) {
        return fail("bad_attribute_list", line,
                    where() + " attribute " + shown(other.name) +
                        " contains \"URI=\", which makes the URI ambiguous");
      }
    }
  }
  size_t index = 0;
  if (!add_slot(a->value, true, role, tag, attr_name, line, index)) return false;
  slot = index;
  return true;
}

bool Parser::define_variable(const AttributeList& attrs, size_t line) {
  auto add = [&](std::string_view name, std::string value) {
    if (vars_.count(name)) {
      return fail("duplicate_variable", line,
                  "#EXT-X-DEFINE defines variable " + shown(name) + " a second time");
    }
    vars_.emplace(std::string(name), value);
    pl_->variables.emplace_back(std::string(name), std::move(value));
    return true;
  };
  if (const Attribute* name = attrs.find("NAME")) {
    const Attribute* value = attrs.find("VALUE");
    if (!valid_var_name(name->value) || !value) {
      warn("bad_define", line,
           "#EXT-X-DEFINE NAME=" + shown(name->value) +
               " needs a name of [A-Za-z0-9_-] and a VALUE (ignored)");
      return true;
    }
    return add(name->value, std::string(value->value));
  }
  if (const Attribute* import = attrs.find("IMPORT")) {
    if (!valid_var_name(import->value)) {
      warn("bad_define", line,
           "#EXT-X-DEFINE IMPORT=" + shown(import->value) + " is not a valid name (ignored)");
      return true;
    }
    if (kind_ == PlaylistKind::master) {
      warn("bad_define", line,
           "#EXT-X-DEFINE IMPORT is not allowed in a master playlist (ignored)");
      return true;
    }
    for (const auto& [n, v] : options_.imported_variables) {
      if (n == import->value) return add(n, v);
    }
    warn("missing_import", line,
         "#EXT-X-DEFINE IMPORT=" + shown(import->value) +
             " was not provided by the master playlist; the variable stays undefined");
    return true;
  }
  if (const Attribute* qp = attrs.find("QUERYPARAM")) {
    if (!valid_var_name(qp->value)) {
      warn("bad_define", line,
           "#EXT-X-DEFINE QUERYPARAM=" + shown(qp->value) + " is not a valid name (ignored)");
      return true;
    }
    if (auto value = query_param(base_, qp->value)) return add(qp->value, std::move(*value));
    warn("missing_queryparam", line,
         "#EXT-X-DEFINE QUERYPARAM=" + shown(qp->value) +
             " is not a query parameter of the playlist URL; the variable stays undefined");
    return true;
  }
  warn("bad_define", line, "#EXT-X-DEFINE without NAME, IMPORT or QUERYPARAM (ignored)");
  return true;
}

bool Parser::take_required_uri(const AttributeList& attrs, std::string_view attr_name, Role role,
                               std::string_view tag, size_t line, std::optional<size_t>& slot) {
  if (!take_uri(attrs, attr_name, role, tag, line, slot)) return false;
  if (!slot) {
    warn("missing_uri", line, "#" + std::string(tag) + " has no " + std::string(attr_name));
  }
  return true;
}

bool Parser::add_key(const AttributeList& attrs, bool session, std::string_view tag, size_t line) {
  Key key;
  key.session = session;
  key.method = attr_text(attrs, "METHOD");
  key.keyformat = attr_text(attrs, "KEYFORMAT");
  key.line = line;
  if (!take_uri(attrs, "URI", Role::key, tag, line, key.uri_slot)) return false;
  if (key.method.empty()) {
    warn("missing_attribute", line, "#" + std::string(tag) + " has no METHOD");
  } else if (key.method == "NONE" && key.uri_slot) {
    warn("unexpected_uri", line,
         "#" + std::string(tag) + " METHOD=NONE has a URI (rewritten anyway)");
  } else if (key.method != "NONE" && !key.uri_slot) {
    warn("missing_uri", line,
         "#" + std::string(tag) + " METHOD=" + shown(key.method) + " has no URI");
  }
  if (session && kind_ == PlaylistKind::master) {
    pl_->master.session_keys.push_back(std::move(key));
  } else {
    if (session) {
      warn("misplaced_tag", line,
           "#EXT-X-SESSION-KEY belongs in a master playlist (rewritten as a key)");
    }
    pl_->media.keys.push_back(std::move(key));
  }
  return true;
}

Variant Parser::variant_facts(const AttributeList& attrs, Variant::Kind kind, std::string_view tag,
                              size_t line) {
  Variant v;
  v.kind = kind;
  v.line = line;
  v.bandwidth = attr_int(attrs, "BANDWIDTH", tag, line);
  if (!attrs.find("BANDWIDTH")) {
    warn("missing_attribute", line, "#" + std::string(tag) + " has no BANDWIDTH");
  }
  v.average_bandwidth = attr_int(attrs, "AVERAGE-BANDWIDTH", tag, line);
  if (const Attribute* r = attrs.find("RESOLUTION")) {
    if (auto res = detail::parse_resolution(r->value)) {
      v.resolution = Resolution{res->width, res->height};
    } else {
      warn("bad_attribute_value", line,
           "#" + std::string(tag) + " RESOLUTION=" + shown(r->value) + " is not WxH (ignored)");
    }
  }
  v.frame_rate = attr_float(attrs, "FRAME-RATE", tag, line);
  v.codecs = attr_text(attrs, "CODECS");
  v.audio = attr_text(attrs, "AUDIO");
  v.video = attr_text(attrs, "VIDEO");
  v.subtitles = attr_text(attrs, "SUBTITLES");
  v.closed_captions = attr_text(attrs, "CLOSED-CAPTIONS");
  return v;
}

bool Parser::handle_tag(std::string_view text, size_t line) {
  const TagLine tl = split_tag(text);
  const TagInfo* info = find_tag(tl.name);
  if (info && info->scope != Scope::neutral &&
      (info->scope == Scope::master) != (kind_ == PlaylistKind::master)) {
    const bool master = kind_ == PlaylistKind::master;
    return fail("mixed_playlist", line,
                std::string(master ? "media" : "master") + " playlist tag #" +
                    std::string(info->name) + " in a " + (master ? "master" : "media") +
                    " playlist (#" + std::string(first_kind_tag_) + " on line " +
                    std::to_string(first_kind_tag_line_) + ")");
  }
  if (!info || !info->handler) return true;  // unknown tags are kept as they are
  if (pending_variant_ && info->handler != &Parser::on_define) {
    warn(
        "missing_uri", pending_variant_line_,
        "#EXT-X-STREAM-INF is not followed by a URI line (found #" + std::string(info->name) + ")");
    pending_variant_.reset();
  }
  return (this->*info->handler)(info->name, tl.value, line);
}

bool Parser::handle_uri_line(std::string_view text, size_t line) {
  size_t index = 0;
  if (kind_ == PlaylistKind::master) {
    if (pending_variant_) {
      if (!add_slot(text, false, Role::playlist, "EXT-X-STREAM-INF", "", line, index)) {
        return false;
      }
      pl_->master.variants[*pending_variant_].uri_slot = index;
      pending_variant_.reset();
      return true;
    }
    // Players ignore it; rewrite it anyway so that no relative URI is left to be
    // resolved against the balancer's URL.
    warn("stray_uri", line, "URI line not preceded by #EXT-X-STREAM-INF (rewritten as a playlist)");
    return add_slot(text, false, Role::playlist, "", "", line, index);
  }
  if (!add_slot(text, false, Role::chunk, "EXTINF", "", line, index)) return false;
  if (!pending_.has_extinf) {
    warn("segment_without_extinf", line, "segment URI not preceded by #EXTINF");
  }
  auto& segments = pl_->media.segments;
  if (pending_.byte_range && !pending_.byte_range->offset &&
      (segments.empty() || !segments.back().byte_range ||
       slots_[segments.back().uri_slot].uri != slots_[index].uri)) {
    warn("byterange_without_offset", pending_.byte_range_line,
         "#EXT-X-BYTERANGE without an offset, but the previous segment is not a sub-range of the "
         "same resource");
  }
  Segment seg;
  seg.duration = pending_.duration;
  seg.uri_slot = index;
  seg.byte_range = pending_.byte_range;
  seg.discontinuity = pending_.discontinuity;
  seg.gap = pending_.gap;
  seg.program_date_time = std::move(pending_.program_date_time);
  seg.map_slot = current_map_;
  seg.line = line;
  segments.push_back(std::move(seg));
  pending_ = PendingSegment{};
  return true;
}

void Parser::finish() {
  if (pending_variant_) {
    warn("missing_uri", pending_variant_line_, "#EXT-X-STREAM-INF is not followed by a URI line");
  }
  if (pending_.has_extinf) {
    warn("missing_uri", pending_.extinf_line, "#EXTINF is not followed by a URI line");
  }
  MediaInfo& media = pl_->media;
  if (kind_ == PlaylistKind::media) {
    if (!media.target_duration) warn("missing_target_duration", 0, "no #EXT-X-TARGETDURATION");
    const uint64_t first = media.media_sequence + media.skipped_segments.value_or(0);
    for (size_t i = 0; i < media.segments.size(); ++i) media.segments[i].sequence = first + i;
  }
  std::stable_sort(pl_->warnings.begin(), pl_->warnings.end(),
                   [](const Issue& a, const Issue& b) { return a.line < b.line; });
}

}  // namespace parser_internal

using parser_internal::Parser;

Result<Playlist> parse_playlist(std::string_view source, std::string_view base_url,
                                const ParseOptions& options) {
  if (source.size() > options.max_bytes) {
    // Checked before copying the source.
    return Issue{"too_large",
                 "playlist is " + std::to_string(source.size()) + " bytes, over the limit of " +
                     std::to_string(options.max_bytes) + " bytes",
                 0};
  }
  auto owned = std::make_shared<const std::string>(source);
  Playlist pl;
  Parser parser(*owned, base_url, options);
  if (!parser.run(pl)) return Result<Playlist>(std::move(parser.error()));
  pl.tmpl = Template::build(std::move(owned), std::move(parser.slots()));
  return Result<Playlist>(std::move(pl));
}

}  // namespace hls