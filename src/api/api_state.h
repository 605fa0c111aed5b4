// Inside the API (not a public header): what every loop's handlers share.
#pragma once

#include <atomic>
#include <memory>

#include "api/account_store.h"
#include "api/api.h"
#include "api/login_limiter.h"
#include "common/event_loop.h"
#include "common/http_exchange.h"
#include "common/metrics.h"
#include "common/worker.h"

namespace api {

struct Api::State {
  State(common::ServiceContext& c, const ApiConfig& config);

  // Loop thread: the handlers (auth_endpoints.cc).
  void handle_login(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_logout(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_session(common::EventLoop& loop, common::HttpExchange& ex);

  common::ServiceContext& context;
  const common::Clock& clock;
  common::Published<ApiConfig> config;  // any loop reads; the home loop publishes on reload
  LoginLimiter limiter;
  std::unique_ptr<AccountStore> store;  // null when api.data_dir is empty
  std::atomic<size_t> kdf_pending{0};   // password checks queued or running
  std::unique_ptr<common::WorkerThread> kdf;  // password hashing, off the loops

  common::Counter& logins_ok;
  common::Counter& logins_rejected;
  common::Counter& logins_limited;
  common::Counter& logins_busy;
  common::Counter& store_errors;
};

}  // namespace api
