// One loop's flights: its waiters on flights (whichever loop owns them) and the
// upstream transfers of the flights it started (flights.h).
#include "cache_node/fetching/flights.h"

#include <strings.h>

#include <algorithm>

#include "cache_node/rules/freshness.h"
#include "cache_node/rules/http_semantics.h"
#include "cache_node/rules/upstream_head.h"
#include "core/log.h"
#include "hls/uri.h"

namespace cache_node {

namespace {

constexpr core::CounterFamily kCacheRevalidations{
    "cache_revalidations_total", "Conditional upstream requests for stale copies by result",
    "result"};
constexpr core::CounterFamily kCacheSiblingFallbacks{
    "cache_sibling_fallbacks_total", "Fetches from the owner given up for the upstream, by reason",
    "reason"};

// "scheme://authority" of an absolute URL, lower-cased; empty if it has none.
std::string origin_of(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  const size_t end = url.find_first_of("/?#", scheme_end + 3);
  std::string out(url.substr(0, end));
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// True if `url` is on a host the node is configured to fetch from (an origin or
// the parent): a redirect elsewhere is not followed (only configured origins are fetched).
bool on_configured_upstream(const CacheNodeConfig& config, std::string_view url) {
  const std::string target = origin_of(url);
  if (target.empty()) return false;
  if (config.parent && origin_of(*config.parent) == target) return true;
  for (const auto& [id, origin] : config.origins) {
    if (origin_of(origin.url) == target) return true;
  }
  return false;
}

}  // namespace

FlightMetrics::FlightMetrics(core::MetricsRegistry& metrics)
    : registry(metrics),
      origin_fetches(metrics.counter("cache_origin_fetches_total",
                                     "Fetches from the upstream (origin or parent)")),
      origin_bytes(
          metrics.counter("cache_origin_bytes_total", "Body bytes received from the upstream")),
      first_byte(
          metrics.histogram("cache_origin_first_byte_seconds", "Upstream time to response head")),
      revalidations(kCacheRevalidations.each(metrics, kRevalidationNames)),
      sibling_fetches(metrics.counter("cache_sibling_fetches_total",
                                      "Fetches from the site's owner of the chunk")),
      sibling_fallback_failed(kCacheSiblingFallbacks.in(metrics, "failed")),
      sibling_fallback_slow(kCacheSiblingFallbacks.in(metrics, "slow")),
      twin_fallbacks(metrics.counter(
          "cache_twin_fallbacks_total",
          "Chunk fetches asked of the origin's twin after the origin failed or was slow")),
      dropped_headers(metrics.counter(
          "cache_dropped_headers_total",
          "Upstream response headers not kept with a copy: over the count or size a copy keeps")),
      part_head_timeouts(metrics.counter(
          "cache_part_head_timeouts_total",
          "Part fetches answered 504: the upstream sent no head within three part targets")),
      part_body_stalls(metrics.counter("cache_part_body_stalls_total",
                                       "Part fetches cut: after its head the upstream sent no body "
                                       "byte for three part targets")),
      origins(metrics) {}

OriginVerdict origin_verdict(std::optional<http::UpstreamFailure> failure, int status) {
  if (!failure) return OriginVerdict::answered;
  switch (*failure) {
    case http::UpstreamFailure::unreachable:
    case http::UpstreamFailure::timeout:
    case http::UpstreamFailure::broken:
    case http::UpstreamFailure::truncated:
      return OriginVerdict::failed;
    case http::UpstreamFailure::bad_status:
      return status >= 500 || status == 429 ? OriginVerdict::failed : OriginVerdict::none;
    case http::UpstreamFailure::not_found:
    case http::UpstreamFailure::too_large:
      break;
  }
  return OriginVerdict::none;
}

void OriginFetchTally::count(const std::string& origin, OriginVerdict verdict) {
  if (verdict == OriginVerdict::none || origin.empty()) return;
  std::lock_guard lock(mutex_);
  auto it = by_origin_.find(origin);
  if (it == by_origin_.end()) {
    // Origin ids are configured ones (a chunk request names no other), so the map is bounded.
    const std::string fixed = "origin=\"" + origin + "\"";
    const core::CounterFamily fetches{
        "cache_origin_chunk_fetches_total",
        "The node's own fetches from each origin, by whether the origin answered or failed",
        "result", fixed};
    Series series{&fetches.in(metrics_, "answered"), &fetches.in(metrics_, "failed")};
    it = by_origin_.emplace(origin, series).first;
  }
  (verdict == OriginVerdict::answered ? it->second.answered : it->second.failed)->inc();
}

std::vector<OriginFetchTally::Counts> OriginFetchTally::counts() const {
  std::lock_guard lock(mutex_);
  std::vector<Counts> out;
  out.reserve(by_origin_.size());
  for (const auto& [origin, series] : by_origin_)
    out.push_back({origin, series.answered->value(), series.failed->value()});
  return out;
}

core::Counter& FlightMetrics::error(const std::string& code) {
  return registry.counter("cache_errors_total", "Errors by kind", "kind=\"" + code + "\"");
}

Flights::Flights(Deps deps)
    : deps_(std::move(deps)),
      cache_(*deps_.cache),
      clock_(*deps_.clock),
      metrics_(*deps_.metrics),
      config_(*deps_.config) {}

// ---- waiting on a flight (any loop's) ----

void Flights::join(const std::shared_ptr<Flight>& flight, std::unique_ptr<FlightWaiter> waiter) {
  auto it = local_.find(flight->key());
  if (it != local_.end() && it->second.flight != flight) {
    // Waiters on an earlier flight for this key whose end is not processed yet.
    progress(it->second.flight);
    it = local_.find(flight->key());
  }
  if (it == local_.end()) it = local_.emplace(flight->key(), LocalFlight{flight, {}}).first;
  it->second.waiters.push_back(std::move(waiter));
  progress(flight);
}

void Flights::progress(const std::shared_ptr<Flight>& flight) {
  auto it = local_.find(flight->key());
  if (it == local_.end() || it->second.flight != flight) return;
  const FlightProgress p = flight->progress();
  const int64_t now_ms = clock_.unix_now_ms();
  auto& waiters = it->second.waiters;
  for (auto w = waiters.begin(); w != waiters.end();) {
    w = (*w)->advance(p, *flight, now_ms) ? std::next(w) : waiters.erase(w);
  }
  // Waiters that replied are finished; the entry goes with the flight's end (a
  // running flight keeps it even when empty, so later joins see its progress).
  if (p.end != FlightProgress::End::running) local_.erase(flight->key());
}

size_t Flights::waiting(const std::string& key) const {
  auto it = local_.find(key);
  return it == local_.end() ? 0 : it->second.waiters.size();
}

// ---- owning a flight (the loop that started it) ----

void Flights::start(const std::shared_ptr<Flight>& flight, std::string url,
                    std::vector<http::HttpHeader> headers, std::chrono::milliseconds negative_cap,
                    std::string twin_url) {
  const std::string& key = flight->key();
  OwnedFetch& fetch = owned_[key];
  fetch.flight = flight;
  fetch.started = clock_.now();
  fetch.negative_cap = negative_cap;
  fetch.twin_url = std::move(twin_url);
  metrics_.origin_fetches.inc();
  http::FetchRequest request_out;
  request_out.url = std::move(url);
  request_out.headers = std::move(headers);
  if (const StoreHit* stale = flight->stale()) {
    // Revalidation: the upstream answers 304 if the stored copy is still current.
    if (!stale->meta.etag.empty())
      request_out.headers.push_back({"If-None-Match", stale->meta.etag});
    if (!stale->meta.last_modified.empty() && !stale->meta.last_modified_is_ours) {
      request_out.headers.push_back({"If-Modified-Since", stale->meta.last_modified});
    }
  }
  run_transfer(key, fetch, std::move(request_out));
  if (!fetch.twin_url.empty()) watch_twin(key, fetch.attempt);
}

void Flights::start_from_owner(const std::shared_ptr<Flight>& flight, OwnerFetch owner) {
  const std::string& key = flight->key();
  OwnedFetch& fetch = owned_[key];
  fetch.flight = flight;
  fetch.started = clock_.now();
  fetch.fallback_url = std::move(owner.fallback_url);
  fetch.twin_url = std::move(owner.twin_url);
  fetch.negative_cap = owner.negative_cap;
  metrics_.sibling_fetches.inc();
  http::FetchRequest request_out;
  request_out.url = std::move(owner.url);
  request_out.headers = std::move(owner.headers);
  run_transfer(key, fetch, std::move(request_out));
  watch_owner(key, fetch.attempt, owner.head_wait, 0);
}

void Flights::watch_owner(const std::string& key, uint64_t attempt, std::chrono::milliseconds wait,
                          size_t bytes_before) {
  // A slow owner costs a viewer at most `wait` before the upstream is asked: for
  // its head, then for each next byte.
  deps_.after(wait, [this, key, attempt, wait, bytes_before] {
    OwnedFetch* f = current(key, attempt);
    if (f == nullptr || f->fallback_url.empty()) return;
    const size_t bytes = f->flight->body()->size();
    if (!f->head_received || bytes == bytes_before) return fall_back_to_upstream(key, *f, true);
    watch_owner(key, attempt, wait, bytes);
  });
}

void Flights::run_transfer(const std::string& key, OwnedFetch& fetch, http::FetchRequest request) {
  const uint64_t attempt = next_attempt_++;
  fetch.attempt = attempt;
  fetch.request = request;
  fetch.status = 0;
  fetch.head_received = false;
  http::FetchCallbacks callbacks;
  callbacks.on_head = [this, key, attempt](const http::FetchHead& head) {
    on_head(key, attempt, head);
  };
  callbacks.on_data = [this, key, attempt](std::string_view bytes) {
    on_data(key, attempt, bytes);
  };
  callbacks.on_done = [this, key, attempt](const http::FetchResult& result) {
    on_done(key, attempt, result);
  };
  fetch.id = deps_.upstream.fetch(std::move(request), std::move(callbacks));
  if (fetch.negative_cap.count() > 0)
    watch_part_head(key, attempt, kPartHeadWaits * fetch.negative_cap);
}

void Flights::watch_part_head(const std::string& key, uint64_t attempt,
                              std::chrono::milliseconds wait, std::optional<size_t> bytes_before) {
  deps_.after(wait, [this, key, attempt, wait, bytes_before] {
    OwnedFetch* f = current(key, attempt);
    if (f == nullptr || !f->fallback_url.empty() || !f->twin_url.empty()) return;
    if (f->head_received) {
      // An origin that streams a part as it is encoded and then freezes holds the players'
      // replies open mid-body (until upstream.timeout_ms): cut them, so that they ask again.
      const size_t bytes = f->flight->body()->size();
      if (!bytes_before || bytes != *bytes_before)
        return watch_part_head(key, attempt, wait, bytes);
      metrics_.part_body_stalls.inc();
      f->says_nothing_of_origin = true;
      LOG_WARN_LIMITED(kLog, "part ", key, " sent no byte for ", kPartHeadWaits,
                       " part targets: cut");
      deps_.upstream.cancel(f->id);
      return end_flight(key, http::UpstreamFailure::timeout);
    }
    metrics_.part_head_timeouts.inc();
    f->says_nothing_of_origin = true;
    LOG_WARN_LIMITED(kLog, "no head for part ", key, " within ", kPartHeadWaits,
                     " part targets: 504");
    deps_.upstream.cancel(f->id);
    end_flight(key, http::UpstreamFailure::timeout);
  });
}

void Flights::fall_back_to_upstream(const std::string& key, OwnedFetch& fetch, bool slow) {
  (slow ? metrics_.sibling_fallback_slow : metrics_.sibling_fallback_failed).inc();
  LOG_WARN_LIMITED(kLog, "site owner ", slow ? "slow" : "failed", " for ", key,
                   ": fetching upstream");
  std::string url = std::move(fetch.fallback_url);
  fetch.fallback_url.clear();
  continue_from(key, fetch, std::move(url));
  if (!fetch.twin_url.empty()) watch_twin(key, fetch.attempt);
}

void Flights::watch_twin(const std::string& key, uint64_t attempt, size_t bytes_before) {
  // A frozen origin holds a transfer open, before its head or in the middle of its body: each
  // second without a head, then without a new body byte, hands the fetch to the twin.
  deps_.after(kTwinHeadWait, [this, key, attempt, bytes_before] {
    OwnedFetch* f = current(key, attempt);
    if (f == nullptr || f->twin_url.empty()) return;
    const size_t bytes = f->flight->body()->size();
    if (!f->head_received || bytes == bytes_before) return fall_back_to_twin(key, *f, true);
    watch_twin(key, attempt, bytes);
  });
}

std::string Flights::origin_asked(const std::string& key, const OwnedFetch& fetch) {
  const CacheNodeConfig& config = config_.get().config;
  if (config.parent || !fetch.fallback_url.empty()) return {};
  // A chunk's key begins with its origin's id (ChunkRequest::cache_key).
  std::string origin = key.substr(0, key.find('/'));
  if (!fetch.on_twin) return origin;
  auto found = config.origins.find(origin);
  return found == config.origins.end() ? std::string() : found->second.twin;
}

void Flights::fall_back_to_twin(const std::string& key, OwnedFetch& fetch, bool slow) {
  metrics_.twin_fallbacks.inc();
  metrics_.origins.count(origin_asked(key, fetch), OriginVerdict::failed);
  fetch.on_twin = true;
  LOG_WARN_LIMITED(kLog, "origin ", slow ? "slow" : "failed", " for ", key,
                   ": fetching from its twin");
  std::string url = std::move(fetch.twin_url);
  fetch.twin_url.clear();
  continue_from(key, fetch, std::move(url));
}

void Flights::continue_from(const std::string& key, OwnedFetch& fetch, std::string url) {
  deps_.upstream.cancel(fetch.id);
  // What came so far stays in the body (the waiters may have it already); the next copy
  // continues after it.
  fetch.skip = fetch.flight->body()->size();
  http::FetchRequest request_out;
  request_out.url = std::move(url);
  metrics_.origin_fetches.inc();
  run_transfer(key, fetch, std::move(request_out));
}

bool Flights::follow_redirect(const std::string& key, OwnedFetch& fetch,
                              const http::FetchHead& head) {
  const std::optional<std::string> location = head.header("Location");
  if (!location || fetch.redirects >= kMaxRedirects) return false;
  std::optional<std::string> target = hls::resolve_uri(fetch.request.url, *location);
  if (!target || !on_configured_upstream(config_.get().config, *target)) {
    LOG_WARN_LIMITED(kLog, "not following a redirect for ", key, " off the configured upstreams");
    return false;
  }
  ++fetch.redirects;
  deps_.upstream.cancel(fetch.id);
  http::FetchRequest next = fetch.request;  // a revalidation stays conditional
  next.url = std::move(*target);
  metrics_.origin_fetches.inc();
  run_transfer(key, fetch, std::move(next));
  return true;
}

Flights::OwnedFetch* Flights::current(const std::string& key, uint64_t attempt) {
  auto it = owned_.find(key);
  if (it == owned_.end() || it->second.attempt != attempt) return nullptr;
  return &it->second;
}

void Flights::on_head(const std::string& key, uint64_t attempt, const http::FetchHead& head) {
  OwnedFetch* current_fetch = current(key, attempt);
  if (current_fetch == nullptr) return;
  OwnedFetch& fetch = *current_fetch;
  fetch.status = head.status;
  fetch.head_received = true;
  if (!fetch.fallback_url.empty() && head.status != 200 && head.status != 404 &&
      head.status != 410) {
    // The owner is in trouble (a 404 is the origin's answer through it).
    return fall_back_to_upstream(key, fetch, false);
  }
  if (fetch.fallback_url.empty() && !fetch.twin_url.empty() &&
      (head.status >= 500 || head.status == 429)) {
    return fall_back_to_twin(key, fetch, false);  // the origin is in trouble: its twin has it
  }
  if (head.status >= 300 && head.status < 400 && head.status != 304 &&
      follow_redirect(key, fetch, head))
    return;
  if (head.status == 429 || head.status == 503) fetch.retry_after = retry_after_of(head);
  if (fetch.skip > 0 || fetch.flight->progress().head_known) {
    // The upstream takes over from the owner: the waiters have the head already;
    // the body continues only if it is the same object.
    std::optional<uint64_t> published = fetch.flight->progress().content_length;
    if (head.status != 200 || (published && head.content_length() != published)) {
      deps_.upstream.cancel(fetch.id);
      return end_flight(key, http::UpstreamFailure::broken);
    }
    return;
  }
  metrics_.first_byte.observe(std::chrono::duration<double>(clock_.now() - fetch.started).count());
  if (head.status == 304 && fetch.flight->stale() != nullptr) {
    fetch.refreshed = meta_from_head(key, head, &fetch.flight->stale()->meta, fetch.storable);
    return;  // the waiters are answered from the stored copy when the transfer ends
  }
  if (head.status == 404 || head.status == 410) {
    const HeadFreshness fields(head);
    int64_t cap_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(config_.get().config.negative_ttl)
            .count();
    if (fetch.negative_cap.count() > 0)
      cap_ms = std::min<int64_t>(cap_ms, fetch.negative_cap.count());
    fetch.negative_ttl = std::chrono::milliseconds(
        negative_lifetime_ms(fields.view(), clock_.unix_now_ms(), cap_ms));
  }
  if (head.status != 200 && !relayed_as_is(head.status)) return;  // answered when the transfer ends
  ChunkMeta meta = meta_from_head(key, head, nullptr, fetch.storable);
  if (head.status != 200) fetch.storable = false;  // relayed as it is, never stored
  std::optional<uint64_t> length = head.content_length();
  if (length && *length > config_.get().config.max_object_bytes) {
    deps_.upstream.cancel(fetch.id);
    return end_flight(key, http::UpstreamFailure::too_large);
  }
  if (length) fetch.flight->body()->expect(static_cast<size_t>(*length));
  fetch.flight->set_head(head.status, std::move(meta), length);
  deps_.notify(fetch.flight);
}

void Flights::on_data(const std::string& key, uint64_t attempt, std::string_view bytes) {
  OwnedFetch* current_fetch = current(key, attempt);
  if (current_fetch == nullptr) return;
  OwnedFetch& fetch = *current_fetch;
  metrics_.origin_bytes.inc(bytes.size());
  if (fetch.status != 200 && !relayed_as_is(fetch.status)) return;
  if (fetch.skip > 0) {
    const size_t dropped = std::min(fetch.skip, bytes.size());
    fetch.skip -= dropped;
    bytes.remove_prefix(dropped);
    if (bytes.empty()) return;
  }
  const std::shared_ptr<ChunkBody>& body = fetch.flight->body();
  if (body->size() + bytes.size() > config_.get().config.max_object_bytes) {
    deps_.upstream.cancel(fetch.id);
    return end_flight(key, http::UpstreamFailure::too_large);
  }
  body->append(bytes);
  schedule_flush(fetch);
}

void Flights::schedule_flush(OwnedFetch& fetch) {
  if (fetch.flush_scheduled) return;
  fetch.flush_scheduled = true;
  // By key: the fetch may be gone by then (ended, or another flight of the key).
  deps_.later([this, key = fetch.flight->key()] {
    auto it = owned_.find(key);
    if (it == owned_.end()) return;
    it->second.flush_scheduled = false;
    deps_.notify(it->second.flight);
  });
}

void Flights::on_done(const std::string& key, uint64_t attempt, const http::FetchResult& result) {
  OwnedFetch* current_fetch = current(key, attempt);
  if (current_fetch == nullptr) return;
  OwnedFetch& fetch = *current_fetch;
  if (!result.ok) LOG_WARN_LIMITED(kLog, "upstream fetch failed: ", result.error);
  std::optional<http::UpstreamFailure> failure = http::classify_fetch(
      result, fetch.status, /*too_large=*/false, /*not_modified_ok=*/fetch.refreshed.has_value());
  if (failure == http::UpstreamFailure::bad_status && relayed_as_is(fetch.status)) failure.reset();
  if (!failure) {
    FlightProgress p = fetch.flight->progress();
    if (p.content_length && *p.content_length != p.bytes)
      failure = http::UpstreamFailure::truncated;
    if (fetch.skip > 0)
      failure = http::UpstreamFailure::truncated;  // shorter than what the owner sent
  }
  if (failure && *failure != http::UpstreamFailure::not_found && !fetch.fallback_url.empty()) {
    return fall_back_to_upstream(key, fetch, false);
  }
  if (failure && *failure != http::UpstreamFailure::not_found && !fetch.twin_url.empty()) {
    return fall_back_to_twin(key, fetch, false);
  }
  end_flight(key, failure, result.status);
}

ChunkMeta Flights::meta_from_head(const std::string& key, const http::FetchHead& head,
                                  const ChunkMeta* stored, bool& storable) {
  const int64_t now_ms = clock_.unix_now_ms();
  ChunkMeta meta;
  if (stored != nullptr) {
    // A 304: its header fields replace the stored ones (a new Content-Type too), but for
    // those that describe the stored body or select it (updated_by_304).
    meta = *stored;
    if (auto type = head.header("Content-Type")) meta.content_type = *type;
  } else {
    meta.stored_at = now_ms / 1000;
    meta.content_type = head.header("Content-Type").value_or("application/octet-stream");
    if (auto etag = head.header("ETag")) meta.etag = *etag;
  }
  if (auto last_modified = head.header("Last-Modified")) {
    meta.last_modified = *last_modified;
    meta.last_modified_is_ours = false;
  } else if (stored == nullptr) {
    meta.last_modified = format_http_date(meta.stored_at);
    meta.last_modified_is_ours = true;
  }
  std::string cache_control = joined_field(head, "Cache-Control").value_or("");
  if (!cache_control.empty() || stored == nullptr) meta.cache_control = std::move(cache_control);
  if (auto expires = joined_field(head, "Expires")) {
    meta.expires = *expires;
  } else if (stored == nullptr) {
    meta.expires.clear();
  }
  std::optional<std::string> date = head.header("Date");
  std::optional<std::string> age = joined_field(head, "Age");
  if (date) {
    meta.origin_date = *date;
  } else if (stored == nullptr) {
    meta.origin_date.clear();
  }
  // A 304's headers replace the stored ones of the same name (RFC 9111 §3.2).
  size_t dropped = 0;
  if (stored == nullptr) {
    meta.kept_headers = kept_headers_of(head, "", dropped);
  } else {
    std::string fresh = kept_headers_of(head, "", dropped, /*from_304=*/true);
    meta.kept_headers = kept_headers_of(head_of_lines(stored->kept_headers), fresh, dropped);
  }
  if (dropped > 0) metrics_.dropped_headers.inc(dropped);
  // The edges' own field (RFC 9213): the 304's, else the one kept with the stored copy.
  std::optional<std::string> cdn_cache_control = joined_field(head, "CDN-Cache-Control");
  if (!cdn_cache_control && stored != nullptr)
    cdn_cache_control = joined_field(head_of_lines(stored->kept_headers), "CDN-Cache-Control");
  UpstreamFreshness response;
  response.cache_control = meta.cache_control;
  if (cdn_cache_control) response.cdn_cache_control = *cdn_cache_control;
  if (!meta.expires.empty()) response.expires = meta.expires;
  if (date) response.date = *date;
  if (age) response.age = *age;
  Freshness freshness = compute_freshness(response, classify_object(key, meta.content_type), now_ms,
                                          config_.get().config.freshness);
  // Vary: * says no later request can be known to match (RFC 9111 §4.1): never reused.
  storable = freshness.storable && !varies_on_everything(joined_field(head, "Vary").value_or(""));
  meta.vouched_ms = freshness.vouched_ms;
  meta.fresh_until_ms = freshness.fresh_until_ms;
  meta.stale_until_ms = freshness.stale_until_ms;
  meta.refresh_grace_until_ms = freshness.refresh_grace_until_ms;
  return meta;
}

void Flights::end_flight(const std::string& key, std::optional<http::UpstreamFailure> failure,
                         int origin_status) {
  auto it = owned_.find(key);
  if (it == owned_.end()) return;
  OwnedFetch fetch = std::move(it->second);
  owned_.erase(it);
  if (!fetch.says_nothing_of_origin)
    metrics_.origins.count(origin_asked(key, fetch), origin_verdict(failure, origin_status));
  std::shared_ptr<Flight> flight = std::move(fetch.flight);
  const StoreHit* stale = flight->stale();
  using End = FlightProgress::End;
  using Update = SharedCache::StoreUpdate;
  if (!failure && fetch.refreshed) {
    // 304: the stored body answers, with the metadata the upstream just vouched for.
    metrics_.revalidation(Revalidation::not_modified).inc();
    flight->end_from_store(End::revalidated, *fetch.refreshed);
    cache_.finish(*flight, fetch.storable ? Update::refresh : Update::erase, &*fetch.refreshed,
                  std::nullopt);
  } else if (!failure) {
    if (stale != nullptr) metrics_.revalidation(Revalidation::modified).inc();
    flight->body()->finish();  // what is stored holds its bytes, not a block
    flight->set_meta_size(flight->body()->size());
    flight->end(End::stored);
    ChunkMeta meta = flight->progress().meta;
    // no-store or private: the waiters had it; nothing is kept, an older copy goes.
    Update update =
        fetch.storable ? Update::put : (stale != nullptr ? Update::erase : Update::none);
    cache_.finish(*flight, update, &meta, std::nullopt);
  } else {
    const bool not_found = *failure == http::UpstreamFailure::not_found;
    if (stale != nullptr)
      metrics_.revalidation(not_found ? Revalidation::modified : Revalidation::error).inc();
    if (stale != nullptr && stale_may_answer(*failure, origin_status) &&
        clock_.unix_now_ms() < stale->meta.stale_until_ms) {
      // stale-if-error: the upstream is in trouble; the stale copy answers, and
      // the next request after this flight asks the upstream again.
      flight->end_from_store(End::stale, stale->meta);
      cache_.finish(*flight, Update::none, nullptr, std::nullopt);
    } else {
      http::UpstreamErrorReply reply = http::upstream_error(*failure, kChunkWording, origin_status);
      std::string retry_after;
      if (*failure == http::UpstreamFailure::bad_status) {
        if (auto relayed = relayed_status(origin_status)) {
          reply = std::move(*relayed);
          if (origin_status == 429 || origin_status == 503)
            retry_after = fetch.retry_after.empty() ? "1" : fetch.retry_after;
        }
      }
      if (!not_found) metrics_.error(reply.error.code).inc();
      flight->end(not_found ? End::not_found : End::failed, reply.status,
                  std::move(reply.error.code), std::move(reply.error.message),
                  std::move(retry_after));
      // An upstream 404 is remembered for as long as its own headers allow, at most
      // the configured negative TTL: no refetch per request; a stored copy it
      // revalidated is gone.
      std::optional<core::SteadyTime::duration> negative_ttl;
      if (not_found && fetch.negative_ttl.count() > 0) negative_ttl = fetch.negative_ttl;
      cache_.finish(*flight, not_found && stale != nullptr ? Update::erase : Update::none, nullptr,
                    negative_ttl);
    }
  }
  deps_.notify(flight);
}

}  // namespace cache_node
