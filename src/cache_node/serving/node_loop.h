// Inside the cache node (not part of its public header): the state every loop
// shares (CacheNode::Shared) and one loop's chunk handling (NodeLoop). A NodeLoop
// serves: stored chunks, and flights' progress to the requests waiting on them;
// its Flights (flights.h) keep the fetch bookkeeping. cache_node.cc wires them
// into the service.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cache_node/cache_node.h"
#include "cache_node/fetching/flights.h"
#include "cache_node/fetching/prefetch.h"
#include "cache_node/runtime_config.h"
#include "cache_node/serving/chunk_request.h"
#include "cache_node/serving/keep_warm.h"
#include "cache_node/store/shared_cache.h"
#include "cmcd/quality_meter.h"
#include "core/enum_names.h"
#include "core/event_loop.h"
#include "http/client/http_client.h"

namespace cache_node {

class NodeLoop;

// Marks a chunk request from another node of the site, with its proof
// (signing/site_fetch.h): the receiver fetches it upstream itself, never from a
// third node. Without a proof that holds, the request is refused.
inline constexpr const char* kSiblingHeader = "X-Site-Fetch";
// With kSiblingHeader: the sibling fetches for a prefetch, so the owner's copy
// is a prefetched one too (its first viewer counts as a prefetch hit).
inline constexpr const char* kSiblingPrefetchHeader = "X-Site-Prefetch";

inline constexpr core::CounterFamily kCacheRequests{"cache_requests_total",
                                                    "Chunk requests by outcome", "result"};
inline constexpr core::CounterFamily kCachePrefetchCompleted{
    "cache_prefetch_completed_total", "Fetches started by a prefetch, by outcome", "result"};
inline constexpr core::CounterFamily kCachePrefetchFirstViewers{
    "cache_prefetch_first_viewers_total", "First viewer requests of prefetched chunks, by outcome",
    "result"};
inline constexpr core::CounterFamily kCachePrefetches{
    "cache_prefetches_total", "Chunks named by prefetch requests, by what the node did", "result"};

// What became of a chunk request, one counter each (cache_requests_total{result=...}).
// Indexed by value: the last enumerator, stale_while_revalidate, must stay last.
enum class RequestOutcome {
  hit,
  miss,
  coalesced,
  negative,
  stale,                   // a stale copy: this request started its revalidation
  stale_while_revalidate,  // a stale copy answered at once while it is refreshed
};
inline constexpr const char* kRequestOutcomeNames[] = {
    "hit", "miss", "coalesced", "negative", "stale", "stale_while_revalidate"};
static_assert(std::size(kRequestOutcomeNames) ==
              core::enum_count(RequestOutcome::stale_while_revalidate));

// What the node did with a chunk a prefetch named (cache_prefetches_total{result=...}, and the
// members of POST /prefetch's answer). Indexed by value: the last, invalid, must stay last.
enum class PrefetchResult {
  started,  // a fetch started for the prefetch
  joined,   // a fetch was in progress already
  present,  // stored (or a remembered 404) already
  refused,  // over prefetch.max_per_s or prefetch.max_inflight
  invalid,  // not a chunk this node serves
};
inline constexpr const char* kPrefetchResultNames[] = {"started", "joined", "present", "refused",
                                                       "invalid"};
static_assert(std::size(kPrefetchResultNames) == core::enum_count(PrefetchResult::invalid));

// The node's request and prefetch counters, in the process's registry: any thread.
struct NodeCounters {
  explicit NodeCounters(core::MetricsRegistry& metrics)
      : requests(kCacheRequests.each(metrics, kRequestOutcomeNames)),
        flights(metrics),
        bytes_served(
            metrics.counter("cache_bytes_served_total", "Chunk body bytes sent to clients")),
        prefetches(kCachePrefetches.each(metrics, kPrefetchResultNames)),
        prefetch_stored(kCachePrefetchCompleted.in(metrics, "stored")),
        prefetch_failed(kCachePrefetchCompleted.in(metrics, "failed")),
        prefetch_first_hit(kCachePrefetchFirstViewers.in(metrics, "hit")),
        prefetch_first_coalesced(kCachePrefetchFirstViewers.in(metrics, "coalesced")),
        prefetch_wasted(metrics.counter("cache_prefetch_wasted_total",
                                        "Prefetched chunks no viewer asked for within 60 s")),
        prefetch_next_object_started(
            metrics.counter("cache_prefetch_next_object_total",
                            "Prefetches started by a viewer's CMCD next object (nor)")),
        keep_warm_refreshes(
            metrics.counter("cache_keep_warm_refreshes_total",
                            "Refreshes the node started for nobody, keeping a polled object warm")),
        keep_warm_objects(metrics.gauge("cache_keep_warm_objects",
                                        "Short-lived objects viewers poll, kept warm")) {}

  core::Counter& error(const std::string& kind) { return flights.error(kind); }
  core::Counter& request(RequestOutcome outcome) const {
    return *requests[static_cast<size_t>(outcome)];
  }
  core::Counter& prefetch(PrefetchResult result) const {
    return *prefetches[static_cast<size_t>(result)];
  }

