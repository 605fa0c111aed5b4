// The playlist parser's internals, shared by playlist.cc (the line loop, attributes,
// variables, URI lines) and playlist_tags.cc (one handler per tag). Not a public
// interface: use parse_playlist() from playlist.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hls/attribute_list.h"
#include "hls/playlist.h"
#include "hls/uri.h"

namespace hls::parser_internal {

using detail::Attribute;
using detail::AttributeList;
using detail::parse_attribute_list;
using detail::parse_byte_range;
using detail::parse_decimal_float;
using detail::parse_decimal_integer;
using detail::trim_blanks;

inline constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Which kind of playlist a tag may appear in (RFC 8216 section 4.4).
enum class Scope { neutral, master, media };

// A tag line split into name (without '#') and value (after the first ':').
struct TagLine {
  std::string_view name;
  std::string_view value;
};

// `text` is a trimmed line starting with "#EXT".
inline TagLine split_tag(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return {text.substr(1), {}};
  return {text.substr(1, colon - 1), text.substr(colon + 1)};
}

// Iterates over lines. A line ends at LF, CRLF or a lone CR (as ExoPlayer's
// readLine() and hls.js do); the terminator is not part of the line.
class LineReader {
 public:
  LineReader(std::string_view src, size_t start) : src_(src), pos_(start) {}

  bool next(std::string_view& line) {
    if (pos_ >= src_.size()) return false;
    // Up to the first LF, then the first CR before it: two memchr passes over the line, many
    // bytes a step (a loop testing each byte for both was a fifth of a parse;
    // string_view::find_first_of calls memchr once per byte).
    const char* begin = src_.data() + pos_;
    size_t length = src_.size() - pos_;
    if (const void* lf = std::memchr(begin, '\n', length))
      length = static_cast<size_t>(static_cast<const char*>(lf) - begin);
    if (const void* cr = std::memchr(begin, '\r', length))
      length = static_cast<size_t>(static_cast<const char*>(cr) - begin);
    line = src_.substr(pos_, length);
    pos_ += length;
    if (pos_ < src_.size()) {
      pos_ += (src_[pos_] == '\r' && pos_ + 1 < src_.size() && src_[pos_ + 1] == '\n') ? 2 : 1;
    }
    ++number_;
    return true;
  }
  size_t number() const { return number_; }

 private:
  std::string_view src_;
  size_t pos_;
  size_t number_ = 0;
};

inline bool is_var_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

inline bool valid_var_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), is_var_char);
}

// For messages: at most 80 bytes, quoted, bytes outside printable ASCII as \\xNN
// (messages stay ASCII, safe to put in a JSON error body).
inline std::string shown(std::string_view text) {
  constexpr size_t kMax = 80;
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMax; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7F) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (text.size() > kMax) out += "...";
  out += "\"";
  return out;
}

inline std::string at_line(size_t line) {
  return "line " + std::to_string(line) + ": ";
}

struct PendingSegment {
  bool has_extinf = false;
  size_t extinf_line = 0;
  std::optional<double> duration;
  std::optional<ByteRange> byte_range;
  size_t byte_range_line = 0;
  bool discontinuity = false;
  bool gap = false;
  std::string program_date_time;
};

class Parser {
 public:
  Parser(std::string_view src, std::string_view base, const ParseOptions& options)
      : src_(src),
        base_(base),
        base_parts_(split_uri(base)),
        base_has_escaped_bytes_(find_uri_bytes(base).escaped),
        options_(options) {}

  // Fills `pl` (except pl.tmpl) and slots_; returns false with error_ set on failure.
  bool run(Playlist& pl);
  Issue& error() { return error_; }
  std::vector<UriSlot>& slots() { return slots_; }

 private:
  bool fail(std::string code, size_t line, std::string message) {
    error_ = Issue{std::move(code), line ? at_line(line) + message : message, line};
    return false;
  }
  void warn(std::string code, size_t line, std::string message) {
    if (pl_->warnings.size() >= options_.max_warnings) return;
    pl_->warnings.push_back(Issue{std::move(code), line ? at_line(line) + message : message, line});
  }

  // Finds the first tag of either kind of playlist, which sets kind_ (a media playlist when none).
  void prescan(size_t start);
  bool handle_line(std::string_view raw, size_t line);
  bool handle_tag(std::string_view text, size_t line);
  bool handle_uri_line(std::string_view text, size_t line);
  void finish();

  bool define_variable(const AttributeList& attrs, size_t line);
  bool substitute(std::string_view in, std::string& out, size_t line, bool strict);
  std::string attr_text(const AttributeList& attrs, std::string_view name);
  // attr_int and attr_float: an absent attribute is nullopt; an unreadable one too, warned.
  template <typename Number>
  std::optional<Number> attr_number(const AttributeList& attrs, std::string_view name,
                                    std::string_view tag, size_t line,
                                    std::optional<Number> (*parse)(std::string_view),
                                    const char* what);
  std::optional<uint64_t> attr_int(const AttributeList& attrs, std::string_view name,
                                   std::string_view tag, size_t line);
  std::optional<double> attr_float(const AttributeList& attrs, std::string_view name,
                                   std::string_view tag, size_t line);
  bool attr_yes(const AttributeList& attrs, std::string_view name);
  std::optional<ByteRange> attr_byte_range(const AttributeList& attrs, std::string_view name,
                                           std::string_view tag, size_t line);

