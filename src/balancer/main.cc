// balancer: the service host runs the balancer (config, loops, signals, reload);
// `balancer user ...` manages the REST API's accounts instead.
#include <cstring>

#include "api/api.h"
#include "balancer/balancer.h"
#include "http/server/service_host.h"

int main(int argc, char** argv) {
  const char* kDefaultConfig = "conf/balancer.json";
  if (argc >= 2 && std::strcmp(argv[1], "user") == 0) {
    return api::run_user_command(
        std::vector<std::string>(argv + 2, argv + argc), kDefaultConfig,
        [](const std::string& path,
           const std::vector<std::string>& overrides) -> core::Result<api::ApiConfig> {
          auto c = balancer::load_balancer_config(path, overrides);
          if (!c) return c.error();
          return c->api;
        });
  }
  http::ServiceSpec<balancer::BalancerConfig> spec;
  spec.name = "balancer";
  spec.default_config = kDefaultConfig;
  spec.load = balancer::load_balancer_config;
  spec.summary = [](const balancer::BalancerConfig& c) {
    std::string admission = c.admission_backend == "redis"
                                ? ", admission on Redis " + c.admission_redis.host + ":" +
                                      std::to_string(c.admission_redis.port)
                                : ", admission in this process";
    return std::to_string(c.channels.size()) + " channel(s), " + std::to_string(c.caches.size()) +
           " cache node(s)" + admission;
  };
  spec.server = [](const balancer::BalancerConfig& c) -> const http::HttpServerOptions& {
    return c.server;
  };
  spec.create = http::create_service<balancer::Balancer, balancer::BalancerConfig>;
  return http::run_service(argc, argv, spec);
}
