#include "admission/redis_admission.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "admission/redis_admission_script.h"
#include "core/event_loop.h"
#include "core/log.h"

namespace admission {
namespace {

constexpr const char* kLog = "admission";
// Viewers per heartbeat script call: a few milliseconds of Redis time each.
constexpr size_t kHeartbeatSlice = 2000;
using stores::RedisReply;

int64_t millis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", std::isfinite(v) ? v : 0.0);
  return buf;
}

double as_double(const RedisReply& r) {
  if (r.type == RedisReply::Type::integer) return static_cast<double>(r.integer);
  try {
    return std::stod(r.str);
  } catch (...) {
    return 0;
  }
}

// Long-lived: the client keeps a reference to the script for the EVAL fallback.
const std::string& script() {
  static const std::string text = kRedisAdmissionScript;
  return text;
}

bool is_array(const RedisReply* r, size_t min_size) {
  return r != nullptr && r->type == RedisReply::Type::array && r->elements.size() >= min_size;
}

}  // namespace

AdmissionDecision unavailable_decision(const AdmissionLimits& limits) {
  AdmissionDecision d;
  d.kind = AdmissionDecision::Kind::refused;
  d.refusal = AdmissionDecision::Refusal::unavailable;
  d.retry_after = std::max(std::chrono::ceil<std::chrono::seconds>(limits.retry_after),
                           std::chrono::seconds(1));
  return d;
}

// ---- scripts ----

RedisAdmissionScripts::RedisAdmissionScripts(stores::RedisClient& client, const std::string& prefix)
    : client_(client) {
  // One hash tag: a Redis Cluster keeps the fleet's keys on one shard, as a script needs.
  const std::string base = "{" + prefix + "}:admission:";
  for (const char* name :
       {"slots", "queue", "renewals", "viewers", "state", "offers", "addresses"}) {
    keys_.push_back(base + name);
  }
}

std::vector<std::string> RedisAdmissionScripts::args(const char* op, const AdmissionLimits& l,
                                                     int64_t now_ms) const {
  return {op,
          std::to_string(now_ms),
          std::to_string(l.max_streams),
          number(l.max_traffic_mbps),
          std::to_string(millis(l.idle_timeout)),
          std::to_string(millis(l.ticket_grace)),
          std::to_string(millis(l.head_reservation)),
          std::to_string(millis(l.retry_after)),
          std::to_string(l.max_anonymous_per_address),
          std::to_string(l.max_tickets_per_address),
          std::to_string(l.max_entries)};
}

void RedisAdmissionScripts::decide(ViewerKey viewer, uint64_t bandwidth_bps,
                                   const ViewerSource& from, const AdmissionLimits& limits,
                                   int64_t now_ms, DecisionCallback done) {
  if (viewer.empty() || viewer.size() > kMaxViewerKeyBytes) {
    AdmissionDecision bad;  // bad_viewer_key
    return done(bad);
  }
  auto a = args("decide", limits, now_ms);
  a.emplace_back(viewer);
  a.push_back(std::to_string(std::min<uint64_t>(bandwidth_bps, UINT32_MAX)));
  a.emplace_back(from.address);
  a.push_back(from.anonymous ? "1" : "0");
  a.emplace_back(from.account);
  a.push_back(std::to_string(limits.max_streams_per_account));
  client_.eval(script(), keys_, a, [limits, done = std::move(done)](const RedisReply* r) {
    if (!is_array(r, 1)) {
      if (r != nullptr) LOG_ERROR(kLog, "admission script failed: ", r->str);
      return done(unavailable_decision(limits));
    }
    AdmissionDecision d;
    const auto& e = r->elements;
    switch (e[0].as_int()) {
      case 1:
        d.kind = AdmissionDecision::Kind::admitted;
        break;
      case 2:
        if (e.size() < 5) return done(unavailable_decision(limits));
        d.kind = AdmissionDecision::Kind::queued;
        d.ticket = static_cast<uint64_t>(e[1].as_int());
        d.position = static_cast<uint64_t>(e[2].as_int());
        if (e[3].as_int() >= 0) d.estimated_wait = std::chrono::seconds(e[3].as_int());
        d.retry_after = std::chrono::seconds(e[4].as_int());
        break;
      case 4: {
        d = unavailable_decision(limits);
        const int64_t why = e.size() > 1 ? e[1].as_int() : 3;
        d.refusal = why == 1   ? AdmissionDecision::Refusal::address_viewers
                    : why == 2 ? AdmissionDecision::Refusal::address_tickets
                    : why == 4 ? AdmissionDecision::Refusal::account_streams
                               : AdmissionDecision::Refusal::full;
        break;
      }
      default:
        return done(unavailable_decision(limits));
    }
    done(d);
  });
}

