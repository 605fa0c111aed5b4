// Viewer's playlists and media: the master, the variant, the media playlist read on each
// reload; the parts of a low-latency playlist (found by place, fetched as the
// playhead needs them, a preload hint asked ahead), keys, segments, and what a failed fetch
// does (retry with backoff, or leave the pathway). The app's flow before (sign-in, access,
// the queue) and content steering are in viewer.cc.
#include <algorithm>
#include <cmath>

#include "audience/viewer.h"
#include "hls/playlist.h"
#include "hls/program_date.h"
#include "hls/uri.h"

namespace audience {
namespace {

// A media playlist's URL without its query: which variant it is, whatever the reload asked.
std::string variant_of(const std::string& url) {
  return url.substr(0, url.find('?'));
}

std::string segment_name(const std::string& url) {
  std::string path = url.substr(0, url.find('?'));
  const size_t scheme = path.find("://");
  if (scheme != std::string::npos) {
    const size_t slash = path.find('/', scheme + 3);
    path = slash == std::string::npos ? "/" : path.substr(slash);
  }
  return path.substr(path.rfind('/') + 1);
}

}  // namespace

void Viewer::load_master() {
  if (stopped()) return;
  http::FetchRequest r;
  r.url = balancer_url(master_url_);
  request(RequestKind::master, std::move(r), true, [this](Reply reply) {
    if (stopped()) return;
    if (reply.status != 200) return on_queue_reply(reply, [this] { load_master(); });
    auto parsed = hls::parse_playlist(reply.body, master_url_);
    if (!parsed.ok()) return fail("master_unparsable");
    const hls::Playlist& p = parsed.value();
    variants_.clear();
    if (p.kind == hls::PlaylistKind::media) {
      media_url_ = master_url_;
      attempts_ = 0;
      phase_ = Phase::playing;
      return load_media();
    }
    std::vector<std::string_view> lines;
    for (size_t at = 0; at < reply.body.size();) {
      size_t nl = reply.body.find('\n', at);
      if (nl == std::string::npos) nl = reply.body.size();
      lines.push_back(std::string_view(reply.body).substr(at, nl - at));
      at = nl + 1;
    }
    for (const auto& v : p.master.variants) {
      if (v.kind != hls::Variant::Kind::stream || !v.uri_slot) continue;
      Variant variant;
      variant.uri = p.tmpl.slots()[*v.uri_slot].uri;
      variant.bandwidth = v.bandwidth.value_or(0);
      // The variant's tag is the line before its URI line.
      const size_t uri_line = p.tmpl.slots()[*v.uri_slot].line;
      if (v.line >= 1 && v.line <= lines.size()) {
        variant.pathway = tag_attribute(lines[v.line - 1], "PATHWAY-ID").value_or(".");
      } else if (uri_line >= 2 && uri_line - 1 <= lines.size()) {
        variant.pathway = tag_attribute(lines[uri_line - 2], "PATHWAY-ID").value_or(".");
      }
      variants_.push_back(std::move(variant));
    }
    if (variants_.empty()) return fail("master_without_variants");
    steering_uri_.clear();
    for (const auto& slot : p.tmpl.slots()) {
      if (slot.tag == "EXT-X-CONTENT-STEERING") steering_uri_ = slot.uri;
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].rfind("#EXT-X-CONTENT-STEERING:", 0) == 0)
        pathway_ = tag_attribute(lines[i], "PATHWAY-ID").value_or("");
    }
    attempts_ = 0;
    phase_ = Phase::playing;
    choose_variant();
    if (!steering_uri_.empty() && ctx_.scenario.player.steering) load_steering();
    load_media();
  });
}

void Viewer::choose_variant() {
  std::vector<const Variant*> candidates;
  for (const auto& v : variants_) {
    if (v.pathway == pathway_) candidates.push_back(&v);
  }
  if (candidates.empty()) {
    const std::string first = variants_.front().pathway;
    for (const auto& v : variants_) {
      if (v.pathway == first) candidates.push_back(&v);
    }
  }
  std::vector<uint64_t> bandwidths;
  for (const auto* v : candidates) bandwidths.push_back(v->bandwidth);
  const size_t pick =
      audience::choose_variant(ctx_.scenario.player.variant, bandwidths, throughput_.bps());
  media_url_ = candidates[pick]->uri;
}

