// The balancer: serves each viewer a rewritten copy of a channel's HLS playlists
// (DESIGN.md flows 1, 2 and 6). Source playlists are fetched from the channel's
// origin once for all viewers and cached by kind; chunk links lead to the
// nearest usable cache node (signed) or to origin; key links lead back to the
// balancer, which serves keys only to entitled viewers. Admits viewers under the
// stream and traffic limits with a waiting queue (flow 4, the admission component:
// admission/admission.h) and answers the app's access check. Also /health, /metrics, the operator's
// overload switch and /admin/status, reload on SIGHUP, graceful drain.
//
// The config structs and their readers: balancer_config.h. URL scheme, config
// reference, cache choice and freshness: docs/balancer.md;
// admission, its endpoints and JSON shapes: docs/admission.md.
// Runs on the service host's loops (docs/architecture.md, "Threads").
#pragma once

#include <cstddef>
#include <memory>

#include "balancer/operator/balancer_config.h"
#include "core/result.h"
#include "http/server/http_server.h"
#include "http/server/service_host.h"

namespace balancer {

// The balancer service: process-wide parts split by thread rule (Shared, in
// balancer_loop.h) plus one set of handlers per event loop. Created on the
// main thread by the service host (http/server/service_host.h), which runs the loops.
class Balancer : public http::Service<BalancerConfig> {
 public:
  // Starts health polling. Fails with "bad_config" (keys that passed parsing but
  // cannot be used).
  static core::Result<std::unique_ptr<Balancer>> create(http::ServiceContext& context,
                                                        const BalancerConfig& config);
  ~Balancer() override;

  void attach(size_t index, http::HttpServer& server) override;
  // Home loop. Validates a freshly loaded config and builds its snapshot
  // (signer, tickets) without touching running state; the returned swap then
  // applies channels, caches, origins, keys, timings, admission limits, operator
  // key and log level, and cannot fail. Admitted viewers keep their slots under
  // lowered limits. Listen address, threads and server limits change only on
  // restart. An error leaves everything running as it was.
  core::Result<http::ReloadSwap> prepare_reload(BalancerConfig fresh) override;
  void stop_background() override;

  struct Shared;

 private:
  explicit Balancer(std::unique_ptr<Shared> shared);
  std::unique_ptr<Shared> shared_;
};

}  // namespace balancer
