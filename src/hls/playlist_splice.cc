#include "hls/playlist_splice.h"

#include <algorithm>
#include <cassert>
#include <memory>

#include "hls/window.h"

namespace hls::splice_internal {
namespace {

// Lines as the parser numbers them: LF, CRLF or a lone CR end a line.
size_t count_lines(std::string_view text) {
  size_t lines = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++lines;
    } else if (text[i] == '\r') {
      ++lines;
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    }
  }
  return lines;
}

// The kept ones of `items` (by their line), their line renumbered and `renumber` applied.
template <typename Item, typename Renumber>
std::vector<Item> kept(const std::vector<Item>& items, const std::vector<size_t>& new_line,
                       Renumber renumber) {
  std::vector<Item> out;
  for (const Item& item : items) {
    if (item.line >= new_line.size() || new_line[item.line] == 0) continue;
    out.push_back(item);
    out.back().line = new_line[item.line];
    renumber(out.back());
  }
  return out;
}

}  // namespace

LineSplice::LineSplice(const Playlist& from)
    : from_(from), new_line_(count_lines(from.tmpl.source()) + 1, 0) {
  text_.reserve(from.tmpl.source().size() + 256);
}

void LineSplice::keep(size_t number, std::string_view line, std::string_view ending) {
  keep_edited(number, line, line.size(), 0, {}, ending);
}

size_t LineSplice::keep_edited(size_t number, std::string_view line, size_t at, size_t length,
                               std::string_view replacement, std::string_view ending) {
  if (number >= new_line_.size()) new_line_.resize(number + 1, 0);
  new_line_[number] = ++lines_;
  const size_t start = text_.size();
  if (length == 0 && replacement.empty()) {
    text_.append(line).append(ending);  // kept as it is (most lines)
  } else {
    text_.append(line.substr(0, at)).append(replacement).append(line.substr(at + length));
    text_.append(ending);
  }
  const std::string_view tag = tag_name(line);
  if (tag == "EXT-X-DATERANGE") ++dateranges_;
  if (tag == "EXT-X-ENDLIST") endlist_kept_ = true;
  const std::vector<UriSlot>& slots = from_.tmpl.slots();
  auto first = std::lower_bound(slots.begin(), slots.end(), number,
                                [](const UriSlot& slot, size_t n) { return slot.line < n; });
  for (auto it = first; it != slots.end() && it->line == number; ++it) {
    assert(it->original.data() >= line.data() &&
           it->original.data() + it->original.size() <= line.data() + line.size());
    size_t offset = static_cast<size_t>(it->original.data() - line.data());
    assert(offset + it->original.size() <= at || offset >= at + length);
    if (length != 0 && offset >= at + length) offset = offset - length + replacement.size();
    kept_slots_.push_back({static_cast<size_t>(it - slots.begin()), start + offset});
  }
  return lines_;
}

void LineSplice::add(std::string_view line) {
  ++lines_;
  text_.append(line).push_back('\n');
}

Playlist LineSplice::finish() {
  Renumbering renumbering;
  renumbering.line = std::move(new_line_);
  renumbering.slot.assign(from_.tmpl.slots().size(), std::nullopt);
  auto source = std::make_shared<const std::string>(std::move(text_));
  std::vector<UriSlot> slots;
  slots.reserve(kept_slots_.size());
  for (const KeptSlot& k : kept_slots_) {
    UriSlot slot = from_.tmpl.slots()[k.from_slot];
    slot.original = std::string_view(*source).substr(k.offset, slot.original.size());
    slot.line = renumbering.line[slot.line];
    renumbering.slot[k.from_slot] = slots.size();
    slots.push_back(std::move(slot));
  }
  size_t segments = 0;
  for (const Segment& segment : from_.media.segments) {
    renumbering.segments_before.push_back(segments);
    if (segment.line < renumbering.line.size() && renumbering.line[segment.line] != 0) ++segments;
  }
  renumbering.segments_before.push_back(segments);  // the segment being written (parts after)

  Playlist to;
  to.kind = from_.kind;
  to.version = from_.version;
  to.independent_segments = from_.independent_segments;
  to.variables = from_.variables;
  carry_media(renumbering, to.media);
  carry_warnings(renumbering, to);
  to.tmpl = Template::build(std::move(source), std::move(slots));
  return to;
}

void LineSplice::carry_media(const Renumbering& r, MediaInfo& to) const {
  const MediaInfo& from = from_.media;
  to = from;  // the scalars; the lists below
  auto slot = [&r](size_t index) { return *r.slot[index]; };
  auto optional_slot = [&r](std::optional<size_t>& index) {
    if (index) index = r.slot[*index];
  };
  to.segments = kept(from.segments, r.line, [&](Segment& s) {
    s.uri_slot = slot(s.uri_slot);
    optional_slot(s.map_slot);
  });
  to.parts = kept(from.parts, r.line, [&](Part& p) {
    p.uri_slot = slot(p.uri_slot);
    p.segment_index = r.segments_before[std::min(p.segment_index, from.segments.size())];
  });
  to.preload_hints =
      kept(from.preload_hints, r.line, [&](PreloadHint& h) { optional_slot(h.uri_slot); });
  to.rendition_reports = kept(from.rendition_reports, r.line,
                              [&](RenditionReport& rr) { optional_slot(rr.uri_slot); });
  to.keys = kept(from.keys, r.line, [&](Key& k) { optional_slot(k.uri_slot); });
  to.dateranges = dateranges_;
  to.endlist = from.endlist && endlist_kept_;
}

void LineSplice::carry_warnings(const Renumbering& r, Playlist& to) const {
  for (const Issue& warning : from_.warnings) {
    if (warning.line == 0 || warning.line >= r.line.size() || r.line[warning.line] == 0) continue;
    Issue carried = warning;
    carried.line = r.line[warning.line];
    const std::string old_prefix = "line " + std::to_string(warning.line) + ": ";
    if (carried.message.starts_with(old_prefix)) {
      carried.message =
          "line " + std::to_string(carried.line) + ": " + carried.message.substr(old_prefix.size());
    }
    to.warnings.push_back(std::move(carried));
  }
}

}  // namespace hls::splice_internal
