#include "audience/audience.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

extern char** environ;

namespace audience {

namespace {

constexpr long kConnectionsPerClient = 128;  // of the per-host budget, per HTTP client
constexpr long kMaxClients = 64;

// Sum of every sample of metric `name` (all label sets) in a Prometheus text body.
std::optional<double> metric_sum(const std::string& body, const std::string& name) {
  std::optional<double> sum;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    const size_t space = line.rfind(' ');
    try {
      sum = sum.value_or(0) + std::stod(line.substr(space + 1));
    } catch (...) {
    }
  }
  return sum;
}

struct ProcReading {
  double cpu_s = 0;
  double rss_mib = 0;
  bool alive = false;
};

ProcReading read_proc(pid_t pid) {
  ProcReading r;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return r;
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return r;
  std::istringstream fields(text.substr(close + 2));
  std::string state;
  fields >> state;
  if (state == "Z" || state == "X") return r;
  std::string skip;
  for (int i = 0; i < 10; ++i) fields >> skip;  // fields 4..13
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  r.cpu_s = (utime + stime) / ticks;
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  double size = 0, resident = 0;
  statm >> size >> resident;
  r.rss_mib = resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
  r.alive = true;
  return r;
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

}  // namespace

core::Result<std::unique_ptr<Audience>> Audience::create(Scenario scenario, RunOptions options) {
  std::unique_ptr<Audience> a(new Audience(std::move(scenario), std::move(options)));
  // libcurl (7.88) walks a host's connections on every request it starts: the viewers are
  // spread over one client per kConnectionsPerClient connections of the per-host budget, each
  // with its own share and its own queue (max_host_transfers), so that walk stays short.
  const long budget = a->scenario_.max_host_connections;
  const long clients =
      std::clamp((budget + kConnectionsPerClient - 1) / kConnectionsPerClient, 1L, kMaxClients);
  http::HttpClientOptions http;
  http.connect_timeout = std::chrono::milliseconds(2000);
  http.request_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(a->scenario_.player.request_timeout_s * 1000));
  http.max_host_connections = (budget + clients - 1) / clients;
  http.max_host_transfers = http.max_host_connections;
  http.user_agent = "audience";
  http.ca_file = a->scenario_.ca_file;
  if (!http.ca_file.empty() && access(http.ca_file.c_str(), R_OK) != 0) {
    return core::Error{"bad_config", "ca_file " + http.ca_file + " cannot be read"};
  }
  // Thousands of transfers a second: libcurl's default-sized buffer, not the servers' 256 KiB.
  http.receive_buffer_bytes = 16 * 1024;
  // Every viewer keeps its connections as a player does (playlists to the balancer, segments
  // to its node): without a cache this large most requests would connect anew.
  http.max_cached_connections = std::min<long>(4L * http.max_host_connections, 65536);
  // Each viewer is a phone of its own: no TLS session from another viewer's connection.
  http.resume_tls_sessions = false;
  for (long i = 0; i < clients; ++i) {
    auto client = http::HttpClient::create(a->loop_.base(), http);
    if (!client) return client.error();
    a->clients_.push_back(std::move(client.value()));
  }
  std::vector<WindowSpec> windows;
  for (const auto& p : a->scenario_.phases) {
    if (p.action == Action::window) windows.push_back({p.name, p.at_s, p.until_s});
  }
  a->recorder_ = std::make_unique<Recorder>(a->scenario_.duration_s, std::move(windows),
                                            static_cast<uint32_t>(a->scenario_.seed));
  a->context_ = std::unique_ptr<PlayerContext>(new PlayerContext{
      a->loop_, a->clients_, a->scenario_, *a->recorder_, [raw = a.get()] { return raw->now(); },
      [] {
        return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
            .count();
      }});
  return a;
}

Audience::Audience(Scenario scenario, RunOptions options)
    : scenario_(std::move(scenario)),
      options_(std::move(options)),
      random_(static_cast<uint32_t>(scenario_.seed)) {}

Audience::~Audience() {
  for (auto& v : viewers_) v->leave();
  viewers_.clear();
  timers_.clear();
  ticker_.reset();
  lag_timer_.reset();
  for (pid_t pid : spawned_) {
    if (::kill(pid, 0) != 0) continue;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 50 && waitpid(pid, nullptr, WNOHANG) == 0; ++i) usleep(100'000);
    if (::kill(pid, 0) == 0) {
      ::kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  clients_.clear();
}

size_t Audience::in_flight() const {
  size_t n = 0;
  for (const auto& c : clients_) n += c->active();
  return n;
}

double Audience::now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

void Audience::schedule(double at_s, std::function<void()> job) {
  auto timer =
      std::make_unique<core::LoopTimer>(loop_, core::LoopTimer::Repeat::once, std::move(job));
  timer->start(std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, at_s - now()) * 1e6)));
  timers_.push_back(std::move(timer));
}

