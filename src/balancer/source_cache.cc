#include "balancer/source_cache.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "balancer/log_tag.h"
#include "core/enum_names.h"
#include "core/log.h"
#include "hls/hold_back.h"
#include "hls/program_date.h"
#include "hls/window.h"

namespace balancer {
namespace {

constexpr core::CounterFamily kBalancerPlaylistCache{
    "balancer_playlist_cache_total", "Playlist source lookups by outcome", "result"};
constexpr core::CounterFamily kBalancerOriginFetches{
    "balancer_origin_fetches_total", "Fetches sent to origin", "trigger", "resource=\"playlist\""};

Millis since(TimePoint then, TimePoint now) {
  return std::chrono::duration_cast<Millis>(now - then);
}

}  // namespace

const char* to_string(SourceResult::From from) {
  static constexpr const char* kFromNames[] = {"HIT", "MISS", "COALESCED", "STALE", "ERROR"};
  static_assert(std::size(kFromNames) == core::enum_count(SourceResult::From::error));
  return core::enum_name(from, kFromNames);
}

struct SourceCache::Entry {
  std::string key;
  std::string url;          // full origin URL fetched
  std::string origin_base;  // the origin base it was fetched from
  bool blocking = false;    // an LL-HLS blocking reload or delta request (keyed apart)
  std::string base_key;     // blocking entries: the key of the ordinary copy they count against
  bool long_poll = false;   // a blocking reload: origin may hold it up to a few targets
  Millis blocking_wait{0};  // a blocking reload: how long it may wait (blocking_wait_limit)
  std::shared_ptr<const SourceVersion> version;
  TimePoint validated_at{};         // send time of the fetch that produced/revalidated `version`
  std::string etag, last_modified;  // validators of `version`
  TimePoint fetch_started{};  // send time of the latest fetch (its Transfer lives in in_flight_)
  // Background refreshes sent while the fetch viewers join (in_flight_) still ran, oldest first
  // (refresh ahead); the oldest takes that fetch's place when it ends. Never with a follow.
  std::vector<Transfer> ahead;
  uint64_t fetches_sent = 0;  // numbers the entry's fetches in send order (Transfer::seq)
  // The newest fetch whose answer the entry holds (a version, a 304 for it, or a 404): an
  // answer of an older fetch landing later is never published over it.
  uint64_t answered_seq = 0;
  Millis round_trip{0};  // origin's round trip for this copy, measured (next_round_trip)
  // Last failure (answers requests for error_hold without a new fetch).
  std::optional<TimePoint> failed_at;
  int failure_status = 0;
  core::Error failure;
  TimePoint last_request{};
  std::shared_ptr<SourceSlot> slot = std::make_shared<SourceSlot>();
  // Latest of this cache's and the fronts' requests.
  TimePoint last_used() const { return std::max(last_request, slot->last_used()); }
  std::optional<core::LoopTimer> refresh_timer;  // made at the first refresh
  bool refresh_pending = false;
  // Live channels: end tags held back, restarts continued (live_restart.h).
  LiveEndPolicy live;          // the latest request's
  LiveEndPolicy applied_live;  // the one `version` was built with
  // The channel's target latency (0: origin's hold-backs); part of the entry's key.
  double target_latency_s = 0;
  LiveRunTracker runs;
  // Origin's bytes behind `version` when the balancer serves a copy of its own
  // (a continued or held live copy); empty when `version` is origin's copy itself.
  std::string origin_body;
  // `version` numbers segments and parts as origin does (no restart continued with new numbers,
  // no window): a viewer's _HLS_msn/_HLS_part then names origin's part, which the follow asks for.
  bool origin_numbering = true;
  // Prefetch: the channel's origin id and choice (the latest request's), and the
  // caches viewers of the version before `version` were sent to.
  std::string origin_id;
  bool prefetch = false;
  uint64_t caches_before = 0;
  // Low-latency playlists of an origin that can block (next_part_to_follow): the blocking
  // reload in origin's numbers that brings the version after `version`; none: by period.
  std::optional<BlockingTarget> follow_next;
  bool follow_now = true;  // the last fetch brought news: the next follow is sent at once
  bool following = false;  // a follow is held at origin: `version` is as new as origin's
  // The last follow brought the part it asked for: origin holds and answers blocking reloads,
  // so the follow will bring the parts after it in turn.
  bool follow_delivers = false;
  // Viewers' blocking reloads for parts past the followed one (the follow brings them in
  // turn, no upstream request of their own): answered by the publish that satisfies them,
  // 503 playlist_not_ready at their deadline (parked_timer).
  struct Parked {
    BlockingTarget target;  // in the numbers of `version` (what the viewer sees)
    TimePoint deadline;
    Waiter waiter;
  };
  std::vector<Parked> parked;
  std::optional<core::LoopTimer> parked_timer;  // made when the first request parks
  // The delta update (_HLS_skip=YES) the balancer built of `version`, once asked for.
  std::shared_ptr<const SourceVersion> delta;
  uint64_t delta_of_serial = 0;
  std::string_view origin_bytes() const {
    if (!origin_body.empty() || !version) return origin_body;
    return version->playlist.tmpl.source();
  }
};

SourceCache::SourceCache(event_base& base, http::HttpClient& client, core::MetricsRegistry& metrics,
                         PlaylistTimings timings, const core::Clock& clock)
    : base_(base),
      client_(client),
      clock_(clock),
      timings_(timings),
      hits_(kBalancerPlaylistCache.in(metrics, "hit")),
      misses_(kBalancerPlaylistCache.in(metrics, "miss")),
      coalesced_(kBalancerPlaylistCache.in(metrics, "coalesced")),
      stale_(kBalancerPlaylistCache.in(metrics, "stale")),
      errors_(kBalancerPlaylistCache.in(metrics, "error")),
      fetches_request_(kBalancerOriginFetches.in(metrics, "request")),
      fetches_refresh_(kBalancerOriginFetches.in(metrics, "refresh")),
      fetches_follow_(kBalancerOriginFetches.in(metrics, "follow")),
      deltas_built_(
          metrics.counter("balancer_playlist_delta_updates_total",
                          "Delta updates (_HLS_skip=YES) the balancer built from its own copy")),
      not_modified_(metrics.counter(
          "balancer_origin_not_modified_total",
          "Playlist refreshes that found the source unchanged (304 or same bytes)")),
      windowed_(
          metrics.counter("balancer_playlist_windowed_total",
                          "Source playlist versions served as a window of their newest segments "
                          "(more than playlists.max_segments)")),
      fetch_seconds_(
          metrics.histogram("balancer_origin_fetch_seconds", "Origin playlist fetch time")),
      live_restarts_(metrics.counter(
          "balancer_live_restarts_total",
          "Live source restarts continued after a discontinuity (numbering went back "
          "or a name changed)")),
      live_ends_held_(metrics.counter("balancer_live_ends_held_total",
                                      "End tags of live sources held back as a state to confirm")),
      refresh_waits_(metrics.counter(
          "balancer_playlist_refresh_waits_total",
          "Viewer requests that waited for an origin fetch of a live copy the balancer had, "
          "grown older than live_max_lag")),
      metrics_(metrics) {
  sweep_timer_.start(std::chrono::seconds(1));
}

SourceCache::~SourceCache() {
  in_flight_.for_each(
      [this](const std::string&, Transfer& transfer) { client_.cancel(transfer.id); });
  for (auto& [key, entry] : entries_) {
    for (const Transfer& transfer : entry->ahead) client_.cancel(transfer.id);
  }
}

size_t SourceCache::refreshing() const {
  size_t n = 0;
  for (const auto& [key, entry] : entries_) n += entry->refresh_pending ? 1 : 0;
  return n;
}

SourceCache::Entry& SourceCache::entry_for(const std::string& key) {
  auto it = entries_.find(key);
  if (it != entries_.end()) return *it->second;
  auto entry = std::make_unique<Entry>();
  entry->key = key;
  Entry& ref = *entry;
  entries_.emplace(key, std::move(entry));
  return ref;
}

namespace {

// Delivery directives the origin behind `base` (the ordinary copy's entry, if
// any) can honour: blocking reloads only with CAN-BLOCK-RELOAD=YES, skips only
// with CAN-SKIP-UNTIL. Otherwise each distinct value would cost an origin fetch
// that answers nothing more than the ordinary copy, so they are dropped.
DeliveryDirectives honoured_directives(const DeliveryDirectives& asked, const SourceVersion* base) {
  if (!asked.any() || base == nullptr || base->playlist.kind != hls::PlaylistKind::media) return {};
  const hls::ServerControl& control = base->playlist.media.server_control;
  DeliveryDirectives out;
  if (control.can_block_reload) {
    out.msn = asked.msn;
    out.part = asked.part;
  }
  if (control.can_skip_until) out.skip = asked.skip;
  return out;
}

SourceResult hit_result(const SourceCache::Entry& entry) {
  SourceResult r;
  r.from = SourceResult::From::hit;
  r.version = entry.version;
  r.validated_at = entry.validated_at;
  r.slot = entry.slot;
  return r;
}

SourceResult error_result(int status, core::Error error) {
  SourceResult r;
  r.status = status;
  r.error = std::move(error);
  return r;
}

// §6.2.5.2: a blocked reload not satisfied within three target durations is a 503.
SourceResult playlist_not_ready() {
  return error_result(
      503,
      {"playlist_not_ready",
       "The playlist did not reach the segment or part asked for (_HLS_msn, _HLS_part) in time."});
}

}  // namespace

// Where a request's copy is kept and fetched from: the ordinary copy's key and URL, or with
// directives, the same with the directives' query added (a copy of its own).
struct SourceCache::CopyAddress {
  std::string key;
  std::string url;
};

std::string source_key(const SourceRequest& request) {
  std::string key = request.origin_id + "\n" + request.target;
  if (request.target_latency_s > 0)
    key += "\nhold-back " + std::to_string(request.target_latency_s);
  return key;
}

void SourceCache::get(const SourceRequest& asked, SourceCallback done) {
  const TimePoint now = clock_.now();
  const std::string base_key = source_key(asked);
  SourceRequest request = asked;
  if (request.directives.any()) request.directives = directives_to_forward(request, base_key);
  const bool delta = builds_delta(request, base_key);
  if (answer_from_shared_live_copy(request, base_key, delta, now, done)) return;
  if (join_follow(request, base_key, delta, now, done)) return;

  // A delta update the balancer builds is built from the full playlist: origin is asked for
  // that (the same copy as the viewers' full reloads of the part), never for a delta.
  if (delta) request.directives.skip.clear();
  const CopyAddress address = address_of(request, base_key);
  // Entries are only ever erased by the sweep timer, never inside a callback.
  if (entries_.find(address.key) == entries_.end()) {
    if (std::optional<SourceResult> refusal = admit_new_entry(address.key, base_key)) {
      errors_.inc();
      return done(*refusal);
    }
  }
  Entry& entry = entry_for_request(address, base_key, request, now);
  answer_or_fetch(entry, std::move(done), now, delta);
}

DeliveryDirectives SourceCache::directives_to_forward(const SourceRequest& request,
                                                      const std::string& base_key) const {
  auto it = entries_.find(base_key);
  const bool same_origin = it != entries_.end() && it->second->origin_base == request.origin_base;
  const SourceVersion* base = same_origin ? it->second->version.get() : nullptr;
  DeliveryDirectives out = honoured_directives(request.directives, base);
  if (out.msn && base != nullptr) {
    // A part past a complete segment's last is part 0 of the next: one key, one upstream wait.
    const BlockingTarget target = normalize_blocking(base->playlist.media, *out.msn, out.part);
    out.msn = target.msn;
    out.part = target.part;
  }
  return out;
}

bool SourceCache::builds_delta(const SourceRequest& request, const std::string& base_key) const {
  // v2 asks that EXT-X-DATERANGE tags be skipped too; a delta update that keeps them is a valid
  // answer (as a full playlist is), and costs origin nothing: one copy per part, not two.
  if (request.directives.skip != "YES" && request.directives.skip != "v2") return false;
  auto it = entries_.find(base_key);
  if (it == entries_.end()) return false;
  const Entry& base = *it->second;
  return base.version && base.origin_base == request.origin_base &&
         base.version->playlist.kind == hls::PlaylistKind::media &&
         base.version->playlist.media.server_control.can_skip_until.has_value() &&
         !base.version->playlist.media.is_delta_update();
}

std::shared_ptr<const SourceVersion> SourceCache::delta_of(Entry& entry) {
  const std::shared_ptr<const SourceVersion>& full = entry.version;
  if (entry.delta && entry.delta_of_serial == full->serial) return entry.delta;
  // Until one is built, the full version answers (a full playlist answers _HLS_skip too).
  entry.delta = full;
  entry.delta_of_serial = full->serial;
  auto update = hls::delta_update(full->playlist);
  if (!update.ok() || update->skipped == 0) return full;
  hls::ParseOptions options;
  options.max_bytes = timings_.max_bytes;
  auto parsed = hls::parse_playlist(update->text, entry.url, options);
  if (!parsed.ok() || parsed->tmpl.slots().size() != update->slots.size()) {
    LOG_WARN_LIMITED(kLog, "delta update of ", entry.url, " not built: ",
                     parsed.ok() ? std::string("its links do not match the playlist's")
                                 : parsed.error().message);
    return full;
  }
  // Every link is the full version's own for the same slot: a viewer's URIs are the same in a
  // delta update as in the full playlist (run markers, first-listed times, part targets).
  auto version = std::make_shared<SourceVersion>();
  version->playlist = std::move(parsed).value();
  version->kind = full->kind;
  version->target_duration = full->target_duration;
  version->total_duration_s = full->total_duration_s;
  version->live = full->live;
  version->newest_media_end_s = full->newest_media_end_s;
  version->plan.part_target_ms = full->plan.part_target_ms;
  std::vector<size_t> chunk_ordinal(full->plan.slots.size(), 0);
  for (size_t i = 0, chunk = 0; i < full->plan.slots.size(); ++i) {
    if (full->plan.slots[i].kind == SlotTarget::Kind::chunk) chunk_ordinal[i] = chunk++;
  }
  for (const size_t slot : update->slots) {
    version->plan.slots.push_back(full->plan.slots[slot]);
    if (full->plan.slots[slot].kind != SlotTarget::Kind::chunk) continue;
    ++version->plan.chunk_slots;
    version->plan.chunk_hashes.push_back(full->plan.chunk_hashes[chunk_ordinal[slot]]);
    if (!full->plan.chunk_first_listed.empty()) {
      version->plan.chunk_first_listed.push_back(
          full->plan.chunk_first_listed[chunk_ordinal[slot]]);
    }
  }
  version->serial = next_serial_++;
  deltas_built_.inc();
  entry.delta = std::move(version);
  return entry.delta;
}

bool SourceCache::answer_from_shared_live_copy(const SourceRequest& request,
                                               const std::string& base_key, bool delta,
                                               TimePoint now, const SourceCallback& done) {
  // A plain delta request is answered from the ordinary copy whenever that is current.
  const bool plain_delta = delta && !request.directives.blocking();
  if (!plain_delta &&
      (!request.directives.blocking() || (!request.directives.skip.empty() && !delta))) {
    return false;
  }
  auto it = entries_.find(base_key);
  if (it == entries_.end()) return false;
  Entry& base = *it->second;
  if (!base.version || base.origin_base != request.origin_base ||
      base.version->playlist.kind != hls::PlaylistKind::media || !current(base, now)) {
    return false;
  }
  const hls::MediaInfo& media = base.version->playlist.media;
  if (!plain_delta) {
    if (directives_too_far(media, *request.directives.msn, request.directives.part)) {
      errors_.inc();
      done(error_result(
          400, {"bad_request", "_HLS_msn or _HLS_part is too far ahead of the playlist."}));
      return true;
    }
    if (!satisfies_blocking(media, *request.directives.msn, request.directives.part)) return false;
  }
  base.last_request = now;
  hits_.inc();
  SourceResult r = hit_result(base);
  if (delta) r.version = delta_of(base);
  done(r);
  return true;
}

bool SourceCache::join_follow(const SourceRequest& request, const std::string& base_key, bool delta,
                              TimePoint now, SourceCallback& done) {
  if (!request.directives.blocking() || (!request.directives.skip.empty() && !delta)) return false;
  auto it = entries_.find(base_key);
  if (it == entries_.end()) return false;
  Entry& base = *it->second;
  // The viewer's numbers are origin's only while the copy numbers as origin does (a live
  // channel's copy of its own, with no restart continued and no window, does).
  if (base.origin_base != request.origin_base || !base.origin_numbering || !base.version)
    return false;
  const BlockingTarget asked{*request.directives.msn, request.directives.part};
  const bool follow_held = base.following && in_flight_.running(base_key);
  if (!follow_held || base.follow_next != asked) {
    // A later part (the copy does not satisfy it, and it is within the advance limits:
    // answer_from_shared_live_copy saw to both), or this one between two follows: while the
    // follow delivers part after part, wait for the copy to reach it.
    const bool follow_goes_on = follow_held || base.refresh_pending;
    if (!base.follow_delivers || !follow_goes_on ||
        base.version->playlist.kind != hls::PlaylistKind::media ||
        satisfies_blocking(base.version->playlist.media, asked.msn, asked.part)) {
      return false;
    }
    park(base, asked, Waiter{std::move(done), false, /*blocking_reload=*/true, delta}, now);
    base.last_request = now;
    coalesced_.inc();
    return true;
  }
  Waiter waiter{std::move(done), false, /*blocking_reload=*/true, delta};
  auto joined = in_flight_.join(base_key, std::move(waiter));
  if (http::overflowed(joined.outcome)) {
    errors_.inc();
    http::UpstreamErrorReply busy = http::overflow_error(kSourceWording);
    waiter.done(error_result(busy.status, std::move(busy.error)));
    return true;
  }
  base.last_request = now;
  coalesced_.inc();
  return true;
}

SourceCache::CopyAddress SourceCache::address_of(const SourceRequest& request,
                                                 const std::string& base_key) {
  CopyAddress address{base_key, request.origin_base + request.target};
  if (request.directives.any()) {
    std::string q = request.directives.query();
    char sep = request.target.find('?') == std::string::npos ? '?' : '&';
    address.key += sep + q;
    address.url += sep + q;
  }
  return address;
}

std::optional<SourceResult> SourceCache::admit_new_entry(const std::string& key,
                                                         const std::string& base_key) {
  if (entries_.size() >= timings_.max_entries) {
    return error_result(
        503, {"busy", "Too many distinct playlists are being served; try again shortly."});
  }
  if (key != base_key) {
    size_t& per_playlist = directive_entries_[base_key];
    if (per_playlist >= timings_.max_directive_entries) {
      return error_result(
          503,
          {"busy",
           "Too many distinct LL-HLS reloads of this playlist are pending; try again shortly."});
    }
    ++per_playlist;
  }
  return std::nullopt;
}

SourceCache::Entry& SourceCache::entry_for_request(const CopyAddress& address,
                                                   const std::string& base_key,
                                                   const SourceRequest& request, TimePoint now) {
  Entry& entry = entry_for(address.key);
  if (address.key != base_key) entry.base_key = base_key;
  if (entry.origin_base != request.origin_base) {
    // New entry, or the origin's URL changed on reload: nothing cached applies.
    entry.origin_base = request.origin_base;
    entry.version.reset();
    entry.slot->publish(nullptr, {});
    entry.etag.clear();
    entry.last_modified.clear();
    entry.failed_at.reset();
  }
  entry.url = address.url;
  entry.live = request.live;
  entry.target_latency_s = request.target_latency_s;
  entry.origin_id = request.origin_id;
  entry.prefetch = request.prefetch;
  entry.blocking = request.directives.any();
  entry.long_poll = request.directives.blocking();
  if (entry.long_poll) {
    // Three target durations of the playlist as last seen (§6.2.5.2), within the configured bound.
    entry.blocking_wait = timings_.blocking_timeout;
    auto base = entries_.find(base_key);
    if (base != entries_.end() && base->second->version &&
        base->second->version->target_duration.count() > 0) {
      entry.blocking_wait = std::min(entry.blocking_wait,
                                     blocking_wait_limit(base->second->version->target_duration));
    }
  }
  entry.last_request = now;
  return entry;
}

void SourceCache::answer_or_fetch(Entry& entry, SourceCallback done, TimePoint now, bool delta) {
  // A copy built under another live policy (the operator changed the channel) is refetched.
  if (entry.version && entry.version->live == entry.live && current(entry, now)) {
    hits_.inc();
    schedule_refresh(entry, now);
    SourceResult r = hit_result(entry);
    if (delta) r.version = delta_of(entry);
    return done(r);
  }
  const bool running = in_flight_.running(entry.key);
  if (!running && entry.failed_at && since(*entry.failed_at, now) < timings_.error_hold) {
    return answer_failure(entry, done, now);
  }
  // The background refresh did not keep this live copy current: the viewer waits for origin.
  const bool refresh_wait = entry.version && !entry.blocking &&
                            entry.version->kind == SourceKind::live && !current(entry, now);
  Waiter waiter{std::move(done), !running, false, delta};
  auto joined = in_flight_.join(entry.key, std::move(waiter));
  if (http::overflowed(joined.outcome)) {
    errors_.inc();
    http::UpstreamErrorReply busy = http::overflow_error(kSourceWording);
    return waiter.done(error_result(busy.status, std::move(busy.error)));
  }
  if (refresh_wait) refresh_waits_.inc();
  if (joined.outcome == http::JoinOutcome::joined) {
    coalesced_.inc();
    return;
  }
  misses_.inc();
  start_fetch(entry, *joined.flight, false);
}

bool SourceCache::current(const Entry& entry, TimePoint now) const {
  return entry.following || is_fresh(entry.version->kind, since(entry.validated_at, now), timings_);
}

void SourceCache::start_fetch(Entry& entry, Transfer& transfer, bool background) {
  entry.fetch_started = clock_.now();
  transfer.seq = ++entry.fetches_sent;
  transfer.sent = entry.fetch_started;
  const bool follow = background && !entry.blocking && entry.follow_next && entry.version;
  (follow ? fetches_follow_ : background ? fetches_refresh_ : fetches_request_).inc();
  http::FetchRequest fetch;
  fetch.url = entry.url;
  fetch.timeout = entry.long_poll ? entry.blocking_wait : timings_.fetch_timeout;
  if (follow) {
    DeliveryDirectives next;
    next.msn = entry.follow_next->msn;
    next.part = entry.follow_next->part;
    fetch.url += (entry.url.find('?') == std::string::npos ? '?' : '&') + next.query();
    fetch.timeout =
        std::min(timings_.blocking_timeout, blocking_wait_limit(entry.version->target_duration));
    entry.following = true;
    entry.slot->set_following(true);
  }
  if (entry.version) {
    // Prefer the ETag: Last-Modified has one-second resolution, and a live
    // playlist changes more often than that.
    if (!entry.etag.empty()) {
      fetch.headers.push_back({"If-None-Match", entry.etag});
    } else if (!entry.last_modified.empty() && entry.version->kind != SourceKind::live) {
      fetch.headers.push_back({"If-Modified-Since", entry.last_modified});
    }
    if (!fetch.headers.empty()) transfer.sent_validator = fetch.headers.back().value;
  }
  std::string key = entry.key;
  const uint64_t seq = transfer.seq;
  http::FetchCallbacks callbacks;
  callbacks.on_head = [this, key, seq](const http::FetchHead& head) {
    Transfer* t = transfer_of(key, seq);
    if (t == nullptr) return;
    t->status = head.status;
    if (head.status == 200) {
      t->etag = head.header("ETag").value_or("");
      t->last_modified = head.header("Last-Modified").value_or("");
      auto length = head.content_length();
      if (length && *length > timings_.max_bytes) t->body.too_large = true;
    }
  };
  callbacks.on_data = [this, key, seq](std::string_view bytes) {
    Transfer* t = transfer_of(key, seq);
    if (t != nullptr && t->status == 200) t->body.append(bytes, timings_.max_bytes);
  };
  callbacks.on_done = [this, key, seq](const http::FetchResult& result) {
    on_done(key, seq, result);
  };
  transfer.id = client_.fetch(std::move(fetch), std::move(callbacks));
}

SourceCache::Transfer* SourceCache::transfer_of(const std::string& key, uint64_t seq) {
  if (Transfer* t = in_flight_.flight(key); t != nullptr && t->seq == seq) return t;
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  for (Transfer& t : it->second->ahead) {
    if (t.seq == seq) return &t;
  }
  return nullptr;
}

size_t SourceCache::fetches_in_flight(const Entry& entry) const {
  return (in_flight_.running(entry.key) ? 1 : 0) + entry.ahead.size();
}

std::optional<bool> SourceCache::take_landed(Entry& entry, uint64_t seq, Transfer& transfer,
                                             std::vector<Waiter>& waiters) {
  const Transfer* joined = in_flight_.flight(entry.key);
  if (joined != nullptr && joined->seq == seq) {
    // The key is free again before any waiter is answered (an answer may ask again), or
    // taken by the oldest refresh sent ahead, which viewers join from now on.
    auto finished = in_flight_.finish(entry.key);
    transfer = std::move(finished.flight);
    waiters = std::move(finished.waiters);
    if (!entry.ahead.empty()) {
      auto promoted = in_flight_.find_or_start(entry.key);
      if (promoted.flight != nullptr) {
        *promoted.flight = std::move(entry.ahead.front());
        entry.ahead.erase(entry.ahead.begin());
      }
    }
    return true;
  }
  auto ahead = std::find_if(entry.ahead.begin(), entry.ahead.end(),
                            [seq](const Transfer& t) { return t.seq == seq; });
  if (ahead == entry.ahead.end()) return std::nullopt;
  transfer = std::move(*ahead);
  entry.ahead.erase(ahead);
  return false;
}

void SourceCache::on_done(const std::string& key, uint64_t seq, const http::FetchResult& result) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& entry = *it->second;
  Transfer transfer;
  std::vector<Waiter> waiters;
  const std::optional<bool> landed = take_landed(entry, seq, transfer, waiters);
  if (!landed) return;
  const TimePoint now = clock_.now();
  const bool followed = entry.following;  // a follow is never sent beside another fetch
  entry.following = false;
  entry.slot->set_following(false);
  const std::optional<BlockingTarget> followed_from = entry.follow_next;
  entry.follow_now = false;
  // A follow was held at origin until its part came: its answer is origin's as of now.
  const TimePoint vouched = followed ? now : transfer.sent;
  const std::string& body = transfer.body.bytes;