void Viewer::load_media() {
  if (stopped() || media_loading_ || media_url_.empty()) return;
  media_loading_ = true;
  load_started_ = ctx_.now();
  http::FetchRequest r;
  r.url = balancer_url(media_url_);
  if (block_until_) {
    // A blocking reload (§6.2.5.2): answered once the playlist holds that part.
    r.url = with_query_param(r.url, "_HLS_msn", std::to_string(block_until_->msn));
    r.url = with_query_param(r.url, "_HLS_part", std::to_string(block_until_->index));
  }
  // A delta update (§6.2.5.1) when the server offers them and this viewer holds the
  // variant's segments to merge it into, as hls.js and Media3 ask in low-latency play.
  if (ctx_.scenario.player.low_latency && can_skip_ && !segments_.empty() &&
      segments_.front().variant == variant_of(media_url_))
    r.url = with_query_param(r.url, "_HLS_skip", "YES");
  const double started = load_started_;
  // Parsed against the URL it was asked for: the variant may change while it loads.
  request(RequestKind::media, std::move(r), true, [this, started, asked = media_url_](Reply reply) {
    media_loading_ = false;
    if (stopped()) return;
    if (reply.status != 200) {
      if (reply.status == 503 && reply.retry_after_s > 0)
        return after(reload_timer_, reply.retry_after_s);
      // A steered pathway whose playlist is refused (a 4xx; a deployment may answer so for a
      // dead node's pathway) is left at once for the next one, as hls.js does on a 4xx for a level.
      if (reply.status >= 400 && reply.status < 500 && reply.status != 429 &&
          leave_pathway(ctx_.now())) {
        attempts_ = 0;
        return load_media();
      }
      // Players retry a failed playlist load at about half a target duration; a blocking
      // reload that failed is retried without blocking.
      block_until_.reset();
      if (++attempts_ > ctx_.scenario.player.retries + 3)
        return fail("media_playlist_" + std::to_string(reply.status));
      return after(reload_timer_, target_duration_ / 2);
    }
    attempts_ = 0;
    auto parsed = hls::parse_playlist(reply.body, asked);
    if (!parsed.ok() || parsed->kind != hls::PlaylistKind::media)
      return fail("media_playlist_unparsable");
    read_media(*parsed, asked, started);
  });
}

void Viewer::read_media(const hls::Playlist& playlist, const std::string& asked, double started) {
  const hls::MediaInfo& m = playlist.media;
  target_duration_ = static_cast<double>(m.target_duration.value_or(2));
  const std::string variant = variant_of(asked);
  // A delta update lists the newest segments only: the skipped ones are this viewer's own
  // copies of them. Without every one of them it asks for the whole playlist at once.
  std::vector<Segment> skipped;
  if (m.skipped_segments) {
    const auto is_skipped = [&](const Segment& seg) {
      return seg.variant == variant && seg.sequence >= m.media_sequence &&
             seg.sequence < m.media_sequence + *m.skipped_segments;
    };
    if (static_cast<uint64_t>(std::count_if(segments_.begin(), segments_.end(), is_skipped)) !=
        *m.skipped_segments) {
      ctx_.recorder.media_playlist("delta_unmerged");
      can_skip_ = false;
      return after(reload_timer_, 0);
    }
    for (auto& seg : segments_) {
      if (is_skipped(seg)) skipped.push_back(std::move(seg));
    }
  }
  ctx_.recorder.media_playlist(m.skipped_segments ? "delta" : "full");
  can_skip_ = m.server_control.can_skip_until.has_value();
  segments_ = std::move(skipped);
  std::vector<double> durations;
  for (const auto& seg : segments_) durations.push_back(seg.duration);
  // Of the next segment, carried from the last dated one.
  std::optional<double> program_date =
      segments_.empty() || !segments_.back().program_date_s
          ? std::nullopt
          : std::optional(*segments_.back().program_date_s + segments_.back().duration);
  for (const auto& seg : m.segments) {
    if (!seg.program_date_time.empty())
      program_date = hls::parse_program_date(seg.program_date_time);
    segments_.push_back({seg.sequence, seg.duration.value_or(target_duration_),
                         playlist.tmpl.slots()[seg.uri_slot].uri, variant, program_date});
    durations.push_back(segments_.back().duration);
    if (program_date) *program_date += segments_.back().duration;
  }
  std::vector<std::string> keys;
  for (const auto& slot : playlist.tmpl.slots()) {
    if (slot.role == hls::Role::key && slot.uri.rfind("http", 0) == 0) keys.push_back(slot.uri);
  }
  if (!keys.empty()) fetch_keys(keys);
  if (ctx_.scenario.player.low_latency &&
      read_parts(playlist, segments_.size() - m.segments.size())) {
    // hls.js and Media3 ask for the next part's playlist as soon as one arrives; without
    // CAN-BLOCK-RELOAD, every part target.
    after(reload_timer_, can_block_reload_ ? 0 : started + part_target_ - ctx_.now());
    pump_parts();
    return;
  }
  playing_parts_ = false;
  block_until_.reset();
  const std::string signature =
      std::to_string(m.media_sequence) + "/" + std::to_string(segments_.size()) + "/" +
      (segments_.empty() ? std::string() : segment_name(segments_.back().uri));
  const bool changed = signature != signature_;
  signature_ = signature;
  if (!next_sequence_ && !segments_.empty()) {
    const double hold_back = m.server_control.hold_back.value_or(
        ctx_.scenario.player.hold_back_target_durations * target_duration_);
    next_sequence_ = segments_[live_start_index(durations, hold_back)].sequence;
  }
  after(reload_timer_, started + reload_delay_s(target_duration_, changed) - ctx_.now());
  pump_segments();
}

