// One loop's chunk requests: verify, look up, serve what is stored; a miss
// starts or joins a flight (flights.h) and is served from its progress.
#include <fcntl.h>
#include <unistd.h>

#include "cache_node/rules/http_semantics.h"
#include "cache_node/serving/node_loop.h"

#include <algorithm>
#include <limits>
#include "cache_node/rules/site_owner.h"
#include "core/thread_rule.h"
#include "core/url.h"
#include "signing/site_fetch.h"

namespace cache_node {

using http::HttpExchange;

namespace {

// The signature of a viewer's link as a query suffix ("bexp=..&bsig=.."), passed on to the
// upstream (a parent or the site's owner checks it again); "" for an unsigned link.
std::string signed_suffix_of(const signing::SplitTarget& split) {
  if (split.signature.empty()) return "";
  return std::string(signing::kSignatureExpiryParam) + "=" + split.expires + "&" +
         std::string(signing::kSignatureParam) + "=" + split.signature;
}

// A remembered upstream 404: the same reply as the flight that found it.
void reply_not_found(HttpExchange& ex) {
  http::UpstreamErrorReply reply =
      http::upstream_error(http::UpstreamFailure::not_found, kChunkWording);
  ex.reply_error(reply.status, reply.error.code, reply.error.message);
}

// Where a miss is fetched from.
std::string upstream_url(const CacheNodeConfig& config, const ChunkRequest& request,
                         const std::string& signed_suffix) {
  std::string url;
  if (config.parent) {
    // Through the parent tier: same scheme, the viewer's signature passed along
    // with the whole query it covers (the parent applies its own query policy).
    url = *config.parent + std::string(kChunkPrefix) + request.origin_id + request.origin_path;
    std::string query = request.query;
    if (!signed_suffix.empty()) query += (query.empty() ? "" : "&") + signed_suffix;
    if (!query.empty()) url += "?" + query;
  } else {
    // Only what the query policy keeps: one origin fetch per cache key.
    url = config.origins.at(request.origin_id).url + request.origin_path;
    if (!request.kept_query.empty()) url += "?" + request.kept_query;
  }
  return url;
}

// The same chunk on the origin's twin (OriginConfig::twin); "" when it has none, or when the
// node fetches through a parent (which has its own).
std::string twin_url(const CacheNodeConfig& config, const ChunkRequest& request) {
  if (config.parent) return {};
  const OriginConfig& origin = config.origins.at(request.origin_id);
  if (origin.twin.empty()) return {};
  std::string url = config.origins.at(origin.twin).url + request.origin_path;
  if (!request.kept_query.empty()) url += "?" + request.kept_query;
  return url;
}

// A chunk on the site's owner: same scheme, the viewer's signature passed along
// (or this node's own when the request had none, as a prefetch has not).
std::string owner_url(const RuntimeConfig& rc, size_t owner, const ChunkRequest& request,
                      const std::string& signed_suffix, int64_t now_s) {
  std::string target = std::string(kChunkPrefix) + request.origin_id + request.origin_path;
  std::string query = request.query;
  if (!signed_suffix.empty()) {
    query += (query.empty() ? "" : "&") + signed_suffix;
  } else if (rc.signer) {
    return rc.site_urls[owner] +
           rc.signer->sign(query.empty() ? target : target + "?" + query, now_s + 60);
  }
  if (!query.empty()) target += "?" + query;
  return rc.site_urls[owner] + target;
}

// True for another node of this site, by the id its proof names (nullopt: no proof held).
bool is_site_node(const RuntimeConfig& rc, const std::optional<std::string>& node_id) {
  if (!node_id || rc.config.site_key.empty() || *node_id == rc.config.node_id) return false;
  return std::find(rc.site_ids.begin(), rc.site_ids.end(), *node_id) != rc.site_ids.end();
}

// The request target (path and query) of an absolute URL, as the server it names receives it.
std::string_view target_of_url(std::string_view url) {
  const size_t scheme = url.find("://");
  const size_t path = url.find('/', scheme == std::string_view::npos ? 0 : scheme + 3);
  return path == std::string_view::npos ? std::string_view("/") : url.substr(path);
}

// How long a 404 of `request` may be remembered at most, below negative_ttl_ms: a part or
// preload hint's link names its part target (query_policy.h); 0 for anything else.
std::chrono::milliseconds negative_cap(const ChunkRequest& request) {
  return std::chrono::milliseconds(part_target_ms(request.query).value_or(0));
}

// The viewer's request headers that `origin` names in forward_request_headers.
std::vector<http::HttpHeader> forwarded_headers(const HttpExchange& ex,
                                                const OriginConfig& origin) {
  std::vector<http::HttpHeader> out;
  for (const std::string& name : origin.forward_request_headers) {
    if (auto value = ex.header(name.c_str())) out.push_back({name, std::move(*value)});
  }
  return out;
}

}  // namespace

NodeLoopParts CacheNode::Shared::loop_parts() {
  return NodeLoopParts{.clock = clock,
                       .config = config,
                       .cache = *cache,
                       .counters = counters,
                       .playback = playback,
                       .prefetch_gate = prefetch_gate,
                       .prefetch_ledger = prefetch_ledger,
                       .notify = [this](const std::shared_ptr<Flight>& flight, size_t from_loop) {
                         notify(flight, from_loop);
                       }};
}

void CacheNode::Shared::notify(const std::shared_ptr<Flight>& flight, size_t from_loop) {
  for (size_t index : flight->subscribers()) {
    Flights* target = &loops[index]->flights();
    if (index == from_loop) {
      core::expect_on(loops[index]->loop());  // told inline: the caller runs that loop
      target->progress(flight);
    } else {
      loops[index]->loop().post([target, flight] { target->progress(flight); });
    }
  }
}

NodeLoop::NodeLoop(NodeLoopParts parts, core::EventLoop& loop,
                   std::unique_ptr<http::HttpClient> client)
    : parts_(std::move(parts)),
      loop_(loop),
      client_(std::move(client)),
      config_(parts_.config),
      flights_(Flights::Deps{
          .loop = loop.index(),
          .cache = &parts_.cache,
          .clock = &parts_.clock,
          .metrics = &parts_.counters.flights,
          .config = &parts_.config,
          .upstream = {[this](http::FetchRequest request, http::FetchCallbacks callbacks) {
                         return client_->fetch(std::move(request), std::move(callbacks));
                       },
                       [this](http::FetchId id) { client_->cancel(id); }},
          .later = [&loop](std::function<void()> job) { loop.post(std::move(job)); },
          .notify = [notify = parts_.notify, index = loop.index()](
                        const std::shared_ptr<Flight>& flight) { notify(flight, index); },
          .after = [this](std::chrono::milliseconds delay,
                          std::function<void()> job) { after(delay, std::move(job)); }}),
      keep_warm_timer_(loop, core::LoopTimer::Repeat::once, [this] { refresh_warm_objects(); }) {}

void NodeLoop::after(std::chrono::milliseconds delay, std::function<void()> job) {
  // Timers that fired are dropped here, never from inside their own callback.
  std::erase_if(timers_, [](const PendingTimer& t) { return *t.fired; });
  auto fired = std::make_shared<bool>(false);
  auto timer = std::make_unique<core::LoopTimer>(loop_, core::LoopTimer::Repeat::once,
                                                 [job = std::move(job), fired] {
                                                   job();
                                                   *fired = true;
                                                 });
  timer->start(delay);
  timers_.push_back(PendingTimer{std::move(timer), std::move(fired)});
}

void NodeLoop::start_miss(const std::shared_ptr<Flight>& flight, const RuntimeConfig& rc,
                          const ChunkRequest& request, const std::string& signed_suffix,
                          bool from_sibling, bool prefetch, int64_t now_ms,
                          std::vector<http::HttpHeader> forwarded) {
  std::string upstream = upstream_url(rc.config, request, signed_suffix);
  if (rc.site_ids.size() > 1 && !from_sibling) {
    const size_t owner = site_owner(rc.site_ids, flight->key());
    if (owner != rc.self_index) {
      OwnerFetch fetch;
      fetch.url = owner_url(rc, owner, request, signed_suffix, now_ms / 1000);
      fetch.headers.push_back(
          {std::string(kSiblingHeader),
           signing::site_fetch_header(rc.config.site_key, rc.config.node_id, rc.site_ids[owner],
                                      target_of_url(fetch.url), now_ms / 1000)});
      if (prefetch) fetch.headers.push_back({std::string(kSiblingPrefetchHeader), "1"});
      fetch.fallback_url = std::move(upstream);
      fetch.twin_url = twin_url(rc.config, request);
      fetch.head_wait = rc.config.site_owner_wait;
      fetch.negative_cap = negative_cap(request);
      return flights_.start_from_owner(flight, std::move(fetch));
    }
  }
  flights_.start(flight, std::move(upstream), std::move(forwarded), negative_cap(request),
                 twin_url(rc.config, request));
}

// Holds a background refresh's flight on this loop until it ends; answers nobody.
class NodeLoop::BackgroundRefresh final : public FlightWaiter {
 public:
  bool advance(const FlightProgress& p, const Flight&, int64_t) override {
    return p.end == FlightProgress::End::running;
  }
};

// ---- serving ----

void NodeLoop::set_chunk_headers(HttpExchange& ex, const ChunkMeta& meta, const char* cache_status,
                                 int64_t now_ms) {
  if (!meta.content_type.empty()) ex.add_header("Content-Type", meta.content_type);
  if (!meta.etag.empty()) ex.add_header("ETag", meta.etag);
  if (!meta.last_modified.empty()) ex.add_header("Last-Modified", meta.last_modified);
  if (!meta.cache_control.empty()) ex.add_header("Cache-Control", meta.cache_control);
  if (!meta.expires.empty()) ex.add_header("Expires", meta.expires);
  // The upstream's own Date: with Age it tells how old the copy is (RFC 9111 §4).
  if (!meta.origin_date.empty()) ex.add_header("Date", meta.origin_date);
  std::string_view kept = meta.kept_headers;
  for (size_t at = 0; at < kept.size();) {
    const size_t end = kept.find('\n', at);
    const std::string_view line = kept.substr(at, end - at);
    const size_t colon = line.find(": ");
    if (colon != std::string_view::npos)
      ex.add_header(std::string(line.substr(0, colon)), std::string(line.substr(colon + 2)));
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  ex.add_header("Accept-Ranges", "bytes");
  // Seconds since the upstream vouched for this copy (reset by a 304).
  ex.add_header("Age", std::to_string(std::max<int64_t>(0, now_ms - meta.vouched_ms) / 1000));
  ex.add_header("X-Cache", cache_status);
  ex.set_log_note(cache_status);
}

void NodeLoop::serve_stored(HttpExchange& ex, const ChunkMeta& meta,
                            const std::shared_ptr<const ChunkBody>& memory,
                            const std::string& disk_path, const char* cache_status,
                            int64_t now_ms) {
  set_chunk_headers(ex, meta, cache_status, now_ms);
  if (not_modified(ex.header("If-None-Match"), ex.header("If-Modified-Since"), meta.etag,
                   meta.last_modified)) {
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
                                         std::to_string(d.range.last) + "/" +
                                         std::to_string(meta.size));
    }
  }
  http::BodyBuffer buffer;
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
      if (!buffer.append_file(fd, first, length, ex.sends_files())) {
        ::close(fd);  // not taken over on failure
        fail(ex, 500, "storage_error", "A stored chunk could not be read.");
        return;
      }
    }
  }
  parts_.counters.bytes_served.inc(ex.is_head() ? 0 : length);
  ex.reply(status, std::move(buffer), length, "");
}

