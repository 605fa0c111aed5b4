#include "audience/scenario.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <fstream>
#include <sstream>

#include "core/config.h"

namespace audience {

namespace {

struct ActionName {
  std::string_view name;
  Action action;
};
constexpr ActionName kActions[] = {
    {"sign_in", Action::sign_in},   {"arrive", Action::arrive},   {"kickoff", Action::kickoff},
    {"walk_out", Action::walk_out}, {"walk_in", Action::walk_in}, {"leave", Action::leave},
    {"kill", Action::kill},         {"restart", Action::restart}, {"signal", Action::signal},
    {"overload", Action::overload}, {"run", Action::run},         {"window", Action::window},
};

int signal_number(const std::string& name) {
  if (name == "HUP") return SIGHUP;
  if (name == "TERM") return SIGTERM;
  if (name == "INT") return SIGINT;
  if (name == "KILL") return SIGKILL;
  if (name == "USR1") return SIGUSR1;
  if (name == "USR2") return SIGUSR2;
  if (name == "STOP") return SIGSTOP;
  if (name == "CONT") return SIGCONT;
  return 0;
}

bool http_url(const std::string& url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

// "player", and the playlist it needs without sign_in.
void parse_player(core::ConfigReader& root, Scenario& s) {
  auto player = root.object("player");
  const std::string variant = player.string("variant", "abr");
  if (auto policy = parse_variant_policy(variant)) {
    s.player.variant = *policy;
  } else {
    player.fail("variant", "must be top, bottom or abr");
  }
  s.player.start_buffer_s = player.number("start_buffer_s", s.player.start_buffer_s, 0, 60);
  s.player.hold_back_target_durations =
      player.number("hold_back_target_durations", s.player.hold_back_target_durations, 0, 20);
  s.player.sign_in = player.boolean("sign_in", false);
  s.player.login = player.string("login", s.player.login);
  s.player.password = player.string("password", "");
  s.player.caches = player.string_list("caches", {});
  s.player.steering = player.boolean("steering", true);
  s.player.low_latency = player.boolean("low_latency", true);
  s.player.retries = static_cast<int>(player.integer("retries", 3, 0, 20));
  s.player.request_timeout_s = player.number("request_timeout_s", 10, 0.1, 600);
  s.player.queue_max_wait_s = player.number("queue_max_wait_s", 600, 1, kMaxDurationS);
  if (s.player.sign_in && s.player.password.empty())
    player.fail("password", "is required with sign_in");
  if (!s.player.sign_in && s.playlist.empty())
    root.fail("playlist",
              "is required without player.sign_in (anonymous viewers cannot list channels)");
  player.finish();
}

// One element of "processes".
ProcessSpec parse_process(core::ConfigReader& p) {
  ProcessSpec spec;
  spec.name = p.required_string("name");
  spec.pid = p.integer("pid", 0, 0, 1 << 30);
  spec.pid_file = p.string("pid_file", "");
  spec.restart = p.string_list("restart", {});
  p.finish();
  return spec;
}

// One element of "metrics".
MetricsSource parse_metrics_source(core::ConfigReader& m) {
  MetricsSource source;
  source.name = m.required_string("name");
  source.url = m.required_string("url");
  if (!source.url.empty() && !http_url(source.url))
    m.fail("url", "must be an http:// or https:// URL");
  source.origin_fetches = m.string("origin_fetches", source.origin_fetches);
  m.finish();
  return source;
}

// The fields each action requires.
void check_phase_fields(core::ConfigReader& p, const Phase& phase) {
  switch (phase.action) {
    case Action::arrive:
      if (!phase.viewers && phase.rate_per_s <= 0)
        p.fail("viewers", "or rate_per_s (with until_s) is required");
      break;
    case Action::sign_in:
      if (!phase.viewers) p.fail("viewers", "is required");
      break;
    case Action::kill:
    case Action::restart:
    case Action::signal:
      if (phase.process.empty()) p.fail("process", "is required");
      if (phase.action == Action::signal && !phase.signal) p.fail("signal", "is required");
      break;
    case Action::run:
      if (phase.command.empty()) p.fail("command", "is required");
      break;
    case Action::window:
      if (phase.name.empty()) p.fail("name", "is required");
      if (phase.until_s <= phase.at_s) p.fail("until_s", "must be after at_s");
      break;
    default:
      break;
  }
}

// One element of "phases".
Phase parse_phase(core::ConfigReader& p) {
  Phase phase;
  phase.at_s = p.number("at_s", 0, 0, kMaxDurationS);
  const std::string what = p.required_string("do");
  bool known = false;
  for (const auto& a : kActions) {
    if (a.name == what) {
      phase.action = a.action;
      known = true;
    }
  }
  if (!known && !what.empty()) p.fail("do", "unknown action \"" + what + "\"");
  phase.viewers = static_cast<uint64_t>(p.integer("viewers", 0, 0, kMaxViewers));
  phase.over_s = p.number("over_s", 0, 0, kMaxDurationS);
  phase.rate_per_s = p.number("rate_per_s", 0, 0, 100'000);
  phase.until_s = p.number("until_s", phase.at_s, phase.at_s, kMaxDurationS);
  phase.play = p.boolean("play", true);
  phase.share = p.number("share", 0, 0, 1);
  phase.cache = p.string("cache", "");
  phase.process = p.string("process", "");
  phase.on = p.boolean("on", false);
  phase.command = p.string_list("command", {});
  phase.name = p.string("name", "");
  const std::string signal = p.string("signal", "");
  if (!signal.empty()) {
    phase.signal = signal_number(signal);
    if (!phase.signal) p.fail("signal", "must be one of HUP TERM INT KILL USR1 USR2 STOP CONT");
  }
  check_phase_fields(p, phase);
  p.finish();
  return phase;
}

// What phases name must exist elsewhere in the scenario: processes (with a restart command when
// restarted), player.sign_in, and room under max_viewers.
void check_phases_against_scenario(core::ConfigReader& root, const Scenario& s) {
  for (const auto& phase : s.phases) {
    if (phase.process.empty()) continue;
    const bool named = std::any_of(s.processes.begin(), s.processes.end(),
                                   [&](const ProcessSpec& p) { return p.name == phase.process; });
    if (!named)
      root.fail("phases",
                "a phase names process \"" + phase.process + "\", which processes does not list");
    if (phase.action == Action::restart) {
      for (const auto& p : s.processes) {
        if (p.name == phase.process && p.restart.empty())
          root.fail("phases", "process \"" + p.name + "\" is restarted but has no restart command");
      }
    }
  }
  for (const auto& phase : s.phases) {
    if (phase.action == Action::sign_in && !s.player.sign_in)
      root.fail("phases", "a sign_in phase needs player.sign_in with its login and password");
  }
  if (s.planned_viewers() > s.max_viewers) {
    root.fail("max_viewers", "the arrive phases add up to " + std::to_string(s.planned_viewers()) +
                                 " viewers, more than max_viewers (" +
                                 std::to_string(s.max_viewers) + ")");
  }
}

}  // namespace

std::string_view action_name(Action action) {
  for (const auto& a : kActions) {
    if (a.action == action) return a.name;
  }
  return "?";
}

uint64_t Scenario::planned_viewers() const {
  uint64_t arrivals = 0, sign_ins = 0;
  for (const auto& p : phases) {
    if (p.action == Action::sign_in) sign_ins += p.viewers;
    if (p.action != Action::arrive) continue;
    arrivals +=
        p.viewers
            ? p.viewers
            : static_cast<uint64_t>(std::floor(p.rate_per_s * std::max(0.0, p.until_s - p.at_s)));
  }
  return std::max(arrivals, sign_ins);
}

std::string own_address(uint64_t number) {
  // 127.16.0.0/12 holds kMaxViewers addresses many times over: from 127.16.0.1, one each.
  const uint64_t host = (uint64_t{16} << 16) + number + 1;
  return "127." + std::to_string((host >> 16) & 255) + "." + std::to_string((host >> 8) & 255) +
         "." + std::to_string(host & 255);
}

core::Result<Scenario> parse_scenario(const std::string& name, const std::string& text,
                                      const std::vector<std::string>& overrides) {
  auto doc = core::ConfigDocument::parse(name, text, overrides);
  if (!doc) return doc.error();
  core::ConfigReader root(doc.value());
  Scenario s;
  s.name = root.string("name", s.name);
  s.balancer = root.required_string("balancer");
  while (!s.balancer.empty() && s.balancer.back() == '/') s.balancer.pop_back();
  if (!s.balancer.empty() && !http_url(s.balancer))
    root.fail("balancer", "must be an http:// or https:// URL");
  s.channel = root.string("channel", s.channel);
  s.playlist = root.string("playlist", "");
  if (!s.playlist.empty() && s.playlist[0] != '/')
    root.fail("playlist", "must be a path starting with /");
  s.operator_key = root.string("operator_key", "");
  s.duration_s = root.number("duration_s", s.duration_s, 1, kMaxDurationS);
  s.max_viewers = static_cast<uint64_t>(root.integer("max_viewers", 10'000, 1, kMaxViewers));
  s.max_host_connections = static_cast<int>(root.integer("max_host_connections", 256, 1, 65535));
  s.seed = static_cast<int>(root.integer("seed", 1, 0, 1'000'000'000));
  s.own_connections = root.boolean("own_connections", false);
  s.ca_file = root.string("ca_file", "");
  parse_player(root, s);
  root.each_element(
      "processes", [&](size_t, core::ConfigReader& p) { s.processes.push_back(parse_process(p)); });
  root.each_element("metrics", [&](size_t, core::ConfigReader& m) {
    s.metrics.push_back(parse_metrics_source(m));
  });
  root.each_element("phases",
                    [&](size_t, core::ConfigReader& p) { s.phases.push_back(parse_phase(p)); });
  root.finish();
  check_phases_against_scenario(root, s);
  if (!root.ok()) return root.status().error();
  std::stable_sort(s.phases.begin(), s.phases.end(),
                   [](const Phase& a, const Phase& b) { return a.at_s < b.at_s; });
  return s;
}

core::Result<Scenario> load_scenario(const std::string& path,
                                     const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::Error{"bad_config", path + ": cannot be read"};
  std::ostringstream text;
  text << in.rdbuf();
  return parse_scenario(path, text.str(), overrides);
}

}  // namespace audience
