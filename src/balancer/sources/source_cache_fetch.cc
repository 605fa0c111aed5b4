// SourceCache's origin fetches: sent, landed, built into versions, refreshed.
#include <algorithm>

#include "balancer/log_tag.h"
#include "balancer/sources/source_cache.h"
#include "balancer/sources/source_cache_entry.h"
#include "core/log.h"

namespace balancer {

void SourceCache::start_fetch(Entry& entry, Transfer& transfer, bool background) {
  entry.fetch_started = clock_.now();
  transfer.seq = ++entry.fetches_sent;
  transfer.sent = entry.fetch_started;
  const bool follow = background && !entry.blocking && entry.follow.next() && entry.version;
  (follow ? fetches_follow_ : background ? fetches_refresh_ : fetches_request_).inc();
  http::FetchRequest fetch;
  fetch.url = entry.url;
  fetch.timeout = entry.long_poll ? entry.blocking_wait : timings_.fetch_timeout;
  if (follow) {
    DeliveryDirectives next;
    next.msn = entry.follow.next()->msn;
    next.part = entry.follow.next()->part;
    fetch.url += (entry.url.find('?') == std::string::npos ? '?' : '&') + next.query();
    fetch.timeout =
        std::min(timings_.blocking_timeout, blocking_wait_limit(entry.version->target_duration));
    entry.follow.sent();
    entry.slot->set_following(true, entry.follow.delivers());
  }
  const bool sent_ahead = !entry.ahead.empty() && &transfer == &entry.ahead.back();
  fetch.slow_lane = slow_lane_fetch(entry.round_trip, sent_ahead, follow || entry.long_poll);
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
  core::expect_on(loop_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& entry = *it->second;
  Transfer transfer;
  std::vector<Waiter> waiters;
  const std::optional<bool> landed = take_landed(entry, seq, transfer, waiters);
  if (!landed) return;
  const TimePoint now = clock_.now();
  const LiveFollow::Landing landing = entry.follow.landed();  // never beside another fetch
  entry.slot->set_following(false);

  auto failure = http::classify_fetch(result, transfer.status, transfer.body.too_large,
                                      /*not_modified_ok=*/entry.version != nullptr);
  if (!landing.followed) {
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
  entry.follow.brought_nothing(landing);  // unless take_answer() builds what it brought
  if (landing.followed && failure == http::UpstreamFailure::timeout && entry.version) {
    entry.answered_seq = transfer.seq;
    answer_stalled_follow(entry, waiters, now);
  } else if (landing.followed && failure == http::UpstreamFailure::bad_status &&
             transfer.status == 400 && entry.version) {
    // The part followed is too far ahead for origin now: its numbers went back (an encoder
    // starting at 0 again). The copy stands; a plain request follows at once and shows the
    // new run (without it the copy stood still until the new run reached the old numbers).
    entry.answered_seq = transfer.seq;
    entry.follow.refused();
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
    std::optional<hls::Playlist> parsed;
    if (entry.channel_copy() && result.status == 200 &&
        fails_over_first(entry, transfer.body.bytes, now, parsed)) {
      answer(entry, std::move(waiters));  // from the version the switch built
    } else {
      take_answer(entry, transfer, result, landing, std::move(waiters), now, std::move(parsed));
    }
  }
  if (!entry.sources.empty() && !entry.blocking &&
      !(landing.followed && failure == http::UpstreamFailure::timeout)) {
    observe_landing(entry, failure, now);  // may move the channel to another source
  }
  refresh_channel_copies(entry, now);
  schedule_refresh(entry, now);
}

void SourceCache::take_answer(Entry& entry, Transfer& transfer, const http::FetchResult& result,
                              const LiveFollow::Landing& landing, std::vector<Waiter> waiters,
                              TimePoint now, std::optional<hls::Playlist> parsed) {
  // A follow was held at origin until its part came: its answer is origin's as of now.
  const TimePoint vouched = landing.followed ? now : transfer.sent;
  const std::string& body = transfer.body.bytes;
  const std::string_view origin_bytes = entry.lineage.origin_bytes(entry.version.get());
  // Unchanged copies keep their parsed version and its memos, unless the
  // channel's live policy changed or a held end tag is due.
  const bool same_answer =
      entry.lineage.applied_live == entry.live && !entry.lineage.runs.end_due(entry.live, now);
  if (result.status == 304 && same_answer) {
    not_modified_.inc();
    return publish(entry, entry.version, vouched, std::move(waiters));
  }
  if (result.status != 304 && entry.version && origin_bytes == body && same_answer) {
    not_modified_.inc();  // an origin without validators
    entry.etag = std::move(transfer.etag);
    entry.last_modified = std::move(transfer.last_modified);
    return publish(entry, entry.version, vouched, std::move(waiters));
  }
  if (result.status != 304) {
    entry.etag = std::move(transfer.etag);
    entry.last_modified = std::move(transfer.last_modified);
  } else {
    not_modified_.inc();
  }
  auto built = build_version(entry, result.status == 304 ? origin_bytes : std::string_view(body),
                             now, parsed ? &*parsed : nullptr);
  if (!built) return fail(entry, std::move(waiters), 502, built.error());
  entry.follow.built(landing, built->follow_next);
  publish(entry, std::move(built->version), vouched, std::move(waiters));
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
  publish_slot(entry);
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

core::Result<BuiltVersion> SourceCache::build_version(Entry& entry, std::string_view body,
                                                      TimePoint now, hls::Playlist* parsed) {
  OriginAnswer answer;
  answer.body = body;
  answer.parsed = parsed;
  answer.url = entry.url;
  answer.origin_base = entry.origin_base;
  answer.playlist_key = entry.blocking ? entry.base_key : entry.key;
  answer.live = entry.live;
  answer.target_latency_s = entry.target_latency_s;
  answer.directive_copy = entry.blocking;
  if (entry.channel_copy()) {
    answer.origin_id = entry.origin_id;
    for (size_t i = 0; i < entry.sources.size(); ++i) {
      if (i != entry.source_index)
        answer.other_origins.push_back({entry.sources[i].origin_base, entry.sources[i].origin_id});
    }
  }
  BuildNotes notes;
  auto built = builder_.build(entry.lineage, answer, {now, clock_.unix_now_ms()}, notes);
  if (notes.origin_facts) entry.origin_facts = notes.origin_facts;
  count_and_log(entry, notes);
  return built;
}

void SourceCache::count_and_log(const Entry& entry, const BuildNotes& notes) {
  for (const std::string& warning : notes.warnings) LOG_WARN_LIMITED(kLog, warning);
  if (notes.restarted) {
    live_restarts_.inc();
    LOG_INFO(kLog, "live source restarted (numbering went back or a name changed): ", entry.url,
             ": continuing as run ", entry.lineage.runs.run(), " after a discontinuity");
  }
  if (notes.end_held) {
    live_ends_held_.inc();
    LOG_INFO(kLog, "live source ended (EXT-X-ENDLIST): ", entry.url, ": holding the end back for ",
             entry.live.end_confirm.count() / 1000, " s, refreshing at live cadence");
  }
  if (notes.windowed_from > 0) {
    windowed_.inc();
    LOG_DEBUG(kLog, "serving the newest ", timings_.max_segments, " of ", notes.windowed_from,
              " segments of ", entry.url);
  }
  if (notes.delta_built) deltas_built_.inc();
}

void SourceCache::schedule_refresh(Entry& entry, TimePoint now) {
  if (!refreshing_enabled_ || entry.blocking || entry.refresh_pending) return;
  if (!entry.version || entry.version->kind != SourceKind::live) return;
  if (since(last_used(entry), now) > timings_.live_idle) return;
  if (fetches_in_flight(entry) >= refreshes_allowed(entry)) return;  // on_done schedules it
  if (!entry.refresh_timer) {
    entry.refresh_timer.emplace(base_, core::LoopTimer::Repeat::once,
                                [this, key = entry.key] { on_refresh_timer(key); });
  }
  // After the last fetch was sent: one refresh period for a follow (one that brought news: at
  // once), a plain refresh in time for its answer to land within live_max_lag (refresh ahead);
  // after a failure, not before error_hold.
  Millis delay =
      (entry.follow.next() ? timings_.live_refresh : refresh_interval(entry.round_trip, timings_)) -
      since(entry.fetch_started, now);
  if (entry.follow.next() && entry.follow.send_now()) delay = Millis(0);
  if (entry.failed_at) delay = std::max(delay, timings_.error_hold);
  entry.refresh_timer->start(delay);
  entry.refresh_pending = true;
}

size_t SourceCache::refreshes_allowed(const Entry& entry) {
  // A follow is held at origin until its part comes, and retries after a failure go at
  // error_hold's pace: one at a time. A plain refresh may overlap those sent before it.
  return entry.follow.next() || entry.failed_at ? 1 : kMaxRefreshesInFlight;
}

void SourceCache::on_refresh_timer(const std::string& key) {
  core::expect_on(loop_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& entry = *it->second;
  entry.refresh_pending = false;
  const TimePoint now = clock_.now();
  if (!refreshing_enabled_) return;
  if (since(last_used(entry), now) > timings_.live_idle) {
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
  core::expect_on(loop_);
  refreshing_enabled_ = false;
  for (auto& [key, entry] : entries_) {
    if (entry->refresh_timer) entry->refresh_timer->cancel();
    entry->refresh_pending = false;
  }
}

}  // namespace balancer