void NodeLoop::handle_chunk(HttpExchange& ex) {
  core::expect_on(loop_);
  const RuntimeConfig& rc = config_.get();
  const CacheNodeConfig& config = rc.config;
  // One clock read serves the signature, freshness and Age.
  const int64_t now_ms = parts_.clock.unix_now_ms();
  // A player's CMCD argument is its report, not part of the URL the balancer signed or of the
  // chunk's key: taken out before both.
  const std::optional<core::TakenQueryParam> cmcd_argument =
      core::take_query_param(ex.target(), cmcd::kQueryArgument);
  const std::string& target = cmcd_argument ? cmcd_argument->target : ex.target();
  signing::SplitTarget split = signing::split_signed_target(target);
  if (config.signing_required) {
    signing::SignatureVerdict verdict = rc.signer ? rc.signer->verify(target, now_ms / 1000)
                                                  : signing::SignatureVerdict::bad_signature;
    switch (verdict) {
      case signing::SignatureVerdict::ok:
        break;
      case signing::SignatureVerdict::missing:
        return fail(ex, 403, "signature_missing", "This chunk URL must be signed.");
      case signing::SignatureVerdict::expired:
        return fail(ex, 403, "signature_expired",
                    "This chunk URL has expired; refresh the playlist.");
      case signing::SignatureVerdict::malformed:
      case signing::SignatureVerdict::bad_signature:
        return fail(ex, 403, "signature_invalid", "This chunk URL's signature is not valid.");
    }
  }
  // Another node of the site asking its chunk's owner: believed only with the site's proof (a
  // viewer naming a node would make every node of the site fetch from origin).
  const std::optional<std::string> site_header = ex.header(kSiblingHeader);
  const bool from_sibling = site_header.has_value();
  // The proof names this node as its addressee: one seen on the wire works at no other node.
  if (from_sibling &&
      !is_site_node(rc, signing::verify_site_fetch(*site_header, config.site_key, config.node_id,
                                                   ex.target(), now_ms / 1000))) {
    return fail(ex, 403, "site_fetch_refused",
                "This request names a node of the site but does not prove it.");
  }
  const std::optional<cmcd::Data> report = parts_.playback.observe(
      ex, cmcd_argument ? std::optional<std::string>(cmcd_argument->raw_value) : std::nullopt, "",
      config.node_id);
  if (report && !report->next_object.empty() && config.prefetch_next_object)
    prefetch_next_object(rc, target, report->next_object, now_ms);
  const std::string signed_suffix = signed_suffix_of(split);
  auto request = parse_chunk_request(split.unsigned_target);
  if (!request) return fail(ex, 400, "bad_request", request.error().message);
  auto origin = config.origins.find(request->origin_id);
  if (origin == config.origins.end()) {
    return fail(ex, 404, "unknown_origin",
                "No origin named '" + request->origin_id + "' is configured here.");
  }
  // After the signature check, which covered the whole query.
  request->kept_query =
      kept_query(request->query, policy_for_path(origin->second.query, request->origin_path));
  const std::string key = request->cache_key();
  serve_chunk(ex, {.rc = rc,
                   .request = *request,
                   .origin = origin->second,
                   .signed_suffix = signed_suffix,
                   .key = key,
                   .now_ms = now_ms,
                   .from_sibling = from_sibling});
}

