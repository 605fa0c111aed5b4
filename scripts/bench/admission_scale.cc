// Scale benchmark of the admission policy (target admission_scale_bench).
//
// Simulates N viewers (default 100,000): admits them, refreshes every slot several times (some
// viewers switch variant or cache), queues 20,000 more, renews their tickets, lets the first
// crowd go idle so the queue gets in, then expires everything. Prints one JSON object: requests
// per second per phase, RSS (VmRSS from /proc/self/status) along the way and bytes per viewer.
//
//   admission_scale_bench [viewers] [queued] [refresh_rounds]
#include "admission/admission_policy.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

using admission::AdmissionDecision;
using admission::AdmissionLimits;
using admission::AdmissionPolicy;
using admission::StreamInfo;
using admission::TimePoint;
using namespace std::chrono_literals;

// VmRSS or VmHWM in KiB, 0 if /proc is unavailable.
long proc_status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return 0;
}

struct Phase {
  const char* name;
  uint64_t ops = 0;  // requests, or slots freed for expire_idle
  double seconds = 0;
};

class Stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

int fail(const char* what) {
  std::fprintf(stderr, "admission_scale_bench: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int viewers = argc > 1 ? std::atoi(argv[1]) : 100'000;
  const int queued = argc > 2 ? std::atoi(argv[2]) : 20'000;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  if (viewers <= 0 || queued < 0 || rounds < 0) return fail("bad arguments");

  // Keys look like real playback tickets ("t:" + 32 hex digits), made before the baseline so
  // the RSS delta is the policy's own state.
  std::mt19937_64 rng(1);
  const auto make_key = [&rng](const char* prefix) {
    char hex[33];
    std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    return std::string(prefix) + hex;
  };
  std::vector<std::string> keys;
  keys.reserve(static_cast<std::size_t>(viewers + queued));
  for (int i = 0; i < viewers; ++i) keys.push_back(make_key("t:"));
  for (int i = 0; i < queued; ++i) keys.push_back(make_key("v:"));
  const std::vector<std::string> channels = [] {
    std::vector<std::string> c;
    for (int i = 0; i < 20; ++i) c.push_back("channel-" + std::to_string(i));
    return c;
  }();
  const std::vector<std::string> caches = {"cache-1", "cache-2", "cache-3", "cache-4", ""};
  const uint64_t variants[] = {800'000, 1'500'000, 3'000'000, 6'000'000};
  const auto stream = [&](int i, int round) {
    const auto v = static_cast<std::size_t>(i);
    const auto r = static_cast<std::size_t>(round);
    // Every 7th viewer switches variant each round, every 11th switches cache.
    const std::size_t variant = (v + (v % 7 == 0 ? r : 0)) % 4;
    const std::size_t cache = (v + (v % 11 == 0 ? r : 0)) % caches.size();
    return StreamInfo{channels[v % channels.size()], caches[cache], variants[variant]};
  };

  AdmissionLimits limits;
  limits.max_streams = static_cast<uint32_t>(viewers);
  limits.max_traffic_mbps = 1e9;  // exercised, never binding
  const long rss_start = proc_status_kib("VmRSS");

  // Simulated time: requests 10 µs apart, as if from a busy steady clock.
  TimePoint now = TimePoint(1h);
  const auto tick = [&now] { now += 10us; };
  AdmissionPolicy policy(limits);
  std::vector<Phase> phases;

  {
    Phase ph{"admit"};
    Stopwatch sw;
    for (int i = 0; i < viewers; ++i, tick()) {
      if (!policy.request(keys[static_cast<std::size_t>(i)], stream(i, 0), now).admitted())
        return fail("viewer not admitted");
    }
    ph.ops = static_cast<uint64_t>(viewers);
    ph.seconds = sw.seconds();
    phases.push_back(ph);
  }
  const long rss_admitted = proc_status_kib("VmRSS");

  {
    Phase ph{"refresh"};
    Stopwatch sw;
    for (int r = 1; r <= rounds; ++r) {
      now += 2s;
      for (int i = 0; i < viewers; ++i, tick()) {
        if (!policy.request(keys[static_cast<std::size_t>(i)], stream(i, r), now).admitted())
          return fail("slot lost on refresh");
      }
    }
    ph.ops = static_cast<uint64_t>(viewers) * static_cast<uint64_t>(rounds);
    ph.seconds = sw.seconds();
    phases.push_back(ph);
  }
  const TimePoint last_refresh = now;

  {
    Phase ph{"enqueue"};
    Stopwatch sw;
    for (int i = 0; i < queued; ++i, tick()) {
      const AdmissionDecision d =
          policy.request(keys[static_cast<std::size_t>(viewers + i)], stream(i, 0), now);
      if (d.kind != AdmissionDecision::Kind::queued || d.position != static_cast<uint64_t>(i) + 1)
        return fail("wrong queue position");
    }
    ph.ops = static_cast<uint64_t>(queued);
    ph.seconds = sw.seconds();
    phases.push_back(ph);
  }
  const long rss_queued = proc_status_kib("VmRSS");

  {
    Phase ph{"renew_ticket"};
    Stopwatch sw;
    for (int r = 0; r < 2; ++r) {
      now += 1s;
      for (int i = 0; i < queued; ++i, tick()) {
        policy.request(keys[static_cast<std::size_t>(viewers + i)], stream(i, 0), now);
      }
    }
    ph.ops = 2 * static_cast<uint64_t>(queued);
    ph.seconds = sw.seconds();
    phases.push_back(ph);
  }
  const admission::AdmissionStatus full = policy.status(now);

  {
    Phase ph{"expire_idle"};
    Stopwatch sw;
    now = last_refresh + limits.idle_timeout + 1s;  // the first crowd is idle, tickets are not
    policy.expire(now);
    ph.ops = static_cast<uint64_t>(viewers);
    ph.seconds = sw.seconds();
    phases.push_back(ph);
  }

  {
    Phase ph{"admit_from_queue"};
    Stopwatch sw;
    for (int i = 0; i < queued; ++i, tick()) {
      if (!policy.request(keys[static_cast<std::size_t>(viewers + i)], stream(i, 0), now)
               .admitted())
        return fail("queued viewer not admitted after the crowd left");
    }
    ph.ops = static_cast<uint64_t>(queued);
    ph.seconds = sw.seconds();
    phases.push_back(ph);
  }
  const admission::AdmissionStatus after = policy.status(now);
  policy.expire(now + 1h);
  const admission::AdmissionStatus empty = policy.status(now + 1h);
  if (full.active_viewers != static_cast<uint64_t>(viewers) ||
      full.queued_viewers != static_cast<uint64_t>(queued) ||
      after.active_viewers != static_cast<uint64_t>(queued) || after.queued_viewers != 0 ||
      empty.active_viewers != 0) {
    return fail("counts do not add up");
  }

  std::printf("{\n  \"viewers\": %d,\n  \"queued\": %d,\n  \"refresh_rounds\": %d,\n", viewers,
              queued, rounds);
  std::printf("  \"phases\": {\n");
  for (std::size_t i = 0; i < phases.size(); ++i) {
    const Phase& ph = phases[i];
    std::printf("    \"%s\": {\"ops\": %llu, \"seconds\": %.4f, \"per_second\": %.0f}%s\n", ph.name,
                static_cast<unsigned long long>(ph.ops), ph.seconds,
                ph.seconds > 0 ? static_cast<double>(ph.ops) / ph.seconds : 0.0,
                i + 1 == phases.size() ? "" : ",");
  }
  std::printf("  },\n");
  std::printf(
      "  \"rss_kib\": {\"start\": %ld, \"admitted\": %ld, \"queued\": %ld, \"end\": %ld, "
      "\"peak\": %ld},\n",
      rss_start, rss_admitted, rss_queued, proc_status_kib("VmRSS"), proc_status_kib("VmHWM"));
  std::printf("  \"bytes_per_active_viewer\": %.0f,\n",
              static_cast<double>(rss_admitted - rss_start) * 1024.0 / viewers);
  std::printf("  \"bytes_per_queued_viewer\": %.0f,\n",
              queued > 0 ? static_cast<double>(rss_queued - rss_admitted) * 1024.0 / queued : 0.0);
  std::printf(
      "  \"status_at_peak\": {\"active\": %llu, \"queued\": %llu, \"channels\": %zu, "
      "\"caches\": %zu, \"origin\": %llu, \"declared_mbps\": %.1f}\n}\n",
      static_cast<unsigned long long>(full.active_viewers),
      static_cast<unsigned long long>(full.queued_viewers), full.channels.size(),
      full.caches.size(), static_cast<unsigned long long>(full.origin_viewers), full.declared_mbps);
  return 0;
}