bool Viewer::read_parts(const hls::Playlist& playlist, size_t skipped) {
  const hls::MediaInfo& m = playlist.media;
  if (m.parts.empty() || !m.part_target || *m.part_target <= 0) return false;
  part_target_ = *m.part_target;
  can_block_reload_ = m.server_control.can_block_reload;
  const auto& slots = playlist.tmpl.slots();
  const uint64_t next_msn = segments_.empty() ? m.media_sequence : segments_.back().sequence + 1;
  parts_.clear();
  parts_.reserve(m.parts.size());
  std::optional<size_t> segment;
  uint64_t index = 0, range_end = 0;
  std::optional<double> program_date;
  for (const auto& p : m.parts) {
    const size_t at = skipped + p.segment_index;  // in segments_
    const bool listed = at < segments_.size();
    if (p.segment_index != segment) {
      segment = p.segment_index;
      index = 0;
      range_end = 0;
      // The segment in progress starts where the last listed one ends.
      program_date =
          listed ? segments_[at].program_date_s
          : segments_.empty() || !segments_.back().program_date_s
              ? std::nullopt
              : std::optional(*segments_.back().program_date_s + segments_.back().duration);
    }
    Part part{{listed ? segments_[at].sequence : next_msn, index++},
              p.duration.value_or(part_target_),
              slots[p.uri_slot].uri,
              "",
              p.independent,
              program_date};
    if (p.byte_range) {
      const uint64_t offset = p.byte_range->offset.value_or(range_end);
      range_end = offset + p.byte_range->length;
      part.range = "bytes=" + std::to_string(offset) + "-" + std::to_string(range_end - 1);
    }
    if (program_date) *program_date += part.duration;
    if (played_unlisted_ && part.place == *played_unlisted_) {
      buffer_.amend_last(part.duration, part.program_date_s);
      played_unlisted_.reset();
    }
    parts_.push_back(std::move(part));
  }
  // The hinted part follows the last one listed: the next of its segment, or the first of
  // the next segment once that one is complete.
  const Part& last = parts_.back();
  const PartPlace after_last = last.place.msn < next_msn
                                   ? PartPlace{next_msn, 0}
                                   : PartPlace{last.place.msn, last.place.index + 1};
  hint_.reset();
  for (const auto& h : m.preload_hints) {
    if (h.type != "PART" || !h.uri_slot) continue;
    // A hint with an open-ended byte range is left to the playlist that lists the part.
    if (h.byterange_start && !h.byterange_length) continue;
    Part hinted{after_last, part_target_, slots[*h.uri_slot].uri, "", false, std::nullopt};
    if (h.byterange_start) {
      hinted.range = "bytes=" + std::to_string(*h.byterange_start) + "-" +
                     std::to_string(*h.byterange_start + *h.byterange_length - 1);
    }
    hint_ = std::move(hinted);
  }
  block_until_ = can_block_reload_ ? std::optional(after_last) : std::nullopt;
  if (!playing_parts_ || !next_part_) {
    playing_parts_ = true;
    // Start PART-HOLD-BACK (else three part targets) from the end of the newest part: fetch
    // from the independent part at or before that point, show from that point on.
    const double hold_back = m.server_control.part_hold_back.value_or(3 * part_target_);
    size_t start = parts_.size() - 1;
    for (double from_end = parts_[start].duration; start > 0 && from_end < hold_back;)
      from_end += parts_[--start].duration;
    first_shown_ = parts_[start].place;
    while (start > 0 && !parts_[start].independent) --start;
    next_part_ = parts_[start].place;
  }
  return true;
}

