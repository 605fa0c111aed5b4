// cache_node: wires config, event loop, signals and the node together.
#include <event2/event.h>

#include <iostream>

#include "cache_node/cache_node.h"
#include "common/config.h"
#include "common/handles.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/signals.h"

int main(int argc, char** argv) {
  auto cli = common::parse_command_line(argc, argv, "conf/cache_node.json");
  if (!cli || cli->help) {
    if (!cli) std::cerr << "cache_node: " << cli.error().message << "\n";
    std::cerr << "usage: cache_node [--config FILE] [--check-config] [--set key=value]...\n";
    return cli ? 0 : 2;
  }
  auto load = [&]() -> common::Result<cache_node::CacheNodeConfig> {
    auto doc = common::ConfigDocument::load(cli->config_path, cli->overrides);
    if (!doc) return doc.error();
    return cache_node::load_cache_node_config(*doc);
  };
  auto config = load();
  if (!config) {
    std::cerr << "cache_node: bad config: " << config.error().message << "\n";
    return 2;
  }
  if (cli->check_config) {
    std::cout << "cache_node: " << cli->config_path << ": config ok\n";
    return 0;
  }
  common::EventBasePtr base(event_base_new());
  auto node = cache_node::CacheNode::create(*base, std::move(config).value());
  if (!node) {
    std::cerr << "cache_node: cannot start: " << node.error().message << "\n";
    return 1;
  }
  common::SignalHandlers signals(
      *base,
      [&] {
        LOG_INFO("cache_node", "shutting down: draining connections");
        (*node)->drain([&] { event_base_loopexit(base.get(), nullptr); });
      },
      [&] {
        auto fresh = load();
        if (!fresh) {
          LOG_ERROR("cache_node", "reload rejected, keeping the running config: ", fresh.error().message);
          return;
        }
        (*node)->reload(std::move(fresh).value());
      });
  common::announce_listening("cache_node", (*node)->port());
  event_base_dispatch(base.get());
  LOG_INFO("cache_node", "stopped");
  return 0;
}