void RedisAdmissionScripts::heartbeat(const std::vector<std::pair<std::string, uint64_t>>& beats,
                                      const AdmissionLimits& limits, int64_t now_ms,
                                      std::function<void(bool ok)> done) {
  auto a = args("heartbeat", limits, now_ms);
  for (const auto& [key, bandwidth] : beats) {
    a.push_back(key);
    a.push_back(std::to_string(std::min<uint64_t>(bandwidth, UINT32_MAX)));
  }
  client_.eval(script(), keys_, a, [done = std::move(done)](const RedisReply* r) {
    const bool ok = is_array(r, 1);
    if (ok && r->elements[0].as_int() > 0) {
      LOG_WARN(kLog, "Redis did not know ", r->elements[0].as_int(),
               " admitted viewer(s); their slots are restored");
    } else if (r != nullptr && !ok) {
      LOG_ERROR(kLog, "heartbeat script failed: ", r->str);
    }
    done(ok);
  });
}

void RedisAdmissionScripts::switch_emulation(
    std::optional<bool> want, const AdmissionLimits& limits, int64_t now_ms,
    std::function<void(std::optional<EmulationSwitch>)> done) {
  auto a = args("emulation", limits, now_ms);
  a.push_back(!want ? "toggle" : *want ? "on" : "off");
  client_.eval(script(), keys_, a, [done = std::move(done)](const RedisReply* r) {
    if (!is_array(r, 2)) return done(std::nullopt);
    done(EmulationSwitch{r->elements[0].as_int() == 1, r->elements[1].as_int() == 1});
  });
}

void RedisAdmissionScripts::release(ViewerKey viewer, const AdmissionLimits& limits, int64_t now_ms,
                                    std::function<void(std::optional<bool>)> done) {
  if (viewer.empty() || viewer.size() > kMaxViewerKeyBytes) return done(false);
  auto a = args("release", limits, now_ms);
  a.emplace_back(viewer);
  client_.eval(script(), keys_, a, [done = std::move(done)](const RedisReply* r) {
    if (!is_array(r, 1)) {
      if (r != nullptr) LOG_ERROR(kLog, "release script failed: ", r->str);
      return done(std::nullopt);
    }
    done(r->elements[0].as_int() == 1);
  });
}

