// balancer: wires config, event loop, signals and the balancer together.
#include <event2/event.h>

#include <iostream>

#include "balancer/balancer.h"
#include "common/config.h"
#include "common/handles.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/signals.h"

int main(int argc, char** argv) {
  auto cli = common::parse_command_line(argc, argv, "conf/balancer.json");
  if (!cli || cli->help) {
    if (!cli) std::cerr << "balancer: " << cli.error().message << "\n";
    std::cerr << "usage: balancer [--config FILE] [--check-config] [--set key=value]...\n";
    return cli ? 0 : 2;
  }
  auto load = [&] { return balancer::load_balancer_config(cli->config_path, cli->overrides); };
  auto config = load();
  if (!config) {
    std::cerr << "balancer: bad config: " << config.error().message << "\n";
    return 2;
  }
  if (cli->check_config) {
    std::cout << "balancer: " << cli->config_path << ": config ok (" << config->channels.size()
              << " channel(s), " << config->caches.size() << " cache node(s))\n";
    return 0;
  }
  common::EventBasePtr base(event_base_new());
  auto node = balancer::Balancer::create(*base, std::move(config).value());
  if (!node) {
    std::cerr << "balancer: cannot start: " << node.error().message << "\n";
    return 1;
  }
  common::SignalHandlers signals(
      *base,
      [&] {
        LOG_INFO("balancer", "shutting down: draining connections");
        (*node)->drain([&] { event_base_loopexit(base.get(), nullptr); });
      },
      [&] { (*node)->reload(load()); });
  common::announce_listening("balancer", (*node)->port());
  event_base_dispatch(base.get());
  LOG_INFO("balancer", "stopped");
  return 0;
}
