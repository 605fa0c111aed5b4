// Where a PostgreSQL store is and how long to wait for it: what a config names, without libpq,
// so a program's config (api/api.h) carries it without the client (pg_client.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace stores {

struct PgOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 5432;
  std::string dbname = "balancer";
  std::string user = "balancer";
  std::string password;
  std::chrono::milliseconds timeout{2000};  // connect and per-query deadline

  bool operator==(const PgOptions&) const = default;
};

}  // namespace stores