void RedisAdmissionScripts::status(const AdmissionLimits& limits, int64_t now_ms,
                                   std::function<void(std::optional<AdmissionStatus>)> done) {
  client_.eval(script(), keys_, args("status", limits, now_ms),
               [limits, done = std::move(done)](const RedisReply* r) {
                 if (!is_array(r, 18)) return done(std::nullopt);
                 const auto& e = r->elements;
                 AdmissionStatus s;
                 s.limits = limits;
                 s.active_viewers = static_cast<uint64_t>(e[0].as_int());
                 s.queued_viewers = static_cast<uint64_t>(e[1].as_int());
                 s.reserved_slots = static_cast<uint64_t>(e[2].as_int());
                 s.emulation = e[3].as_int() == 1;
                 s.head_waited = std::chrono::seconds(e[4].as_int());
                 s.next_wait = std::nullopt;
                 if (e[5].as_int() >= 0) s.next_wait = std::chrono::seconds(e[5].as_int());
                 s.declared_mbps = as_double(e[8]) / 1e6;
                 s.traffic_estimate_mbps = s.declared_mbps;
                 if (const double rate = as_double(e[9]); rate >= 0) s.slot_free_rate_per_s = rate;
                 AdmissionCounters& c = s.counters;
                 c.admitted = static_cast<uint64_t>(e[10].as_int());
                 c.admitted_from_queue = static_cast<uint64_t>(e[11].as_int());
                 c.tickets_issued = static_cast<uint64_t>(e[12].as_int());
                 c.slots_expired = static_cast<uint64_t>(e[13].as_int());
                 c.tickets_expired = static_cast<uint64_t>(e[14].as_int());
                 c.reservations_lapsed = static_cast<uint64_t>(e[15].as_int());
                 c.refused_address = static_cast<uint64_t>(e[16].as_int());
                 c.refused_full = static_cast<uint64_t>(e[17].as_int());
                 if (e.size() > 19) c.released = static_cast<uint64_t>(e[19].as_int());
                 if (e.size() > 20) c.refused_account = static_cast<uint64_t>(e[20].as_int());
                 done(s);
               });
}

// ---- the process's side ----

struct RedisAdmission::PerLoop {
  PerLoop(core::EventLoop& l, const RedisAdmissionOptions& o)
      : loop(l),
        client(l, stores::RedisOptions{o.host, o.port, o.password, o.timeout}),
        scripts(client, o.prefix) {}
  core::EventLoop& loop;
  stores::RedisClient client;
  RedisAdmissionScripts scripts;
};

RedisAdmission::RedisAdmission(const std::vector<core::EventLoop*>& loops,
                               const RedisAdmissionOptions& options, const AdmissionLimits& limits,
                               StoreTime time)
    : options_(options), time_(time), limits_(limits) {
  for (core::EventLoop* loop : loops) loops_.push_back(std::make_unique<PerLoop>(*loop, options));
  last_status_.limits = limits;
}

RedisAdmission::~RedisAdmission() = default;

AdmissionLimits RedisAdmission::limits() const {
  std::lock_guard lock(mutex_);
  return limits_;
}

int64_t RedisAdmission::store_ms(TimePoint now) const {
  if (time_ == StoreTime::redis_clock) return 0;
  // Never 0, which would mean Redis's clock.
  return std::max<int64_t>(1, millis(now.time_since_epoch()));
}

void RedisAdmission::set_limits(const AdmissionLimits& limits, TimePoint) {
  std::lock_guard lock(mutex_);
  limits_ = limits;
}

RedisAdmission::PerLoop& RedisAdmission::on(core::EventLoop& loop) {
  for (auto& pl : loops_) {
    if (&pl->loop == &loop) return *pl;
  }
  assert(false && "RedisAdmission: a loop it was not created for");
  return *loops_.front();
}

void RedisAdmission::confirm(const std::string& key, const StreamInfo& stream, bool stream_known,
                             TimePoint at) {
  Lease& lease = leases_[key];
  lease.confirmed = at;
  lease.last_request = std::max(lease.last_request, at);
  if (!stream.channel.empty()) lease.channel = stream.channel;
  if (stream_known) lease.cache = stream.cache;
  if (stream.bandwidth_bps != 0) lease.bandwidth_bps = stream.bandwidth_bps;
}

void RedisAdmission::request(core::EventLoop& loop, ViewerKey viewer, const StreamInfo& stream,
                             const ViewerSource& from, TimePoint now, DecisionCallback done) {
  decide(loop, viewer, stream, true, from, now, std::move(done));
}

void RedisAdmission::check(core::EventLoop& loop, ViewerKey viewer, std::string_view channel,
                           const ViewerSource& from, TimePoint now, DecisionCallback done) {
  decide(loop, viewer, StreamInfo{channel, {}, 0}, false, from, now, std::move(done));
}

