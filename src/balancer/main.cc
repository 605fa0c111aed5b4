// balancer: the service host runs the balancer (config, loops, signals, reload).
#include "balancer/balancer.h"
#include "common/service_host.h"

int main(int argc, char** argv) {
  common::ServiceSpec<balancer::BalancerConfig> spec;
  spec.name = "balancer";
  spec.default_config = "conf/balancer.json";
  spec.load = balancer::load_balancer_config;
  spec.summary = [](const balancer::BalancerConfig& c) {
    return std::to_string(c.channels.size()) + " channel(s), " + std::to_string(c.caches.size()) + " cache node(s)";
  };
  spec.server = [](const balancer::BalancerConfig& c) -> const common::HttpServerOptions& { return c.server; };
  spec.create = [](common::ServiceContext& context, const balancer::BalancerConfig& c)
      -> common::Result<std::unique_ptr<common::Service<balancer::BalancerConfig>>> {
    auto created = balancer::Balancer::create(context, c);
    if (!created) return created.error();
    return std::unique_ptr<common::Service<balancer::BalancerConfig>>(std::move(created).value());
  };
  return common::run_service(argc, argv, spec);
}