int Audience::run() {
  started_ = std::chrono::steady_clock::now();
  for (const auto& phase : scenario_.phases) {
    schedule(phase.at_s, [this, &phase] { start_phase(phase); });
  }
  ticker_ =
      std::make_unique<core::LoopTimer>(loop_, core::LoopTimer::Repeat::every, [this] { tick(); });
  ticker_->start(std::chrono::seconds(1));
  // The run's own health: how late a 100 ms timer fires says whether this loop kept up
  // (a late loop delays every player's requests, and its stalls would be the tool's).
  lag_timer_ = std::make_unique<core::LoopTimer>(loop_, core::LoopTimer::Repeat::once, [this] {
    recorder_->loop_lag(std::max(0.0, now() - lag_due_) * 1000);
    lag_due_ = now() + 0.1;
    if (!finished_) lag_timer_->start(std::chrono::milliseconds(100));
  });
  lag_due_ = now() + 0.1;
  lag_timer_->start(std::chrono::milliseconds(100));
  scrape_metrics();
  sample_processes();
  schedule(scenario_.duration_s, [this] { finish(); });
  loop_.run();
  return exit_status_;
}

void Audience::add_viewer(bool play) {
  // Viewers who signed in ahead arrive first, in the order they signed in.
  while (next_ahead_ < viewers_.size()) {
    Viewer& v = *viewers_[next_ahead_++];
    if (v.has_arrived() || v.phase() == Viewer::Phase::failed) continue;
    ++arrived_;
    v.arrive(play);
    return;
  }
  if (viewers_.size() >= scenario_.max_viewers) return;
  ++arrived_;
  const auto& caches = scenario_.player.caches;
  std::string cache = caches.empty() ? std::string() : caches[viewers_.size() % caches.size()];
  viewers_.push_back(std::make_unique<Viewer>(*context_, viewers_.size(), std::move(cache)));
  viewers_.back()->arrive(play);
  next_ahead_ = viewers_.size();
}

void Audience::add_signed_in_viewer() {
  if (viewers_.size() >= scenario_.max_viewers) return;
  const auto& caches = scenario_.player.caches;
  std::string cache = caches.empty() ? std::string() : caches[viewers_.size() % caches.size()];
  viewers_.push_back(std::make_unique<Viewer>(*context_, viewers_.size(), std::move(cache)));
  viewers_.back()->sign_in_ahead();
}

std::vector<Viewer*> Audience::pick(double share,
                                    const std::function<bool(const Viewer&)>& eligible) {
  std::vector<Viewer*> out;
  for (auto& v : viewers_) {
    if (eligible(*v)) out.push_back(v.get());
  }
  std::shuffle(out.begin(), out.end(), random_);
  out.resize(static_cast<size_t>(std::llround(share * static_cast<double>(out.size()))));
  return out;
}

void Audience::start_phase(const Phase& phase) {
  if (finished_) return;
  if (options_.progress) {
    std::fprintf(stderr, "audience: %.1f s: %s%s%s\n", now(),
                 std::string(action_name(phase.action)).c_str(), phase.process.empty() ? "" : " ",
                 phase.process.c_str());
  }
  switch (phase.action) {
    case Action::arrive:
      schedule_arrivals(phase);
      break;
    case Action::sign_in:
      for (uint64_t i = 0; i < phase.viewers; ++i) {
        const double at =
            phase.at_s + phase.over_s * static_cast<double>(i) / static_cast<double>(phase.viewers);
        schedule(at, [this] { add_signed_in_viewer(); });
      }
      break;
    case Action::kickoff:
      kick_off(phase);
      break;
    case Action::walk_out:
      for (Viewer* v : pick(phase.share, [](const Viewer& v) {
             return v.phase() == Viewer::Phase::playing && !v.walked_out();
           }))
        v->walk_out(phase.cache);
      break;
    case Action::walk_in:
      for (Viewer* v : pick(phase.share, [](const Viewer& v) {
             return v.walked_out() && v.phase() == Viewer::Phase::playing;
           }))
        v->walk_in();
      break;
    case Action::leave:
      schedule_leaving(phase);
      break;
    case Action::kill:
      if (pid_t pid = process_pid(phase.process); pid > 0) ::kill(pid, SIGKILL);
      break;
    case Action::restart:
      for (const auto& p : scenario_.processes) {
        if (p.name != phase.process) continue;
        if (pid_t pid = spawn(p.restart); pid > 0) pids_[p.name] = pid;
      }
      break;
    case Action::signal:
      signal_process(phase);
      break;
    case Action::overload:
      switch_overload(phase);
      break;
    case Action::run:
      run_command(phase.command, [](int) {});
      break;
    case Action::window:
      break;
  }
}