void RedisAdmission::decide(core::EventLoop& loop, ViewerKey viewer, const StreamInfo& stream,
                            bool stream_known, const ViewerSource& from, TimePoint now,
                            DecisionCallback done) {
  AdmissionLimits l;
  bool leased = false;
  {
    std::lock_guard lock(mutex_);
    l = limits_;
    auto it = leases_.find(std::string(viewer));
    if (it != leases_.end()) {
      Lease& lease = it->second;
      leased = now < lease.confirmed + l.idle_timeout && now < lease.last_request + l.idle_timeout;
      if (leased) {
        // Admitted here and confirmed by Redis recently: no round trip; the next heartbeat
        // batch refreshes the slot in Redis.
        lease.last_request = std::max(lease.last_request, now);
        lease.beat_pending = true;
        if (!stream.channel.empty()) lease.channel = stream.channel;
        if (stream_known) lease.cache = stream.cache;
        if (stream.bandwidth_bps != 0) lease.bandwidth_bps = stream.bandwidth_bps;
      } else {
        leases_.erase(it);
      }
    }
  }
  if (leased) {
    AdmissionDecision admitted;
    admitted.kind = AdmissionDecision::Kind::admitted;
    return done(admitted);
  }
  on(loop).scripts.decide(
      viewer, stream.bandwidth_bps, from, l, store_ms(now),
      [this, key = std::string(viewer), channel = std::string(stream.channel),
       cache = std::string(stream.cache), bandwidth = stream.bandwidth_bps, stream_known, now,
       done = std::move(done)](const AdmissionDecision& d) {
        if (d.admitted()) {
          std::lock_guard lock(mutex_);
          confirm(key, StreamInfo{channel, cache, bandwidth}, stream_known, now);
        }
        done(d);
      });
}

void RedisAdmission::release(core::EventLoop& loop, ViewerKey viewer, TimePoint now,
                             std::function<void(std::optional<bool>)> done) {
  {
    std::lock_guard lock(mutex_);
    leases_.erase(std::string(viewer));
  }
  on(loop).scripts.release(viewer, limits(), store_ms(now), std::move(done));
}

void RedisAdmission::switch_emulation(core::EventLoop& loop, std::optional<bool> want,
                                      TimePoint now,
                                      std::function<void(std::optional<EmulationSwitch>)> done) {
  on(loop).scripts.switch_emulation(want, limits(), store_ms(now), std::move(done));
}

