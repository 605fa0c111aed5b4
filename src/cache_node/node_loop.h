// Inside the cache node (not part of its public header): the state every loop
// shares (CacheNode::Shared) and one loop's chunk handling (NodeLoop). A NodeLoop
// serves stored chunks (node_loop.cc) and waits on or owns upstream fetches
// (node_flights.cc); cache_node.cc wires them into the service.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache_node/cache_node.h"
#include "cache_node/chunk_request.h"
#include "cache_node/shared_cache.h"
#include "common/coalesced_fetch.h"
#include "common/http_client.h"
#include "common/url_signing.h"

namespace cache_node {

inline constexpr const char* kLog = "cache_node";

// How chunk fetches name what failed (common/coalesced_fetch.h).
inline constexpr common::UpstreamWording kChunkWording{"chunk", "object_too_large", "this cache node"};

// The config every loop reads, with what is derived from it.
struct RuntimeConfig {
  CacheNodeConfig config;
  std::optional<common::UrlSigner> signer;
};

class NodeLoop;

struct CacheNode::Shared {
  Shared(common::ServiceContext& c, std::shared_ptr<const RuntimeConfig> initial)
      : context(c),
        clock(*c.clock),
        metrics(*c.metrics),
        config(std::move(initial)),
        hits(metrics.counter("cache_requests_total", "Chunk requests by outcome", "result=\"hit\"")),
        misses(metrics.counter("cache_requests_total", "Chunk requests by outcome", "result=\"miss\"")),
        coalesced(metrics.counter("cache_requests_total", "Chunk requests by outcome", "result=\"coalesced\"")),
        negative_hits(metrics.counter("cache_requests_total", "Chunk requests by outcome", "result=\"negative\"")),
        stale_hits(metrics.counter("cache_requests_total", "Chunk requests by outcome", "result=\"stale\"")),
        origin_fetches(metrics.counter("cache_origin_fetches_total", "Fetches from the upstream (origin or parent)")),
        origin_bytes(metrics.counter("cache_origin_bytes_total", "Body bytes received from the upstream")),
        bytes_served(metrics.counter("cache_bytes_served_total", "Chunk body bytes sent to clients")),
        first_byte(metrics.histogram("cache_origin_first_byte_seconds", "Upstream time to response head")),
        revalidated_not_modified(revalidations("not_modified")),
        revalidated_modified(revalidations("modified")),
        revalidation_errors(revalidations("error")) {}

  common::Counter& revalidations(const char* result) {
    return metrics.counter("cache_revalidations_total", "Conditional upstream requests for stale copies by result",
                           std::string("result=\"") + result + "\"");
  }

  common::Counter& error_counter(const std::string& kind) {
    return metrics.counter("cache_errors_total", "Errors by kind", "kind=\"" + kind + "\"");
  }
  size_t active_requests() const {
    size_t n = 0;
    for (const auto* s : servers) n += s->active_requests();
    return n;
  }
  bool overloaded(const CacheNodeConfig& c) const {
    return active_requests() >= c.overload_max_connections || egress_mbps.load() >= c.overload_max_egress_mbps;
  }
  std::string health_json(const CacheNodeConfig& c) const;
  // Tells every loop with waiters on `flight` to look at its progress.
  void notify(const std::shared_ptr<Flight>& flight, size_t from_loop);
  void tick();

  common::ServiceContext& context;
  const common::Clock& clock;
  common::MetricsRegistry& metrics;
  common::Published<RuntimeConfig> config;
  std::unique_ptr<SharedCache> cache;
  std::vector<std::unique_ptr<NodeLoop>> loops;
  std::vector<common::HttpServer*> servers;
  std::atomic<double> egress_mbps{0};
  common::EventPtr tick_timer;  // home loop
  uint64_t last_bytes_served = 0;
  common::SteadyTime last_tick;

