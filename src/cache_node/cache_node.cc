#include "cache_node/cache_node.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <list>
#include <unordered_map>

#include "cache_node/chunk_request.h"
#include "cache_node/http_semantics.h"
#include "cache_node/shared_cache.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"
#include "common/url_signing.h"

namespace cache_node {

using common::HttpExchange;

namespace {
constexpr const char* kLog = "cache_node";

constexpr const char* kErrorKinds[] = {"bad_request",       "unknown_origin",     "signature_missing",
                                       "signature_expired", "signature_invalid",  "origin_error",
                                       "origin_unreachable", "origin_timeout",    "object_too_large",
                                       "range_not_satisfiable", "storage_error"};

// The config every loop reads, with what is derived from it.
struct RuntimeConfig {
  CacheNodeConfig config;
  std::optional<common::UrlSigner> signer;
};

common::Result<std::shared_ptr<const RuntimeConfig>> make_runtime(CacheNodeConfig config) {
  auto runtime = std::make_shared<RuntimeConfig>();
  if (!config.signing_keys.empty()) {
    auto signer = common::UrlSigner::create(config.signing_keys);
    if (!signer) return signer.error();
    runtime->signer = std::move(signer).value();
  }
  runtime->config = std::move(config);
  return std::shared_ptr<const RuntimeConfig>(std::move(runtime));
}

struct Waiter {
  explicit Waiter(HttpExchange e) : exchange(std::move(e)) {}
  HttpExchange exchange;
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
  common::SteadyTime started;
};

}  // namespace

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
        origin_fetches(metrics.counter("cache_origin_fetches_total", "Fetches from the upstream (origin or parent)")),
        origin_bytes(metrics.counter("cache_origin_bytes_total", "Body bytes received from the upstream")),
        bytes_served(metrics.counter("cache_bytes_served_total", "Chunk body bytes sent to clients")),
        first_byte(metrics.histogram("cache_origin_first_byte_seconds", "Upstream time to response head")) {}

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
  common::Counter& origin_fetches;
  common::Counter& origin_bytes;
  common::Counter& bytes_served;
  common::Histogram& first_byte;
};

// One loop's handlers and the transfers it owns. Loop thread only.
class NodeLoop {
 public:
  NodeLoop(CacheNode::Shared& shared, common::EventLoop& loop, std::unique_ptr<common::HttpClient> client)
      : shared_(shared), loop_(loop), client_(std::move(client)), config_(shared.config) {}

  common::EventLoop& loop() { return loop_; }
  void handle_chunk(HttpExchange& ex);
  // Brings this loop's waiters on `flight` up to its current progress.
  void progress(const std::shared_ptr<Flight>& flight);

 private:
  void fail(HttpExchange& ex, int status, const std::string& code, const std::string& message) {
    shared_.error_counter(code).inc();
    ex.reply_error(status, code, message);
  }
  void serve_stored(HttpExchange& ex, const ChunkMeta& meta, const std::shared_ptr<const ChunkBody>& memory,
                    const std::string& disk_path, const char* cache_status);
  void set_chunk_headers(HttpExchange& ex, const ChunkMeta& meta, const char* cache_status);
  void start_fetch(const std::shared_ptr<Flight>& flight, const RuntimeConfig& rc, const ChunkRequest& request,
                   const std::string& signed_suffix);
  void join(const std::shared_ptr<Flight>& flight, HttpExchange ex, bool first);
  // Returns false when the waiter is done (answered or gone).
  bool advance(Waiter& w, const FlightProgress& p, const Flight& flight);
  void on_head(const std::string& key, const common::FetchHead& head);
  void on_data(const std::string& key, std::string_view bytes);
  void on_done(const std::string& key, const common::FetchResult& result);
  void schedule_flush(OwnedFetch& fetch);
  // Ends an owned flight: publishes the outcome, updates the shared cache, tells the loops.
  void end_flight(const std::string& key, FlightProgress::End how, int status = 0, const std::string& code = {},
                  const std::string& message = {});

