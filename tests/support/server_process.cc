#include "support/server_process.h"

#include <doctest/doctest.h>
#include <signal.h>

namespace balancer::test {

std::optional<double> metric_value(const std::string& metrics, const std::string& series) {
  size_t pos = 0;
  while ((pos = metrics.find(series + " ", pos)) != std::string::npos) {
    if (pos == 0 || metrics[pos - 1] == '\n') {
      return std::stod(metrics.substr(pos + series.size() + 1));
    }
    pos += series.size();
  }
  return std::nullopt;
}

double metric_sum(const std::string& metrics, const std::string& name) {
  double sum = 0;
  size_t line = 0;
  for (int lines = 0; line < metrics.size() && lines < 1'000'000; ++lines) {
    const size_t end = std::min(metrics.find('\n', line), metrics.size());
    const std::string_view text(metrics.data() + line, end - line);
    if (text.starts_with(name) && text.size() > name.size() &&
        (text[name.size()] == '{' || text[name.size()] == ' ')) {
      sum += std::stod(std::string(text.substr(text.rfind(' ') + 1)));
    }
    line = end + 1;
  }
  return sum;
}

ServerProcess::ServerProcess(std::string binary, std::string main_config,
                             std::vector<std::string> overrides)
    : binary_(std::move(binary)),
      main_config_(std::move(main_config)),
      overrides_(std::move(overrides)) {}

void ServerProcess::start() {
  std::vector<std::string> argv = {binary_path(binary_), "--config", main_config_};
  if (!servers_sanitizer().empty()) {
    // Servers built with a sanitizer run many times slower: under ThreadSanitizer the fetch
    // loop's parse of a 160,000-segment playlist outlasted the watchdog's 10 s, which ended the
    // process. Their watchdog waits 2 minutes (a test of the watchdog sets its own bound after).
    argv.insert(argv.end(), {"--set", "server.watchdog_s=120"});
  }
  for (const auto& settings : {fixture_settings(), overrides_}) {
    for (const auto& s : settings) {
      argv.push_back("--set");
      argv.push_back(s);
    }
  }
  for (auto& a : threads_args()) argv.push_back(a);
  process_ = std::make_unique<ChildProcess>();
  std::string error;
  REQUIRE_MESSAGE(process_->start(argv, {}, {}, &error), error);
  port_ = process_->wait_for_listening_port(deadline_in(std::chrono::seconds(10)), &tls_port_);
  REQUIRE_MESSAGE(port_ > 0, process_->stderr_text());
}

void ServerProcess::stop() {
  process_->terminate();
  REQUIRE(process_->wait_exit(deadline_in(std::chrono::seconds(15))).has_value());
}

HttpResponse ServerProcess::get_ok(const std::string& target) const {
  HttpResponse response = get(target);
  INFO(target << " answered " << response.status << ": " << response.body);
  REQUIRE(response.status == 200);
  return response;
}

bool ServerProcess::reload(const std::string& result) const {
  const std::string series = binary_ + "_config_reloads_total{result=\"" + result + "\"}";
  const double before = metric(series);
  ::kill(pid(), SIGHUP);
  return wait_until([&] { return metric(series) > before; }, std::chrono::seconds(5));
}

void ServerProcess::kill_hard() {
  process_->kill();
  REQUIRE(process_->wait_exit(deadline_in(std::chrono::seconds(10))).has_value());
}

}  // namespace balancer::test
