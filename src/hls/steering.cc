#include "hls/steering.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <limits>
#include <set>

#include "hls/attribute_list.h"

namespace hls {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
constexpr std::string_view kStreamInf = "#EXT-X-STREAM-INF:";
constexpr std::string_view kIFrameStreamInf = "#EXT-X-I-FRAME-STREAM-INF:";
constexpr std::string_view kMedia = "#EXT-X-MEDIA:";

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

struct Line {
  std::string_view text;  // without its line end
  std::string_view end;   // "\n", "\r\n" or "" (the last line)
};

std::vector<Line> split_lines(std::string_view body) {
  std::vector<Line> lines;
  for (size_t start = 0; start < body.size();) {
    size_t nl = body.find('\n', start);
    size_t stop = nl == std::string_view::npos ? body.size() : nl;
    size_t text_end = stop > start && body[stop - 1] == '\r' ? stop - 1 : stop;
    lines.push_back(
        {body.substr(start, text_end - start),
         body.substr(text_end, (nl == std::string_view::npos ? stop : nl + 1) - text_end)});
    start = nl == std::string_view::npos ? body.size() : nl + 1;
  }
  return lines;
}

// Where a line of the master goes: once for all pathways, or into each pathway's block.
enum class Kind { shared, media, variant, variant_tail, iframe };

// "#EXT-X-MEDIA" for "#EXT-X-MEDIA:TYPE=AUDIO,...".
std::string_view line_tag(std::string_view line) {
  return line.substr(0, line.find(':'));
}

// The attribute-list text of a tag line ("#TAG:<attributes>").
std::string_view attributes_of(std::string_view line) {
  size_t colon = line.find(':');
  return colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
}

std::string attribute(std::string_view line, std::string_view name) {
  detail::AttributeList list = detail::parse_attribute_list(attributes_of(line));
  const detail::Attribute* a = list.find(name);
  return a ? std::string(a->value) : std::string();
}

// True when two of `keys` are equal: the items they describe could be taken for one.
bool any_repeated(const std::vector<std::string>& keys) {
  std::set<std::string_view> seen;
  for (const std::string& key : keys) {
    if (!seen.insert(key).second) return true;
  }
  return false;
}

// The index of the #EXTM3U line, after the comments the parser accepts before it; nullopt
// without one or when nothing follows it.
std::optional<size_t> find_extm3u(const std::vector<Line>& first) {
  size_t head = 0;
  while (head < first.size() &&
         (first[head].text.empty() ||
          (starts_with(first[head].text, "#") && !starts_with(first[head].text, "#EXT")))) {
    ++head;
  }
  if (head + 1 >= first.size() || !starts_with(first[head].text, "#EXTM3U")) return std::nullopt;
  return head;
}

// The first copy's lines by where they go, and whether variants and renditions need numbers to
// tell them apart.
struct MasterShape {
  size_t head = 0;      // the #EXTM3U line
  std::string_view nl;  // the #EXTM3U line's end (not the last line: it has an end)
  std::vector<Kind> kinds;
  bool number_variants = false;
  bool number_renditions = false;
};

// nullopt when the origin already steers the master, or it lists no complete variant.
std::optional<MasterShape> classify_master(const std::vector<Line>& first, size_t head) {
  std::vector<Kind> kinds(first.size(), Kind::shared);
  std::vector<std::string> variant_keys, rendition_keys;
  bool in_variant = false, variants = false;
  for (size_t i = head + 1; i < first.size(); ++i) {
    std::string_view text = first[i].text;
    if (starts_with(text, "#EXT-X-CONTENT-STEERING") ||
        text.find("PATHWAY-ID=") != std::string_view::npos) {
      return std::nullopt;  // the origin steers it
    }
    if (in_variant) {
      kinds[i] = Kind::variant_tail;
      if (!text.empty() && text[0] != '#') in_variant = false;  // its URI line
    } else if (starts_with(text, kStreamInf)) {
      kinds[i] = Kind::variant;
      in_variant = variants = true;
      variant_keys.push_back(attribute(text, "BANDWIDTH") + "\n" +
                             attribute(text, "STABLE-VARIANT-ID"));
    } else if (starts_with(text, kIFrameStreamInf)) {
      kinds[i] = Kind::iframe;
    } else if (starts_with(text, kMedia)) {
      kinds[i] = Kind::media;
      if (!attribute(text, "URI").empty()) {
        rendition_keys.push_back(attribute(text, "TYPE") + "\n" + attribute(text, "NAME") + "\n" +
                                 attribute(text, "STABLE-RENDITION-ID"));
      }
    }
  }
  if (!variants || in_variant) return std::nullopt;
  return MasterShape{.head = head,
                     .nl = first[head].end,
                     .kinds = std::move(kinds),
                     .number_variants = any_repeated(variant_keys),
                     .number_renditions = any_repeated(rendition_keys)};
}

// True when every copy has the first copy's lines: as many, tags where it has tags, the same tags.
bool copies_line_up(const std::vector<std::vector<Line>>& lines) {
  const std::vector<Line>& first = lines.front();
  for (size_t c = 1; c < lines.size(); ++c) {
    if (lines[c].size() != first.size()) return false;
    for (size_t i = 0; i < first.size(); ++i) {
      const bool tag = starts_with(first[i].text, "#");
      if (tag != starts_with(lines[c][i].text, "#")) return false;
      if (tag && line_tag(first[i].text) != line_tag(lines[c][i].text)) return false;
    }
  }
  return true;
}

// The last line has no end of its own: it takes the master's.
std::string_view line_end(const Line& line, std::string_view nl) {
  return line.end.empty() ? nl : line.end;
}

// Where steered output goes: input(bytes) takes a view into the copy being steered, text(bytes)
// what steering adds, pathway() the id of the copy in hand, start() and server_uri() the
// steering tag's values. StringOut appends them all; SteeredShape::Recorder keeps them as pieces.
struct StringOut {
  std::string& out;
  std::string_view id;  // of the copy in hand
  std::string_view start_id;
  std::string_view server;
  void input(std::string_view bytes) { out.append(bytes); }
  void text(std::string_view bytes) { out.append(bytes); }
  void pathway() { out.append(id); }
  void start() { out.append(start_id); }
  void server_uri() { out.append(server); }
};

// `line` with "@<pathway>" after the quoted value of each attribute in `groups`, then `extra`
// (",NAME=\"value\"" pairs) and, with `pathway_id`, PATHWAY-ID="<pathway>" at its end.
template <class Out>
void edit_tag(Out& out, std::string_view line, const std::set<std::string_view>& groups,
              std::string_view extra, bool pathway_id) {
  const size_t attrs_at = line.find(':') + 1;
  detail::AttributeList list = detail::parse_attribute_list(line.substr(attrs_at));
  size_t copied = 0;
  for (const detail::Attribute& a : list.attrs) {
    if (!a.quoted || !groups.count(a.name)) continue;
    const size_t value_end = attrs_at + a.value_pos + a.value.size();
    out.input(line.substr(copied, value_end - copied));
    out.text("@");
    out.pathway();
    copied = value_end;
  }
  out.input(line.substr(copied));
  out.text(extra);
  if (pathway_id) {
    out.text(",PATHWAY-ID=\"");
    out.pathway();
    out.text("\"");
  }
}

// What goes once: the first copy's `bom`, its lines up to #EXTM3U, the steering tag, then the
// lines that are not per variant.
template <class Out>
void append_shared_lines(Out& out, const MasterShape& shape, const std::vector<Line>& first,
                         std::string_view bom) {
  const std::string_view nl = shape.nl;
  out.input(bom);
  for (size_t i = 0; i <= shape.head; ++i) {
    out.input(first[i].text);
    out.input(line_end(first[i], nl));
  }
  out.text("#EXT-X-CONTENT-STEERING:SERVER-URI=\"");
  out.server_uri();
  out.text("\",PATHWAY-ID=\"");
  out.start();
  out.text("\"");
  out.input(nl);
  for (size_t i = shape.head + 1; i < first.size(); ++i) {
    if (shape.kinds[i] != Kind::shared) continue;
    out.input(first[i].text);
    out.input(line_end(first[i], nl));
  }
}

// One pathway's block: its copy's variants, I-frame variants and renditions, their groups
// suffixed with "@<id>" and tagged PATHWAY-ID.
template <class Out>
void append_pathway_lines(Out& out, const MasterShape& shape, const std::vector<Line>& lines) {
  static const std::set<std::string_view> kVariantGroups = {"AUDIO", "VIDEO", "SUBTITLES",
                                                            "CLOSED-CAPTIONS"};
  static const std::set<std::string_view> kRenditionGroup = {"GROUP-ID"};
  static const std::set<std::string_view> kIFrameGroups = {"VIDEO"};
  size_t variant = 0, rendition = 0;
  for (size_t i = shape.head + 1; i < lines.size(); ++i) {
    const Line& line = lines[i];
    std::string extra;
    switch (shape.kinds[i]) {
      case Kind::shared:
        continue;
      case Kind::variant_tail:
        out.input(line.text);
        break;
      case Kind::variant:
        if (shape.number_variants && attribute(line.text, "STABLE-VARIANT-ID").empty())
          extra = ",STABLE-VARIANT-ID=\"v" + std::to_string(variant) + "\"";
        ++variant;
        edit_tag(out, line.text, kVariantGroups, extra, true);
        break;
      case Kind::iframe:
        edit_tag(out, line.text, kIFrameGroups, {}, true);
        break;
      case Kind::media:
        if (!attribute(line.text, "URI").empty()) {
          if (shape.number_renditions && attribute(line.text, "STABLE-RENDITION-ID").empty())
            extra = ",STABLE-RENDITION-ID=\"r" + std::to_string(rendition) + "\"";
          ++rendition;
        }
        edit_tag(out, line.text, kRenditionGroup, extra, false);
        break;
    }
    out.input(line_end(line, shape.nl));
  }
}

// A master's lines split after its byte order mark, and their shape; nullopt when it has no
// #EXTM3U line or cannot be steered (classify_master).
struct SplitMaster {
  std::string_view bom;
  std::vector<Line> lines;
  MasterShape shape;
};

std::optional<SplitMaster> split_master(std::string_view master) {
  SplitMaster split;
  if (starts_with(master, kByteOrderMark)) split.bom = master.substr(0, kByteOrderMark.size());
  split.lines = split_lines(master.substr(split.bom.size()));
  std::optional<size_t> head = find_extm3u(split.lines);
  if (!head) return std::nullopt;
  std::optional<MasterShape> shape = classify_master(split.lines, *head);
  if (!shape) return std::nullopt;
  split.shape = std::move(*shape);
  return split;
}

bool valid_server_uri(std::string_view uri) {
  return !uri.empty() && uri.find_first_of("\"\r\n") == std::string_view::npos;
}

// `text` as a JSON string, quotes included.
void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (byte < 0x20) {
      out += "\\u00";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace

bool valid_pathway_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char ch : id) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string> steered_master(const std::vector<PathwayCopy>& copies,
                                          std::string_view server_uri, std::string_view start) {
  if (copies.empty() || !valid_server_uri(server_uri)) return std::nullopt;
  std::set<std::string_view> ids;
  for (const PathwayCopy& copy : copies) {
    if (!valid_pathway_id(copy.id) || !ids.insert(copy.id).second) return std::nullopt;
  }
  if (!ids.count(start)) return std::nullopt;
  std::optional<SplitMaster> first = split_master(copies.front().master);
  if (!first) return std::nullopt;
  std::vector<std::vector<Line>> lines = {std::move(first->lines)};
  for (size_t c = 1; c < copies.size(); ++c) {
    std::string_view body = copies[c].master;
    if (starts_with(body, kByteOrderMark)) body.remove_prefix(kByteOrderMark.size());
    lines.push_back(split_lines(body));
  }
  if (!copies_line_up(lines)) return std::nullopt;

  std::string out;
  out.reserve((copies.front().master.size() + 64) * copies.size() + server_uri.size() + 64);
  StringOut sink{out, {}, start, server_uri};
  append_shared_lines(sink, first->shape, lines.front(), first->bom);
  for (size_t c = 0; c < copies.size(); ++c) {
    sink.id = copies[c].id;
    append_pathway_lines(sink, first->shape, lines[c]);
  }
  return out;
}

// Keeps SteeredShape's pieces: the bytes of a stand-in rendering of the template (every URI one
// byte) mapped back to the template's source bytes and slots.
class SteeredShape::Recorder {
 public:
  Recorder(SteeredShape& shape, const Template& tmpl, std::string_view stand_in,
           std::vector<size_t> literal_at)
      : shape_(shape), tmpl_(tmpl), stand_in_(stand_in), literal_at_(std::move(literal_at)) {}