// `viewers` spread over `over_s`, or `rate_per_s` from `at_s` to `until_s`.
void Audience::schedule_arrivals(const Phase& phase) {
  uint64_t count = phase.viewers;
  double over = phase.over_s;
  if (!count) {
    over = phase.until_s - phase.at_s;
    count = static_cast<uint64_t>(std::floor(phase.rate_per_s * over));
  }
  for (uint64_t i = 0; i < count; ++i) {
    const double at =
        phase.at_s + (count > 1 ? over * static_cast<double>(i) / static_cast<double>(count) : 0);
    schedule(at, [this, play = phase.play] { add_viewer(play); });
  }
}

// Viewers who arrived without pressing play press it, at random within `over_s`.
void Audience::kick_off(const Phase& phase) {
  auto chosen = pick(1.0, [](const Viewer& v) {
    return v.has_arrived() && !v.play_pressed() && v.phase() != Viewer::Phase::left &&
           v.phase() != Viewer::Phase::failed;
  });
  if (phase.viewers && chosen.size() > phase.viewers) chosen.resize(phase.viewers);
  std::uniform_real_distribution<double> within(0, phase.over_s);
  for (Viewer* v : chosen) schedule(now() + within(random_), [v] { v->press_play(); });
}

void Audience::schedule_leaving(const Phase& phase) {
  // Spread over `over_s` when given: an audience leaves one by one, not on one beat.
  std::uniform_real_distribution<double> within(0, phase.over_s);
  for (Viewer* v :
       pick(phase.share, [](const Viewer& v) { return v.phase() == Viewer::Phase::playing; })) {
    if (phase.over_s <= 0) {
      v->leave();
    } else {
      schedule(now() + within(random_), [v] { v->leave(); });
    }
  }
}

// The signal to the process now, or once `command` has run.
void Audience::signal_process(const Phase& phase) {
  auto deliver = [this, name = phase.process, sig = phase.signal](int) {
    if (pid_t pid = process_pid(name); pid > 0) ::kill(pid, sig);
  };
  if (phase.command.empty()) {
    deliver(0);
  } else {
    run_command(phase.command, deliver);
  }
}

// The balancer's overload switch on or off; a refusal is fatal to the run.
void Audience::switch_overload(const Phase& phase) {
  http::FetchRequest r;
  r.url = scenario_.balancer + "/access_queue_switch?state=" + (phase.on ? "on" : "off");
  if (!scenario_.operator_key.empty()) r.headers = {{"X-Operator-Key", scenario_.operator_key}};
  clients_.front()->fetch(
      std::move(r), {nullptr, nullptr, [this, on = phase.on](const http::FetchResult& result) {
                       if (!result.ok || result.status != 200) {
                         std::fprintf(stderr, "audience: overload switch %s answered %d %s\n",
                                      on ? "on" : "off", result.status, result.error.c_str());
                         recorder_->fatal("overload_switch_failed");
                       }
                     }});
}

pid_t Audience::process_pid(const std::string& name) {
  if (auto it = pids_.find(name); it != pids_.end()) return it->second;
  for (const auto& p : scenario_.processes) {
    if (p.name != name) continue;
    if (p.pid > 0) return pids_[name] = static_cast<pid_t>(p.pid);
    if (!p.pid_file.empty()) {
      std::ifstream in(p.pid_file);
      long pid = 0;
      if (in >> pid && pid > 0) return pids_[name] = static_cast<pid_t>(pid);
    }
  }
  return 0;
}

pid_t Audience::spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], nullptr, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::fprintf(stderr, "audience: cannot run %s\n", argv[0].c_str());
    recorder_->fatal("command_failed");
    return 0;
  }
  spawned_.push_back(pid);
  return pid;
}

void Audience::run_command(const std::vector<std::string>& argv, std::function<void(int)> done) {
  const pid_t pid = spawn(argv);
  if (pid <= 0) return;
  // Polled, so the loop never blocks on a child; bounded at a minute. The timer stays in
  // timers_ (one per command phase) until the run ends.
  auto polls = std::make_shared<int>(0);
  auto poll = std::make_shared<std::function<void()>>();
  timers_.push_back(std::make_unique<core::LoopTimer>(loop_, core::LoopTimer::Repeat::every,
                                                      [poll] { (*poll)(); }));
  core::LoopTimer* timer = timers_.back().get();
  *poll = [this, pid, polls, timer, done] {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == 0 && ++*polls < 600) return;
    if (r == 0) ::kill(pid, SIGKILL);
    const int code = r == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0) {
      std::fprintf(stderr, "audience: command %d ended with %d\n", static_cast<int>(pid), code);
      recorder_->fatal("command_failed");
    }
    spawned_.erase(std::remove(spawned_.begin(), spawned_.end(), pid), spawned_.end());
    timer->cancel();
    done(code);
  };
  timer->start(std::chrono::milliseconds(100));
}