  CacheNode::Shared& shared_;
  common::EventLoop& loop_;
  std::unique_ptr<common::HttpClient> client_;
  common::Published<RuntimeConfig>::Reader config_;
  std::unordered_map<std::string, LocalFlight> local_;
  std::unordered_map<std::string, OwnedFetch> owned_;
};

// ---- serving ----

void NodeLoop::set_chunk_headers(HttpExchange& ex, const ChunkMeta& meta, const char* cache_status) {
  if (!meta.content_type.empty()) ex.add_header("Content-Type", meta.content_type);
  if (!meta.etag.empty()) ex.add_header("ETag", meta.etag);
  if (!meta.last_modified.empty()) ex.add_header("Last-Modified", meta.last_modified);
  if (!meta.cache_control.empty()) ex.add_header("Cache-Control", meta.cache_control);
  ex.add_header("Accept-Ranges", "bytes");
  ex.add_header("Age", std::to_string(std::max<int64_t>(0, shared_.clock.unix_now() - meta.stored_at)));
  ex.add_header("X-Cache", cache_status);
  ex.set_log_note(cache_status);
}

void NodeLoop::serve_stored(HttpExchange& ex, const ChunkMeta& meta, const std::shared_ptr<const ChunkBody>& memory,
                            const std::string& disk_path, const char* cache_status) {
  set_chunk_headers(ex, meta, cache_status);
  if (not_modified(ex.header("If-None-Match"), ex.header("If-Modified-Since"), meta.etag, meta.last_modified)) {
    ex.reply(304, "", "");
    return;
  }
  uint64_t first = 0, length = meta.size;
  int status = 200;
  auto if_range = ex.header("If-Range");
  auto range_header = ex.header("Range");
  if (range_header && if_range_allows(if_range, meta.etag, meta.last_modified)) {
    RangeDecision d = evaluate_range(range_header, meta.size);
    if (d.outcome == RangeOutcome::unsatisfiable) {
      ex.add_header("Content-Range", "bytes */" + std::to_string(meta.size));
      fail(ex, 416, "range_not_satisfiable", "The requested range is outside the chunk.");
      return;
    }
    if (d.outcome == RangeOutcome::satisfiable) {
      status = 206;
      first = d.range.first;
      length = d.range.length();
      ex.add_header("Content-Range", "bytes " + std::to_string(d.range.first) + "-" +
                                         std::to_string(d.range.last) + "/" + std::to_string(meta.size));
    }
  }
  common::BodyBuffer buffer;
  if (!ex.is_head() && length > 0) {
    if (memory) {
      memory->add_to(buffer, first, first + length);
    } else {
      int fd = ::open(disk_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        fail(ex, 500, "storage_error", "A stored chunk could not be read.");
        return;
      }
      // The buffer owns the fd once added and sends the segment with sendfile where it can.
      if (!buffer.append_file(fd, first, length)) {
        ::close(fd);  // not taken over on failure
        fail(ex, 500, "storage_error", "A stored chunk could not be read.");
        return;
      }
    }
  }
  shared_.bytes_served.inc(ex.is_head() ? 0 : length);
  ex.reply(status, std::move(buffer), length, "");
}