// The hit path: freshness costs one comparison here (parsed when stored). Otherwise the
// shared cache says what to do: answer not found, serve, join a flight or start one.
void NodeLoop::serve_chunk(HttpExchange& ex, const VerifiedChunk& c) {
  if (auto hit = parts_.cache.find(c.key); hit && c.now_ms < hit->meta.fresh_until_ms) {
    parts_.counters.request(RequestOutcome::hit).inc();
    note_viewer(c, true);
    return serve_stored(ex, hit->meta, hit->memory, hit->disk_path, "HIT", c.now_ms);
  }
  SharedCache::Lookup found = parts_.cache.find_or_start(c.key, loop_.index());
  switch (found.kind) {
    case SharedCache::Lookup::Kind::negative:
      parts_.counters.request(RequestOutcome::negative).inc();
      ex.add_header("X-Cache", "HIT");
      ex.set_log_note("NEGATIVE");
      return reply_not_found(ex);
    case SharedCache::Lookup::Kind::hit:
      parts_.counters.request(RequestOutcome::hit).inc();
      note_viewer(c, true);
      return serve_stored(ex, found.hit->meta, found.hit->memory, found.hit->disk_path, "HIT",
                          c.now_ms);
    case SharedCache::Lookup::Kind::joined:
      if (found.stale && c.now_ms < found.stale->meta.refresh_grace_until_ms) {
        // Being refreshed, within its grace: the stale copy answers now.
        parts_.counters.request(RequestOutcome::stale_while_revalidate).inc();
        return serve_stored(ex, found.stale->meta, found.stale->memory, found.stale->disk_path,
                            "STALE", c.now_ms);
      }
      parts_.counters.request(RequestOutcome::coalesced).inc();
      note_viewer(c, false);
      return wait_on(found.flight, std::move(ex), false);
    case SharedCache::Lookup::Kind::started: {
      parts_.counters.request(RequestOutcome::miss).inc();
      // A sibling asking is never sent on to another (configs that disagree cannot loop).
      if (c.from_sibling && ex.header(kSiblingPrefetchHeader))
        parts_.prefetch_ledger.prefetched(c.key, c.now_ms);
      start_miss(found.flight, c.rc, c.request, c.signed_suffix, c.from_sibling, false, c.now_ms,
                 forwarded_headers(ex, c.origin));
      return wait_on(found.flight, std::move(ex), true);
    }
    case SharedCache::Lookup::Kind::revalidate:
      parts_.counters.request(RequestOutcome::stale).inc();
      flights_.start(found.flight, upstream_url(c.rc.config, c.request, c.signed_suffix),
                     forwarded_headers(ex, c.origin), negative_cap(c.request),
                     twin_url(c.rc.config, c.request));
      if (found.stale) keep_polled_object_warm(c, *found.stale);
      if (found.stale && c.now_ms < found.stale->meta.refresh_grace_until_ms) {
        // Stale-while-revalidate (RFC 5861): one background fetch refreshes it, nobody waits.
        flights_.join(found.flight, std::make_unique<BackgroundRefresh>());
        parts_.counters.request(RequestOutcome::stale_while_revalidate).inc();
        return serve_stored(ex, found.stale->meta, found.stale->memory, found.stale->disk_path,
                            "STALE", c.now_ms);
      }
      return wait_on(found.flight, std::move(ex), true);
  }
}

