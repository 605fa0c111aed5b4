#include "balancer/sources/version_builder.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "hls/hold_back.h"
#include "hls/program_date.h"
#include "hls/window.h"

namespace balancer {
namespace {

// A window renumbers lines: each run follows its first segment (by media sequence number)
// across it, and its boundary is the line after the previous segment's URI (so the run's
// own tags, a key among them, belong to it).
std::vector<std::pair<size_t, uint64_t>> runs_after_window(
    const hls::Playlist& before, const hls::Playlist& after,
    const std::vector<std::pair<size_t, uint64_t>>& runs) {
  std::vector<std::pair<size_t, uint64_t>> out;
  const auto& old_segments = before.media.segments;
  const auto& new_segments = after.media.segments;
  for (const auto& [line, run] : runs) {
    size_t i = 0;
    while (i < old_segments.size() && old_segments[i].line < line) ++i;
    if (i == old_segments.size()) continue;
    const uint64_t msn = before.media.media_sequence + i;
    if (msn <= after.media.media_sequence) {
      out.assign(1, {1, run});  // begins before the window: it holds from the window's start
      continue;
    }
    const uint64_t j = msn - after.media.media_sequence;
    if (j >= new_segments.size()) continue;
    out.emplace_back(new_segments[j - 1].line + 1, run);
  }
  return out;
}

// The delta update's rewrite plan: every link is the full version's own for the same slot.
void plan_delta(const SourceVersion& full, const std::vector<size_t>& slots,
                SourceVersion& version) {
  version.plan.part_target_ms = full.plan.part_target_ms;
  std::vector<size_t> chunk_ordinal(full.plan.slots.size(), 0);
  for (size_t i = 0, chunk = 0; i < full.plan.slots.size(); ++i) {
    if (full.plan.slots[i].kind == SlotTarget::Kind::chunk) chunk_ordinal[i] = chunk++;
  }
  for (const size_t slot : slots) {
    version.plan.slots.push_back(full.plan.slots[slot]);
    if (full.plan.slots[slot].kind != SlotTarget::Kind::chunk) continue;
    ++version.plan.chunk_slots;
    version.plan.chunk_hashes.push_back(full.plan.chunk_hashes[chunk_ordinal[slot]]);
    if (!full.plan.chunk_first_listed.empty()) {
      version.plan.chunk_first_listed.push_back(full.plan.chunk_first_listed[chunk_ordinal[slot]]);
    }
  }
}

}  // namespace

std::string_view CopyLineage::origin_bytes(const SourceVersion* version) const {
  if (!origin_body.empty() || version == nullptr) return origin_body;
  return version->playlist.tmpl.source();
}

void VersionBuilder::set_limits(const PlaylistTimings& timings) {
  max_bytes_ = timings.max_bytes;
  max_segments_ = timings.max_segments;
  max_master_entries_ = timings.max_master_entries;
}

hls::Result<hls::Playlist> VersionBuilder::parse(std::string_view text, const std::string& url) {
  ++parses_;
  hls::ParseOptions options;
  options.max_bytes = max_bytes_;
  return hls::parse_playlist(text, url, options);
}

core::Result<BuiltVersion> VersionBuilder::build(CopyLineage& lineage, const OriginAnswer& answer,
                                                 BuildMoment at, BuildNotes& notes) {
  // The channel's target latency, set by the operator, in a media playlist's hold-backs
  // (hls/hold_back.h); origin's bytes are then kept apart to recognise an unchanged copy.
  std::optional<std::string> held_back;
  if (answer.target_latency_s > 0)
    held_back = hls::with_hold_back(answer.body, answer.target_latency_s);
  auto parsed = answer.parsed != nullptr && !held_back
                    ? hls::Result<hls::Playlist>(std::move(*answer.parsed))
                    : parse(held_back ? std::string_view(*held_back) : answer.body, answer.url);
  if (!parsed.ok()) {
    notes.warnings.push_back("malformed playlist from origin: " + answer.url + ": " +
                             parsed.error().message);
    return core::Error{"bad_source_playlist", "The origin's playlist is malformed (" +
                                                  parsed.error().code +
                                                  "): " + parsed.error().message};
  }
  auto version = std::make_shared<SourceVersion>();
  version->playlist = std::move(parsed).value();
  const bool media = version->playlist.kind == hls::PlaylistKind::media;
  BuiltVersion built;
  // In origin's numbers, before any continuation.
  if (!answer.directive_copy && media) {
    built.follow_next = next_part_to_follow(version->playlist.media);
    notes.origin_facts = facts_of(version->playlist.media);
  }
  std::vector<std::pair<size_t, uint64_t>> runs_by_line;
  bool own_copy = held_back.has_value();
  lineage.applied_live = answer.live;
  if (!answer.directive_copy && media) {
    lineage.runs.set_absolute_uris(!answer.other_origins.empty());
    if (auto runs = continue_live_run(lineage, version->playlist, answer, at, notes)) {
      own_copy = true;
      runs_by_line = std::move(*runs);
    }
  }
  version->kind = classify(version->playlist);
  // Long live playlists become a window of their newest segments (in served numbers, after
  // any continuation); origin's bytes are then kept apart to recognise an unchanged copy.
  std::optional<hls::Playlist> before_window;
  if (auto refused = limit_master_entries(*version, answer.url, notes)) return std::move(*refused);
  if (auto refused = limit_segments(*version, answer.url, before_window, notes))
    return std::move(*refused);
  if (before_window) {
    own_copy = true;
    runs_by_line = runs_after_window(*before_window, version->playlist, runs_by_line);
  }
  describe(*version, answer, runs_by_line, at);
  // Keep origin's bytes only when they are not the version's own (`answer.body` may view them:
  // assign last).
  if (own_copy) {
    lineage.origin_body.assign(answer.body);
  } else {
    lineage.origin_body.clear();
  }
  lineage.origin_numbering = lineage.runs.origin_numbering() && !before_window;
  built.version = std::move(version);
  return built;
}

void VersionBuilder::describe(SourceVersion& version, const OriginAnswer& answer,
                              const std::vector<std::pair<size_t, uint64_t>>& runs_by_line,
                              BuildMoment at) {
  const bool media = version.playlist.kind == hls::PlaylistKind::media;
  if (media) {
    version.target_duration = target_duration_of(version.playlist);
    version.newest_media_end_s = hls::newest_media_end(version.playlist.media);
    for (const auto& segment : version.playlist.media.segments) {
      version.total_duration_s += segment.duration.value_or(0);
    }
  }
  version.live = answer.live;
  version.plan = plan_rewrite(version.playlist.tmpl, answer.origin_base, answer.other_origins);
  if (!answer.other_origins.empty()) {
    // Several sources: every chunk and key link names its origin (the version's own included).
    for (SlotTarget& target : version.plan.slots) {
      const bool named =
          target.kind == SlotTarget::Kind::chunk || target.kind == SlotTarget::Kind::key;
      if (named && target.origin_id.empty()) target.origin_id = answer.origin_id;
    }
  }
  if (const auto& part_target = version.playlist.media.part_target;
      media && part_target && *part_target > 0) {
    version.plan.part_target_ms = std::clamp<int64_t>(std::llround(*part_target * 1000), 1, 60'000);
  }
  mark_runs(version.plan, version.playlist.tmpl, runs_by_line);
  stamp_first_listed(answer.playlist_key, version, at.unix_ms / 1000);
  version.serial = next_serial_++;
}

// The lineage's live run tracker sees origin's `playlist`; when it serves its own copy (held
// end tag, restart continued) and that parses, the copy replaces `playlist` and its runs by
// line are returned.
std::optional<std::vector<std::pair<size_t, uint64_t>>> VersionBuilder::continue_live_run(
    CopyLineage& lineage, hls::Playlist& playlist, const OriginAnswer& answer, BuildMoment at,
    BuildNotes& notes) {
  const uint64_t restarts = lineage.runs.restarts();
  const bool was_holding = lineage.runs.holding_end();
  auto listing = lineage.runs.next(playlist, answer.live, at.now, at.unix_ms);
  notes.restarted = lineage.runs.restarts() != restarts;
  notes.end_held = lineage.runs.holding_end() && !was_holding;
  if (!listing) return std::nullopt;
  // Written of origin's lines alone, the copy is spliced; with lines of the tracker's, parsed.
  if (hls::carries_own_lines(playlist, listing->copy)) ++parses_;
  hls::ParseOptions options;
  options.max_bytes = max_bytes_;
  auto served = write_served(playlist, *listing, answer.url, options);
  if (!served.ok()) {
    notes.warnings.push_back("continued copy of " + answer.url + " does not parse (" +
                             served.error().message + "): serving origin's");
    return std::nullopt;
  }
  playlist = std::move(served->playlist);
  return std::move(served->runs_by_line);
}

void VersionBuilder::stamp_first_listed(const std::string& playlist_key, SourceVersion& version,
                                        int64_t unix_s) {
  if (version.plan.chunk_slots == 0) return;
  auto& listed = first_listed_[playlist_key];
  std::vector<int64_t>& out = version.plan.chunk_first_listed;
  out.clear();
  out.reserve(version.plan.chunk_hashes.size());
  for (uint64_t hash : version.plan.chunk_hashes)
    out.push_back(listed.emplace(hash, unix_s).first->second);
  // Chunks that left the playlist are forgotten an hour on (a version can be old, a
  // directive copy behind the ordinary one), so the table stays near the playlist's size.
  if (listed.size() > 2 * out.size() + 256) {
    std::erase_if(listed, [unix_s](const auto& item) { return item.second < unix_s - 3600; });
  }
}

std::optional<core::Error> VersionBuilder::limit_segments(SourceVersion& version,
                                                          const std::string& url,
                                                          std::optional<hls::Playlist>& replaced,
                                                          BuildNotes& notes) {
  const hls::Playlist& playlist = version.playlist;
  const size_t segments =
      playlist.kind == hls::PlaylistKind::media ? playlist.media.segments.size() : 0;
  if (segments <= max_segments_) return std::nullopt;
  const std::string counts = std::to_string(segments) + " segments, over the limit of " +
                             std::to_string(max_segments_) + " (playlists.max_segments)";
  if (version.kind == SourceKind::vod || playlist.media.is_delta_update()) {
    notes.warnings.push_back("playlist from origin refused: " + url + ": " + counts);
    return core::Error{"source_too_many_segments", "The origin's playlist lists " + counts + "."};
  }
  // The window comes parsed: origin's version is parsed once.
  auto window = hls::newest_segments(playlist, max_segments_);
  if (!window.ok()) {
    notes.warnings.push_back("window of a long playlist from origin failed: " + url + ": " +
                             window.error().message);
    return core::Error{"bad_source_playlist", "The origin's playlist lists " + counts +
                                                  " and its newest ones do not make a playlist: " +
                                                  window.error().message};
  }
  notes.windowed_from = segments;
  replaced = std::move(version.playlist);
  version.playlist = std::move(window).value();
  version.kind = classify(version.playlist);
  return std::nullopt;
}

std::optional<core::Error> VersionBuilder::limit_master_entries(const SourceVersion& version,
                                                                const std::string& url,
                                                                BuildNotes& notes) const {
  const hls::Playlist& playlist = version.playlist;
  if (playlist.kind != hls::PlaylistKind::master) return std::nullopt;
  const size_t entries = playlist.master.variants.size() + playlist.master.renditions.size();
  if (entries <= max_master_entries_) return std::nullopt;
  const std::string counts =
      std::to_string(entries) + " variants and renditions, over the limit of " +
      std::to_string(max_master_entries_) + " (playlists.max_master_entries)";
  notes.warnings.push_back("playlist from origin refused: " + url + ": " + counts);
  return core::Error{"source_too_many_variants",
                     "The origin's master playlist lists " + counts + "."};
}

std::shared_ptr<const SourceVersion> VersionBuilder::delta_of(
    CopyLineage& lineage, const std::shared_ptr<const SourceVersion>& full, const std::string& url,
    BuildNotes& notes) {
  if (lineage.delta && lineage.delta_of_serial == full->serial) return lineage.delta;
  // Until one is built, the full version answers (a full playlist answers _HLS_skip too).
  lineage.delta = full;
  lineage.delta_of_serial = full->serial;
  auto update = hls::delta_update(full->playlist);
  if (!update.ok() || update->skipped == 0) return full;
  // The update comes parsed: no parse of its own.
  if (update->playlist.tmpl.slots().size() != update->slots.size()) {
    notes.warnings.push_back("delta update of " + url +
                             " not built: its links do not match the playlist's");
    return full;
  }
  // Every link is the full version's own for the same slot: a viewer's URIs are the same in a
  // delta update as in the full playlist (run markers, first-listed times, part targets).
  auto version = std::make_shared<SourceVersion>();
  version->playlist = std::move(update->playlist);
  version->kind = full->kind;
  version->target_duration = full->target_duration;
  version->total_duration_s = full->total_duration_s;
  version->live = full->live;
  version->newest_media_end_s = full->newest_media_end_s;
  plan_delta(*full, update->slots, *version);
  version->serial = next_serial_++;
  notes.delta_built = true;
  lineage.delta = std::move(version);
  return lineage.delta;
}

std::vector<std::string> new_chunk_targets(const SourceVersion& previous,
                                           const SourceVersion& current) {
  std::unordered_set<std::string_view> known;
  for (const SlotTarget& slot : previous.plan.slots) {
    if (slot.kind == SlotTarget::Kind::chunk) known.insert(slot.origin_target);
  }
  std::vector<std::string> fresh;
  const std::vector<hls::UriSlot>& uris = current.playlist.tmpl.slots();
  for (size_t i = 0; i < current.plan.slots.size() && i < uris.size(); ++i) {
    const SlotTarget& slot = current.plan.slots[i];
    // LL-HLS parts were hinted before they were listed: asked for then (below).
    if (uris[i].tag == "EXT-X-PART" || uris[i].tag == "EXT-X-PRELOAD-HINT") continue;
    if (slot.kind == SlotTarget::Kind::chunk && !known.count(slot.origin_target))
      fresh.push_back(slot.origin_target);
  }
  // A new hint of a whole part: the node sends the request origin holds until the part
  // exists before any viewer asks (they learn of the hint only from this playlist), and
  // streams the part to those who join it. A byte-range hint names the segment in progress,
  // which fetched whole would come only once complete: left to the viewers' ranges.
  for (const hls::PreloadHint& hint : current.playlist.media.preload_hints) {
    if (hint.type != "PART" || hint.byterange_start || hint.byterange_length || !hint.uri_slot)
      continue;
    if (*hint.uri_slot >= current.plan.slots.size()) continue;
    const SlotTarget& slot = current.plan.slots[*hint.uri_slot];
    if (slot.kind == SlotTarget::Kind::chunk && !known.count(slot.origin_target))
      fresh.push_back(slot.origin_target);
  }
  return fresh;
}

}  // namespace balancer
