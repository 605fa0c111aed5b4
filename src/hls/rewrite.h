// Template and render: a parsed playlist as literal byte spans interleaved with
// URI slots, and the per-viewer rendering that fills the slots.
//
// A Template is built once per source playlist version by hls::parse_playlist()
// (playlist.h) and is immutable afterwards: any number of threads may render the
// same Template concurrently. Copies are cheap-ish (they share the source bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hls {

// What a URI points at, which decides where the balancer sends the viewer.
enum class Role : std::uint8_t {
  playlist,  // EXT-X-STREAM-INF line, I-FRAME-STREAM-INF, IMAGE-STREAM-INF, MEDIA, RENDITION-REPORT
  chunk,     // segment line, EXT-X-MAP, EXT-X-PART, EXT-X-PRELOAD-HINT
  key,       // EXT-X-KEY, EXT-X-SESSION-KEY
  other,     // EXT-X-SESSION-DATA, EXT-X-CONTENT-STEERING SERVER-URI, DATERANGE X-ASSET-URI/LIST
};

// "playlist", "chunk", "key" or "other".
std::string_view role_name(Role role);

// One URI occurrence in the source.
// `original` and `tag` are views: `original` points into the owning Template's
// source bytes (valid while any copy of that Template lives), `tag` into static
// storage.
struct UriSlot {
  Role role = Role::other;
  // true: the value of a quoted attribute (URI="..."); false: a bare URI line.
  bool quoted = false;
  // Tag the URI belongs to, without '#': "EXT-X-MAP", "EXT-X-KEY", ...; bare lines
  // are "EXTINF" (segment) or "EXT-X-STREAM-INF" (variant); a stray URI line in a
  // master playlist has tag "".
  std::string_view tag;
  // Attribute holding the URI ("URI", "SERVER-URI", "X-ASSET-URI", "X-ASSET-LIST");
  // empty for bare lines.
  std::string_view attribute;
  // The absolute URI: variables substituted, resolved against the playlist URL
  // (RFC 3986), then bytes not allowed in URIs (space, '"', '<', '>', '`', '{', '}',
  // non-ASCII) percent-encoded. May have any scheme (http, https, skd, data, ...).
  std::string uri;
  // The exact bytes of the source that this slot replaces (for a bare line: the
  // line without surrounding blanks and line ending; for an attribute: the bytes
  // between the quotes).
  std::string_view original;
  std::size_t line = 0;  // 1-based source line
};

// Literal byte spans of the source interleaved with URI slots:
//   literals()[0] slots()[0] literals()[1] slots()[1] ... literals()[n]
// Rendering with a mapper that returns slot.original reproduces the source exactly.
// Copies share the source bytes; a moved-from Template may only be assigned or
// destroyed.
class Template {
 public:
  // An empty template (renders to "").
  Template();

  // Builds a template over `source`. Precondition (asserted): every slot's
  // `original` is a view into *source, slots are in source order and do not
  // overlap. Used by parse_playlist(); public for tests and tools.
  static Template build(std::shared_ptr<const std::string> source, std::vector<UriSlot> slots);

  const std::vector<UriSlot>& slots() const { return slots_; }
  // Always slots().size() + 1 entries, views into source().
  const std::vector<std::string_view>& literals() const { return literals_; }
  std::string_view source() const { return *source_; }
  // Sum of the literal sizes (the output size before slot replacements).
  std::size_t literal_bytes() const { return literal_bytes_; }

 private:
  std::shared_ptr<const std::string> source_;
  std::vector<std::string_view> literals_;
  std::vector<UriSlot> slots_;
  std::size_t literal_bytes_ = 0;
};

// Returns the replacement text for one slot. Called once per slot, in order, on
// the rendering thread. It should return a URI; see escape_replacement() for what
// the library does to unsafe bytes. It must not return an empty string for a bare
// URI line (quoted=false): that would turn the line into a blank line and drop the
// segment or variant.
using Mapper = std::function<std::string(const UriSlot&)>;

// Makes `replacement` safe to insert in `slot`'s position so that the playlist
// keeps its structure; URIs made of valid URI characters are returned unchanged.
// In every slot, ASCII control characters (including CR, LF, TAB) are
// percent-encoded. In a quoted slot, '"' becomes %22. In a bare line, a leading
// '#' becomes %23 (it would start a tag) and leading/trailing spaces become %20
// (clients trim them). Never fails.
std::string escape_replacement(const UriSlot& slot, std::string_view replacement);

// Appends the rendered playlist to `out`: the literals, and for each slot
// escape_replacement(slot, mapper(slot)). O(output size); never re-parses.
void render_to(std::string& out, const Template& tmpl, const Mapper& mapper);

// Same as render_to() into a fresh string.
std::string render(const Template& tmpl, const Mapper& mapper);

// Appends escape_replacement(slot, text) to `out`.
void append_replacement(std::string& out, const UriSlot& slot, std::string_view text);

// A replacement for the hot path: `escaped` says the text already went through
// escape_replacement() for this slot (e.g. computed once for many renders), so
// it is appended as is.
struct Replacement {
  std::string_view text;
  bool escaped = false;
};

inline void append_replacement(std::string& out, const UriSlot& slot, const Replacement& r) {
  if (r.escaped) {
    out.append(r.text);
  } else {
    append_replacement(out, slot, r.text);
  }
}

// render_to() for the hot path: `fn(slot)` returns a view (std::string_view or
// Replacement) that stays valid until the next call, so no string is built or
// allocated per slot.
template <class Fn>
void render_views_to(std::string& out, const Template& tmpl, Fn&& fn) {
  const auto& literals = tmpl.literals();
  const auto& slots = tmpl.slots();
  out.reserve(out.size() + tmpl.literal_bytes() + slots.size() * 160);
  for (size_t i = 0; i < slots.size(); ++i) {
    out.append(literals[i]);
    append_replacement(out, slots[i], fn(slots[i]));
  }
  out.append(literals.back());
}

// Each slot's replacement of one rendering, kept apart (for a caller that lays the slots out in
// another order, as SteeredShape does): slot i's is text[ends[i - 1], ends[i]) (from 0 for the
// first), escaped as render_views_to() appends it.
struct SlotTexts {
  std::string text;
  std::vector<std::size_t> ends;

  std::string_view operator[](std::size_t i) const {
    const std::size_t begin = i == 0 ? 0 : ends[i - 1];
    return std::string_view(text).substr(begin, ends[i] - begin);
  }
};

// Fills `out` (its buffers reused) with `fn(slot)` for every slot of `tmpl`, in order: what
// render_views_to(out, tmpl, fn) puts in the slots.
template <class Fn>
void render_slot_texts(SlotTexts& out, const Template& tmpl, Fn&& fn) {
  out.text.clear();
  out.ends.clear();
  for (const UriSlot& slot : tmpl.slots()) {
    append_replacement(out.text, slot, fn(slot));
    out.ends.push_back(out.text.size());
  }
}

}  // namespace hls
