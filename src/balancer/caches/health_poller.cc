#include "balancer/caches/health_poller.h"

#include <rapidjson/reader.h>

#include <algorithm>
#include <cmath>

#include "core/json.h"
#include "core/log.h"

namespace balancer {

struct HealthPoller::Node {
  std::string url;
  CacheHealth health;
  bool polling = false;
  http::FetchId fetch_id = 0;
  std::string body;  // at most kHealthReplyReadBytes of the reply
  bool body_cut = false;
  int status = 0;
  uint64_t generation = 0;
  core::Gauge* up_gauge = nullptr;
  // Its last reply's chunk fetch counts; nullopt until a reply brought them.
  std::optional<std::vector<OriginChunkFetches>> chunk_fetches;
};

namespace {

// The members of a health reply the balancer uses, read from the top level of the document as
// RapidJSON's reader meets them; nothing else is kept, however large the reply.
struct HealthFields : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, HealthFields> {
  size_t depth = 0;
  bool root_object = false;
  bool too_deep = false;
  std::string key;  // the last top-level member's name
  std::optional<bool> overloaded;
  std::optional<std::string> status;
  std::optional<double> egress_mbps;
  // "origin_chunk_fetches": {"<origin>": {"answered": N, "failed": M}, ...}
  std::vector<OriginChunkFetches> chunk_fetches;
  bool in_chunk_fetches = false;  // the reader is inside that member's object
  std::string origin;             // the last member's name inside it
  std::string count_key;          // the last member's name inside one origin's object

