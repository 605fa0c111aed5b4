#include "balancer/sources/key_store.h"

#include "core/log.h"

namespace balancer {
namespace {

const http::UpstreamWording kKeyWording{"key", "key_too_large", "the balancer"};

}  // namespace

KeyStore::KeyStore(core::EventLoop& loop, http::HttpClient& client, core::MetricsRegistry& metrics,
                   KeyStoreOptions options, const core::Clock& clock)
    : loop_(loop),
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
  core::expect_on(loop_);
  auto it = entries_.find(url);
  if (it != entries_.end() && it->second.key &&
      clock_.now() - it->second.fetched_at < options_.ttl) {
    hits_.inc();
    KeyResult r;
    r.key = it->second.key;
    return done(r);
  }
  auto joined = in_flight_.join(url, std::move(done));
  if (http::overflowed(joined.outcome)) {
    http::UpstreamErrorReply busy = http::overflow_error(kKeyWording);
    return done(KeyResult{nullptr, busy.status, busy.error});
  }
  if (joined.outcome == http::JoinOutcome::started) start_fetch(url, *joined.flight);
}

void KeyStore::start_fetch(const std::string& url, Transfer& transfer) {
  transfer.started = clock_.now();
  fetches_.inc();
  http::FetchRequest fetch;
  fetch.url = url;
  fetch.timeout = options_.timeout;
  http::FetchCallbacks callbacks;
  callbacks.on_head = [this, url](const http::FetchHead& head) {
    Transfer* t = in_flight_.flight(url);
    if (t == nullptr) return;
    t->status = head.status;
    t->content_type = head.header("Content-Type").value_or("application/octet-stream");
  };
  callbacks.on_data = [this, url](std::string_view bytes) {
    Transfer* t = in_flight_.flight(url);
    if (t != nullptr && t->status == 200) t->body.append(bytes, options_.max_bytes);
  };
  callbacks.on_done = [this, url](const http::FetchResult& result) { on_done(url, result); };
  transfer.id = client_.fetch(std::move(fetch), std::move(callbacks));
}

void KeyStore::on_done(const std::string& url, const http::FetchResult& result) {
  core::expect_on(loop_);
  auto finished = in_flight_.finish(url);
  Transfer& transfer = finished.flight;
  KeyResult r;
  if (auto failure = http::classify_fetch(result, transfer.status, transfer.body.too_large)) {
    if (!result.ok) LOG_WARN_LIMITED("balancer", "key fetch failed: ", url, ": ", result.error);
    http::UpstreamErrorReply reply = http::upstream_error(*failure, kKeyWording, result.status);
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
  core::expect_on(loop_);
  auto now = clock_.now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = now - it->second.fetched_at >= options_.ttl ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace balancer