// ---- keeping polled objects warm (keep_warm.h) ----

void NodeLoop::keep_polled_object_warm(const VerifiedChunk& c, const StoreHit& stale) {
  // A sibling asking is not a viewer; headers forwarded to the origin are a viewer's to send.
  if (c.rc.config.keep_warm.count() == 0 || c.from_sibling ||
      !c.origin.forward_request_headers.empty())
    return;
  const int64_t lifetime_ms = stale.meta.fresh_until_ms - stale.meta.vouched_ms;
  const uint64_t reads = parts_.cache.store().viewer_reads(c.key).value_or(0);
  if (keep_warm_.polled(c.key, {c.request, c.signed_suffix}, lifetime_ms, reads, c.now_ms))
    keep_warm_changed(c.now_ms);
}

void NodeLoop::refresh_warm_objects() {
  const RuntimeConfig& rc = config_.get();
  const int64_t now_ms = parts_.clock.unix_now_ms();
  for (const std::string& key : keep_warm_.due(now_ms)) refresh_warm_object(rc, key, now_ms);
  keep_warm_changed(now_ms);
}

void NodeLoop::refresh_warm_object(const RuntimeConfig& rc, const std::string& key,
                                   int64_t now_ms) {
  const WarmObject* warm = keep_warm_.turn(key, parts_.cache.store().viewer_reads(key), now_ms,
                                           rc.config.keep_warm.count() * 1000);
  if (warm == nullptr) return;
  // The origin as configured now: one removed since (or made to want a viewer's headers) is
  // not fetched for nobody.
  auto origin = rc.config.origins.find(warm->request.origin_id);
  if (origin == rc.config.origins.end() || !origin->second.forward_request_headers.empty())
    return keep_warm_.forget(key);
  SharedCache::Lookup found =
      parts_.cache.find_or_start(key, loop_.index(), ChunkStore::ReadBy::node);
  switch (found.kind) {
    case SharedCache::Lookup::Kind::hit:  // another fetch refreshed it
      return keep_warm_.due_at(key, found.hit->meta.fresh_until_ms);
    case SharedCache::Lookup::Kind::negative:
      return keep_warm_.forget(key);
    case SharedCache::Lookup::Kind::joined:  // a fetch is under way: a lifetime from now again
      return;
    case SharedCache::Lookup::Kind::started:  // evicted a moment ago: fetched again all the same
      start_miss(found.flight, rc, warm->request, warm->signed_suffix, false, false, now_ms);
      break;
    case SharedCache::Lookup::Kind::revalidate:
      flights_.start(found.flight, upstream_url(rc.config, warm->request, warm->signed_suffix), {},
                     negative_cap(warm->request), twin_url(rc.config, warm->request));
      break;
  }
  flights_.join(found.flight, std::make_unique<BackgroundRefresh>());
  parts_.counters.keep_warm_refreshes.inc();
}

