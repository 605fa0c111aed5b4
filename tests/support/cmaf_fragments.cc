#include "support/cmaf_fragments.h"

#include <string_view>

namespace balancer::test {
namespace {

struct Box {
  std::string type;
  size_t start = 0;    // of the header
  size_t content = 0;  // of the content
  size_t end = 0;
};

// Big-endian reads of [at, at + n) that must end by `end`; false when they do not.
bool read32(const std::string& d, size_t at, size_t end, uint32_t& out) {
  if (at + 4 > end || at + 4 > d.size()) return false;
  out = (uint32_t(uint8_t(d[at])) << 24) | (uint32_t(uint8_t(d[at + 1])) << 16) |
        (uint32_t(uint8_t(d[at + 2])) << 8) | uint32_t(uint8_t(d[at + 3]));
  return true;
}
bool read64(const std::string& d, size_t at, size_t end, uint64_t& out) {
  uint32_t high = 0, low = 0;
  if (!read32(d, at, end, high) || !read32(d, at + 4, end, low)) return false;
  out = (uint64_t(high) << 32) | low;
  return true;
}

// The boxes in [from, to) of `d`; false when one does not fit.
bool boxes_in(const std::string& d, size_t from, size_t to, std::vector<Box>& out) {
  while (from + 8 <= to) {
    uint32_t size32 = 0;
    read32(d, from, to, size32);
    uint64_t size = size32;
    size_t header = 8;
    if (size == 1) {
      if (!read64(d, from + 8, to, size)) return false;
      header = 16;
    } else if (size == 0) {
      size = to - from;
    }
    if (size < header || size > to - from) return false;
    out.push_back({d.substr(from + 4, 4), from, from + header, from + static_cast<size_t>(size)});
    from += static_cast<size_t>(size);
  }
  return from == to;
}

std::vector<Box> children(const std::string& d, const Box& parent, std::string_view type) {
  std::vector<Box> kids, out;
  if (!boxes_in(d, parent.content, parent.end, kids)) return out;
  for (const Box& b : kids) {
    if (b.type == type) out.push_back(b);
  }
  return out;
}

std::optional<Box> child(const std::string& d, const Box& parent, std::string_view type) {
  auto kids = children(d, parent, type);
  if (kids.empty()) return std::nullopt;
  return kids.front();
}

// moov's tracks: id and timescale from each trak, sample defaults from mvex's trex.
bool read_tracks(const std::string& d, const Box& moov, std::vector<CmafTrack>& tracks) {
  for (const Box& trak : children(d, moov, "trak")) {
    CmafTrack t;
    auto tkhd = child(d, trak, "tkhd");
    auto mdia = child(d, trak, "mdia");
    auto mdhd = mdia ? child(d, *mdia, "mdhd") : std::nullopt;
    if (!tkhd || !mdhd) return false;
    const bool tkhd_v1 = d[tkhd->content] == 1;
    const bool mdhd_v1 = d[mdhd->content] == 1;
    if (!read32(d, tkhd->content + (tkhd_v1 ? 20 : 12), tkhd->end, t.track_id) ||
        !read32(d, mdhd->content + (mdhd_v1 ? 20 : 12), mdhd->end, t.timescale) ||
        t.timescale == 0) {
      return false;
    }
    // Width and height (16.16 fixed point) close the box, after the matrix.
    uint32_t width = 0, height = 0;
    const size_t size_at = tkhd->content + (tkhd_v1 ? 88 : 76);
    if (read32(d, size_at, tkhd->end, width) && read32(d, size_at + 4, tkhd->end, height)) {
      t.width = width >> 16;
      t.height = height >> 16;
    }
    tracks.push_back(t);
  }
  if (auto mvex = child(d, moov, "mvex")) {
    for (const Box& trex : children(d, *mvex, "trex")) {
      uint32_t id = 0;
      if (!read32(d, trex.content + 4, trex.end, id)) return false;
      for (CmafTrack& t : tracks) {
        if (t.track_id != id) continue;
        if (!read32(d, trex.content + 12, trex.end, t.default_sample_duration) ||
            !read32(d, trex.content + 20, trex.end, t.default_sample_flags)) {
          return false;
        }
      }
    }
  }
  return !tracks.empty();
}

// One traf: its track, decode time, and its samples' summed duration (trun's own, else
// tfhd's default, else trex's) and whether the first is a sync sample.
bool read_traf(const std::string& d, const Box& traf, const std::vector<CmafTrack>& tracks,
               TrackFragment& out) {
  auto tfhd = child(d, traf, "tfhd");
  auto tfdt = child(d, traf, "tfdt");
  if (!tfhd || !tfdt) return false;
  uint32_t tfhd_flags = 0;
  if (!read32(d, tfhd->content, tfhd->end, tfhd_flags) ||
      !read32(d, tfhd->content + 4, tfhd->end, out.track_id)) {
    return false;
  }
  const CmafTrack* track = find_track(tracks, out.track_id);
  if (track == nullptr) return false;
  uint32_t default_duration = track->default_sample_duration;
  uint32_t default_flags = track->default_sample_flags;
  size_t at = tfhd->content + 8;
  if (tfhd_flags & 0x1) at += 8;  // base_data_offset
  if (tfhd_flags & 0x2) at += 4;  // sample_description_index
  if ((tfhd_flags & 0x8) && !read32(d, at, tfhd->end, default_duration)) return false;
  if (tfhd_flags & 0x8) at += 4;
  if (tfhd_flags & 0x10) at += 4;  // default_sample_size
  if ((tfhd_flags & 0x20) && !read32(d, at, tfhd->end, default_flags)) return false;

  out.decode_time_64 = d[tfdt->content] == 1;
  out.decode_time_at = tfdt->content + 4;
  if (out.decode_time_64) {
    if (!read64(d, out.decode_time_at, tfdt->end, out.decode_time)) return false;
  } else {
    uint32_t time = 0;
    if (!read32(d, out.decode_time_at, tfdt->end, time)) return false;
    out.decode_time = time;
  }

  bool first = true;
  for (const Box& trun : children(d, traf, "trun")) {
    uint32_t flags = 0, count = 0, first_flags = default_flags;
    if (!read32(d, trun.content, trun.end, flags) || !read32(d, trun.content + 4, trun.end, count))
      return false;
    size_t sample = trun.content + 8;
    if (flags & 0x1) sample += 4;  // data_offset
    const bool has_first_flags = flags & 0x4;
    if (has_first_flags && !read32(d, sample, trun.end, first_flags)) return false;
    if (has_first_flags) sample += 4;
    const size_t per_sample =
        4 * (((flags >> 8) & 1) + ((flags >> 9) & 1) + ((flags >> 10) & 1) + ((flags >> 11) & 1));
    if (per_sample == 0) {  // every sample takes the defaults
      if (first && count > 0) out.starts_with_sync = ((first_flags >> 16) & 1) == 0;
      first = first && count == 0;
      out.duration += uint64_t(count) * default_duration;
      out.samples += count;
      continue;
    }
    // The count is the file's: the samples it promises must fit in the box.
    if (sample > trun.end || count > (trun.end - sample) / per_sample) return false;
    for (uint32_t i = 0; i < count; ++i, sample += per_sample) {
      uint32_t duration = default_duration, sample_flags = i == 0 ? first_flags : default_flags;
      if ((flags & 0x100) && !read32(d, sample, trun.end, duration)) return false;
      const size_t flags_at = sample + ((flags & 0x100) ? 4 : 0) + ((flags & 0x200) ? 4 : 0);
      if ((flags & 0x400) && !read32(d, flags_at, trun.end, sample_flags)) return false;
      if (first) out.starts_with_sync = ((sample_flags >> 16) & 1) == 0;
      first = false;
      out.duration += duration;
    }
    out.samples += count;
  }
  return true;
}

}  // namespace

const CmafTrack* find_track(const std::vector<CmafTrack>& tracks, uint32_t track_id) {
  for (const CmafTrack& t : tracks) {
    if (t.track_id == track_id) return &t;
  }
  return nullptr;
}

std::optional<CmafFile> read_cmaf(const std::string& bytes, std::string& error,
                                  const std::vector<CmafTrack>& known_tracks) {
  std::vector<Box> top;
  if (!boxes_in(bytes, 0, bytes.size(), top)) {
    error = "not ISO BMFF: a box does not fit";
    return std::nullopt;
  }
  CmafFile file;
  file.tracks = known_tracks;
  for (size_t i = 0; i < top.size(); ++i) {
    const Box& b = top[i];
    if (b.type == "ftyp" || b.type == "moov") {
      file.init += bytes.substr(b.start, b.end - b.start);
      if (b.type == "moov") {
        file.tracks.clear();
        if (!read_tracks(bytes, b, file.tracks)) {
          error = "a moov without tracks, or a track without tkhd, mdhd or a timescale";
          return std::nullopt;
        }
      }
      continue;
    }
    if (b.type != "moof") continue;
    if (i + 1 >= top.size() || top[i + 1].type != "mdat") {
      error = "a moof not followed by its mdat";
      return std::nullopt;
    }
    MovieFragment f;
    f.start = b.start;
    f.end = top[i + 1].end;
    auto mfhd = child(bytes, b, "mfhd");
    if (!mfhd || mfhd->content + 8 > mfhd->end) {
      error = "a moof without mfhd";
      return std::nullopt;
    }
    f.sequence_at = mfhd->content + 4;
    for (const Box& traf : children(bytes, b, "traf")) {
      TrackFragment t;
      if (!read_traf(bytes, traf, file.tracks, t)) {
        error = "a traf without tfhd or tfdt, of an unknown track, or whose trun does not fit";
        return std::nullopt;
      }
      f.tracks.push_back(t);
    }
    if (f.tracks.empty()) {
      error = "a moof without traf";
      return std::nullopt;
    }
    file.fragments.push_back(std::move(f));
    ++i;
  }
  return file;
}

}  // namespace balancer::test