void NodeLoop::handle_chunk(HttpExchange& ex) {
  const RuntimeConfig& rc = config_.get();
  const CacheNodeConfig& config = rc.config;
  common::SplitTarget split = common::split_signed_target(ex.target());
  std::string signed_suffix;
  if (config.signing_required) {
    common::SignatureVerdict verdict =
        rc.signer ? rc.signer->verify(ex.target(), shared_.clock.unix_now()) : common::SignatureVerdict::bad_signature;
    switch (verdict) {
      case common::SignatureVerdict::ok: break;
      case common::SignatureVerdict::missing:
        return fail(ex, 403, "signature_missing", "This chunk URL must be signed.");
      case common::SignatureVerdict::expired:
        return fail(ex, 403, "signature_expired", "This chunk URL has expired; refresh the playlist.");
      case common::SignatureVerdict::malformed:
      case common::SignatureVerdict::bad_signature:
        return fail(ex, 403, "signature_invalid", "This chunk URL's signature is not valid.");
    }
  }
  if (!split.signature.empty()) {
    signed_suffix = std::string(common::kSignatureExpiryParam) + "=" + split.expires + "&" +
                    std::string(common::kSignatureParam) + "=" + split.signature;
  }
  auto request = parse_chunk_request(split.unsigned_target);
  if (!request) return fail(ex, 400, "bad_request", request.error().message);
  if (!config.origins.count(request->origin_id)) {
    return fail(ex, 404, "unknown_origin", "No origin named '" + request->origin_id + "' is configured here.");
  }
  std::string key = request->cache_key();
  if (auto hit = shared_.cache->find(key)) {
    shared_.hits.inc();
    return serve_stored(ex, hit->meta, hit->memory, hit->disk_path, "HIT");
  }
  SharedCache::Lookup found = shared_.cache->find_or_start(key, loop_.index());
  switch (found.kind) {
    case SharedCache::Lookup::Kind::negative:
      shared_.negative_hits.inc();
      ex.add_header("X-Cache", "HIT");
      ex.set_log_note("NEGATIVE");
      return ex.reply_error(404, "not_found", "The origin has no such chunk.");
    case SharedCache::Lookup::Kind::hit:
      shared_.hits.inc();
      return serve_stored(ex, found.hit->meta, found.hit->memory, found.hit->disk_path, "HIT");
    case SharedCache::Lookup::Kind::joined:
      shared_.coalesced.inc();
      return join(found.flight, std::move(ex), false);
    case SharedCache::Lookup::Kind::started:
      shared_.misses.inc();
      start_fetch(found.flight, rc, *request, signed_suffix);
      return join(found.flight, std::move(ex), true);
  }
}

// ---- waiting on a flight (any loop) ----

void NodeLoop::join(const std::shared_ptr<Flight>& flight, HttpExchange ex, bool first) {
  auto it = local_.find(flight->key());
  if (it != local_.end() && it->second.flight != flight) {
    // Waiters on an earlier flight for this key whose end is not processed yet.
    progress(it->second.flight);
    it = local_.find(flight->key());
  }
  if (it == local_.end()) it = local_.emplace(flight->key(), LocalFlight{flight, {}}).first;
  bool deferred = ex.is_head() || ex.header("Range").has_value();
  Waiter& w = it->second.waiters.emplace_back(std::move(ex));
  w.deferred = deferred;
  w.first = first;
  w.exchange.set_log_note(first ? "MISS" : "COALESCED");
  progress(flight);
}

bool NodeLoop::advance(Waiter& w, const FlightProgress& p, const Flight& flight) {
  HttpExchange& ex = w.exchange;
  if (ex.closed() || ex.finished()) return false;
  switch (p.end) {
    case FlightProgress::End::failed:
      if (w.streaming) {
        ex.abort();  // the head is out; a truncated body must not look complete
      } else {
        ex.reply_error(p.fail_status, p.fail_code, p.fail_message);
      }
      return false;
    case FlightProgress::End::not_found:
      ex.reply_error(404, "not_found", "The origin has no such chunk.");
      return false;
    case FlightProgress::End::running:
    case FlightProgress::End::stored:
      break;
  }
  if (!w.deferred && !w.streaming && p.head_known && p.status == 200) {
    set_chunk_headers(ex, p.meta, w.first ? "MISS" : "COALESCED");
    if (not_modified(ex.header("If-None-Match"), ex.header("If-Modified-Since"), p.meta.etag,
                     p.meta.last_modified)) {
      ex.reply(304, "", "");
      return false;
    }
    if (p.content_length) ex.add_header("Content-Length", std::to_string(*p.content_length));
    ex.start(200);
    w.streaming = true;
  }
  if (w.streaming && w.sent < p.bytes) {
    common::BodyBuffer buffer;
    flight.body()->add_to(buffer, w.sent, p.bytes);
    shared_.bytes_served.inc(p.bytes - w.sent);
    ex.send(std::move(buffer));
    w.sent = p.bytes;
  }
  if (p.end != FlightProgress::End::stored) return true;
  if (w.streaming) {
    ex.end();
  } else {
    // Deferred (HEAD, Range) or joined before a head without length: serve whole.
    serve_stored(ex, p.meta, flight.body(), "", "COALESCED");
  }
  return false;
}