void NodeLoop::keep_warm_changed(int64_t now_ms) {
  const size_t size = keep_warm_.size();
  parts_.counters.keep_warm_objects.add(static_cast<double>(size) -
                                        static_cast<double>(keep_warm_reported_));
  keep_warm_reported_ = size;
  if (auto due = keep_warm_.next_due_ms())
    keep_warm_timer_.start(std::chrono::milliseconds(std::max<int64_t>(1, *due - now_ms)));
}

// ---- prefetch ----

void NodeLoop::note_viewer(const VerifiedChunk& c, bool hit) {
  if (c.from_sibling) return;  // a sibling fetching from its owner is not a viewer
  if (!parts_.prefetch_ledger.first_viewer(c.key)) return;
  (hit ? parts_.counters.prefetch_first_hit : parts_.counters.prefetch_first_coalesced).inc();
}

// Waits on a flight a prefetch started, for nobody: counts its end and frees its place.
class NodeLoop::PrefetchWaiter final : public FlightWaiter {
 public:
  PrefetchWaiter(PrefetchGate& gate, NodeCounters& counters) : gate_(gate), counters_(counters) {}
  ~PrefetchWaiter() override {
    if (!ended_) gate_.finished();  // dropped unheard (the loop stops)
  }
  bool advance(const FlightProgress& p, const Flight&, int64_t) override {
    if (p.end == FlightProgress::End::running) return true;
    const bool stored =
        p.end == FlightProgress::End::stored || p.end == FlightProgress::End::revalidated;
    (stored ? counters_.prefetch_stored : counters_.prefetch_failed).inc();
    gate_.finished();
    ended_ = true;
    return false;
  }

