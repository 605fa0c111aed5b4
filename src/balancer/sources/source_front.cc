#include "balancer/sources/source_front.h"

#include "core/thread_rule.h"

namespace balancer {

SourceFront::SourceFront(core::EventLoop& loop, SourceAsker& fetch_loop_cache,
                         const core::Clock& clock)
    : loop_(loop), fetch_loop_cache_(fetch_loop_cache), clock_(clock) {
  sweep_timer_.reset(event_new(
      &loop_.base(), -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<SourceFront*>(arg)->sweep(); }, this));
  timeval one_second{1, 0};
  evtimer_add(sweep_timer_.get(), &one_second);
}

void SourceFront::ask_fetch_loop(const SourceRequest& request, SourceCallback done) {
  fetch_loop_cache_.ask(loop_, lifetime_.watch(), request, std::move(done));
}

void SourceFront::get(const SourceRequest& request, const PlaylistTimings& timings,
                      SourceCallback done) {
  core::expect_on(loop_);
  evict_after_ = timings.evict_after;
  if (request.directives.any()) return ask_fetch_loop(request, std::move(done));
  const TimePoint now = clock_.now();
  const std::string key = source_key(request);
  Entry& entry = entries_[key];
  entry.last_used = now;
  if (entry.origin_base != request.origin_base) {
    // New, or the origin's URL changed on reload: nothing kept applies.
    entry.origin_base = request.origin_base;
    entry.slot.reset();
    entry.version.reset();
  }
  bool following = false;  // read before the version: that version is then at least as new
  if (entry.slot) {
    entry.slot->touch(now);
    following = entry.slot->following();
    if (uint64_t g = entry.slot->generation(); g != entry.seen_generation) {
      SourceSlot::View view = entry.slot->view();
      entry.version = std::move(view.version);
      entry.validated_at = view.validated_at;
      entry.seen_generation = g;
    }
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
                     }
                   }
                   asking_.finish(key, [&result](SourceCallback& waiter) { waiter(result); });
                 });
}

void SourceFront::sweep() {
  const TimePoint now = clock_.now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& e = it->second;
    bool idle = !asking_.running(it->first) && now - e.last_used > evict_after_;
    it = idle ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace balancer