void NodeLoop::progress(const std::shared_ptr<Flight>& flight) {
  auto it = local_.find(flight->key());
  if (it == local_.end() || it->second.flight != flight) return;
  const FlightProgress p = flight->progress();
  auto& waiters = it->second.waiters;
  for (auto w = waiters.begin(); w != waiters.end();) {
    w = advance(*w, p, *flight) ? std::next(w) : waiters.erase(w);
  }
  // Waiters that replied are finished; the entry goes with the flight's end (a
  // running flight keeps it even when empty, so later joins see its progress).
  if (p.end != FlightProgress::End::running) local_.erase(flight->key());
}

// ---- owning a flight (the loop that started it) ----

void NodeLoop::start_fetch(const std::shared_ptr<Flight>& flight, const RuntimeConfig& rc,
                           const ChunkRequest& request, const std::string& signed_suffix) {
  const CacheNodeConfig& config = rc.config;
  std::string url;
  if (config.parent) {
    // Through the parent tier: same scheme, the viewer's signature passed along.
    url = *config.parent + std::string(kChunkPrefix) + request.origin_id + request.origin_path;
    std::string query = request.query;
    if (!signed_suffix.empty()) query += (query.empty() ? "" : "&") + signed_suffix;
    if (!query.empty()) url += "?" + query;
  } else {
    url = config.origins.at(request.origin_id).url + request.origin_path;
    if (!request.query.empty()) url += "?" + request.query;
  }
  const std::string& key = flight->key();
  OwnedFetch& fetch = owned_[key];
  fetch.flight = flight;
  fetch.started = shared_.clock.now();
  shared_.origin_fetches.inc();
  common::FetchRequest request_out;
  request_out.url = url;
  common::FetchCallbacks callbacks;
  callbacks.on_head = [this, key](const common::FetchHead& head) { on_head(key, head); };
  callbacks.on_data = [this, key](std::string_view bytes) { on_data(key, bytes); };
  callbacks.on_done = [this, key](const common::FetchResult& result) { on_done(key, result); };
  fetch.id = client_->fetch(std::move(request_out), std::move(callbacks));
}

void NodeLoop::on_head(const std::string& key, const common::FetchHead& head) {
  auto it = owned_.find(key);
  if (it == owned_.end()) return;
  OwnedFetch& fetch = it->second;
  fetch.status = head.status;
  shared_.first_byte.observe(std::chrono::duration<double>(shared_.clock.now() - fetch.started).count());
  if (head.status != 200) return;  // answered when the transfer ends
  ChunkMeta meta;
  meta.stored_at = shared_.clock.unix_now();
  meta.content_type = head.header("Content-Type").value_or("application/octet-stream");
  meta.etag = head.header("ETag").value_or("");
  meta.last_modified = head.header("Last-Modified").value_or(format_http_date(meta.stored_at));
  meta.cache_control = head.header("Cache-Control").value_or("");
  std::optional<uint64_t> length = head.content_length();
  if (length && *length > config_.get().config.max_object_bytes) {
    client_->cancel(fetch.id);
    return end_flight(key, FlightProgress::End::failed, 502, "object_too_large",
                      "The chunk is larger than this cache node accepts.");
  }
  fetch.flight->set_head(head.status, std::move(meta), length);
  shared_.notify(fetch.flight, loop_.index());
}

