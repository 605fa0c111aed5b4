#include "cache_node/cache_node.h"

#include <event2/buffer.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <list>
#include <unordered_map>

#include "cache_node/chunk_body.h"
#include "cache_node/chunk_request.h"
#include "cache_node/chunk_store.h"
#include "cache_node/http_semantics.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"
#include "common/url_signing.h"

namespace cache_node {

using common::HttpExchange;
using Clock = std::chrono::steady_clock;

namespace {
constexpr const char* kLog = "cache_node";

int64_t unix_now() { return static_cast<int64_t>(time(nullptr)); }

std::string trim_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}
}  // namespace

// ---- config ----

common::Result<CacheNodeConfig> load_cache_node_config(const common::ConfigDocument& doc) {
  common::ConfigReader root(doc);
  CacheNodeConfig c;
  c.node_id = root.required_string("node_id");
  c.site = root.string("site", "default");
  {
    auto listen = root.object("listen");
    c.server.host = listen.string("host", "127.0.0.1");
    c.server.port = static_cast<uint16_t>(listen.integer("port", 8081, 0, 65535));
    listen.finish();
  }
  c.data_dir = root.required_string("data_dir");
  root.each_member("origins", [&](const std::string& id, common::ConfigReader& origin) {
    OriginConfig o;
    o.url = trim_slash(origin.required_string("url"));
    if (!o.url.empty() && o.url.rfind("http://", 0) != 0 && o.url.rfind("https://", 0) != 0) {
      origin.fail("url", "must start with http:// or https://");
    }
    bool id_ok = !id.empty();
    for (char ch : id) id_ok = id_ok && (isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_');
    if (!id_ok) origin.fail("url", "origin id '" + id + "' may only use letters, digits, '-' and '_'");
    c.origins[id] = o;
  });
  if (c.origins.empty()) root.fail("origins", "at least one origin is required");
  if (auto parent = root.optional_string("parent")) {
    if (parent->rfind("http://", 0) != 0 && parent->rfind("https://", 0) != 0) {
      root.fail("parent", "must be a URL starting with http:// or https://");
    }
    c.parent = trim_slash(*parent);
  }
  {
    auto signing = root.object("signing");
    c.signing_required = signing.boolean("required", true);
    c.signing_keys = signing.string_list("keys", {});
    for (const auto& k : c.signing_keys) {
      if (k.size() < 16) signing.fail("keys", "every key must be at least 16 characters");
    }
    if (c.signing_required && c.signing_keys.empty()) {
      signing.fail("keys", "at least one key is required when signing.required is true");
    }
    signing.finish();
  }
  {
    auto storage = root.object("storage");
    c.memory_bytes = static_cast<uint64_t>(storage.number("memory_mb", 256, 0.01, 1 << 20) * (1 << 20));
    c.disk_bytes = static_cast<uint64_t>(storage.number("disk_mb", 4096, 0.01, 1 << 30) * (1 << 20));
    c.max_object_bytes = static_cast<uint64_t>(storage.number("max_object_mb", 64, 0.01, 4096) * (1 << 20));
    storage.finish();
  }
  c.negative_ttl = std::chrono::milliseconds(root.integer("negative_ttl_ms", 2000, 0, 3600 * 1000));
  {
    auto upstream = root.object("upstream");
    c.upstream_connect_timeout =
        std::chrono::milliseconds(upstream.integer("connect_timeout_ms", 2000, 1, 60000));
    c.upstream_timeout = std::chrono::milliseconds(upstream.integer("timeout_ms", 30000, 1, 3600 * 1000));
    c.upstream_http2 = upstream.boolean("http2", true);
    c.upstream_ca_file = upstream.string("ca_file", "");
    if (!c.upstream_ca_file.empty() && access(c.upstream_ca_file.c_str(), R_OK) != 0) {
      upstream.fail("ca_file", "cannot read '" + c.upstream_ca_file + "'");
    }
    upstream.finish();
  }
  {
    auto overload = root.object("overload");
    c.overload_max_connections = static_cast<uint32_t>(overload.integer("max_connections", 10000, 1, 10000000));
    c.overload_max_egress_mbps = overload.number("max_egress_mbps", 10000, 0.001, 1e7);
    overload.finish();
  }
  auto server = root.object("server");
  common::read_server_section(server, c.server);
  auto log = root.object("log");
  c.log_level = common::read_log_section(log);
  c.server.service = "cache_node";
  root.finish();
  if (!root.ok()) return common::Error{"bad_config", root.error_text()};
  return c;
}

// ---- the node ----

struct Waiter {
  explicit Waiter(HttpExchange e) : exchange(std::move(e)) {}
  HttpExchange exchange;
  size_t sent = 0;
  bool streaming = false;  // head sent, body follows as it arrives
  bool deferred = false;   // HEAD or Range: answered from the whole chunk
};

struct InFlight {
  std::string key;
  common::FetchId fetch_id = 0;
  bool head_known = false;
  int status = 0;
  ChunkMeta meta;
  std::optional<uint64_t> content_length;
  std::shared_ptr<ChunkBody> body = std::make_shared<ChunkBody>();
  std::list<Waiter> waiters;
  bool too_large = false;
  bool flush_scheduled = false;
  Clock::time_point started;
};

struct CacheNode::Impl {
  Impl(event_base& b, CacheNodeConfig c)
      : base(b),
        config(std::move(c)),
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
  void fail(HttpExchange& ex, int status, const std::string& code, const std::string& message) {
    error_counter(code).inc();
    ex.reply_error(status, code, message);
  }

  void handle_chunk(HttpExchange& ex);
  void serve_stored(HttpExchange& ex, const ChunkMeta& meta, const std::shared_ptr<const ChunkBody>& memory,
                    const std::string& disk_path, const char* cache_status);
  void start_fetch(const std::string& key, const ChunkRequest& request, const std::string& signed_suffix,
                   HttpExchange ex);
  void join(InFlight& flight, HttpExchange ex, bool first);
  void begin_stream(InFlight& flight, Waiter& w);
  void on_head(const std::string& key, const common::FetchHead& head);
  void on_data(const std::string& key, std::string_view bytes);
  void on_done(const std::string& key, const common::FetchResult& result);
  void schedule_flush(InFlight& flight);
  void flush(InFlight& flight);
  void fail_flight(InFlight& flight, int status, const std::string& code, const std::string& message);
  void set_chunk_headers(HttpExchange& ex, const ChunkMeta& meta, const char* cache_status);
  std::string health_json();
  bool overloaded() const;
  void tick();

  event_base& base;
  CacheNodeConfig config;
  common::MetricsRegistry metrics;
  std::unique_ptr<common::HttpServer> server;
  std::unique_ptr<common::HttpClient> client;
  std::unique_ptr<ChunkStore> store;
  std::optional<common::UrlSigner> signer;
  std::unordered_map<std::string, std::unique_ptr<InFlight>> inflight;
  std::unordered_map<std::string, Clock::time_point> negative;  // 404 remembered until
  common::EventPtr tick_timer;
  uint64_t last_bytes_served = 0;
  Clock::time_point last_tick = Clock::now();
  double egress_mbps = 0;

  common::Counter& hits;
  common::Counter& misses;
  common::Counter& coalesced;
  common::Counter& negative_hits;
  common::Counter& origin_fetches;
  common::Counter& origin_bytes;
  common::Counter& bytes_served;
  common::Histogram& first_byte;
};

void CacheNode::Impl::set_chunk_headers(HttpExchange& ex, const ChunkMeta& meta, const char* cache_status) {
  if (!meta.content_type.empty()) ex.add_header("Content-Type", meta.content_type);
  if (!meta.etag.empty()) ex.add_header("ETag", meta.etag);
  if (!meta.last_modified.empty()) ex.add_header("Last-Modified", meta.last_modified);
  if (!meta.cache_control.empty()) ex.add_header("Cache-Control", meta.cache_control);
  ex.add_header("Accept-Ranges", "bytes");
  ex.add_header("Age", std::to_string(std::max<int64_t>(0, unix_now() - meta.stored_at)));
  ex.add_header("X-Cache", cache_status);
  ex.set_log_note(cache_status);
}

void CacheNode::Impl::serve_stored(HttpExchange& ex, const ChunkMeta& meta,
                                   const std::shared_ptr<const ChunkBody>& memory, const std::string& disk_path,
                                   const char* cache_status) {
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
  common::EvbufferPtr buffer(evbuffer_new());
  if (!ex.is_head() && length > 0) {
    if (memory) {
      memory->add_to(buffer.get(), first, first + length);
    } else {
      int fd = ::open(disk_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        fail(ex, 500, "storage_error", "A stored chunk could not be read.");
        return;
      }
      // The evbuffer owns the fd and sends the segment with sendfile where it can.
      if (evbuffer_add_file(buffer.get(), fd, static_cast<ev_off_t>(first), static_cast<ev_off_t>(length)) != 0) {
        fail(ex, 500, "storage_error", "A stored chunk could not be read.");
        return;
      }
    }
  }
  bytes_served.inc(ex.is_head() ? 0 : length);
  ex.reply(status, buffer.get(), length, "");
}

void CacheNode::Impl::handle_chunk(HttpExchange& ex) {
  common::SplitTarget split = common::split_signed_target(ex.target());
  std::string signed_suffix;
  if (config.signing_required) {
    common::SignatureVerdict verdict =
        signer ? signer->verify(ex.target(), unix_now()) : common::SignatureVerdict::bad_signature;
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

  auto neg = negative.find(key);
  if (neg != negative.end()) {
    if (Clock::now() < neg->second) {
      negative_hits.inc();
      ex.add_header("X-Cache", "HIT");
      ex.set_log_note("NEGATIVE");
      return ex.reply_error(404, "not_found", "The origin has no such chunk.");
    }
    negative.erase(neg);
  }
  if (auto hit = store->find(key)) {
    hits.inc();
    return serve_stored(ex, hit->meta, hit->memory, hit->disk_path, "HIT");
  }
  auto flight = inflight.find(key);
  if (flight != inflight.end()) {
    coalesced.inc();
    return join(*flight->second, std::move(ex), false);
  }
  misses.inc();
  start_fetch(key, *request, signed_suffix, std::move(ex));
}

void CacheNode::Impl::start_fetch(const std::string& key, const ChunkRequest& request,
                                  const std::string& signed_suffix, HttpExchange ex) {
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
  auto flight = std::make_unique<InFlight>();
  flight->key = key;
  flight->started = Clock::now();
  InFlight& ref = *flight;
  inflight[key] = std::move(flight);
  origin_fetches.inc();
  common::FetchRequest fetch;
  fetch.url = url;
  common::FetchCallbacks callbacks;
  callbacks.on_head = [this, key](const common::FetchHead& head) { on_head(key, head); };
  callbacks.on_data = [this, key](std::string_view bytes) { on_data(key, bytes); };
  callbacks.on_done = [this, key](const common::FetchResult& result) { on_done(key, result); };
  ref.fetch_id = client->fetch(std::move(fetch), std::move(callbacks));
  join(ref, std::move(ex), true);
}

void CacheNode::Impl::join(InFlight& flight, HttpExchange ex, bool first) {
  bool deferred = ex.is_head() || ex.header("Range").has_value();
  flight.waiters.emplace_back(std::move(ex));
  Waiter& w = flight.waiters.back();
  w.deferred = deferred;
  w.exchange.set_log_note(first ? "MISS" : "COALESCED");
  if (!deferred && flight.head_known && flight.status == 200) begin_stream(flight, w);
}

void CacheNode::Impl::begin_stream(InFlight& flight, Waiter& w) {
  HttpExchange& ex = w.exchange;
  if (ex.closed()) return;
  const char* note = w.sent == 0 && &w == &flight.waiters.front() ? "MISS" : "COALESCED";
  set_chunk_headers(ex, flight.meta, note);
  if (not_modified(ex.header("If-None-Match"), ex.header("If-Modified-Since"), flight.meta.etag,
                   flight.meta.last_modified)) {
    ex.reply(304, "", "");
    return;
  }
  if (flight.content_length) ex.add_header("Content-Length", std::to_string(*flight.content_length));
  ex.start(200);
  w.streaming = true;
  if (flight.body->size() > 0) {
    common::EvbufferPtr buffer(evbuffer_new());
    flight.body->add_to(buffer.get(), 0, flight.body->size());
    bytes_served.inc(flight.body->size());
    ex.send(buffer.get());
    w.sent = flight.body->size();
  }
}

void CacheNode::Impl::on_head(const std::string& key, const common::FetchHead& head) {
  auto it = inflight.find(key);
  if (it == inflight.end()) return;
  InFlight& flight = *it->second;
  flight.head_known = true;
  flight.status = head.status;
  first_byte.observe(std::chrono::duration<double>(Clock::now() - flight.started).count());
  if (head.status != 200) return;  // answered when the transfer ends
  flight.content_length = head.content_length();
  flight.meta.stored_at = unix_now();
  flight.meta.content_type = head.header("Content-Type").value_or("application/octet-stream");
  flight.meta.etag = head.header("ETag").value_or("");
  flight.meta.last_modified = head.header("Last-Modified").value_or(format_http_date(flight.meta.stored_at));
  flight.meta.cache_control = head.header("Cache-Control").value_or("");
  if (flight.content_length && *flight.content_length > config.max_object_bytes) {
    flight.too_large = true;
    client->cancel(flight.fetch_id);
    fail_flight(flight, 502, "object_too_large", "The chunk is larger than this cache node accepts.");
    inflight.erase(it);
    return;
  }
  for (auto& w : flight.waiters) {
    if (!w.deferred) begin_stream(flight, w);
  }
}

void CacheNode::Impl::on_data(const std::string& key, std::string_view bytes) {
  auto it = inflight.find(key);
  if (it == inflight.end()) return;
  InFlight& flight = *it->second;
  origin_bytes.inc(bytes.size());
  if (flight.status != 200) return;
  if (flight.body->size() + bytes.size() > config.max_object_bytes) {
    client->cancel(flight.fetch_id);
    fail_flight(flight, 502, "object_too_large", "The chunk is larger than this cache node accepts.");
    inflight.erase(it);
    return;
  }
  flight.body->append(bytes);
  schedule_flush(flight);
}

// Upstream data often arrives in several callbacks per loop iteration: waiters
// get it in one send per iteration instead of one per callback.
void CacheNode::Impl::schedule_flush(InFlight& flight) {
  if (flight.flush_scheduled) return;
  flight.flush_scheduled = true;
  struct Pending {
    Impl* self;
    std::string key;  // the flight may be gone by then: look it up again
  };
  auto* pending = new Pending{this, flight.key};
  timeval now{0, 0};
  event_base_once(
      &base, -1, EV_TIMEOUT,
      [](evutil_socket_t, short, void* arg) {
        std::unique_ptr<Pending> p(static_cast<Pending*>(arg));
        auto it = p->self->inflight.find(p->key);
        if (it != p->self->inflight.end()) p->self->flush(*it->second);
      },
      pending, &now);
}

void CacheNode::Impl::flush(InFlight& flight) {
  flight.flush_scheduled = false;
  size_t size = flight.body->size();
  for (auto& w : flight.waiters) {
    if (!w.streaming || w.exchange.closed() || w.sent >= size) continue;
    common::EvbufferPtr buffer(evbuffer_new());
    flight.body->add_to(buffer.get(), w.sent, size);
    bytes_served.inc(size - w.sent);
    w.exchange.send(buffer.get());
    w.sent = size;
  }
}

void CacheNode::Impl::fail_flight(InFlight& flight, int status, const std::string& code,
                                  const std::string& message) {
  error_counter(code).inc();
  for (auto& w : flight.waiters) {
    if (w.exchange.closed()) continue;
    if (w.streaming) {
      w.exchange.abort();  // the head is out; a truncated body must not look complete
    } else {
      w.exchange.reply_error(status, code, message);
    }
  }
  flight.waiters.clear();
}

void CacheNode::Impl::on_done(const std::string& key, const common::FetchResult& result) {
  auto it = inflight.find(key);
  if (it == inflight.end()) return;
  std::unique_ptr<InFlight> flight = std::move(it->second);
  inflight.erase(it);

  if (!result.ok) {
    LOG_WARN(kLog, "upstream fetch failed: ", result.error);
    if (result.timed_out) {
      return fail_flight(*flight, 504, "origin_timeout", "The origin did not answer in time.");
    }
    return fail_flight(*flight, 502, flight->head_known ? "origin_error" : "origin_unreachable",
                       flight->head_known ? "The origin connection failed during the transfer."
                                          : "The origin could not be reached.");
  }
  if (flight->status == 404) {
    if (config.negative_ttl.count() > 0) negative[key] = Clock::now() + config.negative_ttl;
    for (auto& w : flight->waiters) {
      if (!w.exchange.closed()) w.exchange.reply_error(404, "not_found", "The origin has no such chunk.");
    }
    return;
  }
  if (flight->status != 200) {
    return fail_flight(*flight, 502, "origin_error",
                       "The origin answered with status " + std::to_string(flight->status) + ".");
  }
  if (flight->content_length && *flight->content_length != flight->body->size()) {
    return fail_flight(*flight, 502, "origin_error", "The origin sent fewer bytes than it announced.");
  }
  flush(*flight);  // bytes of the last callbacks
  flight->meta.size = flight->body->size();
  std::shared_ptr<const ChunkBody> body = flight->body;
  store->put(key, flight->meta, body);
  for (auto& w : flight->waiters) {
    if (w.exchange.closed()) continue;
    if (w.streaming) {
      w.exchange.end();
    } else {
      // Deferred (HEAD, Range) or joined before a head without length: serve whole.
      serve_stored(w.exchange, flight->meta, body, "", "COALESCED");
    }
  }
}

bool CacheNode::Impl::overloaded() const {
  return server->active_requests() >= config.overload_max_connections ||
         egress_mbps >= config.overload_max_egress_mbps;
}

std::string CacheNode::Impl::health_json() {
  char numbers[512];
  snprintf(numbers, sizeof numbers,
           "\"active_connections\":%zu,\"inflight_fetches\":%zu,\"egress_mbps\":%.3f,"
           "\"bytes_served_total\":%llu,\"storage\":{\"memory_used_bytes\":%llu,\"memory_limit_bytes\":%llu,"
           "\"disk_used_bytes\":%llu,\"disk_limit_bytes\":%llu,\"disk_chunks\":%zu,\"pending_writes\":%zu}",
           server->active_requests(), inflight.size(), egress_mbps,
           static_cast<unsigned long long>(bytes_served.value()),
           static_cast<unsigned long long>(store->memory_used()),
           static_cast<unsigned long long>(store->options().memory_bytes),
           static_cast<unsigned long long>(store->disk_used()),
           static_cast<unsigned long long>(store->options().disk_bytes), store->disk_entries(),
           store->pending_writes());
  bool over = overloaded();
  return std::string("{\"status\":") + (over ? "\"overloaded\"" : "\"ok\"") +
         ",\"node_id\":" + common::json_string(config.node_id) + ",\"site\":" + common::json_string(config.site) +
         ",\"overloaded\":" + (over ? "true" : "false") + "," + numbers + "}\n";
}

void CacheNode::Impl::tick() {
  auto now = Clock::now();
  double seconds = std::chrono::duration<double>(now - last_tick).count();
  uint64_t bytes = bytes_served.value();
  if (seconds > 0) {
    double instant = static_cast<double>(bytes - last_bytes_served) * 8 / 1e6 / seconds;
    egress_mbps = 0.5 * egress_mbps + 0.5 * instant;  // smooth over a few seconds
  }
  last_bytes_served = bytes;
  last_tick = now;
  for (auto it = negative.begin(); it != negative.end();) {
    it = now >= it->second ? negative.erase(it) : std::next(it);
  }
}

CacheNode::CacheNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CacheNode::~CacheNode() = default;
uint16_t CacheNode::port() const { return impl_->server->port(); }
void CacheNode::drain(std::function<void()> on_drained) { impl_->server->drain(std::move(on_drained)); }

void CacheNode::reload(CacheNodeConfig config) {
  Impl& impl = *impl_;
  std::optional<common::UrlSigner> signer;
  if (!config.signing_keys.empty()) {
    auto created = common::UrlSigner::create(config.signing_keys);
    if (!created) {
      LOG_ERROR(kLog, "reload rejected: ", created.error().message);
      return;
    }
    signer = std::move(created).value();
  }
  if (config.server.host != impl.config.server.host || config.server.port != impl.config.server.port ||
      config.data_dir != impl.config.data_dir || config.memory_bytes != impl.config.memory_bytes ||
      config.disk_bytes != impl.config.disk_bytes) {
    LOG_WARN(kLog, "reload: listen address, data_dir and storage sizes change only on restart");
  }
  common::LogLevel level;
  if (common::parse_log_level(config.log_level, level)) common::set_log_level(level);
  config.server = impl.config.server;
  config.data_dir = impl.config.data_dir;
  config.memory_bytes = impl.config.memory_bytes;
  config.disk_bytes = impl.config.disk_bytes;
  impl.signer = std::move(signer);
  impl.config = std::move(config);
  LOG_INFO(kLog, "configuration reloaded: ", impl.config.origins.size(), " origin(s)");
}

common::Result<std::unique_ptr<CacheNode>> CacheNode::create(event_base& base, CacheNodeConfig config) {
  auto impl = std::make_unique<Impl>(base, std::move(config));
  Impl& n = *impl;
  common::LogLevel level;
  if (common::parse_log_level(n.config.log_level, level)) common::set_log_level(level);
  if (!n.config.signing_keys.empty()) {
    auto signer = common::UrlSigner::create(n.config.signing_keys);
    if (!signer) return signer.error();
    n.signer = std::move(signer).value();
  }
  auto store = ChunkStore::open(base, StoreOptions{n.config.data_dir, n.config.memory_bytes, n.config.disk_bytes},
                                n.metrics);
  if (!store) return store.error();
  n.store = std::move(store).value();
  common::HttpClientOptions client_options;
  client_options.connect_timeout = n.config.upstream_connect_timeout;
  client_options.request_timeout = n.config.upstream_timeout;
  client_options.http2 = n.config.upstream_http2;
  client_options.ca_file = n.config.upstream_ca_file;
  client_options.user_agent = "balancer-cache-node/" + n.config.node_id;
  auto client = common::HttpClient::create(base, client_options);
  if (!client) return client.error();
  n.client = std::move(client).value();
  auto server = common::HttpServer::create(base, n.config.server, n.metrics);
  if (!server) return server.error();
  n.server = std::move(server).value();

  n.server->route_prefix(std::string(kChunkPrefix), {"GET", "HEAD"}, [&n](HttpExchange& ex) { n.handle_chunk(ex); });
  n.server->route("/ping", {"GET", "HEAD", "OPTIONS"}, [&n](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.add_header("Access-Control-Allow-Origin", "*");
    ex.add_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    if (ex.method() == "OPTIONS") return ex.reply(204, "", "");
    ex.reply(200, "{\"id\":" + common::json_string(n.config.node_id) +
                      ",\"site\":" + common::json_string(n.config.site) + "}\n");
  });
  n.server->route("/health", {"GET", "HEAD"}, [&n](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, n.health_json());
  });
  n.server->route("/metrics", {"GET"}, [&n](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, n.metrics.render(), "text/plain; version=0.0.4");
  });
  for (const char* kind : {"bad_request", "unknown_origin", "signature_missing", "signature_expired",
                           "signature_invalid", "origin_error", "origin_unreachable", "origin_timeout",
                           "object_too_large", "range_not_satisfiable", "storage_error"}) {
    n.error_counter(kind);  // every series exists from the start, at 0
  }
  n.metrics.gauge_fn("cache_storage_bytes", "Bytes stored", [&n] { return double(n.store->memory_used()); },
                     "tier=\"memory\"");
  for (const char* kind : {"bad_request", "unknown_origin", "signature_missing", "signature_expired",
                           "signature_invalid", "origin_error", "origin_unreachable", "origin_timeout",
                           "object_too_large", "range_not_satisfiable", "storage_error"}) {
    n.error_counter(kind);  // every series exists from the start, at 0
  }
  n.metrics.gauge_fn("cache_storage_bytes", "Bytes stored", [&n] { return double(n.store->disk_used()); },
                     "tier=\"disk\"");
  n.metrics.gauge_fn("cache_storage_limit_bytes", "Storage limit",
                     [&n] { return double(n.store->options().memory_bytes); }, "tier=\"memory\"");
  n.metrics.gauge_fn("cache_storage_limit_bytes", "Storage limit",
                     [&n] { return double(n.store->options().disk_bytes); }, "tier=\"disk\"");
  n.metrics.gauge_fn("cache_active_requests", "Requests in progress",
                     [&n] { return double(n.server->active_requests()); });
  n.metrics.gauge_fn("cache_inflight_fetches", "Upstream fetches in progress",
                     [&n] { return double(n.inflight.size()); });
  n.metrics.gauge_fn("cache_egress_mbps", "Recent egress in Mbit/s", [&n] { return n.egress_mbps; });

  n.tick_timer.reset(event_new(
      &base, -1, EV_PERSIST, [](evutil_socket_t, short, void* arg) { static_cast<Impl*>(arg)->tick(); }, &n));
  timeval one_second{1, 0};
  evtimer_add(n.tick_timer.get(), &one_second);
  LOG_INFO(kLog, "node ", n.config.node_id, " (site ", n.config.site, ") serving ", n.config.origins.size(),
           " origin(s)", n.config.parent ? " through parent " + *n.config.parent : std::string());
  return std::unique_ptr<CacheNode>(new CacheNode(std::move(impl)));
}

}  // namespace cache_node