const Viewer::Part* Viewer::find_part(PartPlace& place) const {
  for (int step = 0; step < 2; ++step) {
    for (const auto& p : parts_) {
      if (p.place == place) return &p;
    }
    if (hint_ && hint_->place == place) return &*hint_;
    // Past the last part of a complete segment: the next segment's first part.
    const bool complete = std::any_of(segments_.begin(), segments_.end(),
                                      [&](const Segment& s) { return s.sequence == place.msn; });
    if (!complete || place.index == 0) return nullptr;
    place = {place.msn + 1, 0};
  }
  return nullptr;
}

void Viewer::pump_parts() {
  if (stopped() || segment_fetch_ != 0 || !next_part_ || parts_.empty() || segment_timer_.armed())
    return;
  if (*next_part_ < parts_.front().place) {
    // Fell behind the parts the playlist still lists: a player jumps to its live start.
    ctx_.recorder.fatal("skipped_behind_window");
    next_part_.reset();
    playing_parts_ = false;
    return;  // the next playlist picks the start again
  }
  PartPlace place = *next_part_;
  const Part* found = find_part(place);
  if (!found) return;  // not listed or hinted yet: the next (blocking) reload brings it
  next_part_ = place;
  const Part part = *found;
  ctx_.recorder.segment_asked(segments_.empty() ? part.uri
                                                : segments_.front().variant + "#" +
                                                      std::to_string(part.place.msn) + "." +
                                                      std::to_string(part.place.index));
  http::FetchRequest r;
  r.url = part.uri;
  if (!part.range.empty()) r.headers.push_back({"Range", part.range});
  fetch_media(RequestKind::part, std::move(r), [this, part](const Reply& reply, double started) {
    on_part_done(part, reply, started);
  });
}

void Viewer::on_part_done(const Part& part, const Reply& reply, double started) {
  const double now = ctx_.now();
  if (reply.status != 200 && reply.status != 206) {
    // A hinted part may be refused before it exists (§6.2.6: a 404 for a hint is allowed):
    // the player asks again once the playlist lists it. Other failures count as a segment's.
    if (++segment_attempts_ > ctx_.scenario.player.retries)
      return fail("part_" +
                  (reply.status ? std::to_string(reply.status) : std::string("transport")));
    return after(segment_timer_, std::min(part_target_, backoff_s(segment_attempts_)));
  }
  segment_attempts_ = 0;
  throughput_.add(reply.bytes, now - started);
  // A hinted part's duration and date are known once a playlist lists it.
  Part played = part;
  bool listed = false;
  for (const auto& p : parts_) {
    if (p.place == part.place) {
      played = p;
      listed = true;
    }
  }
  if (first_shown_ && part.place < *first_shown_) {
    // Decoded to reach the start point, not shown.
    next_part_ = PartPlace{part.place.msn, part.place.index + 1};
    return pump_parts();
  }
  first_shown_.reset();
  buffer_.on_segment(played.duration, now, played.program_date_s);
  played_unlisted_ = listed ? std::nullopt : std::optional(part.place);
  if (!startup_reported_ && buffer_.started()) {
    startup_reported_ = true;
    const double queued = was_queued_ ? queue_record_.admitted_at_s - queue_record_.queued_at_s : 0;
    ctx_.recorder.startup(now - pressed_at_ - queued);
  }
  next_part_ = PartPlace{part.place.msn, part.place.index + 1};
  pump_parts();
}