void NodeLoop::on_data(const std::string& key, std::string_view bytes) {
  auto it = owned_.find(key);
  if (it == owned_.end()) return;
  OwnedFetch& fetch = it->second;
  shared_.origin_bytes.inc(bytes.size());
  if (fetch.status != 200) return;
  const std::shared_ptr<ChunkBody>& body = fetch.flight->body();
  if (body->size() + bytes.size() > config_.get().config.max_object_bytes) {
    client_->cancel(fetch.id);
    return end_flight(key, FlightProgress::End::failed, 502, "object_too_large",
                      "The chunk is larger than this cache node accepts.");
  }
  body->append(bytes);
  schedule_flush(fetch);
}

// Upstream data often arrives in several callbacks per loop iteration: waiters
// hear of it once per iteration instead of once per callback.
void NodeLoop::schedule_flush(OwnedFetch& fetch) {
  if (fetch.flush_scheduled) return;
  fetch.flush_scheduled = true;
  struct Pending {
    NodeLoop* self;
    std::string key;  // the fetch may be gone by then: look it up again
  };
  auto* pending = new Pending{this, fetch.flight->key()};
  timeval now{0, 0};
  event_base_once(
      &loop_.base(), -1, EV_TIMEOUT,
      [](evutil_socket_t, short, void* arg) {
        std::unique_ptr<Pending> p(static_cast<Pending*>(arg));
        auto it = p->self->owned_.find(p->key);
        if (it == p->self->owned_.end()) return;
        it->second.flush_scheduled = false;
        p->self->shared_.notify(it->second.flight, p->self->loop_.index());
      },
      pending, &now);
}

void NodeLoop::on_done(const std::string& key, const common::FetchResult& result) {
  auto it = owned_.find(key);
  if (it == owned_.end()) return;
  const OwnedFetch& fetch = it->second;
  if (!result.ok) {
    LOG_WARN(kLog, "upstream fetch failed: ", result.error);
    if (result.timed_out) {
      return end_flight(key, FlightProgress::End::failed, 504, "origin_timeout", "The origin did not answer in time.");
    }
    bool head_known = fetch.status != 0;
    return end_flight(key, FlightProgress::End::failed, 502, head_known ? "origin_error" : "origin_unreachable",
                      head_known ? "The origin connection failed during the transfer."
                                 : "The origin could not be reached.");
  }
  if (fetch.status == 404) return end_flight(key, FlightProgress::End::not_found);
  if (fetch.status != 200) {
    return end_flight(key, FlightProgress::End::failed, 502, "origin_error",
                      "The origin answered with status " + std::to_string(fetch.status) + ".");
  }
  FlightProgress p = fetch.flight->progress();
  if (p.content_length && *p.content_length != p.bytes) {
    return end_flight(key, FlightProgress::End::failed, 502, "origin_error",
                      "The origin sent fewer bytes than it announced.");
  }
  end_flight(key, FlightProgress::End::stored);
}

void NodeLoop::end_flight(const std::string& key, FlightProgress::End how, int status, const std::string& code,
                          const std::string& message) {
  auto it = owned_.find(key);
  if (it == owned_.end()) return;
  std::shared_ptr<Flight> flight = std::move(it->second.flight);
  owned_.erase(it);
  if (how == FlightProgress::End::failed) shared_.error_counter(code).inc();
  const CacheNodeConfig& config = config_.get().config;
  if (how == FlightProgress::End::stored) {
    flight->set_meta_size(flight->body()->size());
    flight->end(how);
    ChunkMeta meta = flight->progress().meta;
    shared_.cache->finish(*flight, &meta, std::nullopt);
  } else {
    flight->end(how, status, code, message);
    shared_.cache->finish(*flight, nullptr,
                          how == FlightProgress::End::not_found
                              ? std::optional<common::SteadyTime::duration>(config.negative_ttl)
                              : std::nullopt);
  }
  shared_.notify(flight, loop_.index());
}

