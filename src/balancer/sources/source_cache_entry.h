// SourceCache's entry: one copy of a source playlist (the ordinary copy, or one of its LL-HLS
// directive copies) with its fetches, failure hold, refresh, version lineage and follow. Private
// to source_cache.cc and source_cache_fetch.cc. Fetch loop only.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "balancer/sources/source_cache.h"

namespace balancer {

struct SourceCache::Entry {
  Entry(event_base& base, std::string entry_key, std::function<void()> on_parked_deadline)
      : key(std::move(entry_key)), follow(base, std::move(on_parked_deadline)) {}

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
  LiveEndPolicy live;  // the latest request's: end tags held back, restarts continued
  // The channel's target latency (0: origin's hold-backs); part of the entry's key.
  double target_latency_s = 0;
  // Prefetch: the channel's origin id and choice (the latest request's), and the
  // caches viewers of the version before `version` were sent to.
  std::string origin_id;
  bool prefetch = false;
  uint64_t caches_before = 0;
  CopyLineage lineage;  // what the version builder carries from `version` to the next
  // An ordinary copy whose viewers asked for a delta update: each version's delta is built as
  // it is published and published beside it (the serving loops answer skip requests with it),
  // until none was asked for kDeltasUnaskedFor (source_cache.cc).
  bool deltas_wanted = false;
  LiveFollow follow;  // low-latency playlists of an origin that can block

  // A channel with several sources (source_cache_switch.cc). Its copy (the channel entry) is
  // fetched from `sources[source_index]`, the channel's active source; a standby's watch entry
  // (`watch_of`: the channel entry's key) follows sources[source_index] for it.
  std::string channel;
  std::vector<SourceAddress> sources;
  size_t source_index = 0;
  std::string watch_of;
  std::optional<PlaylistFacts> origin_facts;  // of the newest version built (its source's health)
  bool channel_copy() const { return !sources.empty() && watch_of.empty() && !blocking; }
};

// One channel with several sources: which one its copies are fetched from, and the health of
// each of its playlists on each source (source_cache_switch.cc).
struct SourceCache::ChannelSwitch {
  std::string id;
  FailoverPolicy policy;
  std::vector<std::string> origins;  // each source's origin id, in order of preference
  size_t active = 0;
  std::optional<size_t> forced;  // the operator's choice
  // Per channel entry's key: its playlist's health on each source.
  std::unordered_map<std::string, std::vector<SourceHealth>> renditions;
  core::Gauge* active_gauge = nullptr;
  std::vector<core::Gauge*> healthy_gauges;  // per source: 1 while healthy
};

}  // namespace balancer