  auto failure = http::classify_fetch(result, transfer.status, transfer.body.too_large,
                                      /*not_modified_ok=*/entry.version != nullptr);
  if (!followed) {
    fetch_seconds_.observe(std::chrono::duration<double>(now - transfer.sent).count());
    if (!failure) entry.round_trip = next_round_trip(entry.round_trip, since(transfer.sent, now));
  }
  // Overlapping refreshes may land out of order: an answer older than the one the entry holds,
  // or a 304 for validators it no longer holds, is old news, never published over the copy.
  const std::string& validator = entry.etag.empty() ? entry.last_modified : entry.etag;
  if (transfer.seq < entry.answered_seq ||
      (!failure && result.status == 304 && transfer.sent_validator != validator)) {
    answer_old_news(entry, std::move(waiters), failure, result, now);
    schedule_refresh(entry, now);
    return;
  }
  // Cleared unless this follow brings the part it asked for (below).
  if (followed) entry.follow_delivers = false;
  if (followed && failure == http::UpstreamFailure::timeout && entry.version) {
    entry.answered_seq = transfer.seq;
    answer_stalled_follow(entry, waiters, now);
  } else if (failure) {
    if (*failure == http::UpstreamFailure::not_found) entry.answered_seq = transfer.seq;
    answer_fetch_failure(entry, std::move(waiters), *failure, result);
  } else {
    entry.answered_seq = transfer.seq;
    // A refresh sent ahead brought news first: viewers waiting on an older fetch take it.
    if (!*landed) {
      for (Waiter& w : in_flight_.take_waiters(key)) waiters.push_back(std::move(w));
    }
    // Unchanged copies keep their parsed version and its memos, unless the
    // channel's live policy changed or a held end tag is due.
    const bool same_answer =
        entry.applied_live == entry.live && !entry.runs.end_due(entry.live, now);
    if (result.status == 304 && same_answer) {
      not_modified_.inc();
      publish(entry, entry.version, vouched, std::move(waiters));
    } else if (result.status != 304 && entry.version && entry.origin_bytes() == body &&
               same_answer) {
      not_modified_.inc();  // an origin without validators
      entry.etag = std::move(transfer.etag);
      entry.last_modified = std::move(transfer.last_modified);
      publish(entry, entry.version, vouched, std::move(waiters));
    } else {
      if (result.status != 304) {
        entry.etag = std::move(transfer.etag);
        entry.last_modified = std::move(transfer.last_modified);
      } else {
        not_modified_.inc();
      }
      auto version = build_version(
          entry, result.status == 304 ? entry.origin_bytes() : std::string_view(body), now);
      if (!version) {
        fail(entry, std::move(waiters), 502, version.error());
      } else {
        entry.follow_now = !followed || entry.follow_next != followed_from;
        entry.follow_delivers = followed && entry.follow_next != followed_from;
        publish(entry, std::move(version).value(), vouched, std::move(waiters));
      }
    }
  }
  schedule_refresh(entry, now);
}

