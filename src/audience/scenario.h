// A rehearsal scenario: the deployment to drive (by URL only), how each simulated player
// behaves, the processes and metrics to watch, and phases on a timeline. Read from JSON
// (docs/operations.md § Rehearsing a venue) into an immutable struct; every wrong type,
// out-of-range value or unknown key is an error naming the key. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "audience/player_rules.h"
#include "core/result.h"

namespace audience {

// Hard bounds, whatever a scenario asks: memory and time stay bounded.
inline constexpr uint64_t kMaxViewers = 100'000;
inline constexpr double kMaxDurationS = 24 * 3600;

struct PlayerSpec {
  VariantPolicy variant = VariantPolicy::abr;
  double start_buffer_s = 2;              // media needed before the first frame
  double hold_back_target_durations = 3;  // live start distance from the edge, without HOLD-BACK
  bool sign_in = false;                   // POST /api/v1/auth/login first
  std::string login = "viewer{n}";        // {n}: the viewer's number (0-based)
  std::string password;
  std::vector<std::string> caches;  // cache ids handed out in turn ("" = none)
  bool steering = true;             // follow EXT-X-CONTENT-STEERING when the master has it
  // Play a Low-Latency HLS playlist's parts and preload hints with blocking reloads (as
  // hls.js's lowLatencyMode and Media3 do), starting PART-HOLD-BACK from the live edge; a
  // playlist without parts plays by segments either way.
  bool low_latency = true;
  int retries = 3;  // per request, before the player gives up on it
  double request_timeout_s = 10;
  double queue_max_wait_s = 600;  // a queued viewer gives up after this long
};

struct ProcessSpec {
  std::string name;
  int64_t pid = 0;  // 0: read pid_file, or none until restarted
  std::string pid_file;
  std::vector<std::string> restart;  // argv run by "restart" (its pid is then watched)
};

struct MetricsSource {
  std::string name;
  std::string url;                                            // a Prometheus text endpoint
  std::string origin_fetches = "cache_origin_fetches_total";  // summed over its labels
};

enum class Action : std::uint8_t {
  sign_in,   // `viewers` sign in ahead over `over_s` (they refresh when they arrive later)
  arrive,    // `viewers` arrive over `over_s`, or `rate_per_s` until `until_s`
  kickoff,   // `viewers` (0 = all) of the arrived but not playing press play within `over_s`
  walk_out,  // a `share` of the playing viewers changes its cache id to `cache`
  walk_in,   // a `share` of the walked-out viewers takes its own cache id back
  leave,     // a `share` of the playing viewers stops and goes away
  kill,      // SIGKILL to `process`
  restart,   // runs `process`'s restart command
  signal,    // `signal` (HUP, TERM, ...) to `process`, after running `command` if given
  overload,  // the balancer's overload switch to `on`
  run,       // runs `command` and waits for it (bounded)
  window,    // names [at_s, until_s) for per-window figures (e.g. "steady")
};
std::string_view action_name(Action action);

struct Phase {
  double at_s = 0;
  Action action = Action::window;
  uint64_t viewers = 0;
  double over_s = 0;
  double rate_per_s = 0;
  double until_s = 0;
  bool play = true;  // arrive: press play at once (else wait for a kickoff)
  double share = 0;
  std::string cache;  // walk_out: the cache id used outside ("" = none)
  std::string process;
  int signal = 0;
  bool on = false;
  std::vector<std::string> command;
  std::string name;  // window
};

struct Scenario {
  std::string name = "rehearsal";
  std::string balancer;  // base URL, e.g. http://127.0.0.1:8080
  std::string channel = "demo";
  std::string playlist;      // master path for anonymous play ("" = from the access check)
  std::string operator_key;  // X-Operator-Key for the overload switch ("" = loopback)
  double duration_s = 60;
  uint64_t max_viewers = 10'000;
  int max_host_connections = 256;  // per host, across all viewers
  // Each viewer connects from a loopback address of its own (own_address): its requests to a
  // host share its own connections only (one over HTTP/2), as a phone's do. Loopback
  // deployments only.
  bool own_connections = false;
  std::string ca_file;  // CA bundle for https URLs ("" = the system's)
  int seed = 1;
  PlayerSpec player;
  std::vector<ProcessSpec> processes;
  std::vector<MetricsSource> metrics;
  std::vector<Phase> phases;  // in time order

  // Viewers created: the arrive phases' sum, or the sign_in phases' when larger (arrivals
  // take the viewers signed in ahead first).
  uint64_t planned_viewers() const;
};

// Viewer `number`'s own loopback address (Scenario::own_connections): 127.16.0.1 on, one each.
std::string own_address(uint64_t number);

// `name` stands for the file in messages; `overrides` are "dotted.key=value" as --set.
core::Result<Scenario> parse_scenario(const std::string& name, const std::string& text,
                                      const std::vector<std::string>& overrides = {});
core::Result<Scenario> load_scenario(const std::string& path,
                                     const std::vector<std::string>& overrides = {});

}  // namespace audience
