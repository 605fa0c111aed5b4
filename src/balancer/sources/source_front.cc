#include "balancer/sources/source_front.h"

#include <algorithm>

#include "core/thread_rule.h"

namespace balancer {
namespace {

constexpr core::CounterFamily kBlockingReloads{
    "balancer_blocking_reloads_total",
    "LL-HLS blocking playlist reloads by where they were answered: on the serving loop that "
    "took them, or asked of the fetch loop",
    "answered"};

}  // namespace

SourceFront::SourceFront(core::EventLoop& loop, SourceAsker& fetch_loop_cache,
                         const core::Clock& clock, core::MetricsRegistry& metrics)
    : loop_(loop),
      fetch_loop_cache_(fetch_loop_cache),
      clock_(clock),
      answered_here_(kBlockingReloads.in(metrics, "here")),
      answered_by_fetch_loop_(kBlockingReloads.in(metrics, "fetch_loop")),
      wakeups_(metrics.counter("balancer_blocking_wakeups_total",
                               "Wake-ups of a serving loop by a new version of a playlist it "
                               "holds blocking reloads for (one post per version and loop)")) {
  sweep_timer_.reset(event_new(
      &loop_.base(), -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<SourceFront*>(arg)->sweep(); }, this));
  timeval one_second{1, 0};
  evtimer_add(sweep_timer_.get(), &one_second);
}

void SourceFront::ask_fetch_loop(const SourceRequest& request, SourceCallback done) {
  fetch_loop_cache_.ask(loop_, lifetime_.watch(), request, std::move(done));
}

SourceFront::Entry& SourceFront::entry_for(const std::string& key) {
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;
  return entries_.try_emplace(key, loop_.base(), [this, key] { on_deadline(key); }).first->second;
}

void SourceFront::read_view(Entry& entry) {
  if (uint64_t g = entry.slot->generation(); g != entry.seen_generation) {
    SourceSlot::View view = entry.slot->view();
    entry.version = std::move(view.version);
    entry.delta = std::move(view.delta);
    entry.parks_blocking = view.parks_blocking;
    entry.validated_at = view.validated_at;
    entry.seen_generation = g;
  }
}

size_t SourceFront::parked() const {
  core::expect_on(loop_);
  size_t n = 0;
  for (const auto& [key, entry] : entries_) n += entry.parked.size();
  return n;
}

void SourceFront::get(const SourceRequest& request, const PlaylistTimings& timings,
                      SourceCallback done) {
  core::expect_on(loop_);
  evict_after_ = timings.evict_after;
  if (request.directives.any()) {
    if (wait_here(request, timings, done)) return;
    if (request.directives.blocking()) answered_by_fetch_loop_.inc();
    return ask_fetch_loop(request, std::move(done));
  }
  const TimePoint now = clock_.now();
  // The loop's scratch: no allocation per request. Nothing here reads it after a callback runs
  // (a callback may ask again and write it).
  source_key_into(key_scratch_, request);
  const std::string& key = key_scratch_;
  Entry& entry = entry_for(key);
  entry.last_used = now;
  if (entry.origin_base != request.origin_base) {
    // New, or the origin's URL changed on reload: nothing kept applies.
    entry.origin_base = request.origin_base;
    entry.slot.reset();
    entry.version.reset();
    entry.delta.reset();
  }
  bool following = false;  // read before the version: that version is then at least as new
  if (entry.slot) {
    entry.slot->touch(now);
    following = entry.slot->following();
    read_view(entry);
  }
  if (entry.version && entry.version->live == request.live &&
      (following ||
       is_fresh(entry.version->kind, std::chrono::duration_cast<Millis>(now - entry.validated_at),
                timings))) {
    SourceResult r;
    r.from = SourceResult::From::hit;
    r.version = entry.version;
    r.validated_at = entry.validated_at;
    return done(r);
  }
  auto joined = asking_.join(key, std::move(done));
  if (http::overflowed(joined.outcome)) {
    http::UpstreamErrorReply busy = http::overflow_error(kSourceWording);
    SourceResult r;
    r.status = busy.status;
    r.error = std::move(busy.error);
    return done(r);
  }
  if (joined.outcome != http::JoinOutcome::started) return;
  ask_fetch_loop(request,
                 [this, key, origin_base = request.origin_base](const SourceResult& result) {
                   auto it = entries_.find(key);
                   if (it != entries_.end()) {
                     Entry& e = it->second;
                     if (result.slot && e.origin_base == origin_base && result.slot != e.slot) {
                       e.slot = result.slot;
                       e.seen_generation = 0;  // read its view at the next request
                       // Reloads parked here wait on the new slot's versions.
                       if (e.parked.parked()) answer_parked(key);
                     }
                   }
                   asking_.finish(key, [&result](SourceCallback& waiter) { waiter(result); });
                 });
}