 private:
  // Both in the node's Shared, which outlives every loop and flight.
  PrefetchGate& gate_;
  NodeCounters& counters_;
  bool ended_ = false;
};

PrefetchResult NodeLoop::prefetch_one(const RuntimeConfig& rc, const std::string& target,
                                      const std::string& signed_suffix, int64_t now_ms) {
  const CacheNodeConfig& config = rc.config;
  auto request = parse_chunk_request(target);
  auto origin = request ? config.origins.find(request->origin_id) : config.origins.end();
  if (!request || origin == config.origins.end()) return PrefetchResult::invalid;
  request->kept_query =
      kept_query(request->query, policy_for_path(origin->second.query, request->origin_path));
  const std::string key = request->cache_key();
  if (auto hit = parts_.cache.find(key, ChunkStore::ReadBy::node);
      hit && now_ms < hit->meta.fresh_until_ms)
    return PrefetchResult::present;
  if (!parts_.prefetch_gate.admit(now_ms, config.prefetch_max_per_s, config.prefetch_max_inflight))
    return PrefetchResult::refused;
  SharedCache::Lookup found =
      parts_.cache.find_or_start(key, loop_.index(), ChunkStore::ReadBy::node);
  switch (found.kind) {
    case SharedCache::Lookup::Kind::hit:
    case SharedCache::Lookup::Kind::negative:
      parts_.prefetch_gate.finished();
      return PrefetchResult::present;
    case SharedCache::Lookup::Kind::joined:
      parts_.prefetch_gate.finished();
      return PrefetchResult::joined;  // a viewer's fetch (or another prefetch's) is under way:
                                      // never a second one
    case SharedCache::Lookup::Kind::started:
      start_miss(found.flight, rc, *request, signed_suffix, false, true, now_ms);
      break;
    case SharedCache::Lookup::Kind::revalidate:
      flights_.start(found.flight, upstream_url(config, *request, signed_suffix), {},
                     negative_cap(*request), twin_url(config, *request));
      break;
  }
  parts_.prefetch_ledger.prefetched(key, now_ms);
  flights_.join(found.flight,
                std::make_unique<PrefetchWaiter>(parts_.prefetch_gate, parts_.counters));
  return PrefetchResult::started;
}