void SourceCache::answer_old_news(Entry& entry, std::vector<Waiter> waiters,
                                  std::optional<http::UpstreamFailure> failure,
                                  const http::FetchResult& result, TimePoint now) {
  if (failure) {
    const http::UpstreamErrorReply reply =
        http::upstream_error(*failure, kSourceWording, result.status);
    metrics_
        .counter("balancer_origin_fetch_failures_total", "Failed origin fetches by error code",
                 "resource=\"playlist\",code=\"" + reply.error.code + "\"")
        .inc();
  }
  // Its viewers get what the newer answer left: the copy, or the failure held.
  if (entry.version) return answer(entry, std::move(waiters));
  for (Waiter& w : waiters) answer_failure(entry, w.done, now);
}

// No part within the wait: origin has nothing newer (a stalled encoder). The copy is
// still origin's newest; the next follow leaves after live_refresh.
void SourceCache::answer_stalled_follow(Entry& entry, std::vector<Waiter>& waiters, TimePoint now) {
  entry.validated_at = now;
  entry.fetch_started = now;
  entry.slot->publish(entry.version, now);
  for (auto& w : waiters) {
    if (w.blocking_reload) {
      errors_.inc();
      w.done(playlist_not_ready());
    } else {
      w.done(hit_result(entry));
    }
  }
}