void CacheNode::Shared::notify(const std::shared_ptr<Flight>& flight, size_t from_loop) {
  for (size_t index : flight->subscribers()) {
    NodeLoop* target = loops[index].get();
    if (index == from_loop) {
      target->progress(flight);
    } else {
      target->loop().post([target, flight] { target->progress(flight); });
    }
  }
}

// ---- status ----

std::string CacheNode::Shared::health_json(const CacheNodeConfig& c) const {
  const ChunkStore& store = cache->store();
  char numbers[512];
  snprintf(numbers, sizeof numbers,
           "\"active_connections\":%zu,\"inflight_fetches\":%zu,\"egress_mbps\":%.3f,"
           "\"bytes_served_total\":%llu,\"storage\":{\"memory_used_bytes\":%llu,\"memory_limit_bytes\":%llu,"
           "\"disk_used_bytes\":%llu,\"disk_limit_bytes\":%llu,\"disk_chunks\":%zu,\"pending_writes\":%zu}",
           active_requests(), cache->inflight(), egress_mbps.load(),
           static_cast<unsigned long long>(bytes_served.value()),
           static_cast<unsigned long long>(store.memory_used()),
           static_cast<unsigned long long>(store.options().memory_bytes),
           static_cast<unsigned long long>(store.disk_used()),
           static_cast<unsigned long long>(store.options().disk_bytes), store.disk_entries(), store.pending_writes());
  bool over = overloaded(c);
  return std::string("{\"status\":") + (over ? "\"overloaded\"" : "\"ok\"") +
         ",\"node_id\":" + common::json_string(c.node_id) + ",\"site\":" + common::json_string(c.site) +
         ",\"overloaded\":" + (over ? "true" : "false") + ",\"threads\":" + std::to_string(loops.size()) + "," +
         numbers + "}\n";
}

void CacheNode::Shared::tick() {
  auto now = clock.now();
  double seconds = std::chrono::duration<double>(now - last_tick).count();
  uint64_t bytes = bytes_served.value();
  if (seconds > 0) {
    double instant = static_cast<double>(bytes - last_bytes_served) * 8 / 1e6 / seconds;
    egress_mbps.store(0.5 * egress_mbps.load() + 0.5 * instant);  // smooth over a few seconds
  }
  last_bytes_served = bytes;
  last_tick = now;
  cache->expire_negative();
}

// ---- the service ----

CacheNode::CacheNode(std::unique_ptr<Shared> shared) : shared_(std::move(shared)) {}
CacheNode::~CacheNode() = default;

common::Result<std::unique_ptr<CacheNode>> CacheNode::create(common::ServiceContext& context,
                                                             const CacheNodeConfig& config) {
  common::LogLevel level;
  if (common::parse_log_level(config.log_level, level)) common::set_log_level(level);
  auto runtime = make_runtime(config);
  if (!runtime) return runtime.error();
  auto shared = std::make_unique<Shared>(context, std::move(runtime).value());
  Shared& n = *shared;
  auto store = ChunkStore::open(context.home().base(),
                                StoreOptions{config.data_dir, config.memory_bytes, config.disk_bytes}, n.metrics);
  if (!store) return store.error();
  n.cache = std::make_unique<SharedCache>(std::move(store).value(), n.clock);
  common::HttpClientOptions client_options;
  client_options.connect_timeout = config.upstream_connect_timeout;
  client_options.request_timeout = config.upstream_timeout;
  client_options.http2 = config.upstream_http2;
  client_options.ca_file = config.upstream_ca_file;
  client_options.user_agent = "balancer-cache-node/" + config.node_id;
  for (common::EventLoop* loop : context.loops) {
    auto client = common::HttpClient::create(loop->base(), client_options);
    if (!client) return client.error();
    n.loops.push_back(std::make_unique<NodeLoop>(n, *loop, std::move(client).value()));
  }
  for (const char* kind : kErrorKinds) n.error_counter(kind);  // every series exists from the start, at 0
  const ChunkStore& s = n.cache->store();
  n.metrics.gauge_fn("cache_storage_bytes", "Bytes stored", [&s] { return double(s.memory_used()); },
                     "tier=\"memory\"");
  n.metrics.gauge_fn("cache_storage_bytes", "Bytes stored", [&s] { return double(s.disk_used()); }, "tier=\"disk\"");
  n.metrics.gauge_fn("cache_storage_limit_bytes", "Storage limit", [&s] { return double(s.options().memory_bytes); },
                     "tier=\"memory\"");
  n.metrics.gauge_fn("cache_storage_limit_bytes", "Storage limit", [&s] { return double(s.options().disk_bytes); },
                     "tier=\"disk\"");
  n.metrics.gauge_fn("cache_active_requests", "Requests in progress", [&n] { return double(n.active_requests()); });
  n.metrics.gauge_fn("cache_inflight_fetches", "Upstream fetches in progress",
                     [&n] { return double(n.cache->inflight()); });
  n.metrics.gauge_fn("cache_egress_mbps", "Recent egress in Mbit/s", [&n] { return n.egress_mbps.load(); });

  n.last_tick = n.clock.now();
  n.tick_timer.reset(event_new(
      &context.home().base(), -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Shared*>(arg)->tick(); }, &n));
  timeval one_second{1, 0};
  evtimer_add(n.tick_timer.get(), &one_second);
  LOG_INFO(kLog, "node ", config.node_id, " (site ", config.site, ") serving ", config.origins.size(), " origin(s)",
           config.parent ? " through parent " + *config.parent : std::string());
  return std::unique_ptr<CacheNode>(new CacheNode(std::move(shared)));
}