void Audience::sample_processes() {
  const double t = now();
  std::vector<std::pair<std::string, pid_t>> watched = {{"audience", getpid()}};
  for (const auto& p : scenario_.processes) watched.emplace_back(p.name, process_pid(p.name));
  for (const auto& [name, pid] : watched) {
    if (pid > 0 && std::find(spawned_.begin(), spawned_.end(), pid) != spawned_.end())
      waitpid(pid, nullptr, WNOHANG);
    ProcReading r = pid > 0 ? read_proc(pid) : ProcReading{};
    ProcessSample sample;
    sample.at_s = t;
    sample.alive = r.alive;
    sample.rss_mib = r.rss_mib;
    auto& last = cpu_[name];
    if (r.alive && last.at_s > 0 && t > last.at_s && r.cpu_s >= last.cpu_s) {
      sample.cpu_percent = 100 * (r.cpu_s - last.cpu_s) / (t - last.at_s);
    }
    last = {t, r.cpu_s};
    recorder_->process_sample(name, sample);
  }
}

void Audience::scrape_metrics() {
  for (const auto& source : scenario_.metrics) {
    http::FetchRequest r;
    r.url = source.url;
    auto body = std::make_shared<std::string>();
    ++scrapes_in_flight_;
    clients_.front()->fetch(std::move(r),
                            {nullptr,
                             [body](std::string_view data) {
                               if (body->size() < 8 * 1024 * 1024) body->append(data);
                             },
                             [this, body, name = source.name,
                              metric = source.origin_fetches](const http::FetchResult& result) {
                               --scrapes_in_flight_;
                               if (!result.ok || result.status != 200) return;
                               if (auto sum = metric_sum(*body, metric))
                                 recorder_->origin_fetches(name, *sum);
                             }});
  }
}

void Audience::tick() {
  if (finished_) return;
  const double t = now();
  uint64_t playing = 0, queued = 0, stalled = 0;
  for (auto& v : viewers_) {
    v->sample(t);
    if (v->phase() == Viewer::Phase::playing) ++playing;
    if (v->phase() == Viewer::Phase::queued) ++queued;
    if (v->phase() == Viewer::Phase::playing && v->stalled()) ++stalled;
  }
  recorder_->tick(t, arrived_, playing, queued, stalled);
  sample_processes();
  if (static_cast<int64_t>(t) % 2 == 0) scrape_metrics();
  if (options_.progress) {
    std::fprintf(stderr,
                 "audience: %5.0f s  viewers %llu  playing %llu  queued %llu  stalled %llu  stalls "
                 "%llu  failed requests %llu  in flight %zu\n",
                 t, static_cast<unsigned long long>(arrived_),
                 static_cast<unsigned long long>(playing), static_cast<unsigned long long>(queued),
                 static_cast<unsigned long long>(stalled),
                 static_cast<unsigned long long>(recorder_->stalls_so_far()),
                 static_cast<unsigned long long>(recorder_->errors()), in_flight());
  }
}

void Audience::finish() {
  if (finished_) return;
  tick();
  finished_ = true;
  ticker_->cancel();
  const double t = now();
  for (auto& v : viewers_) {
    v->finish(t);
    v->leave();
  }
  scrape_metrics();
  // The last scrape is waited for, briefly (a killed node never answers).
  auto waited = std::make_shared<int>(0);
  ticker_ =
      std::make_unique<core::LoopTimer>(loop_, core::LoopTimer::Repeat::every, [this, waited, t] {
        if (scrapes_in_flight_ > 0 && ++*waited < 30) return;
        ticker_->cancel();
        const std::string json = recorder_->json(scenario_.name, t);
        if (options_.json_path.empty()) {
          std::fwrite(json.data(), 1, json.size(), stdout);
          std::fflush(stdout);
        } else if (!write_text(options_.json_path, json)) {
          std::fprintf(stderr, "audience: cannot write %s\n", options_.json_path.c_str());
          exit_status_ = 1;
        }
        if (!options_.html_path.empty() &&
            !write_text(options_.html_path, recorder_->html(scenario_.name, t))) {
          std::fprintf(stderr, "audience: cannot write %s\n", options_.html_path.c_str());
          exit_status_ = 1;
        }
        loop_.stop();
      });
  ticker_->start(std::chrono::milliseconds(100));
}

}  // namespace audience