  std::array<core::Counter*, std::size(kRequestOutcomeNames)> requests;
  FlightMetrics flights;  // origin fetches and bytes, first byte, revalidations, errors
  core::Counter& bytes_served;

  std::array<core::Counter*, std::size(kPrefetchResultNames)> prefetches;
  core::Counter& prefetch_stored;
  core::Counter& prefetch_failed;
  core::Counter& prefetch_first_hit;        // the first viewer found it stored
  core::Counter& prefetch_first_coalesced;  // the first viewer joined the prefetch's fetch
  core::Counter& prefetch_wasted;
  core::Counter& prefetch_next_object_started;
  core::Counter& keep_warm_refreshes;  // keep_warm.h
  core::Gauge& keep_warm_objects;
};

// The one-second upkeep's own state (CacheNode::Shared::tick): home loop only.
struct HomeTick {
  core::EventPtr timer;
  uint64_t last_bytes_served = 0;
  core::SteadyTime last_tick;
};

// The state every loop shares, one rule per member (each says which threads may touch it).
// The aggregate has no rule of its own; built on the main thread by CacheNode::create().
// What a loop's chunk handlers may touch of the node's shared state: the parts any thread may
// use (each under its own lock, or atomic), and the way to wake the other loops on a flight's
// progress. Not the home loop's tick, the list of loops or the servers.
struct NodeLoopParts {
  const core::Clock& clock;
  const core::Published<RuntimeConfig>& config;
  SharedCache& cache;
  NodeCounters& counters;
  cmcd::QualityMeter& playback;
  PrefetchGate& prefetch_gate;
  PrefetchLedger& prefetch_ledger;
  // CacheNode::Shared::notify.
  std::function<void(const std::shared_ptr<Flight>& flight, size_t from_loop)> notify;
};

// What the node's /health reports, read from any thread: its store, counters and load. Holds
// references into CacheNode::Shared, which outlives every server.
struct NodeStatus {
  const SharedCache& cache;
  const NodeCounters& counters;
  const std::atomic<double>& egress_mbps;         // the home tick's smoothed egress
  const std::vector<http::HttpServer*>& servers;  // read-only once the loops run
  size_t threads;

  size_t active_requests() const {
    size_t n = 0;
    for (const auto* s : servers) n += s->active_requests();
    return n;
  }
  // The process's client connections, every loop's together (all the servers share one count).
  const http::ConnectionLimits* connections() const {
    return servers.empty() ? nullptr : &servers.front()->connection_limits();
  }
  // Its connection table is at overload.connection_table_percent of server.max_connections: a
  // flood of idle connections leaves new viewers little room, whatever they ask.
  bool connection_table_full(const CacheNodeConfig& c) const {
    const http::ConnectionLimits* table = connections();
    return table != nullptr && table->nearly_full(c.overload_connection_table_percent);
  }
  bool overloaded(const CacheNodeConfig& c) const {
    return active_requests() >= c.overload_max_connections ||
           egress_mbps.load() >= c.overload_max_egress_mbps || connection_table_full(c);
  }
  // The /health document (docs/cache_node.md § Endpoints): under 1 KiB, whatever the audience.
  std::string health_json(const CacheNodeConfig& c) const;
};

struct CacheNode::Shared {
  Shared(http::ServiceContext& c, std::shared_ptr<const RuntimeConfig> initial)
      : context(c),
        clock(*c.clock),
        metrics(*c.metrics),
        config(std::move(initial)),
        prefetch_ledger(kPrefetchForgetAfterMs, kPrefetchLedgerEntries),
        counters(metrics) {}

  // What /health reads; after `cache` is made.
  NodeStatus status() const { return {*cache, counters, egress_mbps, servers, loops.size()}; }
  // Tells every loop subscribed to `flight` to look at its progress: `from_loop`
  // at once, the others through their post().
  void notify(const std::shared_ptr<Flight>& flight, size_t from_loop);
  // Home loop, every second: the egress estimate, expired negative entries and prefetches.
  void tick();
  // For a loop's NodeLoop; after `cache` is made.
  NodeLoopParts loop_parts();

  http::ServiceContext& context;   // any thread
  const core::Clock& clock;        // any thread
  core::MetricsRegistry& metrics;  // any thread
  // What the players report of their playback (CMCD on chunk requests); any thread.
  mutable cmcd::QualityMeter playback{metrics, clock, {}};
  // The running config: the home loop publishes it on reload, any loop reads its own Reader.
  core::Published<RuntimeConfig> config;
  // Prefetch (prefetch.h): what may start, and what no viewer asked for yet; any thread,
  // under their own locks. Before `loops`: a loop's prefetch waiters let go of the gate when
  // they are destroyed.
  static constexpr int64_t kPrefetchForgetAfterMs = 60'000;
  static constexpr size_t kPrefetchLedgerEntries = 100'000;
  PrefetchGate prefetch_gate;
  PrefetchLedger prefetch_ledger;
  std::unique_ptr<SharedCache> cache;  // any loop, under its lock (lock_order.h)
  // Filled on the main thread before the loops run, read-only after.
  std::vector<std::unique_ptr<NodeLoop>> loops;
  std::vector<http::HttpServer*> servers;
  std::atomic<double> egress_mbps{0};  // the home tick stores it; any thread reads
  HomeTick home_tick;                  // home loop only
  NodeCounters counters;               // any thread
};

// One loop's chunk requests: verify, look up, serve what is stored, and serve
// the flights' progress to the requests waiting on them. Its loop only: each
// loop has its own NodeLoop and Flights; what loops share reaches it as NodeLoopParts.
class NodeLoop {
 public:
  NodeLoop(NodeLoopParts parts, core::EventLoop& loop, std::unique_ptr<http::HttpClient> client);

