#include "balancer/sources/source_cache.h"

#include <algorithm>
#include <charconv>

#include "balancer/log_tag.h"
#include "balancer/sources/source_cache_entry.h"
#include "core/enum_names.h"
#include "core/log.h"

namespace balancer {
namespace {

// A copy whose viewers asked for no delta update for this long stops building one per version.
constexpr auto kDeltasUnaskedFor = std::chrono::seconds(30);

constexpr core::CounterFamily kBalancerPlaylistCache{
    "balancer_playlist_cache_total", "Playlist source lookups by outcome", "result"};
constexpr core::CounterFamily kBalancerOriginFetches{
    "balancer_origin_fetches_total", "Fetches sent to origin", "trigger", "resource=\"playlist\""};

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

}  // namespace

SourceResult SourceCache::hit_result(const Entry& entry) {
  SourceResult r;
  r.from = SourceResult::From::hit;
  r.version = entry.version;
  r.validated_at = entry.validated_at;
  r.slot = entry.slot;
  return r;
}

SourceResult SourceCache::error_result(int status, core::Error error) {
  SourceResult r;
  r.status = status;
  r.error = std::move(error);
  return r;
}

Millis SourceCache::since(TimePoint then, TimePoint now) {
  return std::chrono::duration_cast<Millis>(now - then);
}

const char* to_string(SourceResult::From from) {
  static constexpr const char* kFromNames[] = {"HIT", "MISS", "COALESCED", "STALE", "ERROR"};
  static_assert(std::size(kFromNames) == core::enum_count(SourceResult::From::error));
  return core::enum_name(from, kFromNames);
}

SourceCache::SourceCache(core::EventLoop& loop, http::HttpClient& client,
                         core::MetricsRegistry& metrics, PlaylistTimings timings,
                         const core::Clock& clock)
    : loop_(loop),
      base_(loop.base()),
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
  core::expect_on(loop_);
  size_t n = 0;
  for (const auto& [key, entry] : entries_) n += entry->refresh_pending ? 1 : 0;
  return n;
}

SourceCache::Entry& SourceCache::entry_for(const std::string& key) {
  auto it = entries_.find(key);
  if (it != entries_.end()) return *it->second;
  auto entry = std::make_unique<Entry>(base_, key, [this, key] { on_parked_timer(key); });
  Entry& ref = *entry;
  entries_.emplace(key, std::move(entry));
  return ref;
}

// Where a request's copy is kept and fetched from: the ordinary copy's key and URL, or with
// directives, the same with the directives' query added (a copy of its own).
struct SourceCache::CopyAddress {
  std::string key;
  std::string url;
};

void source_key_into(std::string& out, const SourceRequest& request) {
  // A channel with several sources has one copy of each playlist, whichever source it comes
  // from: keyed by the channel and the preferred source's name for it.
  out.clear();
  if (request.sources.empty()) {
    out.append(request.origin_id).append("\n").append(request.target);
  } else {
    out.append("channel ").append(request.channel).append("\n");
    out.append(request.sources.front().target);
  }
  if (request.target_latency_s > 0) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, request.target_latency_s).ptr;
    out.append("\nhold-back ").append(digits, end);
  }
}

std::string source_key(const SourceRequest& request) {
  std::string key;
  source_key_into(key, request);
  return key;
}

