#include "balancer/health_poller.h"

#include <rapidjson/document.h>

#include <cmath>

#include "core/json.h"
#include "core/log.h"

namespace balancer {

struct HealthPoller::Node {
  std::string url;
  CacheHealth health;
  bool polling = false;
  common::FetchId fetch_id = 0;
  std::string body;
  int status = 0;
  uint64_t generation = 0;
  common::Gauge* up_gauge = nullptr;
};

bool interpret_health_reply(int status, const std::string& body, bool& overloaded,
                            std::string& reason, std::optional<double>* egress_mbps) {
  overloaded = false;
  if (egress_mbps != nullptr) egress_mbps->reset();
  if (status != 200) {
    reason = "health endpoint answered " + std::to_string(status);
    return false;
  }
  rapidjson::Document doc;
  const common::Status parsed = common::parse_json(body, doc);
  if (!parsed && parsed.error().code == "json_too_deep") {
    reason = "health endpoint answered a reply whose " + parsed.error().message;
    return false;
  }
  if (!parsed || !doc.IsObject()) {
    reason = "health endpoint did not answer a JSON object";
    return false;
  }
  auto it = doc.FindMember("overloaded");
  if (it != doc.MemberEnd() && it->value.IsBool()) overloaded = it->value.GetBool();
  auto st = doc.FindMember("status");
  if (st != doc.MemberEnd() && st->value.IsString()) {
    std::string_view s(st->value.GetString(), st->value.GetStringLength());
    if (s == "overloaded") overloaded = true;
    if (s != "ok" && s != "overloaded") {
      reason = "health endpoint reports status '" + std::string(s) + "'";
      return false;
    }
  }
  auto egress = doc.FindMember("egress_mbps");
  if (egress_mbps != nullptr && egress != doc.MemberEnd() && egress->value.IsNumber()) {
    double v = egress->value.GetDouble();
    if (std::isfinite(v) && v >= 0) *egress_mbps = v;
  }
  return true;
}

HealthPoller::HealthPoller(event_base& base, common::HttpClient& client,
                           common::MetricsRegistry& metrics, const common::Clock& clock)
    : base_(base), client_(client), clock_(clock), metrics_(metrics) {
  timer_.reset(event_new(
      &base_, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<HealthPoller*>(arg)->poll_all(); },
      this));
}

HealthPoller::~HealthPoller() {
  stop();
}

void HealthPoller::stop() {
  if (timer_) evtimer_del(timer_.get());
  for (auto& [id, node] : nodes_) {
    if (node->polling) client_.cancel(node->fetch_id);
    node->polling = false;
  }
}

void HealthPoller::configure(const std::vector<HealthPollTarget>& targets,
                             HealthPollOptions options) {
  options_ = options;
  ++generation_;
  std::map<std::string, std::unique_ptr<Node>> next;
  for (const auto& t : targets) {
    auto it = nodes_.find(t.id);
    std::unique_ptr<Node> node;
    if (it != nodes_.end() && it->second->url == t.url) {
      node = std::move(it->second);
      node->health.set_thresholds(options.thresholds);
    } else {
      node = std::make_unique<Node>();
      node->url = t.url;
      node->health = CacheHealth(options.thresholds);
    }
    node->up_gauge = &metrics_.gauge("balancer_cache_up",
                                     "1 when the cache node is usable (healthy, not overloaded)",
                                     "cache=\"" + t.id + "\"");
    next.emplace(t.id, std::move(node));
  }
  for (auto& [id, node] : nodes_) {
    if (node && node->polling) client_.cancel(node->fetch_id);
    if (node && node->up_gauge) node->up_gauge->set(0);
  }
  nodes_ = std::move(next);
  evtimer_del(timer_.get());
  if (on_update_) on_update_();
  if (nodes_.empty()) return;
  timeval tv{static_cast<time_t>(options_.interval.count() / 1000),
             static_cast<suseconds_t>((options_.interval.count() % 1000) * 1000)};
  evtimer_add(timer_.get(), &tv);
  poll_all();
}

std::map<std::string, CacheHealth> HealthPoller::snapshot() const {
  std::map<std::string, CacheHealth> out;
  for (const auto& [id, node] : nodes_) out.emplace(id, node->health);
  return out;
}

const CacheHealth* HealthPoller::health(const std::string& id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second->health;
}

std::optional<double> HealthPoller::total_egress_mbps(TimePoint now) const {
  std::optional<double> sum;
  const auto stale_after = options_.thresholds.stale_after;
  for (const auto& [id, node] : nodes_) {
    const CacheHealth& h = node->health;
    if (h.state() != CacheHealth::State::up || !h.egress_mbps()) continue;
    if (stale_after.count() > 0 && now - h.last_result() > stale_after) continue;
    sum = sum.value_or(0) + *h.egress_mbps();
  }
  return sum;
}

void HealthPoller::poll_all() {
  for (auto& [id, node_ptr] : nodes_) {
    Node& node = *node_ptr;
    if (node.polling) continue;  // the previous poll is still within its timeout
    node.polling = true;
    node.body.clear();
    node.status = 0;
    node.generation = generation_;
    common::FetchRequest fetch;
    fetch.url = node.url;
    fetch.timeout = options_.timeout;
    std::string key = id;
    uint64_t generation = generation_;
    common::FetchCallbacks callbacks;
    callbacks.on_head = [this, key](const common::FetchHead& head) {
      auto it = nodes_.find(key);
      if (it != nodes_.end()) it->second->status = head.status;
    };
    callbacks.on_data = [this, key](std::string_view bytes) {
      auto it = nodes_.find(key);
      if (it != nodes_.end() && it->second->body.size() < 64 * 1024) it->second->body.append(bytes);
    };
    callbacks.on_done = [this, key, generation](const common::FetchResult& result) {
      auto it = nodes_.find(key);
      if (it == nodes_.end()) return;
      Node& n = *it->second;
      Outcome outcome;
      outcome.ok = result.ok && interpret_health_reply(result.status, n.body, outcome.overloaded,
                                                       outcome.reason, &outcome.egress_mbps);
      if (!result.ok) {
        outcome.refused = result.refused;
        outcome.reason =
            result.timed_out ? "health check timed out" : "health check failed: " + result.error;
      }
      on_result(key, generation, std::move(outcome));
    };
    node.fetch_id = client_.fetch(std::move(fetch), std::move(callbacks));
  }
}

void HealthPoller::on_result(const std::string& id, uint64_t generation, Outcome outcome) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  Node& node = *it->second;
  node.polling = false;
  if (generation != node.generation) return;
  auto now = clock_.now();
  auto before = node.health.state();
  bool was_usable = node.health.usable(now);
  if (outcome.ok) {
    node.health.record_success(outcome.overloaded, now, outcome.egress_mbps);
    if (outcome.egress_mbps) ++egress_readings_;
  } else {
    node.health.record_failure(std::move(outcome.reason), now, outcome.refused);
  }
  bool usable = node.health.usable(now);
  if (node.up_gauge) node.up_gauge->set(usable ? 1 : 0);
  if (node.health.state() != before || usable != was_usable) {
    LOG_INFO("balancer", "cache ", id, " is now ", to_string(node.health.state()),
             node.health.overloaded() ? " (overloaded)" : "",
             node.health.last_error().empty() ? "" : ": " + node.health.last_error());
  }
  if (on_update_) on_update_();
}

}  // namespace balancer
