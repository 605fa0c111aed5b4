// Thundering herd: N clients GET one URL at the same instant, each on its own
// connection (libcurl multi, one thread), measuring when each one's bytes arrive.
// Used by tests (request coalescing, read-while-writer) and by scripts/bench.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/http_client.h"

namespace balancer::test {

struct HerdOptions {
  std::string url;  // use an IP literal: a host name costs a resolver thread per client
  int clients = 100;
  HttpHeaders headers;
  std::chrono::milliseconds timeout{30'000};  // per client, whole transfer
  bool forbid_reuse = true;                   // close each connection when its transfer ends
  bool keep_bodies = false;                   // else only size and hash are kept
  std::optional<size_t> expect_size;          // another body size makes that client an error
  std::optional<uint64_t> expect_hash;        // another body_hash() makes that client an error
  // With forbid_reuse off: after the last transfer, the connections stay open (idle) this
  // long before run_herd returns, and `on_holding` is called as the hold begins (the
  // memory benchmark measures a server holding N idle keep-alive connections).
  std::chrono::milliseconds hold{0};
  std::function<void(size_t answered_clients)> on_holding;
};

struct HerdClient {
  long status = 0;    // 0 when no response arrived
  std::string error;  // "" when the transfer succeeded with a 2xx (and expected size, hash)
  // Milliseconds from the common start instant; -1 when it never happened.
  double headers_ms = -1;     // first response byte
  double first_byte_ms = -1;  // first body byte
  double total_ms = -1;       // transfer finished (or failed)
  size_t body_size = 0;
  uint64_t body_hash = 0;  // BodyHasher over the body (support/generated_body.h)
  std::string body;        // only with keep_bodies

  bool ok() const { return error.empty(); }
};

// Nearest-rank percentiles; all zero when count == 0.
struct Percentiles {
  size_t count = 0;
  double p50 = 0;
  double p95 = 0;
  double p99 = 0;
  double max = 0;
};
Percentiles percentiles(std::vector<double> values);

struct HerdResult {
  std::vector<HerdClient> clients;  // one per client, in start order
  double wall_ms = 0;               // start instant to last transfer finished
  std::string setup_error;          // non-empty when the herd could not run at all

  size_t ok_count() const;
  size_t error_count() const { return clients.size() - ok_count(); }
  Percentiles first_byte_ms() const;               // over ok clients
  Percentiles total_ms() const;                    // over ok clients
  std::map<uint64_t, size_t> hash_counts() const;  // body hash → clients, ok clients only
  std::map<long, size_t> status_counts() const;    // every client; 0 = no response
  // {"url","n","ok","errors","statuses","first_byte_ms":{p50,p95,p99,max},
  //  "total_ms":{p50,p95,p99,max},"distinct_hashes","body_sizes","wall_ms","error_samples"}
  std::string summary_json(const std::string& url) const;
};

// Runs the herd and blocks until every client finished or timed out. Raises the
// RLIMIT_NOFILE soft limit to the hard limit first. Any thread may call it.
HerdResult run_herd(const HerdOptions& options);

// For a URL whose path contains /gen/<size>/<name> (test_origin's generated bodies,
// possibly behind a cache prefix like /o/demo): the size and the name. nullopt otherwise.
std::optional<std::pair<size_t, std::string>> generated_target(std::string_view url);

// Sets the RLIMIT_NOFILE soft limit to the hard limit; returns the new soft limit.
size_t raise_open_file_limit();

}  // namespace balancer::test
