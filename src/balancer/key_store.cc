#include "balancer/key_store.h"

#include "common/log.h"

namespace balancer {

using Clock = std::chrono::steady_clock;

struct KeyStore::Entry {
  std::shared_ptr<const KeyBytes> key;
  Clock::time_point fetched_at{};
  bool fetching = false;
  common::FetchId fetch_id = 0;
  int status = 0;
  bool too_large = false;
  std::string content_type;
  std::string body;
  std::vector<KeyCallback> waiters;
};

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
  sweep_timer_.reset(event_new(
      &base_, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<KeyStore*>(arg)->sweep(); }, this));
  timeval five_seconds{5, 0};
  evtimer_add(sweep_timer_.get(), &five_seconds);
}

KeyStore::~KeyStore() {
  for (auto& [url, entry] : entries_) {
    if (entry->fetching) client_.cancel(entry->fetch_id);
  }
}

void KeyStore::get(const std::string& url, KeyCallback done) {
  auto& slot = entries_[url];
  if (!slot) slot = std::make_unique<Entry>();
  Entry& entry = *slot;
  if (entry.key && clock_.now() - entry.fetched_at < options_.ttl) {
    hits_.inc();
    KeyResult r;
    r.key = entry.key;
    return done(r);
  }
  entry.waiters.push_back(std::move(done));
  if (entry.fetching) return;
  entry.fetching = true;
  entry.status = 0;
  entry.too_large = false;
  entry.body.clear();
  entry.fetched_at = clock_.now();
  fetches_.inc();
  common::FetchRequest fetch;
  fetch.url = url;
  fetch.timeout = options_.timeout;
  common::FetchCallbacks callbacks;
  callbacks.on_head = [this, url](const common::FetchHead& head) {
    auto it = entries_.find(url);
    if (it == entries_.end()) return;
    it->second->status = head.status;
    it->second->content_type = head.header("Content-Type").value_or("application/octet-stream");
  };
  callbacks.on_data = [this, url](std::string_view bytes) {
    auto it = entries_.find(url);
    if (it == entries_.end()) return;
    Entry& e = *it->second;
    if (e.status != 200 || e.too_large) return;
    if (e.body.size() + bytes.size() > options_.max_bytes) {
      e.too_large = true;
      return;
    }
    e.body.append(bytes);
  };
  callbacks.on_done = [this, url](const common::FetchResult& result) { on_done(url, result); };
  entry.fetch_id = client_.fetch(std::move(fetch), std::move(callbacks));
}

void KeyStore::on_done(const std::string& url, const common::FetchResult& result) {
  auto it = entries_.find(url);
  if (it == entries_.end()) return;
  Entry& entry = *it->second;
  entry.fetching = false;
  KeyResult r;
  if (!result.ok) {
    LOG_WARN("balancer", "key fetch failed: ", url, ": ", result.error);
    r.status = result.timed_out ? 504 : 502;
    r.error =
        result.timed_out
            ? common::Error{"origin_timeout", "The origin did not send the key in time."}
            : common::Error{"origin_unreachable", "The origin could not be reached for the key."};
  } else if (result.status == 404 || result.status == 410) {
    r.status = 404;
    r.error = {"not_found", "The origin has no such key."};
  } else if (result.status != 200) {
    r.status = 502;
    r.error = {"origin_error", "The origin answered the key request with status " +
                                   std::to_string(result.status) + "."};
  } else if (entry.too_large) {
    r.status = 502;
    r.error = {"key_too_large", "The origin's key is larger than the balancer accepts."};
  } else {
    auto key = std::make_shared<KeyBytes>();
    key->bytes = std::move(entry.body);
    key->content_type = entry.content_type;
    entry.key = key;
    r.key = std::move(key);
  }
  entry.body.clear();
  if (!r.key) {
    metrics_
        .counter("balancer_origin_fetch_failures_total", "Failed origin fetches by error code",
                 "resource=\"key\",code=\"" + r.error.code + "\"")
        .inc();
  }
  std::vector<KeyCallback> waiters = std::move(entry.waiters);
  entry.waiters.clear();
  for (auto& w : waiters) w(r);
}

void KeyStore::sweep() {
  auto now = clock_.now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = *it->second;
    if (!e.fetching && e.waiters.empty() && now - e.fetched_at >= options_.ttl) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace balancer