void Viewer::fetch_keys(const std::vector<std::string>& uris) {
  for (const auto& uri : uris) {
    if (std::find(keys_fetched_.begin(), keys_fetched_.end(), uri) != keys_fetched_.end()) continue;
    if (keys_fetched_.size() >= 16) keys_fetched_.erase(keys_fetched_.begin());
    keys_fetched_.push_back(uri);
    http::FetchRequest r;
    r.url = uri;
    request(RequestKind::key, std::move(r), false, [](Reply) {});
  }
}

void Viewer::pump_segments() {
  if (stopped() || segment_fetch_ != 0 || !next_sequence_ || segments_.empty() ||
      segment_timer_.armed())
    return;
  if (*next_sequence_ < segments_.front().sequence) {
    // Fell behind the live window: a player jumps forward (the buffer shows the gap as a stall).
    ctx_.recorder.fatal("skipped_behind_window");
    next_sequence_ = segments_.front().sequence;
  }
  const auto it = std::find_if(segments_.begin(), segments_.end(),
                               [&](const Segment& s) { return s.sequence == *next_sequence_; });
  if (it == segments_.end()) return;  // not listed yet: the next reload brings it
  const Segment segment = *it;
  // Distinct segments asked for: the media playlist's path (its variant) and the sequence
  // number, the same whichever host or pathway serves it.
  ctx_.recorder.segment_asked(segment.variant + "#" + std::to_string(segment.sequence));
  http::FetchRequest r;
  r.url = segment.uri;
  fetch_media(RequestKind::segment, std::move(r),
              [this, segment](const Reply& reply, double started) {
                on_segment_done(segment, reply, started);
              });
}

void Viewer::fetch_media(RequestKind kind, http::FetchRequest media_request,
                         std::function<void(const Reply&, double started)> done) {
  const double started = ctx_.now();
  request(kind, std::move(media_request), false,
          [this, started, done = std::move(done)](Reply reply) {
            segment_fetch_ = 0;
            if (stopped()) return;
            done(reply, started);
          });
  segment_fetch_ = in_flight_.back();
}

void Viewer::on_segment_done(const Segment& segment, const Reply& reply, double started) {
  const double now = ctx_.now();
  if (reply.status == 200 || reply.status == 206) {
    if (failing_since_ && host_of(segment.uri) != failing_host_) {
      ctx_.recorder.failover(now - *failing_since_);
    }
    failing_since_.reset();
    segment_attempts_ = 0;
    throughput_.add(reply.bytes, now - started);
    played_unlisted_.reset();
    buffer_.on_segment(segment.duration, now, segment.program_date_s);
    if (!startup_reported_ && buffer_.started()) {
      startup_reported_ = true;
      // Time in the queue is the queue's figure (wait_s), not the player's startup.
      const double queued =
          was_queued_ ? queue_record_.admitted_at_s - queue_record_.queued_at_s : 0;
      ctx_.recorder.startup(now - pressed_at_ - queued);
    }
    next_sequence_ = segment.sequence + 1;
    if (ctx_.scenario.player.variant == VariantPolicy::abr && !variants_.empty()) choose_variant();
    pump_segments();
    return;
  }
  // A failed segment is retried with backoff; the retry takes whatever URI the newest
  // playlist lists for that sequence number (a dead node's segments move to a sibling there).
  if (!failing_since_) {
    failing_since_ = now;
    failing_host_ = host_of(segment.uri);
  }
  if (++segment_attempts_ > ctx_.scenario.player.retries) {
    return fail("segment_" +
                (reply.status ? std::to_string(reply.status) : std::string("transport")));
  }
  // With content steering a failing pathway is left at once for the next one the manifest
  // ranks (hls.js does): its media playlist lists the same segments on another host.
  if (!pathway_priority_.empty() && leave_pathway(now)) {
    reload_timer_.cancel();
    load_media();
  }
  after(segment_timer_, backoff_s(segment_attempts_));
}

}  // namespace audience
