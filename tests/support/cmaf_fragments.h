// What ll_origin and its tests read of CMAF (fragmented ISO BMFF, ISO/IEC 14496-12): the
// init section's tracks (moov: trak/mdhd timescale, mvex/trex defaults) and each movie
// fragment's track runs (moof: mfhd, traf/tfhd/tfdt/trun), with each run's duration summed
// from its samples. Standard library only; the bytes are untrusted: a box that does not fit
// is an error, never a read past the end. For fixtures and tests; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace balancer::test {

struct CmafTrack {
  uint32_t track_id = 0;
  uint32_t timescale = 0;
  uint32_t default_sample_duration = 0;  // trex
  uint32_t default_sample_flags = 0;     // trex
  uint32_t width = 0, height = 0;        // tkhd's presentation size in pixels (0 for audio)
};

// One traf: a track's samples in a fragment.
struct TrackFragment {
  uint32_t track_id = 0;
  uint64_t decode_time = 0;  // tfdt's baseMediaDecodeTime
  uint64_t duration = 0;     // its samples' durations summed, in the track's timescale
  uint32_t samples = 0;
  bool starts_with_sync = false;  // its first sample is a sync sample
  size_t decode_time_at = 0;      // offset of baseMediaDecodeTime in the file
  bool decode_time_64 = false;
};

// One moof and the mdat after it.
struct MovieFragment {
  size_t start = 0;        // of the moof
  size_t end = 0;          // of the mdat
  size_t sequence_at = 0;  // offset of mfhd's sequence_number in the file
  std::vector<TrackFragment> tracks;
};

struct CmafFile {
  std::string init;  // ftyp + moov, as they are in the file (empty when it has none)
  std::vector<CmafTrack> tracks;
  std::vector<MovieFragment> fragments;
};

// Reads `bytes`: a whole CMAF file, or fragments alone (a part, a segment) whose tracks are
// `known_tracks` (the init section's). nullopt with `error` saying what is wrong.
std::optional<CmafFile> read_cmaf(const std::string& bytes, std::string& error,
                                  const std::vector<CmafTrack>& known_tracks = {});

// The track `track_id` of `tracks`, or null.
const CmafTrack* find_track(const std::vector<CmafTrack>& tracks, uint32_t track_id);

}  // namespace balancer::test