  void input(std::string_view bytes) {
    if (bytes.empty()) return;
    size_t at = static_cast<size_t>(bytes.data() - stand_in_.data());
    const size_t end = at + bytes.size();
    while (at < end) {
      // The literal that starts at or before `at`; past its end is its slot's one byte.
      const size_t i = static_cast<size_t>(
          std::upper_bound(literal_at_.begin(), literal_at_.end(), at) - literal_at_.begin() - 1);
      const std::string_view literal = tmpl_.literals()[i];
      const size_t literal_end = literal_at_[i] + literal.size();
      if (at < literal_end) {
        const size_t n = std::min(end, literal_end) - at;
        const size_t from =
            static_cast<size_t>(literal.data() - tmpl_.source().data()) + (at - literal_at_[i]);
        add(Piece::Kind::source, from, n);
        at += n;
      } else {
        add(Piece::Kind::slot, i, 0);
        at += 1;
      }
    }
  }
  void text(std::string_view bytes) {
    if (bytes.empty()) return;
    add(Piece::Kind::text, shape_.texts_.size(), bytes.size());
    shape_.texts_.append(bytes);
  }
  void pathway() { add(Piece::Kind::pathway, 0, 0); }
  void start() { pathway(); }  // one copy: it is the start
  void server_uri() { add(Piece::Kind::server_uri, 0, 0); }