  AttributeList attributes(std::string_view value, std::string_view tag, size_t line);
  bool take_uri(const AttributeList& attrs, std::string_view attr_name, Role role,
                std::string_view tag, size_t line, std::optional<size_t>& slot);
  // take_uri for a tag that needs the attribute: its absence is warned about, not fatal.
  bool take_required_uri(const AttributeList& attrs, std::string_view attr_name, Role role,
                         std::string_view tag, size_t line, std::optional<size_t>& slot);
  bool add_slot(std::string_view original, bool quoted, Role role, std::string_view tag,
                std::string_view attribute, size_t line, size_t& index);

  bool add_key(const AttributeList& attrs, bool session, std::string_view tag, size_t line);
  Variant variant_facts(const AttributeList& attrs, Variant::Kind kind, std::string_view tag,
                        size_t line);
  bool add_iframe_or_image_variant(Variant::Kind kind, std::string_view tag, std::string_view value,
                                   size_t line);

  // One handler per tag, called by handle_tag() through kTags. `tag` is the name
  // without '#', `value` the text after the first ':'. Returns false (error_ set)
  // to reject the playlist.
  using TagHandler = bool (Parser::*)(std::string_view tag, std::string_view value, size_t line);
  struct TagInfo {
    std::string_view name;  // without '#'
    Scope scope;
    TagHandler handler;  // nullptr: the tag is kept as it is
  };
  static const TagInfo kTags[];
  static const TagInfo* find_tag(std::string_view name);

  bool on_extm3u(std::string_view tag, std::string_view value, size_t line);
  bool on_extinf(std::string_view tag, std::string_view value, size_t line);
  bool on_byterange(std::string_view tag, std::string_view value, size_t line);
  bool on_discontinuity(std::string_view tag, std::string_view value, size_t line);
  bool on_gap(std::string_view tag, std::string_view value, size_t line);
  bool on_program_date_time(std::string_view tag, std::string_view value, size_t line);
  bool on_key(std::string_view tag, std::string_view value, size_t line);
  bool on_session_key(std::string_view tag, std::string_view value, size_t line);
  bool on_map(std::string_view tag, std::string_view value, size_t line);
  bool on_part(std::string_view tag, std::string_view value, size_t line);
  bool on_preload_hint(std::string_view tag, std::string_view value, size_t line);
  bool on_rendition_report(std::string_view tag, std::string_view value, size_t line);
  bool on_skip(std::string_view tag, std::string_view value, size_t line);
  bool on_part_inf(std::string_view tag, std::string_view value, size_t line);
  bool on_server_control(std::string_view tag, std::string_view value, size_t line);
  bool on_daterange(std::string_view tag, std::string_view value, size_t line);
  bool on_stream_inf(std::string_view tag, std::string_view value, size_t line);
  bool on_iframe_stream_inf(std::string_view tag, std::string_view value, size_t line);
  bool on_image_stream_inf(std::string_view tag, std::string_view value, size_t line);
  bool on_media(std::string_view tag, std::string_view value, size_t line);
  bool on_session_data(std::string_view tag, std::string_view value, size_t line);
  bool on_content_steering(std::string_view tag, std::string_view value, size_t line);
  bool on_define(std::string_view tag, std::string_view value, size_t line);
  bool on_target_duration(std::string_view tag, std::string_view value, size_t line);
  bool on_media_sequence(std::string_view tag, std::string_view value, size_t line);
  bool on_discontinuity_sequence(std::string_view tag, std::string_view value, size_t line);
  bool on_endlist(std::string_view tag, std::string_view value, size_t line);
  bool on_playlist_type(std::string_view tag, std::string_view value, size_t line);
  bool on_iframes_only(std::string_view tag, std::string_view value, size_t line);
  bool on_independent_segments(std::string_view tag, std::string_view value, size_t line);
  bool on_version(std::string_view tag, std::string_view value, size_t line);

  std::string_view src_;
  std::string_view base_;
  UriParts base_parts_;  // base_ split once, for every URI's resolution
  bool base_has_escaped_bytes_;
  const ParseOptions& options_;
  Playlist* pl_ = nullptr;
  Issue error_;
  std::vector<UriSlot> slots_;

  PlaylistKind kind_ = PlaylistKind::media;
  // The first tag that belongs to one kind of playlist: it decides kind_. A tag of the other kind
  // later on makes the playlist mixed.
  std::string_view first_kind_tag_;
  size_t first_kind_tag_line_ = 0;

  bool seen_header_ = false;
  std::map<std::string, std::string, std::less<>> vars_;
  PendingSegment pending_;
  std::optional<size_t> pending_variant_;
  size_t pending_variant_line_ = 0;
  std::optional<size_t> current_map_;
  bool seen_target_duration_ = false;
  bool seen_media_sequence_ = false;
  std::string scratch_;
  size_t expanded_bytes_ = 0;  // bytes inserted by variable substitution so far
};

}  // namespace hls::parser_internal
