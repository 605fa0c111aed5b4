#include "balancer/key_store.h"

#include "core/log.h"

namespace balancer {
namespace {

const common::UpstreamWording kKeyWording{"key", "key_too_large", "the balancer"};

}  // namespace

KeyStore::KeyStore(event_base& base, common::HttpClient& client, common::MetricsRegistry& metrics,
                   KeyStoreOptions options, const common::Clock& clock)
    : base_(base),
      client_(client),
      clock_(clock),
      options_(options),
      fetches_(metrics.counter("balancer_origin_fetches_total", "Fetches sent to origin",
                               "resource=\"key\",trigger=\"request\"")),
      hits_(metrics.counter("balancer_key_cache_hits_total", "Key requests answered from memory")),
      metrics_(metrics) {
  sweep_timer_.start(std::chrono::seconds(5));
}

KeyStore::~KeyStore() {
  in_flight_.for_each(
      [this](const std::string&, Transfer& transfer) { client_.cancel(transfer.id); });
}

void KeyStore::get(const std::string& url, KeyCallback done) {
  auto it = entries_.find(url);
  if (it != entries_.end() && it->second.key &&
      clock_.now() - it->second.fetched_at < options_.ttl) {
    hits_.inc();
    KeyResult r;
    r.key = it->second.key;
    return done(r);
  }
  auto joined = in_flight_.join(url, std::move(done));
  if (common::overflowed(joined.outcome)) {
    common::UpstreamErrorReply busy = common::overflow_error(kKeyWording);
    return done(KeyResult{nullptr, busy.status, busy.error});
  }
  if (joined.outcome == common::JoinOutcome::started) start_fetch(url, *joined.flight);
}

void KeyStore::start_fetch(const std::string& url, Transfer& transfer) {
  transfer.started = clock_.now();
  fetches_.inc();
  common::FetchRequest fetch;
  fetch.url = url;
  fetch.timeout = options_.timeout;
  common::FetchCallbacks callbacks;
  callbacks.on_head = [this, url](const common::FetchHead& head) {
    Transfer* t = in_flight_.flight(url);
    if (t == nullptr) return;
    t->status = head.status;
    t->content_type = head.header("Content-Type").value_or("application/octet-stream");
  };
  callbacks.on_data = [this, url](std::string_view bytes) {
    Transfer* t = in_flight_.flight(url);
    if (t != nullptr && t->status == 200) t->body.append(bytes, options_.max_bytes);
  };
  callbacks.on_done = [this, url](const common::FetchResult& result) { on_done(url, result); };
  transfer.id = client_.fetch(std::move(fetch), std::move(callbacks));
}

void KeyStore::on_done(const std::string& url, const common::FetchResult& result) {
  auto finished = in_flight_.finish(url);
  Transfer& transfer = finished.flight;
  KeyResult r;
  if (auto failure = common::classify_fetch(result, transfer.status, transfer.body.too_large)) {
    if (!result.ok) LOG_WARN_LIMITED("balancer", "key fetch failed: ", url, ": ", result.error);
    common::UpstreamErrorReply reply = common::upstream_error(*failure, kKeyWording, result.status);
    r.status = reply.status;
    r.error = std::move(reply.error);
    metrics_
        .counter("balancer_origin_fetch_failures_total", "Failed origin fetches by error code",
                 "resource=\"key\",code=\"" + r.error.code + "\"")
        .inc();
  } else {
    auto key = std::make_shared<KeyBytes>();
    key->bytes = std::move(transfer.body.bytes);
    key->content_type = std::move(transfer.content_type);
    entries_[url] = Entry{key, transfer.started};
    r.key = std::move(key);
  }
  for (KeyCallback& waiter : finished.waiters) waiter(r);
}

void KeyStore::sweep() {
  auto now = clock_.now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = now - it->second.fetched_at >= options_.ttl ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace balancer