  core::EventLoop& loop() { return loop_; }
  Flights& flights() { return flights_; }
  void handle_chunk(http::HttpExchange& ex);
  // POST /prefetch (prefetch.h): starts fetches of the named chunks with nobody waiting.
  void handle_prefetch(http::HttpExchange& ex);
  // One chunk target (unsigned, "/o/<origin>/<path>[?query]") fetched for nobody, unless it is
  // stored, already coming, or over the prefetch bounds.
  PrefetchResult prefetch_one(const RuntimeConfig& rc, const std::string& target,
                              const std::string& signed_suffix, int64_t now_ms);
  // A viewer's CMCD `nor`, relative to the chunk it asked for (`target`, without its CMCD).
  void prefetch_next_object(const RuntimeConfig& rc, std::string_view target,
                            std::string_view next_object, int64_t now_ms);

 private:
  class ExchangeWaiter;
  class PrefetchWaiter;
  class BackgroundRefresh;
  // A chunk request whose signature was checked and whose origin is configured.
  struct VerifiedChunk {
    const RuntimeConfig& rc;
    const ChunkRequest& request;
    const OriginConfig& origin;
    const std::string& signed_suffix;  // passed on upstream
    const std::string& key;            // in the shared cache
    int64_t now_ms;                    // the clock read once for the request
    bool from_sibling = false;         // another node of the site, proven (site_fetch.h)
  };
  // The second half of handle_chunk: `c` served from the cache or from a flight.
  void serve_chunk(http::HttpExchange& ex, const VerifiedChunk& c);
  // A viewer's request for `c.key` (not a sibling's): the first after a prefetch is counted.
  void note_viewer(const VerifiedChunk& c, bool hit);
  // A viewer's request started the refresh of the stored copy `stale`: a polled object,
  // kept warm from now on if it is short-lived (keep_warm.h).
  void keep_polled_object_warm(const VerifiedChunk& c, const StoreHit& stale);
  // The keep-warm timer: each object due is refreshed for nobody, or let go.
  void refresh_warm_objects();
  void refresh_warm_object(const RuntimeConfig& rc, const std::string& key, int64_t now_ms);
  // After the table changed: the gauge told, the timer set for the next object due.
  void keep_warm_changed(int64_t now_ms);

  void fail(http::HttpExchange& ex, int status, const std::string& code,
            const std::string& message) {
    parts_.counters.error(code).inc();
    ex.reply_error(status, code, message);
  }
  // `now_ms`: the clock read once for the request (Age).
  void serve_stored(http::HttpExchange& ex, const ChunkMeta& meta,
                    const std::shared_ptr<const ChunkBody>& memory, const std::string& disk_path,
                    const char* cache_status, int64_t now_ms);
  void set_chunk_headers(http::HttpExchange& ex, const ChunkMeta& meta, const char* cache_status,
                         int64_t now_ms);
  // Starts the transfer of a miss: from the site's owner of the chunk when
  // that is another node (and the request is not a sibling's), else upstream.
  // `forwarded`: the viewer's request headers the origin's config names (forward_request_headers).
  void start_miss(const std::shared_ptr<Flight>& flight, const RuntimeConfig& rc,
                  const ChunkRequest& request, const std::string& signed_suffix, bool from_sibling,
                  bool prefetch, int64_t now_ms, std::vector<http::HttpHeader> forwarded = {});
  // Flights::Deps::after: `job` on this loop after `delay`.
  void after(std::chrono::milliseconds delay, std::function<void()> job);
  // `ex` waits on `flight`; `first`: it started the fetch.
  void wait_on(const std::shared_ptr<Flight>& flight, http::HttpExchange ex, bool first);

  NodeLoopParts parts_;
  core::EventLoop& loop_;
  std::unique_ptr<http::HttpClient> client_;
  core::Published<RuntimeConfig>::Reader config_;
  Flights flights_;  // after client_: its transfers run on it
  struct PendingTimer {
    std::unique_ptr<core::LoopTimer> timer;
    std::shared_ptr<bool> fired;
  };
  std::vector<PendingTimer> timers_;  // after flights_: destroyed (cancelled) first
  KeepWarm keep_warm_;
  size_t keep_warm_reported_ = 0;    // its size as the gauge was last told
  core::LoopTimer keep_warm_timer_;  // after flights_: destroyed (cancelled) first
};

}  // namespace cache_node