bool SourceFront::wait_here(const SourceRequest& request, const PlaylistTimings& timings,
                            SourceCallback& done) {
  if (!request.directives.blocking()) return false;
  const std::string key = source_key(request);
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  Entry& entry = it->second;
  if (!entry.slot || entry.origin_base != request.origin_base) return false;
  const TimePoint now = clock_.now();
  entry.slot->touch(now);
  // Read before the version (as get() does): that version is then at least as new as the
  // follow, which will bring the next, and the ones after while it delivers.
  if (!entry.slot->following() || !entry.slot->delivering()) return false;
  read_view(entry);
  const SourceVersion* version = entry.version.get();
  if (version == nullptr || !entry.parks_blocking || !(version->live == request.live) ||
      version->playlist.kind != hls::PlaylistKind::media) {
    return false;
  }
  const hls::MediaInfo& media = version->playlist.media;
  const DeliveryDirectives& asked = request.directives;
  // A skip the origin does not offer is dropped (the fetch loop's rule), so a full playlist
  // answers it; one it offers is answered with the delta update the slot carries.
  const bool delta = !asked.skip.empty() && media.server_control.can_skip_until.has_value();
  if ((delta && !entry.delta) || directives_too_far(media, *asked.msn, asked.part)) return false;
  entry.last_used = now;
  if (delta) entry.slot->touch_delta(now);
  answered_here_.inc();
  if (satisfies_blocking(media, *asked.msn, asked.part)) {
    SourceResult r;
    r.from = SourceResult::From::hit;
    r.version = delta ? entry.delta : entry.version;
    r.validated_at = entry.validated_at;
    done(r);
    return true;
  }
  Millis wait = timings.blocking_timeout;
  if (version->target_duration.count() > 0)
    wait = std::min(wait, blocking_wait_limit(version->target_duration));
  entry.parked.park(normalize_blocking(media, *asked.msn, asked.part),
                    SourceWaiter{std::move(done), false, /*blocking_reload=*/true, delta}, now,
                    now + wait);
  if (!asked_wake(key, entry)) answer_parked(key);
  return true;
}

void SourceFront::on_wake(const std::string& key, uint64_t wake) {
  core::expect_on(loop_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.wake != wake) return;
  wakeups_.inc();
  it->second.wake = 0;
  answer_parked(key);
}

void SourceFront::answer_parked(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& entry = it->second;
  while (entry.parked.parked() && entry.slot) {
    read_view(entry);
    if (entry.version && entry.version->playlist.kind == hls::PlaylistKind::media) {
      // Answers may ask this front again (and park more): only local copies are used.
      const std::shared_ptr<const SourceVersion> version = entry.version, delta = entry.delta;
      const TimePoint validated_at = entry.validated_at;
      for (SourceWaiter& w : entry.parked.take_satisfied(version->playlist.media, clock_.now())) {
        SourceResult r;
        r.from = SourceResult::From::coalesced;
        // A version published without a delta (its playlist no longer offers one): a full
        // playlist answers _HLS_skip too.
        r.version = w.delta && delta ? delta : version;
        r.validated_at = validated_at;
        w.done(r);
      }
    }
    if (!entry.parked.parked() || asked_wake(key, entry)) return;
    // Published meanwhile: that version first.
  }
}

bool SourceFront::asked_wake(const std::string& key, Entry& entry) {
  if (entry.wake != 0 && entry.wake_slot == entry.slot.get()) return true;
  const uint64_t wake = ++wakes_asked_;
  if (!entry.slot->wake_at_next_publish(entry.seen_generation, loop_, lifetime_.watch(),
                                        [this, key, wake] { on_wake(key, wake); })) {
    return false;
  }
  entry.wake = wake;
  entry.wake_slot = entry.slot.get();
  return true;
}

void SourceFront::on_deadline(const std::string& key) {
  core::expect_on(loop_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  for (SourceWaiter& w : it->second.parked.take_expired(clock_.now())) w.done(playlist_not_ready());
}

void SourceFront::sweep() {
  const TimePoint now = clock_.now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& e = it->second;
    bool idle =
        !asking_.running(it->first) && !e.parked.parked() && now - e.last_used > evict_after_;
    it = idle ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace balancer
