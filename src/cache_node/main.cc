// cache_node: the service host runs the node (config, loops, signals, reload).
#include "cache_node/cache_node.h"
#include "http/server/service_host.h"

int main(int argc, char** argv) {
  http::ServiceSpec<cache_node::CacheNodeConfig> spec;
  spec.name = "cache_node";
  spec.default_config = "conf/cache_node.json";
  spec.load =
      [](const std::string& path,
         const std::vector<std::string>& overrides) -> core::Result<cache_node::CacheNodeConfig> {
    auto doc = core::ConfigDocument::load(path, overrides);
    if (!doc) return doc.error();
    return cache_node::load_cache_node_config(*doc);
  };
  spec.summary = [](const cache_node::CacheNodeConfig& c) {
    return "node " + c.node_id + ", " + std::to_string(c.origins.size()) + " origin(s)";
  };
  spec.server = [](const cache_node::CacheNodeConfig& c) -> const http::HttpServerOptions& {
    return c.server;
  };
  spec.create = http::create_service<cache_node::CacheNode, cache_node::CacheNodeConfig>;
  return http::run_service(argc, argv, spec);
}
