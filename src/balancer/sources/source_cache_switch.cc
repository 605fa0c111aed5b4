// SourceCache's channels with several sources (DESIGN.md "Sources fail, the channel does not").
// A channel's copy of each playlist (its channel entry) is fetched from the channel's active
// source; the same playlist on every other source is followed by a watch entry of its own, at
// the live cadence, so that the switch needs no cold start and origin still sees one fetch per
// refresh for each source's playlist. Every answer of either kind is its source's health
// (source_health.h); when the active source fails, every channel entry of the channel moves to
// the next healthy source at once, its next version built from the watch's newest copy and
// continued in the same timeline (LiveRunTracker::switch_source). Fetch loop only.
#include <algorithm>

#include "balancer/log_tag.h"
#include "balancer/sources/source_cache.h"
#include "balancer/sources/source_cache_entry.h"
#include "core/log.h"

namespace balancer {
namespace {

// How often the health of every followed source is looked at between answers (a source that
// stops answering fails by the clock alone).
constexpr Millis kSwitchTick{100};

SourceFault fault_of(http::UpstreamFailure failure) {
  switch (failure) {
    case http::UpstreamFailure::unreachable:
    case http::UpstreamFailure::broken:
    case http::UpstreamFailure::truncated:
      return SourceFault::unreachable;
    case http::UpstreamFailure::timeout:
      return SourceFault::timeout;
    case http::UpstreamFailure::not_found:
      return SourceFault::missing;
    case http::UpstreamFailure::too_large:
      return SourceFault::bad_playlist;
    case http::UpstreamFailure::bad_status:
      break;
  }
  return SourceFault::origin_error;
}

}  // namespace

SourceCache::ChannelSwitch& SourceCache::channel_switch(const SourceRequest& request) {
  std::unique_ptr<ChannelSwitch>& slot = channel_switches_[request.channel];
  if (!slot) {
    slot = std::make_unique<ChannelSwitch>();
    slot->id = request.channel;
    slot->active_gauge = &metrics_.gauge(
        "balancer_channel_active_source",
        "The source a channel with several sources plays from (0: its preferred one)",
        "channel=\"" + request.channel + "\"");
    if (!switch_timer_) {
      switch_timer_.emplace(base_, core::LoopTimer::Repeat::every, [this] { on_switch_tick(); });
      switch_timer_->start(kSwitchTick);
    }
  }
  ChannelSwitch& channel = *slot;
  channel.policy = request.failover;
  std::vector<std::string> origins;
  for (const SourceAddress& source : request.sources) origins.push_back(source.origin_id);
  if (origins != channel.origins) {
    // A reload changed the sources: health starts over, at the preferred one.
    channel.origins = std::move(origins);
    channel.healthy_gauges.clear();
    for (size_t i = 0; i < channel.origins.size(); ++i) {
      channel.healthy_gauges.push_back(&metrics_.gauge(
          "balancer_channel_source_healthy",
          "Whether a source of a channel with several sources is fit to play from (1) or not",
          "channel=\"" + channel.id + "\",source=\"" + std::to_string(i) + "\",origin=\"" +
              channel.origins[i] + "\""));
    }
    channel.renditions.clear();
    channel.active = 0;
    channel.forced.reset();
    channel.active_gauge->set(0);
  }
  return channel;
}

void SourceCache::aim_at_active_source(SourceRequest& request) {
  const ChannelSwitch& channel = channel_switch(request);
  const SourceAddress& active =
      request.sources[std::min(channel.active, request.sources.size() - 1)];
  request.origin_id = active.origin_id;
  request.origin_base = active.origin_base;
  request.target = active.target;
}

std::string SourceCache::watch_key(const Entry& entry, size_t index) const {
  const SourceAddress& source = entry.sources[index];
  return "watch " + entry.channel + "\n" + source.origin_id + "\n" + source.target;
}

void SourceCache::keep_watching(Entry& entry, TimePoint now) {
  if (!entry.channel_copy() || !refreshing_enabled_) return;
  for (size_t i = 0; i < entry.sources.size(); ++i) {
    if (i == entry.source_index) continue;
    const SourceAddress& source = entry.sources[i];
    const std::string key = watch_key(entry, i);
    const bool known = entries_.count(key) > 0;
    if (!known && entries_.size() >= timings_.max_entries) continue;
    Entry& watch = entry_for(key);
    watch.last_request = now;
    watch.url = source.origin_base + source.target;
    watch.origin_base = source.origin_base;
    watch.origin_id = source.origin_id;
    watch.live = entry.live;
    watch.channel = entry.channel;
    watch.sources = entry.sources;
    watch.source_index = i;
    watch.watch_of = entry.key;
    if (watch.version) {
      schedule_refresh(watch, now);
    } else if (fetches_in_flight(watch) == 0 && !watch.refresh_pending) {
      auto started = in_flight_.find_or_start(key);
      if (started.outcome == http::JoinOutcome::started) start_fetch(watch, *started.flight, true);
    }
  }
}

void SourceCache::observe_landing(Entry& entry, std::optional<http::UpstreamFailure> failure,
                                  TimePoint now) {
  auto found = channel_switches_.find(entry.channel);
  if (found == channel_switches_.end()) return;
  ChannelSwitch& channel = *found->second;
  if (!entry.channel_copy() && entry.watch_of.empty()) return;  // a watch retired by a switch
  const std::string& rendition = entry.watch_of.empty() ? entry.key : entry.watch_of;
  auto copy = entries_.find(rendition);
  // Only media playlists are judged (a master says nothing of a source's timeline), from the
  // copy's first built version on.
  if (copy == entries_.end() || !copy->second->origin_facts) return;
  std::vector<SourceHealth>& health = channel.renditions[rendition];
  while (health.size() < entry.sources.size()) health.emplace_back(now);
  SourceHealth& source = health[std::min(entry.source_index, health.size() - 1)];
  if (failure) {
    source.failed(fault_of(*failure), now);
  } else if (entry.failed_at && *entry.failed_at == now) {
    source.failed(SourceFault::bad_playlist, now);  // an answer that did not build
  } else if (entry.origin_facts) {
    source.landed(*entry.origin_facts, channel.policy, now);
  }
  if (entry.channel_copy()) keep_watching(entry, now);
  evaluate_switch(channel, now);
}

bool SourceCache::fails_over_first(Entry& entry, std::string_view body, TimePoint now,
                                   std::optional<hls::Playlist>& parsed) {
  if (!entry.origin_facts) return false;  // a master, or a first answer: nothing to compare
  if (entry.version && entry.lineage.origin_bytes(entry.version.get()) == body) return false;
  auto read = builder_.parse(body, entry.url);
  if (!read.ok() || read->kind != hls::PlaylistKind::media) return false;
  auto found = channel_switches_.find(entry.channel);
  if (found == channel_switches_.end()) return false;
  ChannelSwitch& channel = *found->second;
  std::vector<SourceHealth>& health = channel.renditions[entry.key];
  while (health.size() < entry.sources.size()) health.emplace_back(now);
  const size_t before = entry.source_index;
  health[before].landed(facts_of(read->media), channel.policy, now);
  if (health[before].fault(channel.policy, now) != SourceFault::none) {
    evaluate_switch(channel, now);
    if (entry.source_index != before) return true;
  }
  parsed = std::move(read).value();
  return false;
}

void SourceCache::on_switch_tick() {
  core::expect_on(loop_);
  const TimePoint now = clock_.now();
  for (auto& [id, channel] : channel_switches_) evaluate_switch(*channel, now);
}

std::vector<SourceState> SourceCache::source_states(const ChannelSwitch& channel,
                                                    TimePoint now) const {
  std::vector<SourceState> states(channel.origins.size());
  bool any = false;
  for (auto& state : states) state.known = true;
  for (const auto& [key, health] : channel.renditions) {
    // Only the playlists viewers are watching speak for the channel.
    auto entry = entries_.find(key);
    if (entry == entries_.end() || since(entry->second->last_used(), now) > timings_.live_idle)
      continue;
    any = true;
    for (size_t i = 0; i < states.size(); ++i) {
      if (i >= health.size()) {
        states[i].known = false;
        continue;
      }
      const SourceFault fault = health[i].fault(channel.policy, now, asking(*entry->second, i));
      if (states[i].fault == SourceFault::none) states[i].fault = fault;
      states[i].known = states[i].known && health[i].known();
      states[i].healthy_since = std::max(states[i].healthy_since, health[i].healthy_since());
    }
  }
  if (!any) states.clear();
  for (size_t i = 0; i < states.size(); ++i) {
    const std::string& origin = channel.origins[i];
    if (states[i].fault == SourceFault::none && chunk_health_.failing(origin, now))
      states[i].fault = SourceFault::chunk_errors;
    if (auto ended = chunk_health_.fault_ended(origin, now))
      states[i].healthy_since = std::max(states[i].healthy_since, *ended);
  }
  return states;
}

void SourceCache::chunk_fetches_reported(const std::string& origin, uint64_t answered,
                                         uint64_t failed) {
  core::expect_on(loop_);
  const TimePoint now = clock_.now();
  const bool was_failing = chunk_health_.failing(origin, now);
  chunk_health_.reported(origin, answered, failed, now);
  if (chunk_health_.failing(origin, now) == was_failing) return;
  LOG_WARN(kLog, "origin ", origin,
           was_failing ? ": the cache nodes' chunk fetches work again"
                       : ": the cache nodes' chunk fetches fail");
  for (auto& [id, channel] : channel_switches_) evaluate_switch(*channel, now);
}

bool SourceCache::asking(const Entry& channel_entry, size_t source) const {
  if (source == channel_entry.source_index) return fetches_in_flight(channel_entry) > 0;
  if (source >= channel_entry.sources.size()) return false;
  auto watch = entries_.find(watch_key(channel_entry, source));
  return watch != entries_.end() && fetches_in_flight(*watch->second) > 0;
}

void SourceCache::evaluate_switch(ChannelSwitch& channel, TimePoint now) {
  if (!refreshing_enabled_ || channel.origins.size() < 2) return;
  std::erase_if(channel.renditions,
                [this](const auto& item) { return !entries_.count(item.first); });
  const std::vector<SourceState> states = source_states(channel, now);
  if (states.empty()) return;
  for (size_t i = 0; i < states.size() && i < channel.healthy_gauges.size(); ++i) {
    channel.healthy_gauges[i]->set(states[i].known && states[i].fault == SourceFault::none ? 1 : 0);
  }
  auto move = choose_source(states, channel.active, channel.policy, now, channel.forced);
  if (!move) return;
  if (channel.forced && move->reason != SourceFault::operator_choice) {
    // The operator's source failed: the choice is spent, health and failback decide again.
    LOG_WARN(kLog, "channel ", channel.id, ": the operator's choice of source ", *channel.forced,
             " is cleared: it failed");
    channel.forced.reset();
  }
  switch_channel(channel, move->to, move->reason, now);
}

void SourceCache::switch_channel(ChannelSwitch& channel, size_t to, SourceFault reason,
                                 TimePoint now) {
  const size_t from = channel.active;
  channel.active = to;
  channel.active_gauge->set(static_cast<double>(to));
  metrics_
      .counter("balancer_source_switches_total",
               "Channels moved from one of their sources to another, by reason",
               "channel=\"" + channel.id + "\",reason=\"" + to_string(reason) + "\"")
      .inc();
  LOG_WARN(
      kLog, "channel ", channel.id, ": source ", from, " (", channel.origins[from], ") ",
      reason == SourceFault::failback || reason == SourceFault::operator_choice ? "left" : "failed",
      " (", to_string(reason), "): playing from source ", to, " (", channel.origins[to], ")");
  std::vector<Entry*> copies;
  for (auto& [key, entry] : entries_) {
    if (entry->channel == channel.id && entry->channel_copy() && entry->source_index != to)
      copies.push_back(entry.get());
  }
  // The segment in progress every rendition closes: the one listed furthest.
  std::optional<LiveRunTracker::InProgress> closing;
  for (const Entry* entry : copies) {
    const auto in_progress = entry->lineage.runs.in_progress();
    if (in_progress && (!closing || std::pair(in_progress->msn, in_progress->end_ms) >
                                        std::pair(closing->msn, closing->end_ms))) {
      closing = in_progress;
    }
  }
  for (Entry* entry : copies) switch_entry(*entry, channel, to, now, closing);
}

void SourceCache::switch_entry(Entry& entry, const ChannelSwitch& channel, size_t to, TimePoint now,
                               const std::optional<LiveRunTracker::InProgress>& closing) {
  if (to >= entry.sources.size()) return;
  const size_t from = entry.source_index;
  // What is still on its way from the source left is dropped; viewers waiting on it are
  // answered from the first version of the new source below.
  std::vector<Waiter> waiters;
  if (Transfer* running = in_flight_.flight(entry.key)) {
    client_.cancel(running->id);
    waiters = std::move(in_flight_.finish(entry.key).waiters);
  }
  for (const Transfer& ahead : entry.ahead) client_.cancel(ahead.id);
  entry.ahead.clear();
  entry.follow.landed();
  entry.slot->set_following(false);
  entry.answered_seq = entry.fetches_sent;

  const SourceAddress& source = entry.sources[to];
  entry.source_index = to;
  entry.url = source.origin_base + source.target;
  entry.origin_base = source.origin_base;
  entry.origin_id = source.origin_id;
  entry.failed_at.reset();
  entry.lineage.runs.switch_source(channel.policy.identical_timestamps, closing);

  // The watch of the new source has its newest copy: the switched version is built from it
  // now, with no fetch. Its own refreshes stop (the channel entry fetches that source now).
  auto watched = entries_.find(watch_key(entry, to));
  Entry* watch = watched == entries_.end() ? nullptr : watched->second.get();
  entry.etag.clear();
  entry.last_modified.clear();
  bool published = false;
  if (watch != nullptr && watch->version) {
    const std::string body(watch->lineage.origin_bytes(watch->version.get()));
    auto built = build_version(entry, body, now);
    if (built) {
      entry.etag = watch->etag;
      entry.last_modified = watch->last_modified;
      entry.follow.built({}, built->follow_next);
      publish(entry, std::move(built->version), watch->validated_at, std::move(waiters));
      published = true;
    }
  }
  if (watch != nullptr) {
    if (watch->refresh_timer) watch->refresh_timer->cancel();
    watch->refresh_pending = false;
    // Retired: a plain entry nobody asks for (swept in time), no copy of the channel; a later
    // switch away from this source makes it a watch again (keep_watching).
    watch->watch_of.clear();
    watch->sources.clear();
    watch->channel.clear();
    watch->last_request = TimePoint{};
  }
  if (!published) {
    // Nothing followed yet (an operator's choice of a source never watched): fetched now.
    auto started = in_flight_.find_or_start(entry.key);
    if (started.flight != nullptr) {
      for (Waiter& w : waiters) {
        if (http::overflowed(in_flight_.join(entry.key, std::move(w)).outcome)) break;
      }
      if (started.outcome == http::JoinOutcome::started) start_fetch(entry, *started.flight, true);
    }
  }
  LOG_DEBUG(kLog, "channel ", channel.id, ": ", entry.key, " moved from source ", from, " to ", to,
            published ? " (from its watch)" : " (fetching)");
  keep_watching(entry, now);
  schedule_refresh(entry, now);
}

std::vector<std::string> SourceCache::channels_with_sources() const {
  core::expect_on(loop_);
  std::vector<std::string> out;
  for (const auto& [id, channel] : channel_switches_) out.push_back(id);
  return out;
}

SourceCache::SourceChoice SourceCache::force_source(const std::string& channel,
                                                    std::optional<size_t> index) {
  core::expect_on(loop_);
  auto found = channel_switches_.find(channel);
  if (found == channel_switches_.end()) return SourceChoice::not_playing;
  ChannelSwitch& state = *found->second;
  if (index && *index >= state.origins.size()) return SourceChoice::not_playing;
  const TimePoint now = clock_.now();
  if (index) {
    const std::vector<SourceState> states = source_states(state, now);
    if (*index >= states.size() || !states[*index].known ||
        states[*index].fault != SourceFault::none)
      return SourceChoice::unhealthy;
  }
  state.forced = index;
  evaluate_switch(state, now);
  return SourceChoice::made;
}

std::optional<SourceCache::ChannelSources> SourceCache::channel_sources(
    const std::string& channel) const {
  core::expect_on(loop_);
  auto found = channel_switches_.find(channel);
  if (found == channel_switches_.end()) return std::nullopt;
  const ChannelSwitch& state = *found->second;
  const TimePoint now = clock_.now();
  ChannelSources out;
  out.active = state.active;
  out.forced = state.forced;
  out.origins = state.origins;
  out.sources = source_states(state, now);
  if (out.sources.empty()) out.sources.resize(state.origins.size());  // none watched: unknown
  return out;
}

}  // namespace balancer