void RedisAdmission::tick(TimePoint now, std::function<void()> done) {
  PerLoop& home = *loops_.front();
  std::vector<std::pair<std::string, uint64_t>> beats;
  AdmissionLimits l;
  bool send_status = false;
  {
    std::lock_guard lock(mutex_);
    l = limits_;
    for (auto it = leases_.begin(); it != leases_.end();) {
      const Lease& lease = it->second;
      if (now >= lease.last_request + l.idle_timeout || now >= lease.confirmed + l.idle_timeout) {
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
    if (!heartbeat_in_flight_ && now - last_heartbeat_ >= options_.heartbeat_interval) {
      for (auto& [key, lease] : leases_) {
        if (!lease.beat_pending) continue;
        beats.emplace_back(key, lease.bandwidth_bps);
        lease.beat_pending = false;
      }
      last_heartbeat_ = now;
      if (!beats.empty()) {
        heartbeat_in_flight_ = true;
        heartbeats_in_flight_ = (beats.size() + kHeartbeatSlice - 1) / kHeartbeatSlice;
      }
    }
    send_status = !status_in_flight_;
    if (send_status) status_in_flight_ = true;
  }
  // `done` runs once every call sent below has answered.
  const size_t slices = (beats.size() + kHeartbeatSlice - 1) / kHeartbeatSlice;
  const size_t calls = slices + (send_status ? 1 : 0);
  if (calls == 0) {
    if (done) done();
    return;
  }
  auto remaining = std::make_shared<size_t>(calls);
  auto answered = [remaining, done = std::move(done)] {
    if (--*remaining == 0 && done) done();
  };
  // In slices, so one script call never holds Redis for long, however many viewers.
  for (size_t from = 0; from < beats.size(); from += kHeartbeatSlice) {
    std::vector<std::pair<std::string, uint64_t>> slice(
        beats.begin() + static_cast<std::ptrdiff_t>(from),
        beats.begin() +
            static_cast<std::ptrdiff_t>(std::min(beats.size(), from + kHeartbeatSlice)));
    home.scripts.heartbeat(slice, l, store_ms(now), [this, slice, sent = now, answered](bool ok) {
      note_heartbeats(slice, sent, ok);
      answered();
    });
  }
  if (send_status) {
    home.scripts.status(l, store_ms(now), [this, answered](std::optional<AdmissionStatus> s) {
      note_status(std::move(s));
      answered();
    });
  }
}

// A heartbeat slice sent at `sent` answered: its leases confirmed, or beating again next batch.
void RedisAdmission::note_heartbeats(const std::vector<std::pair<std::string, uint64_t>>& slice,
                                     TimePoint sent, bool ok) {
  std::unique_lock lock(mutex_);
  if (--heartbeats_in_flight_ == 0) heartbeat_in_flight_ = false;
  for (const auto& [key, bandwidth] : slice) {
    auto it = leases_.find(key);
    if (it == leases_.end()) continue;
    if (ok) {
      it->second.confirmed = std::max(it->second.confirmed, sent);
    } else {
      it->second.beat_pending = true;  // try again with the next batch
    }
  }
}

// The status call answered (nullopt: Redis unreachable, logged when that changes).
void RedisAdmission::note_status(std::optional<AdmissionStatus> s) {
  std::unique_lock lock(mutex_);
  status_in_flight_ = false;
  if (reachable_ != s.has_value()) {
    if (s) {
      LOG_INFO(kLog, "Redis admission store reachable");
    } else {
      LOG_WARN(kLog,
               "Redis admission store unreachable: admitted viewers keep their leases until "
               "they run out; "
               "new viewers get 503 admission_unavailable");
    }
  }
  reachable_ = s.has_value();
  if (s) last_status_ = std::move(*s);
}

AdmissionStatus RedisAdmission::status(TimePoint now) {
  std::lock_guard lock(mutex_);
  AdmissionStatus s = last_status_;
  s.limits = limits_;
  // This process's leased viewers, per channel and per cache (the fleet's are not kept).
  std::unordered_map<std::string, AdmissionGroupCount> channels, caches;
  uint64_t origin = 0;
  for (const auto& [key, lease] : leases_) {
    if (now >= lease.last_request + limits_.idle_timeout) continue;
    auto& ch = channels[lease.channel];
    ch.name = lease.channel;
    ++ch.active_viewers;
    ch.declared_mbps += static_cast<double>(lease.bandwidth_bps) / 1e6;
    if (lease.cache.empty()) {
      ++origin;
      continue;
    }
    auto& ca = caches[lease.cache];
    ca.name = lease.cache;
    ++ca.active_viewers;
    ca.declared_mbps += static_cast<double>(lease.bandwidth_bps) / 1e6;
  }
  auto sorted = [](std::unordered_map<std::string, AdmissionGroupCount>& m) {
    std::vector<AdmissionGroupCount> out;
    for (auto& [name, g] : m) out.push_back(std::move(g));
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
  };
  s.channels = sorted(channels);
  s.caches = sorted(caches);
  s.origin_viewers = origin;
  return s;
}

std::unique_ptr<Admission> make_redis_admission(const std::vector<core::EventLoop*>& loops,
                                                const RedisAdmissionOptions& options,
                                                const AdmissionLimits& limits, StoreTime time) {
  return std::make_unique<RedisAdmission>(loops, options, limits, time);
}

}  // namespace admission
