#include "hls/rewrite.h"

#include <array>
#include <cassert>

#include "hls/uri.h"

namespace hls {
namespace {

// Bytes that are escaped wherever they are: ASCII controls, and '"' in quoted slots.
constexpr std::array<bool, 256> escape_table(bool quoted) {
  std::array<bool, 256> table{};
  for (int c = 0; c < 0x20; ++c) table[c] = true;
  table[0x7F] = true;
  if (quoted) table['"'] = true;
  return table;
}
constexpr std::array<bool, 256> kEscapeQuoted = escape_table(true);
constexpr std::array<bool, 256> kEscapeBare = escape_table(false);

void append_escaped(std::string& out, const UriSlot& slot, std::string_view text) {
  const auto& table = slot.quoted ? kEscapeQuoted : kEscapeBare;
  // In a bare line, a leading '#' would start a tag and blanks at either end
  // would be trimmed by the client.
  size_t keep_begin = 0;
  size_t keep_end = text.size();
  if (!slot.quoted) {
    while (keep_begin < keep_end && text[keep_begin] == ' ') ++keep_begin;
    while (keep_end > keep_begin && text[keep_end - 1] == ' ') --keep_end;
  }
  const bool hash_first = !slot.quoted && !text.empty() && text.front() == '#';
  bool clean = keep_begin == 0 && keep_end == text.size() && !hash_first;
  for (size_t i = 0; clean && i < text.size(); ++i) {
    clean = !table[static_cast<unsigned char>(text[i])];
  }
  if (clean) {
    out.append(text);  // the common case
    return;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (table[c] || (i == 0 && hash_first) || i < keep_begin || i >= keep_end) {
      append_percent_encoded(out, c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}

}  // namespace

std::string_view role_name(Role role) {
  static constexpr std::string_view kRoleNames[] = {"playlist", "chunk", "key", "other"};
  static_assert(std::size(kRoleNames) == static_cast<size_t>(Role::other) + 1);
  const auto index = static_cast<size_t>(role);
  return index < std::size(kRoleNames) ? kRoleNames[index] : "?";
}

Template::Template()
    : source_(std::make_shared<const std::string>()), literals_{std::string_view()} {}

Template Template::build(std::shared_ptr<const std::string> source, std::vector<UriSlot> slots) {
  Template t;
  t.source_ = std::move(source);
  t.slots_ = std::move(slots);
  t.literals_.clear();
  t.literals_.reserve(t.slots_.size() + 1);
  const std::string_view src = *t.source_;
  size_t pos = 0;
  for (const UriSlot& slot : t.slots_) {
    const size_t start = static_cast<size_t>(slot.original.data() - src.data());
    assert(slot.original.data() >= src.data() && start >= pos &&
           start + slot.original.size() <= src.size());
    t.literals_.push_back(src.substr(pos, start - pos));
    pos = start + slot.original.size();
  }
  t.literals_.push_back(src.substr(pos));
  t.literal_bytes_ = src.size();
  for (const UriSlot& slot : t.slots_) t.literal_bytes_ -= slot.original.size();
  return t;
}

void append_replacement(std::string& out, const UriSlot& slot, std::string_view text) {
  append_escaped(out, slot, text);
}

std::string escape_replacement(const UriSlot& slot, std::string_view replacement) {
  std::string out;
  out.reserve(replacement.size());
  append_escaped(out, slot, replacement);
  return out;
}

void render_to(std::string& out, const Template& tmpl, const Mapper& mapper) {
  const auto& literals = tmpl.literals();
  const auto& slots = tmpl.slots();
  // Replacements are usually a little longer than the originals.
  out.reserve(out.size() + tmpl.literal_bytes() + slots.size() * 96);
  for (size_t i = 0; i < slots.size(); ++i) {
    out.append(literals[i]);
    const std::string replacement = mapper(slots[i]);
    append_escaped(out, slots[i], replacement);
  }
  out.append(literals.back());
}

std::string render(const Template& tmpl, const Mapper& mapper) {
  std::string out;
  render_to(out, tmpl, mapper);
  return out;
}

}  // namespace hls