  bool at_top() const { return depth == 1; }
  bool Default() { return depth > 0; }  // a scalar root is no health document
  bool Bool(bool b) {
    if (at_top() && key == "overloaded") overloaded = b;
    return Default();
  }
  bool number(double v) {
    if (at_top() && key == "egress_mbps") egress_mbps = v;
    return Default();
  }
  bool count(uint64_t v) {
    if (in_chunk_fetches && depth == 3 && !chunk_fetches.empty()) {
      if (count_key == "answered") chunk_fetches.back().answered = v;
      if (count_key == "failed") chunk_fetches.back().failed = v;
    }
    return number(static_cast<double>(v));
  }
  bool Int(int v) { return number(v); }
  bool Uint(unsigned v) { return count(v); }
  bool Int64(int64_t v) { return number(static_cast<double>(v)); }
  bool Uint64(uint64_t v) { return count(v); }
  bool Double(double v) { return number(v); }
  bool String(const char* text, rapidjson::SizeType length, bool) {
    if (at_top() && key == "status") status.emplace(text, length);
    return Default();
  }
  bool Key(const char* text, rapidjson::SizeType length, bool) {
    if (at_top()) key.assign(text, length);
    if (in_chunk_fetches && depth == 2) origin.assign(text, length);
    if (in_chunk_fetches && depth == 3) count_key.assign(text, length);
    return true;
  }
  bool open() {
    too_deep = ++depth > core::kMaxJsonDepth;
    return !too_deep;
  }
  bool StartObject() {
    if (depth == 0) root_object = true;
    if (at_top() && key == "origin_chunk_fetches") in_chunk_fetches = true;
    if (in_chunk_fetches && depth == 2 && chunk_fetches.size() < kMaxReportedOrigins)
      chunk_fetches.push_back({origin, 0, 0});
    return open();
  }
  bool StartArray() { return depth > 0 && open(); }
  bool EndObject(rapidjson::SizeType) {
    if (--depth == 1) in_chunk_fetches = false;
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth;
    return true;
  }
};

}  // namespace

bool interpret_health_reply(int status, const std::string& body, bool& overloaded,
                            std::string& reason, std::optional<double>* egress_mbps,
                            bool cut_at_bound, std::vector<OriginChunkFetches>* chunk_fetches) {
  overloaded = false;
  if (egress_mbps != nullptr) egress_mbps->reset();
  if (status != 200) {
    reason = "health endpoint answered " + std::to_string(status);
    return false;
  }
  HealthFields fields;
  rapidjson::Reader reader;
  rapidjson::StringStream stream(body.c_str());
  const rapidjson::ParseResult parsed =
      reader.Parse<rapidjson::kParseIterativeFlag>(stream, fields);
  if (fields.too_deep) {
    reason = "health endpoint answered a reply whose arrays and objects nest deeper than " +
             std::to_string(core::kMaxJsonDepth) + " levels";
    return false;
  }
  // A reply cut at the read bound ends mid-document: what was read before the cut counts.
  const bool ran_out = cut_at_bound && parsed.Code() != rapidjson::kParseErrorTermination &&
                       parsed.Offset() >= body.size();
  if (!fields.root_object || (parsed.IsError() && !ran_out)) {
    reason = "health endpoint did not answer a JSON object";
    return false;
  }
  if (fields.overloaded) overloaded = *fields.overloaded;
  if (fields.status) {
    if (*fields.status == "overloaded") overloaded = true;
    if (*fields.status != "ok" && *fields.status != "overloaded") {
      reason = "health endpoint reports status '" + *fields.status + "'";
      return false;
    }
  }
  if (egress_mbps != nullptr && fields.egress_mbps && std::isfinite(*fields.egress_mbps) &&
      *fields.egress_mbps >= 0) {
    *egress_mbps = fields.egress_mbps;
  }
  if (chunk_fetches != nullptr) *chunk_fetches = std::move(fields.chunk_fetches);
  return true;
}

HealthPoller::HealthPoller(event_base& base, http::HttpClient& client,
                           core::MetricsRegistry& metrics, const core::Clock& clock)
    : base_(base),
      client_(client),
      clock_(clock),
      metrics_(metrics),
      watch_(base, clock, [this](const std::string& id) { poll_one(id); }) {
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
  watch_.stop();
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
  std::map<std::string, std::string> watched;
  for (const auto& t : targets) watched.emplace(t.id, t.url);
  watch_.configure(watched);
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

MeasuredEgress HealthPoller::measured_egress(TimePoint now) const {
  return balancer::measured_egress(snapshot(), now);
}

void HealthPoller::poll_all() {
  for (auto& [id, node_ptr] : nodes_) {
    if (!node_ptr->polling) poll_node(id, *node_ptr);  // else still within its timeout
  }
}

void HealthPoller::poll_one(const std::string& id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  Node& node = *it->second;
  // A poll running now may be on a kept-alive connection to the dead process: it would fail
  // as reset, not refused (one failure of down_after). Ask again on a new connection.
  if (node.polling) client_.cancel(node.fetch_id);
  node.polling = false;
  poll_node(id, node, true);
}

void HealthPoller::poll_node(const std::string& id, Node& node, bool fresh) {
  node.polling = true;
  node.body.clear();
  node.body_cut = false;
  node.status = 0;
  node.generation = generation_;
  http::FetchRequest fetch;
  fetch.url = node.url;
  fetch.timeout = options_.timeout;
  fetch.fresh_connection = fresh;
  std::string key = id;
  uint64_t generation = generation_;
  http::FetchCallbacks callbacks;
  callbacks.on_head = [this, key](const http::FetchHead& head) {
    auto it = nodes_.find(key);
    if (it != nodes_.end()) it->second->status = head.status;
  };
  callbacks.on_data = [this, key](std::string_view bytes) {
    auto it = nodes_.find(key);
    if (it == nodes_.end()) return;
    Node& n = *it->second;
    const size_t room = kHealthReplyReadBytes - n.body.size();
    n.body_cut = n.body_cut || bytes.size() > room;
    n.body.append(bytes.substr(0, room));
  };
  callbacks.on_done = [this, key, generation, fresh](const http::FetchResult& result) {
    auto it = nodes_.find(key);
    if (it == nodes_.end()) return;
    Node& n = *it->second;
    Outcome outcome;
    outcome.ok = result.ok &&
                 interpret_health_reply(result.status, n.body, outcome.overloaded, outcome.reason,
                                        &outcome.egress_mbps, n.body_cut, &outcome.chunk_fetches);
    if (!result.ok) {
      // Down at once: nothing listens (refused); the node is silent (a poll that timed out:
      // a hung host or a frozen process answers nothing, and the players' requests already
      // there wait out their own timeouts, so new viewers must go elsewhere now); or, after
      // the watched connection closed, a new one failed: the dying process too (its listening
      // socket may still take the connection while the kernel closes its files, and reset it
      // a moment later).
      outcome.down_at_once = result.refused || result.timed_out || fresh;
      outcome.reason =
          result.timed_out ? "health check timed out" : "health check failed: " + result.error;
    }
    on_result(key, generation, std::move(outcome));
  };
  node.fetch_id = client_.fetch(std::move(fetch), std::move(callbacks));
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
    // Alive: watch its connection again (at most once per interval).
    watch_.rearm(id, options_.interval);
    node.health.record_success(outcome.overloaded, now, outcome.egress_mbps);
    report_chunk_fetches(node, std::move(outcome.chunk_fetches));
  } else {
    node.health.record_failure(std::move(outcome.reason), now, outcome.down_at_once);
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

void HealthPoller::report_chunk_fetches(Node& node, std::vector<OriginChunkFetches> counts) {
  if (node.chunk_fetches && on_chunk_fetches_) {
    for (const OriginChunkFetches& now : counts) {
      auto before = std::find_if(node.chunk_fetches->begin(), node.chunk_fetches->end(),
                                 [&](const auto& c) { return c.origin == now.origin; });
      // An origin new in the reply counts from 0: the node fetched from it for the first time.
      const OriginChunkFetches from =
          before == node.chunk_fetches->end() ? OriginChunkFetches{now.origin, 0, 0} : *before;
      if (now.answered < from.answered || now.failed < from.failed) continue;  // it restarted
      if (now.answered > from.answered || now.failed > from.failed)
        on_chunk_fetches_(now.origin, now.answered - from.answered, now.failed - from.failed);
    }
  }
  node.chunk_fetches = std::move(counts);
}

}  // namespace balancer
