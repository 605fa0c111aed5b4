#include "balancer/caches/prefetch_client.h"

#include <algorithm>

#include "core/json.h"
#include "core/log.h"

namespace balancer {

namespace {

constexpr core::CounterFamily kBalancerPrefetchRequests{
    "balancer_prefetch_requests_total", "Prefetch requests to cache nodes by outcome", "result"};

constexpr const char* kPrefetchLog = "prefetch";
constexpr size_t kChunksPerRequest = 64;  // the node's bound (docs/cache_node.md)
}  // namespace

std::string prefetch_body(const std::string& origin_id, const std::vector<std::string>& targets,
                          size_t first, size_t count) {
  std::string body = "{\"chunks\":[";
  for (size_t i = first; i < first + count && i < targets.size(); ++i) {
    if (i > first) body += ',';
    core::append_json_string(body, "/o/" + origin_id + targets[i]);
  }
  return body + "]}";
}

PrefetchClient::PrefetchClient(core::EventLoop& loop, http::HttpClient& client,
                               core::MetricsRegistry& metrics, const core::Clock& clock,
                               Usable usable)
    : loop_(loop),
      client_(client),
      clock_(clock),
      usable_(std::move(usable)),
      timer_(loop, core::LoopTimer::Repeat::once, [this] { pump(); }),
      requests_sent_(kBalancerPrefetchRequests.in(metrics, "sent")),
      requests_ok_(kBalancerPrefetchRequests.in(metrics, "ok")),
      requests_failed_(kBalancerPrefetchRequests.in(metrics, "failed")),
      requests_dropped_(kBalancerPrefetchRequests.in(metrics, "dropped")),
      chunks_issued_(metrics.counter("balancer_prefetch_chunks_total",
                                     "New live segments named to cache nodes (once per node)")) {}

PrefetchClient::~PrefetchClient() {
  *alive_ = false;
}

void PrefetchClient::configure(const PrefetchConfig& config,
                               const std::vector<CacheConfig>& caches) {
  config_ = config;
  caches_ = caches;
  if (config_.key.empty()) queue_.clear();
}

void PrefetchClient::offer(const std::string& origin_id, const std::vector<std::string>& targets,
                           uint64_t caches) {
  if (config_.key.empty() || targets.empty()) return;
  for (size_t index = 0; index < caches_.size() && index < 64; ++index) {
    if ((caches >> index & 1) == 0 || !usable_(caches_[index].id)) continue;
    for (size_t first = 0; first < targets.size(); first += kChunksPerRequest) {
      const size_t count = std::min(kChunksPerRequest, targets.size() - first);
      if (queue_.size() >= config_.max_queue) {
        queue_.pop_front();  // the oldest segments matter least: players ask for the newest next
        requests_dropped_.inc();
      }
      queue_.push_back(Job{caches_[index].url + "/prefetch",
                           prefetch_body(origin_id, targets, first, count), count});
    }
  }
  pump();
}

void PrefetchClient::pump() {
  const core::SteadyTime now = clock_.now();
  const double burst = std::max(1.0, config_.max_per_s);
  if (tokens_ < 0) {
    tokens_ = burst;
  } else if (now > refilled_) {
    tokens_ = std::min(burst, tokens_ + config_.max_per_s *
                                            std::chrono::duration<double>(now - refilled_).count());
  }
  refilled_ = std::max(refilled_, now);
  while (!queue_.empty() && inflight_ < config_.max_inflight && tokens_ >= 1) {
    tokens_ -= 1;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    send(std::move(job));
  }
  if (!queue_.empty() && inflight_ < config_.max_inflight && !timer_.armed()) {
    // Waiting for a token: back when one has accrued.
    const double wait_s = (1 - tokens_) / config_.max_per_s;
    timer_.start(std::chrono::microseconds(static_cast<int64_t>(wait_s * 1e6) + 1000));
  }
}

void PrefetchClient::send(Job job) {
  ++inflight_;
  requests_sent_.inc();
  chunks_issued_.inc(job.chunks);
  http::FetchRequest request;
  request.url = job.url;
  request.method = "POST";
  request.body = std::move(job.body);
  request.timeout = config_.timeout;
  request.headers.push_back({"Authorization", "Bearer " + config_.key});
  request.headers.push_back({"Content-Type", "application/json"});
  http::FetchCallbacks callbacks;
  auto status = std::make_shared<int>(0);
  callbacks.on_head = [status](const http::FetchHead& head) { *status = head.status; };
  callbacks.on_data = [](std::string_view) {};
  callbacks.on_done = [this, alive = alive_, status,
                       url = job.url](const http::FetchResult& result) {
    if (!*alive) return;
    --inflight_;
    if (result.ok && *status == 202) {
      requests_ok_.inc();
    } else {
      requests_failed_.inc();
      // The key itself is never logged.
      LOG_WARN_LIMITED(kPrefetchLog, "prefetch to ", url,
                       " failed: ", result.ok ? "status " + std::to_string(*status) : result.error);
    }
    pump();
  };
  client_.fetch(std::move(request), std::move(callbacks));
}

}  // namespace balancer