 private:
  // Appends a piece, or grows the last one when it continues it.
  void add(Piece::Kind kind, size_t begin, size_t size) {
    std::vector<Piece>& pieces = shape_.pieces_;
    const bool grows = (kind == Piece::Kind::source || kind == Piece::Kind::text) &&
                       !pieces.empty() && pieces.back().kind == kind &&
                       pieces.back().begin + pieces.back().size == begin;
    if (grows) {
      pieces.back().size += static_cast<uint32_t>(size);
    } else {
      pieces.push_back({kind, static_cast<uint32_t>(begin), static_cast<uint32_t>(size)});
    }
  }

  SteeredShape& shape_;
  const Template& tmpl_;
  std::string_view stand_in_;
  std::vector<size_t> literal_at_;  // where each literal starts in stand_in_
};

std::optional<SteeredShape> SteeredShape::of(const Template& tmpl) {
  // A URI's bytes never decide where its line goes: a one-byte stand-in for each (render()
  // refuses the URIs that would: steered_master() looks for PATHWAY-ID= in every line).
  const std::vector<std::string_view>& literals = tmpl.literals();
  if (tmpl.source().size() > std::numeric_limits<uint32_t>::max()) return std::nullopt;
  std::string stand_in;
  stand_in.reserve(tmpl.literal_bytes() + tmpl.slots().size());
  std::vector<size_t> literal_at;
  for (size_t i = 0; i < literals.size(); ++i) {
    literal_at.push_back(stand_in.size());
    stand_in.append(literals[i]);
    if (i + 1 < literals.size()) stand_in += 'x';
  }
  std::optional<SplitMaster> split = split_master(stand_in);
  if (!split) return std::nullopt;
  SteeredShape shape;
  shape.source_bytes_ = tmpl.source().size();
  shape.slots_ = tmpl.slots().size();
  Recorder out(shape, tmpl, stand_in, std::move(literal_at));
  append_shared_lines(out, split->shape, split->lines, split->bom);
  append_pathway_lines(out, split->shape, split->lines);
  return shape;
}

std::optional<std::string> SteeredShape::render(const Template& tmpl, const SlotTexts& uris,
                                                std::string_view id,
                                                std::string_view server_uri) const {
  assert(tmpl.source().size() == source_bytes_ && tmpl.slots().size() == slots_ &&
         uris.ends.size() == slots_);
  if (!valid_server_uri(server_uri) || !valid_pathway_id(id)) return std::nullopt;
  const std::string_view source = tmpl.source();
  std::string out;
  out.reserve(source.size() + uris.text.size() + texts_.size() + server_uri.size() + 256);
  for (const Piece& piece : pieces_) {
    switch (piece.kind) {
      case Piece::Kind::source:
        out.append(source.substr(piece.begin, piece.size));
        break;
      case Piece::Kind::text:
        out.append(texts_, piece.begin, piece.size);
        break;
      case Piece::Kind::slot: {
        const std::string_view uri = uris[piece.begin];
        if (uri.empty() || uri.find("PATHWAY-ID=") != std::string_view::npos) return std::nullopt;
        out.append(uri);
        break;
      }
      case Piece::Kind::pathway:
        out.append(id);
        break;
      case Piece::Kind::server_uri:
        out.append(server_uri);
        break;
    }
  }
  return out;
}

std::string steering_manifest(int ttl_s, const std::vector<std::string>& priority,
                              const std::vector<PathwayClone>& clones) {
  std::string out = "{\"VERSION\":1,\"TTL\":" + std::to_string(ttl_s) + ",\"PATHWAY-PRIORITY\":[";
  for (size_t i = 0; i < priority.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, priority[i]);
  }
  out += ']';
  if (!clones.empty()) out += ",\"PATHWAY-CLONES\":[";
  for (size_t i = 0; i < clones.size(); ++i) {
    const PathwayClone& clone = clones[i];
    out += i ? ",{\"BASE-ID\":" : "{\"BASE-ID\":";
    append_json_string(out, clone.base_id);
    out += ",\"ID\":";
    append_json_string(out, clone.id);
    out += ",\"URI-REPLACEMENT\":{";
    if (!clone.host.empty()) {
      out += "\"HOST\":";
      append_json_string(out, clone.host);
      out += ',';
    }
    out += "\"PARAMS\":{";
    for (size_t k = 0; k < clone.params.size(); ++k) {
      if (k) out += ',';
      append_json_string(out, clone.params[k].first);
      out += ':';
      append_json_string(out, clone.params[k].second);
    }
    out += "}}}";
  }
  if (!clones.empty()) out += ']';
  return out + "}\n";
}

std::string one_variant_master(std::string_view uri, std::uint64_t bandwidth) {
  std::string out = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=" + std::to_string(bandwidth) + "\n";
  out.append(uri).append("\n");
  return out;
}

}  // namespace hls
