// audience: plays a simulated crowd of HLS players against a deployment, by URL, on the
// timeline of a scenario file, and writes a JSON result and an HTML report
// (docs/operations.md § Rehearsing a venue). Wiring only.
#include <curl/curl.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "audience/audience.h"
#include "audience/scenario.h"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: audience SCENARIO.json [--json FILE] [--html FILE] [--set key=value]... "
               "[--quiet] [--check]\n"
               "  --json FILE   the result as JSON (default: stdout)\n"
               "  --html FILE   a self-contained HTML report\n"
               "  --set k=v     overrides a scenario key (dotted path), as the servers' --set\n"
               "  --quiet       no progress lines on stderr\n"
               "  --check       validates the scenario and exits\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string scenario_path;
  std::vector<std::string> overrides;
  audience::RunOptions options;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--json" || a == "--html" || a == "--set") && i + 1 < argc) {
      const std::string value = argv[++i];
      if (a == "--json") options.json_path = value;
      if (a == "--html") options.html_path = value;
      if (a == "--set") overrides.push_back(value);
    } else if (a == "--quiet") {
      options.progress = false;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (scenario_path.empty() && !a.empty() && a[0] != '-') {
      scenario_path = a;
    } else {
      usage();
      return 2;
    }
  }
  if (scenario_path.empty()) {
    usage();
    return 2;
  }
  auto scenario = audience::load_scenario(scenario_path, overrides);
  if (!scenario) {
    std::fprintf(stderr, "audience: %s\n", scenario.error().message.c_str());
    return 2;
  }
  if (check) {
    std::fprintf(
        stderr, "audience: %s is valid (%llu viewers planned over %.0f s)\n", scenario_path.c_str(),
        static_cast<unsigned long long>(scenario->planned_viewers()), scenario->duration_s);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  // Thousands of players keep thousands of connections: the soft descriptor limit goes up
  // to the hard one.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto run = audience::Audience::create(std::move(scenario.value()), options);
  if (!run) {
    std::fprintf(stderr, "audience: %s\n", run.error().message.c_str());
    return 1;
  }
  const int status = run.value()->run();
  run.value().reset();
  curl_global_cleanup();
  return status;
}