void NodeLoop::prefetch_next_object(const RuntimeConfig& rc, std::string_view target,
                                    std::string_view next_object, int64_t now_ms) {
  // Resolved as a browser resolves a relative link: against the directory of `target`, with
  // its own query (hls.js writes the next link's signature there). Absolute URLs (another
  // host) and anything that leaves /o/<origin>/ are not this node's to fetch.
  if (next_object.find("://") != std::string_view::npos || next_object.substr(0, 2) == "//") return;
  std::string resolved;
  if (next_object.front() == '/') {
    resolved.assign(next_object);
  } else {
    const std::string_view path = target.substr(0, target.find('?'));
    std::vector<std::string_view> segments;
    for (size_t at = 1; at < path.size();) {
      const size_t slash = path.find('/', at);
      if (slash == std::string_view::npos) break;  // the last segment is the chunk itself
      segments.push_back(path.substr(at, slash - at));
      at = slash + 1;
    }
    std::string_view rest = next_object;
    while (rest.substr(0, 3) == "../" || rest.substr(0, 2) == "./") {
      if (rest.substr(0, 2) == "./") {
        rest.remove_prefix(2);
        continue;
      }
      if (segments.size() <= 2) return;  // above /o/<origin>/
      segments.pop_back();
      rest.remove_prefix(3);
    }
    for (std::string_view segment : segments) resolved.append("/").append(segment);
    resolved.append("/").append(rest);
  }
  const CacheNodeConfig& config = rc.config;
  signing::SplitTarget split = signing::split_signed_target(resolved);
  if (config.signing_required) {
    // The same bar as the viewer's own request for it would meet.
    if (!rc.signer || rc.signer->verify(resolved, now_ms / 1000) != signing::SignatureVerdict::ok) {
      parts_.counters.prefetch(PrefetchResult::invalid).inc();
      return;
    }
  }
  const PrefetchResult result =
      prefetch_one(rc, std::string(split.unsigned_target), signed_suffix_of(split), now_ms);
  if (result == PrefetchResult::started) parts_.counters.prefetch_next_object_started.inc();
  parts_.counters.prefetch(result).inc();
}

void NodeLoop::handle_prefetch(HttpExchange& ex) {
  core::expect_on(loop_);
  const RuntimeConfig& rc = config_.get();
  const CacheNodeConfig& config = rc.config;
  std::string presented = ex.header("Authorization").value_or("");
  constexpr std::string_view kBearer = "Bearer ";
  bool authorized = false;
  if (presented.size() > kBearer.size() &&
      std::string_view(presented).substr(0, kBearer.size()) == kBearer) {
    std::string_view key = std::string_view(presented).substr(kBearer.size());
    for (const auto& configured : config.prefetch_keys)
      authorized = prefetch_key_matches(key, configured) || authorized;
  }
  if (!authorized) {
    ex.add_header("WWW-Authenticate", "Bearer");
    return fail(ex, 401, "unauthorized", "A prefetch needs a valid prefetch key.");
  }
  auto targets = parse_prefetch_body(ex.body());
  if (!targets) return fail(ex, 400, "bad_request", targets.error().message);
  const int64_t now_ms = parts_.clock.unix_now_ms();
  std::array<size_t, std::size(kPrefetchResultNames)> counts{};
  for (const std::string& target : *targets)
    ++counts[static_cast<size_t>(prefetch_one(rc, target, "", now_ms))];
  std::string answer = "{";
  for (size_t i = 0; i < counts.size(); ++i) {
    parts_.counters.prefetches[i]->inc(counts[i]);
    answer += std::string(i > 0 ? "," : "") + "\"" + kPrefetchResultNames[i] +
              "\":" + std::to_string(counts[i]);
  }
  ex.add_header("Cache-Control", "no-store");
  ex.reply(202, answer + "}\n");
}

}  // namespace cache_node