void SourceCache::answer_fetch_failure(Entry& entry, std::vector<Waiter> waiters,
                                       http::UpstreamFailure failure,
                                       const http::FetchResult& result) {
  if (!result.ok) LOG_WARN_LIMITED(kLog, "playlist fetch failed: ", entry.url, ": ", result.error);
  if (failure == http::UpstreamFailure::not_found) {
    entry.version.reset();
    entry.slot->publish(nullptr, {});
  }
  http::UpstreamErrorReply reply = http::upstream_error(failure, kSourceWording, result.status);
  if (entry.long_poll && failure == http::UpstreamFailure::timeout) {
    SourceResult not_ready = playlist_not_ready();
    reply = {not_ready.status, std::move(not_ready.error)};
  }
  fail(entry, std::move(waiters), reply.status, std::move(reply.error));
}

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

}  // namespace

core::Result<std::shared_ptr<const SourceVersion>> SourceCache::build_version(Entry& entry,
                                                                              std::string_view body,
                                                                              TimePoint now) {
  hls::ParseOptions options;
  options.max_bytes = timings_.max_bytes;
  // The channel's target latency, set by the operator, in a media playlist's hold-backs
  // (hls/hold_back.h); origin's bytes are then kept apart to recognise an unchanged copy.
  std::optional<std::string> held_back;
  if (entry.target_latency_s > 0) held_back = hls::with_hold_back(body, entry.target_latency_s);
  auto parsed =
      hls::parse_playlist(held_back ? std::string_view(*held_back) : body, entry.url, options);
  if (!parsed.ok()) {
    LOG_WARN_LIMITED(kLog, "malformed playlist from origin: ", entry.url, ": ",
                     parsed.error().message);
    return core::Error{"bad_source_playlist", "The origin's playlist is malformed (" +
                                                  parsed.error().code +
                                                  "): " + parsed.error().message};
  }
  auto version = std::make_shared<SourceVersion>();
  version->playlist = std::move(parsed).value();
  std::optional<BlockingTarget> follow_next;
  if (!entry.blocking && version->playlist.kind == hls::PlaylistKind::media) {
    follow_next =
        next_part_to_follow(version->playlist.media);  // origin's numbers, before any continuation
  }
  std::vector<std::pair<size_t, uint64_t>> runs_by_line;
  bool own_copy = held_back.has_value();
  entry.applied_live = entry.live;
  if (!entry.blocking && version->playlist.kind == hls::PlaylistKind::media) {
    if (auto runs = continue_live_run(entry, version->playlist, options, now)) {
      own_copy = true;
      runs_by_line = std::move(*runs);
    }
  }
  version->kind = classify(version->playlist);
  // Long live playlists become a window of their newest segments (in served numbers, after
  // any continuation); origin's bytes are then kept apart to recognise an unchanged copy.
  std::optional<hls::Playlist> before_window;
  if (auto refused = limit_master_entries(*version, entry.url)) return std::move(*refused);
  if (auto refused = limit_segments(*version, entry.url, &before_window))
    return std::move(*refused);
  if (before_window) {
    own_copy = true;
    runs_by_line = runs_after_window(*before_window, version->playlist, runs_by_line);
  }
  if (version->playlist.kind == hls::PlaylistKind::media) {
    version->target_duration = target_duration_of(version->playlist);
    version->newest_media_end_s = hls::newest_media_end(version->playlist.media);
    for (const auto& segment : version->playlist.media.segments) {
      version->total_duration_s += segment.duration.value_or(0);
    }
  }
  version->live = entry.applied_live;
  version->plan = plan_rewrite(version->playlist.tmpl, entry.origin_base);
  if (const auto& part_target = version->playlist.media.part_target;
      version->playlist.kind == hls::PlaylistKind::media && part_target && *part_target > 0) {
    version->plan.part_target_ms =
        std::clamp<int64_t>(std::llround(*part_target * 1000), 1, 60'000);
  }
  mark_runs(version->plan, version->playlist.tmpl, runs_by_line);
  stamp_first_listed(entry.blocking ? entry.base_key : entry.key, *version);
  version->serial = next_serial_++;
  // Keep origin's bytes only when they are not the version's own (`body` may view them: assign
  // last).
  if (own_copy) {
    entry.origin_body.assign(body);
  } else {
    entry.origin_body.clear();
  }
  entry.follow_next = follow_next;
  entry.origin_numbering = entry.runs.origin_numbering() && !before_window;
  return std::shared_ptr<const SourceVersion>(std::move(version));
}

// The entry's live run tracker sees origin's `playlist`; when it serves its own copy (held end
// tag, restart continued) and that parses, the copy replaces `playlist` and its runs by line
// are returned.
std::optional<std::vector<std::pair<size_t, uint64_t>>> SourceCache::continue_live_run(
    Entry& entry, hls::Playlist& playlist, const hls::ParseOptions& options, TimePoint now) {
  const uint64_t restarts = entry.runs.restarts();
  const bool was_holding = entry.runs.holding_end();
  auto served = entry.runs.next(playlist, entry.live, now, clock_.unix_now_ms());
  if (entry.runs.restarts() != restarts) {
    live_restarts_.inc();
    LOG_INFO(kLog, "live source restarted (numbering went back or a name changed): ", entry.url,
             ": continuing as run ", entry.runs.run(), " after a discontinuity");
  }
  if (entry.runs.holding_end() && !was_holding) {
    live_ends_held_.inc();
    LOG_INFO(kLog, "live source ended (EXT-X-ENDLIST): ", entry.url, ": holding the end back for ",
             entry.live.end_confirm.count() / 1000, " s, refreshing at live cadence");
  }
  if (!served) return std::nullopt;
  auto continued = hls::parse_playlist(served->text, entry.url, options);
  if (!continued.ok()) {
    LOG_WARN_LIMITED(kLog, "continued copy of ", entry.url, " does not parse (",
                     continued.error().message, "): serving origin's");
    return std::nullopt;
  }
  playlist = std::move(continued).value();
  return std::move(served->runs_by_line);
}

void SourceCache::stamp_first_listed(const std::string& playlist_key, SourceVersion& version) {
  if (version.plan.chunk_slots == 0) return;
  const int64_t now = clock_.unix_now();
  auto& listed = first_listed_[playlist_key];
  std::vector<int64_t>& out = version.plan.chunk_first_listed;
  out.clear();
  out.reserve(version.plan.chunk_hashes.size());
  for (uint64_t hash : version.plan.chunk_hashes)
    out.push_back(listed.emplace(hash, now).first->second);
  // Chunks that left the playlist are forgotten an hour on (a version can be old, a
  // directive copy behind the ordinary one), so the table stays near the playlist's size.
  if (listed.size() > 2 * out.size() + 256) {
    std::erase_if(listed, [now](const auto& item) { return item.second < now - 3600; });
  }
}

std::optional<core::Error> SourceCache::limit_segments(SourceVersion& version,
                                                       const std::string& url,
                                                       std::optional<hls::Playlist>* replaced) {
  const hls::Playlist& playlist = version.playlist;
  const size_t segments =
      playlist.kind == hls::PlaylistKind::media ? playlist.media.segments.size() : 0;
  if (segments <= timings_.max_segments) return std::nullopt;
  const std::string counts = std::to_string(segments) + " segments, over the limit of " +
                             std::to_string(timings_.max_segments) + " (playlists.max_segments)";
  if (version.kind == SourceKind::vod || playlist.media.is_delta_update()) {
    LOG_WARN_LIMITED(kLog, "playlist from origin refused: ", url, ": ", counts);
    return core::Error{"source_too_many_segments", "The origin's playlist lists " + counts + "."};
  }
  auto window = hls::newest_segments(playlist, timings_.max_segments);
  hls::ParseOptions options;
  options.max_bytes = timings_.max_bytes;
  auto parsed = window.ok() ? hls::parse_playlist(*window, url, options)
                            : hls::Result<hls::Playlist>(window.error());
  if (!parsed.ok()) {
    LOG_WARN_LIMITED(kLog, "window of a long playlist from origin failed: ", url, ": ",
                     parsed.error().message);
    return core::Error{"bad_source_playlist", "The origin's playlist lists " + counts +
                                                  " and its newest ones do not make a playlist: " +
                                                  parsed.error().message};
  }
  windowed_.inc();
  LOG_DEBUG(kLog, "serving the newest ", timings_.max_segments, " of ", segments, " segments of ",
            url);
  if (replaced != nullptr) *replaced = std::move(version.playlist);
  version.playlist = std::move(parsed).value();
  version.kind = classify(version.playlist);
  return std::nullopt;
}

std::optional<core::Error> SourceCache::limit_master_entries(const SourceVersion& version,
                                                             const std::string& url) {
  const hls::Playlist& playlist = version.playlist;
  if (playlist.kind != hls::PlaylistKind::master) return std::nullopt;
  const size_t entries = playlist.master.variants.size() + playlist.master.renditions.size();
  if (entries <= timings_.max_master_entries) return std::nullopt;
  const std::string counts =
      std::to_string(entries) + " variants and renditions, over the limit of " +
      std::to_string(timings_.max_master_entries) + " (playlists.max_master_entries)";
  LOG_WARN_LIMITED(kLog, "playlist from origin refused: ", url, ": ", counts);
  return core::Error{"source_too_many_variants",
                     "The origin's master playlist lists " + counts + "."};
}

void SourceCache::publish(Entry& entry, std::shared_ptr<const SourceVersion> version,
                          TimePoint validated_at, std::vector<Waiter> waiters) {
  std::shared_ptr<const SourceVersion> previous = std::move(entry.version);
  entry.version = std::move(version);
  entry.validated_at = validated_at;
  entry.slot->publish(entry.version, validated_at);
  if (previous && previous != entry.version) {
    if (prefetch_sink_ && entry.prefetch && !entry.blocking &&
        entry.version->kind == SourceKind::live && previous->kind == SourceKind::live) {
      offer_prefetch(entry, *previous, *entry.version);
    }
    entry.caches_before = previous->cache_use.mask();
  }
  entry.failed_at.reset();
  answer(entry, std::move(waiters));
  answer_parked(entry);
}

void SourceCache::answer(Entry& entry, std::vector<Waiter> waiters) {
  if (waiters.empty()) return;
  // Callbacks may call get() (which may add entries or park again): use only local copies.
  const std::shared_ptr<const SourceVersion> current = entry.version;
  std::shared_ptr<const SourceVersion> delta;
  if (std::any_of(waiters.begin(), waiters.end(), [](const Waiter& w) { return w.delta; }))
    delta = delta_of(entry);
  const TimePoint validated_at = entry.validated_at;
  const std::shared_ptr<SourceSlot> slot = entry.slot;
  for (auto& w : waiters) {
    SourceResult r;
    r.from = w.first ? SourceResult::From::miss : SourceResult::From::coalesced;
    r.version = w.delta ? delta : current;
    r.validated_at = validated_at;
    r.slot = slot;
    w.done(r);
  }
}

std::vector<SourceCache::Waiter> SourceCache::take_parked(Entry& entry, TimePoint now,
                                                          const ParkedReady& ready) {
  std::vector<Waiter> taken;
  std::vector<Entry::Parked> still;
  for (Entry::Parked& p : entry.parked) {
    if (ready(p.target, p.deadline)) {
      taken.push_back(std::move(p.waiter));
    } else {
      still.push_back(std::move(p));
    }
  }
  entry.parked = std::move(still);
  if (!taken.empty()) arm_parked_timer(entry, now);
  return taken;
}

void SourceCache::park(Entry& entry, BlockingTarget target, Waiter waiter, TimePoint now) {
  Millis wait = timings_.blocking_timeout;
  if (entry.version->target_duration.count() > 0) {
    wait = std::min(wait, blocking_wait_limit(entry.version->target_duration));
  }
  entry.parked.push_back({target, now + wait, std::move(waiter)});
  arm_parked_timer(entry, now);
}

void SourceCache::arm_parked_timer(Entry& entry, TimePoint now) {
  if (entry.parked.empty()) {
    if (entry.parked_timer) entry.parked_timer->cancel();
    return;
  }
  TimePoint earliest = entry.parked.front().deadline;
  for (const Entry::Parked& p : entry.parked) earliest = std::min(earliest, p.deadline);
  if (!entry.parked_timer) {
    entry.parked_timer.emplace(base_, core::LoopTimer::Repeat::once,
                               [this, key = entry.key] { on_parked_timer(key); });
  }
  entry.parked_timer->start(std::chrono::duration_cast<Millis>(earliest - now));
}

void SourceCache::answer_parked(Entry& entry) {
  if (entry.parked.empty() || !entry.version ||
      entry.version->playlist.kind != hls::PlaylistKind::media)
    return;
  const hls::MediaInfo& media = entry.version->playlist.media;
  answer(entry, take_parked(entry, clock_.now(), [&media](const BlockingTarget& target, TimePoint) {
           return satisfies_blocking(media, target.msn, target.part);
         }));
}

void SourceCache::on_parked_timer(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  const TimePoint now = clock_.now();
  // A millisecond early counts: the timer's resolution, not a reason to wait again.
  std::vector<Waiter> expired = take_parked(
      *it->second, now,
      [now](const BlockingTarget&, TimePoint deadline) { return deadline <= now + Millis(1); });
  for (Waiter& w : expired) {
    errors_.inc();
    w.done(playlist_not_ready());
  }
}

void SourceCache::offer_prefetch(Entry& entry, const SourceVersion& previous,
                                 const SourceVersion& current) {
  // Viewers of the last two versions: a player reloads about once per target
  // duration, so some of this channel's viewers have not seen `previous` yet.
  const uint64_t caches = previous.cache_use.mask() | entry.caches_before;
  if (caches == 0) return;
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
  if (!fresh.empty()) prefetch_sink_(entry.origin_id, fresh, caches);
}

void SourceCache::fail(Entry& entry, std::vector<Waiter> waiters, int status, core::Error error) {
  const TimePoint now = clock_.now();
  entry.failed_at = now;
  entry.failure_status = status;
  entry.failure = std::move(error);
  core::Counter& counter = metrics_.counter(
      "balancer_origin_fetch_failures_total", "Failed origin fetches by error code",
      "resource=\"playlist\",code=\"" + entry.failure.code + "\"");
  counter.inc();
  for (auto& w : waiters) {
    if (w.blocking_reload) {
      // A viewer's blocking reload that joined the follow: the failure, not the old copy.
      errors_.inc();
      w.done(error_result(status, entry.failure));
    } else {
      answer_failure(entry, w.done, now);
    }
  }
}

void SourceCache::answer_failure(Entry& entry, const SourceCallback& done, TimePoint now) {
  SourceResult r;
  if (entry.version && may_serve_stale(entry.version->kind, since(entry.validated_at, now),
                                       entry.version->target_duration, timings_)) {
    stale_.inc();
    r.from = SourceResult::From::stale;
    r.version = entry.version;
    r.validated_at = entry.validated_at;
    r.slot = entry.slot;
  } else {
    errors_.inc();
    r.status = entry.failure_status;
    r.error = entry.failure;
  }
  done(r);
}

void SourceCache::schedule_refresh(Entry& entry, TimePoint now) {
  if (!refreshing_enabled_ || entry.blocking || entry.refresh_pending) return;
  if (!entry.version || entry.version->kind != SourceKind::live) return;
  if (since(entry.last_used(), now) > timings_.live_idle) return;
  if (fetches_in_flight(entry) >= refreshes_allowed(entry)) return;  // on_done schedules it
  if (!entry.refresh_timer) {
    entry.refresh_timer.emplace(base_, core::LoopTimer::Repeat::once,
                                [this, key = entry.key] { on_refresh_timer(key); });
  }
  // After the last fetch was sent: one refresh period for a follow (one that brought news: at
  // once), a plain refresh in time for its answer to land within live_max_lag (refresh ahead);
  // after a failure, not before error_hold.
  Millis delay =
      (entry.follow_next ? timings_.live_refresh : refresh_interval(entry.round_trip, timings_)) -
      since(entry.fetch_started, now);
  if (entry.follow_next && entry.follow_now) delay = Millis(0);
  if (entry.failed_at) delay = std::max(delay, timings_.error_hold);
  entry.refresh_timer->start(delay);
  entry.refresh_pending = true;
}

size_t SourceCache::refreshes_allowed(const Entry& entry) {
  // A follow is held at origin until its part comes, and retries after a failure go at
  // error_hold's pace: one at a time. A plain refresh may overlap those sent before it.
  return entry.follow_next || entry.failed_at ? 1 : kMaxRefreshesInFlight;
}

void SourceCache::on_refresh_timer(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& entry = *it->second;
  entry.refresh_pending = false;
  const TimePoint now = clock_.now();
  if (!refreshing_enabled_) return;
  if (since(entry.last_used(), now) > timings_.live_idle) {
    LOG_DEBUG(kLog, "no viewer asked for ", entry.url, " lately: background refresh stops");
    return;
  }
  const size_t running = fetches_in_flight(entry);
  if (running >= refreshes_allowed(entry)) return;
  if (running == 0) {
    auto started = in_flight_.find_or_start(key);
    if (started.outcome == http::JoinOutcome::started) start_fetch(entry, *started.flight, true);
  } else {
    entry.ahead.emplace_back();
    start_fetch(entry, entry.ahead.back(), true);
  }
  schedule_refresh(entry, now);  // the next one, if it may overlap this one
}

void SourceCache::stop_refreshing() {
  refreshing_enabled_ = false;
  for (auto& [key, entry] : entries_) {
    if (entry->refresh_timer) entry->refresh_timer->cancel();
    entry->refresh_pending = false;
  }
}

void SourceCache::sweep() {
  const TimePoint now = clock_.now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = *it->second;
    Millis idle_limit =
        e.blocking ? std::min(timings_.evict_after, Millis(10000)) : timings_.evict_after;
    if (e.version && e.version->kind == SourceKind::vod && !e.blocking) {
      idle_limit = std::max(idle_limit, timings_.vod_ttl);
    }
    if (fetches_in_flight(e) == 0 && e.parked.empty() && since(e.last_used(), now) > idle_limit) {
      if (!e.base_key.empty()) {
        auto count = directive_entries_.find(e.base_key);
        if (count != directive_entries_.end() && --count->second == 0)
          directive_entries_.erase(count);
      }
      const std::string playlist_key = e.base_key.empty() ? e.key : e.base_key;
      it = entries_.erase(it);
      if (!entries_.count(playlist_key) && !directive_entries_.count(playlist_key))
        first_listed_.erase(playlist_key);
    } else {
      ++it;
    }
  }
}

}  // namespace balancer