  common::Counter& hits;
  common::Counter& misses;
  common::Counter& coalesced;
  common::Counter& negative_hits;
  common::Counter& stale_hits;  // a stale copy: this request started its revalidation
  common::Counter& origin_fetches;
  common::Counter& origin_bytes;
  common::Counter& bytes_served;
  common::Histogram& first_byte;
  common::Counter& revalidated_not_modified;  // 304: the stored body answers, metadata refreshed
  common::Counter& revalidated_modified;      // a new answer: 200 (replaces the copy) or 404/410 (drops it)
  common::Counter& revalidation_errors;       // the upstream failed (stale copy served if allowed)
};

// One loop's handlers and the transfers it owns. Loop thread only.
class NodeLoop {
 public:
  NodeLoop(CacheNode::Shared& shared, common::EventLoop& loop, std::unique_ptr<common::HttpClient> client)
      : shared_(shared), loop_(loop), client_(std::move(client)), config_(shared.config) {}

  common::EventLoop& loop() { return loop_; }
  void handle_chunk(common::HttpExchange& ex);
  // Brings this loop's waiters on `flight` up to its current progress.
  void progress(const std::shared_ptr<Flight>& flight);

 private:
  // A request waiting on a flight; it receives the body as it arrives.
  struct Waiter {
    explicit Waiter(common::HttpExchange e) : exchange(std::move(e)) {}
    common::HttpExchange exchange;
    size_t sent = 0;
    bool first = false;      // the request that started the fetch
    bool streaming = false;  // head sent, body follows as it arrives
    bool deferred = false;   // HEAD or Range: answered from the whole chunk
  };
  // This loop's waiters on one flight (which may be owned by another loop).
  struct LocalFlight {
    std::shared_ptr<Flight> flight;
    std::list<Waiter> waiters;
  };
  // A transfer this loop runs for a flight.
  struct OwnedFetch {
    std::shared_ptr<Flight> flight;
    common::FetchId id = 0;
    int status = 0;
    bool flush_scheduled = false;
    bool storable = true;               // false: no-store or private (known at the head)
    std::optional<ChunkMeta> refreshed;  // a 304: the stored copy's metadata, refreshed
    common::SteadyTime started;
  };

  void fail(common::HttpExchange& ex, int status, const std::string& code, const std::string& message) {
    shared_.error_counter(code).inc();
    ex.reply_error(status, code, message);
  }
  // `now_ms`: the clock read once for the request (Age).
  void serve_stored(common::HttpExchange& ex, const ChunkMeta& meta, const std::shared_ptr<const ChunkBody>& memory,
                    const std::string& disk_path, const char* cache_status, int64_t now_ms);
  void set_chunk_headers(common::HttpExchange& ex, const ChunkMeta& meta, const char* cache_status, int64_t now_ms);

  // node_flights.cc
  void start_fetch(const std::shared_ptr<Flight>& flight, const RuntimeConfig& rc, const ChunkRequest& request,
                   const std::string& signed_suffix);
  void join(const std::shared_ptr<Flight>& flight, common::HttpExchange ex, bool first);
  // Returns false when the waiter is done (answered or gone).
  bool advance(Waiter& w, const FlightProgress& p, const Flight& flight, int64_t now_ms);
  void on_head(const std::string& key, const common::FetchHead& head);
  void on_data(const std::string& key, std::string_view bytes);
  void on_done(const std::string& key, const common::FetchResult& result);
  void schedule_flush(OwnedFetch& fetch);
  // Ends an owned flight: stored (or the stored copy refreshed after a 304) when
  // `failure` is empty, else failed (a 404 is remembered; a stale copy may answer
  // instead); publishes the outcome, updates the shared cache, tells the loops.
  void end_flight(const std::string& key, std::optional<common::UpstreamFailure> failure, int origin_status = 0);
  // The metadata of a 200 head (`stored` null) or of the stored copy updated by a
  // 304 head, with its freshness on the running config; `storable` false for
  // no-store or private.
  ChunkMeta meta_from_head(const std::string& key, const common::FetchHead& head, const ChunkMeta* stored,
                           bool& storable);

  CacheNode::Shared& shared_;
  common::EventLoop& loop_;
  std::unique_ptr<common::HttpClient> client_;
  common::Published<RuntimeConfig>::Reader config_;
  std::unordered_map<std::string, LocalFlight> local_;
  std::unordered_map<std::string, OwnedFetch> owned_;
};

}  // namespace cache_node
