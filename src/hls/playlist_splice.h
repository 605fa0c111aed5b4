// A playlist written from the lines of a parsed one, for window.h's transforms: each line of
// the source is kept as it is or left out, and new lines (tags without URIs) are added; the
// source's parsed facts are carried over to the lines kept (line numbers, URI slots and
// segment indices renumbered) instead of parsing the text written. Not a public interface.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hls/playlist.h"

namespace hls::splice_internal {

class LineSplice {
 public:
  // `from` (a media playlist) must outlive the splice.
  explicit LineSplice(const Playlist& from);

  // Source line `number` (1-based, as the parser numbers them): `line` is a view into
  // from.tmpl.source(), written followed by `ending`. Lines with URIs or facts (segments,
  // parts, keys, hints, reports) must be kept in source order; others may move.
  void keep(size_t number, std::string_view line, std::string_view ending);
  // The same, with `length` bytes of `line` from `at` replaced by `replacement` (outside its
  // URIs: a number rewritten); the caller sets what the edit says in the facts. Returns the
  // line's new number.
  size_t keep_edited(size_t number, std::string_view line, size_t at, size_t length,
                     std::string_view replacement, std::string_view ending);
  // A new line without URIs, "\n" appended.
  void add(std::string_view line);

  // The playlist written: `from`'s facts for the lines kept, none for the lines left out,
  // nothing yet for the lines added (the caller sets what they say: numbers, dates, skips).
  // Warnings are those of the lines kept. The splice is spent.
  Playlist finish();

 private:
  struct KeptSlot {
    size_t from_slot;  // index in from.tmpl.slots()
    size_t offset;     // where its original bytes begin in text_
  };
  // Which lines and slots of `from` went where, and each old index's new one.
  struct Renumbering {
    std::vector<size_t> line;                 // per source line: its new number, 0 if left out
    std::vector<std::optional<size_t>> slot;  // per source slot
    std::vector<size_t> segments_before;      // per source segment: kept segments before it
  };
  void carry_media(const Renumbering& renumbering, MediaInfo& to) const;
  void carry_warnings(const Renumbering& renumbering, Playlist& to) const;

  const Playlist& from_;
  std::string text_;
  size_t lines_ = 0;
  std::vector<size_t> new_line_;  // per source line (index = number)
  std::vector<KeptSlot> kept_slots_;
  size_t dateranges_ = 0;
  bool endlist_kept_ = false;
};

}  // namespace hls::splice_internal
