// Flights as one loop sees them: waiting on one (any loop; bytes are streamed to
// each waiter as they arrive) and owning one (the loop that started it runs the
// upstream transfer and publishes its progress to every subscribed loop).
#include <strings.h>

#include "cache_node/freshness.h"
#include "cache_node/http_semantics.h"
#include "cache_node/node_loop.h"
#include "common/log.h"

namespace cache_node {

using common::HttpExchange;

namespace {

// Every Cache-Control line of a response head, joined as one list.
std::string joined_cache_control(const common::FetchHead& head) {
  std::string out;
  for (const auto& h : head.headers) {
    if (h.name.size() != 13 || strncasecmp(h.name.c_str(), "Cache-Control", 13) != 0) continue;
    if (!out.empty()) out += ", ";
    out += h.value;
  }
  return out;
}

// Upstream failures a stale copy may answer for (RFC 5861 stale-if-error): the
// upstream is unreachable, slow, broken or in trouble (5xx). A 404/410 or
// another refusal is an answer, not an outage.
bool stale_may_answer(common::UpstreamFailure failure, int origin_status) {
  switch (failure) {
    case common::UpstreamFailure::unreachable:
    case common::UpstreamFailure::timeout:
    case common::UpstreamFailure::broken:
    case common::UpstreamFailure::truncated: return true;
    case common::UpstreamFailure::bad_status: return origin_status >= 500;
    case common::UpstreamFailure::not_found:
    case common::UpstreamFailure::too_large: return false;
  }
  return false;
}

}  // namespace

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

bool NodeLoop::advance(Waiter& w, const FlightProgress& p, const Flight& flight, int64_t now_ms) {
  HttpExchange& ex = w.exchange;
  if (ex.closed() || ex.finished()) return false;
  switch (p.end) {
    case FlightProgress::End::failed:
    case FlightProgress::End::not_found:
      if (w.streaming) {
        ex.abort();  // the head is out; a truncated body must not look complete
      } else {
        ex.reply_error(p.fail_status, p.fail_code, p.fail_message);
      }
      return false;
    case FlightProgress::End::revalidated:
    case FlightProgress::End::stale:
      if (w.streaming) {
        ex.abort();  // a new body broke off after its head: the stale one cannot follow it
      } else {
        const StoreHit* copy = flight.stale();
        serve_stored(ex, p.meta, copy->memory, copy->disk_path,
                     p.end == FlightProgress::End::revalidated ? "REVALIDATED" : "STALE", now_ms);
      }
      return false;
    case FlightProgress::End::running:
    case FlightProgress::End::stored:
      break;
  }
  if (!w.deferred && !w.streaming && p.head_known && p.status == 200) {
    set_chunk_headers(ex, p.meta, w.first ? "MISS" : "COALESCED", now_ms);
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
    serve_stored(ex, p.meta, flight.body(), "", "COALESCED", now_ms);
  }
  return false;
}

void NodeLoop::progress(const std::shared_ptr<Flight>& flight) {
  auto it = local_.find(flight->key());
  if (it == local_.end() || it->second.flight != flight) return;
  const FlightProgress p = flight->progress();
  const int64_t now_ms = shared_.clock.unix_now_ms();
  auto& waiters = it->second.waiters;
  for (auto w = waiters.begin(); w != waiters.end();) {
    w = advance(*w, p, *flight, now_ms) ? std::next(w) : waiters.erase(w);
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
  const std::string& key = flight->key();
  OwnedFetch& fetch = owned_[key];
  fetch.flight = flight;
  fetch.started = shared_.clock.now();
  shared_.origin_fetches.inc();
  common::FetchRequest request_out;
  request_out.url = url;
  if (const StoreHit* stale = flight->stale()) {
    // Revalidation: the upstream answers 304 if the stored copy is still current.
    if (!stale->meta.etag.empty()) request_out.headers.push_back({"If-None-Match", stale->meta.etag});
    if (!stale->meta.last_modified.empty() && !stale->meta.last_modified_is_ours) {
      request_out.headers.push_back({"If-Modified-Since", stale->meta.last_modified});
    }
  }
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
  if (head.status == 304 && fetch.flight->stale() != nullptr) {
    fetch.refreshed = meta_from_head(key, head, &fetch.flight->stale()->meta, fetch.storable);
    return;  // the waiters are answered from the stored copy when the transfer ends
  }
  if (head.status != 200) return;  // answered when the transfer ends
  ChunkMeta meta = meta_from_head(key, head, nullptr, fetch.storable);
  std::optional<uint64_t> length = head.content_length();
  if (length && *length > config_.get().config.max_object_bytes) {
    client_->cancel(fetch.id);
    return end_flight(key, common::UpstreamFailure::too_large);
  }
  if (length) fetch.flight->body()->expect(static_cast<size_t>(*length));
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
    return end_flight(key, common::UpstreamFailure::too_large);
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
  if (!result.ok) LOG_WARN(kLog, "upstream fetch failed: ", result.error);
  std::optional<common::UpstreamFailure> failure = common::classify_fetch(
      result, fetch.status, /*too_large=*/false, /*not_modified_ok=*/fetch.refreshed.has_value());
  if (!failure) {
    FlightProgress p = fetch.flight->progress();
    if (p.content_length && *p.content_length != p.bytes) failure = common::UpstreamFailure::truncated;
  }
  end_flight(key, failure, result.status);
}

ChunkMeta NodeLoop::meta_from_head(const std::string& key, const common::FetchHead& head, const ChunkMeta* stored,
                                   bool& storable) {
  const int64_t now_ms = shared_.clock.unix_now_ms();
  ChunkMeta meta;
  if (stored != nullptr) {
    // A 304: its header fields replace the stored ones; the body (and its type) stay.
    meta = *stored;
  } else {
    meta.stored_at = now_ms / 1000;
    meta.content_type = head.header("Content-Type").value_or("application/octet-stream");
  }
  if (auto etag = head.header("ETag")) meta.etag = *etag;
  if (auto last_modified = head.header("Last-Modified")) {
    meta.last_modified = *last_modified;
    meta.last_modified_is_ours = false;
  } else if (stored == nullptr) {
    meta.last_modified = format_http_date(meta.stored_at);
    meta.last_modified_is_ours = true;
  }
  std::string cache_control = joined_cache_control(head);
  if (!cache_control.empty() || stored == nullptr) meta.cache_control = std::move(cache_control);
  if (auto expires = head.header("Expires")) {
    meta.expires = *expires;
  } else if (stored == nullptr) {
    meta.expires.clear();
  }
  std::optional<std::string> date = head.header("Date");
  std::optional<std::string> age = head.header("Age");
  UpstreamFreshness response;
  response.cache_control = meta.cache_control;
  if (!meta.expires.empty()) response.expires = meta.expires;
  if (date) response.date = *date;
  if (age) response.age = *age;
  Freshness freshness = compute_freshness(response, classify_object(key, meta.content_type), now_ms,
                                          config_.get().config.freshness);
  storable = freshness.storable;
  meta.vouched_ms = freshness.vouched_ms;
  meta.fresh_until_ms = freshness.fresh_until_ms;
  meta.stale_until_ms = freshness.stale_until_ms;
  return meta;
}

void NodeLoop::end_flight(const std::string& key, std::optional<common::UpstreamFailure> failure,
                          int origin_status) {
  auto it = owned_.find(key);
  if (it == owned_.end()) return;
  OwnedFetch fetch = std::move(it->second);
  owned_.erase(it);
  std::shared_ptr<Flight> flight = std::move(fetch.flight);
  const StoreHit* stale = flight->stale();
  using End = FlightProgress::End;
  using Update = SharedCache::StoreUpdate;
  if (!failure && fetch.refreshed) {
    // 304: the stored body answers, with the metadata the upstream just vouched for.
    shared_.revalidated_not_modified.inc();
    flight->end_from_store(End::revalidated, *fetch.refreshed);
    shared_.cache->finish(*flight, fetch.storable ? Update::refresh : Update::erase, &*fetch.refreshed,
                          std::nullopt);
  } else if (!failure) {
    if (stale != nullptr) shared_.revalidated_modified.inc();
    flight->body()->finish();  // what is stored holds its bytes, not a block
    flight->set_meta_size(flight->body()->size());
    flight->end(End::stored);
    ChunkMeta meta = flight->progress().meta;
    // no-store or private: the waiters had it; nothing is kept, an older copy goes.
    Update update = fetch.storable ? Update::put : (stale != nullptr ? Update::erase : Update::none);
    shared_.cache->finish(*flight, update, &meta, std::nullopt);
  } else {
    const bool not_found = *failure == common::UpstreamFailure::not_found;
    if (stale != nullptr) (not_found ? shared_.revalidated_modified : shared_.revalidation_errors).inc();
    if (stale != nullptr && stale_may_answer(*failure, origin_status) &&
        shared_.clock.unix_now_ms() < stale->meta.stale_until_ms) {
      // stale-if-error: the upstream is in trouble; the stale copy answers, and
      // the next request after this flight asks the upstream again.
      flight->end_from_store(End::stale, stale->meta);
      shared_.cache->finish(*flight, Update::none, nullptr, std::nullopt);
    } else {
      common::UpstreamErrorReply reply = common::upstream_error(*failure, kChunkWording, origin_status);
      if (!not_found) shared_.error_counter(reply.error.code).inc();
      flight->end(not_found ? End::not_found : End::failed, reply.status, std::move(reply.error.code),
                  std::move(reply.error.message));
      // An upstream 404 is remembered for a while: no refetch per request; a
      // stored copy it revalidated is gone.
      std::optional<common::SteadyTime::duration> negative_ttl;
      if (not_found) negative_ttl = config_.get().config.negative_ttl;
      shared_.cache->finish(*flight, not_found && stale != nullptr ? Update::erase : Update::none, nullptr,
                            negative_ttl);
    }
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

}  // namespace cache_node
