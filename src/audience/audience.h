// The rehearsal driver: plays a Scenario against a deployment on one event loop. It creates
// the viewers as the arrive phases say, applies each phase at its time (kickoff, walk-out and
// walk-in, leave, kill -9 and restart of named processes, signals, the overload switch,
// commands), samples CPU and RSS of the named processes and the origin-fetch counters of the
// metrics sources, prints progress, and at the end writes the JSON result and the HTML
// report. Loop thread only, except run() which runs the loop on the calling thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "audience/recorder.h"
#include "audience/scenario.h"
#include "audience/viewer.h"
#include "core/event_loop.h"
#include "http/client/http_client.h"

namespace audience {

struct RunOptions {
  std::string json_path;  // "" = stdout
  std::string html_path;  // "" = none
  bool progress = true;   // a line a second on stderr
};

class Audience {
 public:
  // Fails when the HTTP client cannot be created.
  static core::Result<std::unique_ptr<Audience>> create(Scenario scenario, RunOptions options);
  ~Audience();

  // Runs the scenario to its end; returns the process exit status (0: the run completed and
  // the outputs were written; 1: an output could not be written).
  int run();

  const Recorder& recorder() const { return *recorder_; }

 private:
  Audience(Scenario scenario, RunOptions options);
  double now() const;
  size_t in_flight() const;  // transfers started and not done, every client
  void tick();
  void start_phase(const Phase& phase);
  // The phases that need more than a line of start_phase.
  void schedule_arrivals(const Phase& phase);
  void kick_off(const Phase& phase);
  void schedule_leaving(const Phase& phase);
  void signal_process(const Phase& phase);
  void switch_overload(const Phase& phase);
  void add_viewer(bool play);
  void add_signed_in_viewer();
  void schedule(double at_s, std::function<void()> job);
  void sample_processes();
  void scrape_metrics();
  void finish();
  pid_t process_pid(const std::string& name);
  pid_t spawn(const std::vector<std::string>& argv);
  void run_command(const std::vector<std::string>& argv, std::function<void(int)> done);
  std::vector<Viewer*> pick(double share, const std::function<bool(const Viewer&)>& eligible);

  Scenario scenario_;
  RunOptions options_;
  core::EventLoop loop_{0};
  std::vector<std::unique_ptr<http::HttpClient>> clients_;  // viewer n uses n % size()
  std::unique_ptr<Recorder> recorder_;
  std::unique_ptr<PlayerContext> context_;
  std::vector<std::unique_ptr<Viewer>> viewers_;
  size_t next_ahead_ = 0;  // the first viewer that may have signed in ahead and not arrived
  uint64_t arrived_ = 0;
  std::vector<std::unique_ptr<core::LoopTimer>> timers_;  // one-shot jobs on the timeline
  std::unique_ptr<core::LoopTimer> ticker_;
  std::unique_ptr<core::LoopTimer> lag_timer_;
  double lag_due_ = 0;
  std::mt19937 random_;
  std::chrono::steady_clock::time_point started_;
  std::map<std::string, pid_t> pids_;
  std::vector<pid_t> spawned_;  // stopped at the end if still running
  struct CpuReading {
    double at_s = 0;
    double cpu_s = 0;
  };
  std::map<std::string, CpuReading> cpu_;
  uint64_t scrapes_in_flight_ = 0;
  bool finished_ = false;
  int exit_status_ = 0;
};

}  // namespace audience