void CacheNode::attach(size_t index, common::HttpServer& server) {
  Shared& n = *shared_;
  NodeLoop& loop = *n.loops[index];
  n.servers.push_back(&server);
  // Per-loop readers of the config snapshot (each handler runs on this loop only).
  auto config = std::make_shared<common::Published<RuntimeConfig>::Reader>(n.config);
  server.route_prefix(std::string(kChunkPrefix), {"GET", "HEAD"}, [&loop](HttpExchange& ex) { loop.handle_chunk(ex); });
  server.route("/ping", {"GET", "HEAD", "OPTIONS"}, [config](HttpExchange& ex) {
    const CacheNodeConfig& c = config->get().config;
    ex.add_header("Cache-Control", "no-store");
    ex.add_header("Access-Control-Allow-Origin", "*");
    ex.add_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    if (ex.method() == "OPTIONS") return ex.reply(204, "", "");
    ex.reply(200, "{\"id\":" + common::json_string(c.node_id) + ",\"site\":" + common::json_string(c.site) + "}\n");
  });
  server.route("/health", {"GET", "HEAD"}, [&n, config](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, n.health_json(config->get().config));
  });
  server.route("/metrics", {"GET"}, [&n](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, n.metrics.render(), "text/plain; version=0.0.4");
  });
}

common::Status CacheNode::reload(CacheNodeConfig config) {
  Shared& n = *shared_;
  std::shared_ptr<const RuntimeConfig> running = n.config.load();
  const CacheNodeConfig& old = running->config;
  common::LogLevel level;
  if (!common::parse_log_level(config.log_level, level)) {
    return common::Error{"bad_config", "log.level: unknown level " + config.log_level};
  }
  if (config.server.host != old.server.host || config.server.port != old.server.port ||
      config.server.threads != old.server.threads || config.data_dir != old.data_dir ||
      config.memory_bytes != old.memory_bytes || config.disk_bytes != old.disk_bytes) {
    LOG_WARN(kLog, "reload: listen address, threads, data_dir and storage sizes change only on restart");
  }
  config.server = old.server;
  config.data_dir = old.data_dir;
  config.memory_bytes = old.memory_bytes;
  config.disk_bytes = old.disk_bytes;
  auto runtime = make_runtime(std::move(config));
  if (!runtime) return runtime.error();
  common::set_log_level(level);
  n.config.publish(std::move(runtime).value());
  return {};
}

}  // namespace cache_node