void SourceCache::get(const SourceRequest& asked, SourceCallback done) {
  core::expect_on(loop_);
  const TimePoint now = clock_.now();
  const std::string base_key = source_key(asked);
  SourceRequest request = asked;
  if (!request.sources.empty()) aim_at_active_source(request);
  if (request.directives.any()) request.directives = directives_to_forward(request, base_key);
  const bool delta = builds_delta(request, base_key);
  // A channel of several sources asks no source for a delta update in the copy's numbers: a
  // full playlist answers _HLS_skip too.
  if (!request.sources.empty() && !delta) request.directives.skip.clear();
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

std::shared_ptr<const SourceVersion> SourceCache::build_delta(Entry& entry) {
  BuildNotes notes;
  auto delta = builder_.delta_of(entry.lineage, entry.version, entry.url, notes);
  count_and_log(entry, notes);
  return delta;
}

std::shared_ptr<const SourceVersion> SourceCache::delta_of(Entry& entry) {
  if (entry.slot) entry.slot->touch_delta(clock_.now());
  if (!entry.deltas_wanted && !entry.blocking) {
    // The serving loops get this version's delta now, and every next one's as it comes.
    entry.deltas_wanted = true;
    publish_slot(entry);
  }
  return build_delta(entry);
}

void SourceCache::publish_slot(Entry& entry) {
  SourceSlot::View view{entry.version, entry.validated_at, nullptr, false};
  const SourceVersion* v = entry.version.get();
  if (v != nullptr && !entry.blocking && v->playlist.kind == hls::PlaylistKind::media) {
    view.parks_blocking = entry.channel_copy() || entry.lineage.origin_numbering;
    const hls::MediaInfo& media = v->playlist.media;
    // Asked for by a serving loop's viewer (SourceSlot::touch_delta) or here (delta_of).
    if (entry.deltas_wanted && clock_.now() - entry.slot->delta_used() > kDeltasUnaskedFor)
      entry.deltas_wanted = false;
    if (entry.deltas_wanted && media.server_control.can_skip_until && !media.is_delta_update())
      view.delta = build_delta(entry);
  }
  entry.slot->publish(std::move(view));
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
  const BlockingTarget asked{*request.directives.msn, request.directives.part};
  if (base.channel_copy()) {
    // One timeline across a channel's sources: the viewer's numbers are the copy's, never a
    // source's, so the reload waits for a version of the copy that has its part, whichever
    // source brings it (a switch's first version included).
    if (!base.version || base.version->playlist.kind != hls::PlaylistKind::media) return false;
    base.last_request = now;
    if (satisfies_blocking(base.version->playlist.media, asked.msn, asked.part)) {
      hits_.inc();
      SourceResult r = hit_result(base);
      if (delta) r.version = delta_of(base);
      done(r);
      return true;
    }
    park(base, asked, Waiter{std::move(done), false, /*blocking_reload=*/true, delta}, now);
    coalesced_.inc();
    return true;
  }
  // The viewer's numbers are origin's only while the copy numbers as origin does (a live
  // channel's copy of its own, with no restart continued and no window, does).
  if (base.origin_base != request.origin_base || !base.lineage.origin_numbering || !base.version)
    return false;
  // answer_from_shared_live_copy saw that the copy does not satisfy it and that it is within
  // the advance limits.
  const LiveFollow::Join join =
      base.follow.join(asked, *base.version, in_flight_.running(base_key), base.refresh_pending);
  if (join == LiveFollow::Join::none) return false;
  Waiter waiter{std::move(done), false, /*blocking_reload=*/true, delta};
  if (join == LiveFollow::Join::park) {
    park(base, asked, std::move(waiter), now);
  } else if (auto joined = in_flight_.join(base_key, std::move(waiter));
             http::overflowed(joined.outcome)) {
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
    // A reload gave the channel's copy another source (its sources changed): the copy goes on
    // in the same timeline, as at a switch, so its viewers' numbers continue.
    if (entry.version && !request.sources.empty() && !request.directives.any() &&
        entry.origin_id != request.origin_id) {
      entry.lineage.runs.switch_source(request.failover.identical_timestamps);
    }
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
  if (!request.channel.empty() && !entry.blocking) remember_channel_copy(entry, request.channel);
  if (!request.sources.empty() && !entry.blocking) {
    const bool first = entry.sources.empty();
    entry.sources = request.sources;
    entry.source_index = channel_switch(request).active;
    if (first) {
      // The watch of its standbys starts with the copy, so that the first switch finds them.
      keep_watching(entry, now);
    }
  }
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
  return entry.follow.held() ||
         is_fresh(entry.version->kind, since(entry.validated_at, now), timings_);
}

void SourceCache::publish(Entry& entry, std::shared_ptr<const SourceVersion> version,
                          TimePoint validated_at, std::vector<Waiter> waiters) {
  std::shared_ptr<const SourceVersion> previous = std::move(entry.version);
  entry.version = std::move(version);
  entry.validated_at = validated_at;
  publish_slot(entry);
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

void SourceCache::park(Entry& entry, BlockingTarget target, Waiter waiter, TimePoint now) {
  Millis wait = timings_.blocking_timeout;
  if (entry.version->target_duration.count() > 0) {
    wait = std::min(wait, blocking_wait_limit(entry.version->target_duration));
  }
  entry.follow.park(target, std::move(waiter), now, now + wait);
  // A reload waits for a refresh to come: a copy nobody asked for a while (past live_idle) is
  // no longer refreshed, and it would wait out its deadline on a copy that never moves.
  schedule_refresh(entry, now);
}

void SourceCache::answer_parked(Entry& entry) {
  if (!entry.follow.parked() || !entry.version ||
      entry.version->playlist.kind != hls::PlaylistKind::media)
    return;
  answer(entry, entry.follow.take_satisfied(entry.version->playlist.media, clock_.now()));
}

void SourceCache::on_parked_timer(const std::string& key) {
  core::expect_on(loop_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  for (Waiter& w : it->second->follow.take_expired(clock_.now())) {
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
  const std::vector<std::string> fresh = new_chunk_targets(previous, current);
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

void SourceCache::remember_channel_copy(Entry& entry, const std::string& channel) {
  if (entry.channel != channel) forget_channel_copy(entry);  // another channel's now (a reload)
  entry.channel = channel;
  std::vector<std::string>& keys = channel_copies_[channel];
  if (std::find(keys.begin(), keys.end(), entry.key) == keys.end()) keys.push_back(entry.key);
}

void SourceCache::forget_channel_copy(const Entry& entry) {
  auto found = channel_copies_.find(entry.channel);
  if (found == channel_copies_.end()) return;
  std::erase(found->second, entry.key);
  if (found->second.empty()) channel_copies_.erase(found);
}

TimePoint SourceCache::last_used(const Entry& entry) const {
  TimePoint used = entry.last_used();
  if (entry.blocking || !entry.watch_of.empty()) return used;
  auto found = channel_copies_.find(entry.channel);
  if (found == channel_copies_.end()) return used;
  for (const std::string& key : found->second) {
    auto copy = entries_.find(key);
    if (copy != entries_.end()) used = std::max(used, copy->second->last_used());
  }
  return used;
}

void SourceCache::refresh_channel_copies(const Entry& landed, TimePoint now) {
  if (landed.blocking || !landed.watch_of.empty()) return;
  auto found = channel_copies_.find(landed.channel);
  if (found == channel_copies_.end()) return;
  for (const std::string& key : found->second) {
    auto copy = entries_.find(key);
    if (copy != entries_.end() && copy->second.get() != &landed)
      schedule_refresh(*copy->second, now);
  }
}

void SourceCache::sweep() {
  core::expect_on(loop_);
  const TimePoint now = clock_.now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = *it->second;
    Millis idle_limit =
        e.blocking ? std::min(timings_.evict_after, Millis(10000)) : timings_.evict_after;
    if (e.version && e.version->kind == SourceKind::vod && !e.blocking) {
      idle_limit = std::max(idle_limit, timings_.vod_ttl);
    }
    if (fetches_in_flight(e) == 0 && !e.follow.parked() && since(last_used(e), now) > idle_limit) {
      if (!e.base_key.empty()) {
        auto count = directive_entries_.find(e.base_key);
        if (count != directive_entries_.end() && --count->second == 0)
          directive_entries_.erase(count);
      }
      const std::string playlist_key = e.base_key.empty() ? e.key : e.base_key;
      forget_channel_copy(e);
      it = entries_.erase(it);
      if (!entries_.count(playlist_key) && !directive_entries_.count(playlist_key))
        builder_.forget(playlist_key);
    } else {
      ++it;
    }
  }
}

}  // namespace balancer
