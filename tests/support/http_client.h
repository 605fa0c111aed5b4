// Blocking HTTP client for TESTS ONLY (libcurl easy interface, one transfer per call,
// no connection reuse between calls). Any thread may call these functions.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace balancer::test {

// Header fields in the order sent or received; names keep their case.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::chrono::milliseconds kDefaultHttpTimeout{10'000};

struct HttpResponse {
  long status = 0;      // 0 when no response arrived
  HttpHeaders headers;  // of the final response (not of 1xx / earlier ones)
  std::string body;
  std::string error;  // curl's message when the transfer failed, else ""
  int curl_code = 0;  // CURLcode of the transfer (0 = CURLE_OK)
  // From the start of the call: until the first response byte (status line), until
  // the first body byte (-1 when no body byte arrived), until the transfer ended.
  std::chrono::microseconds first_byte{-1};
  std::chrono::microseconds first_body_byte{-1};
  std::chrono::microseconds total{0};

  long http_version = 0;  // 10, 11 for HTTP/1.0, 1.1; 20 for HTTP/2 (0 when unknown)

  bool ok() const { return error.empty(); }
  // First value of the header `name` (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
  // Every value of the header `name` (case-insensitive), in order.
  std::vector<std::string> header_values(std::string_view name) const;
};

struct HttpRequest {
  std::string method = "GET";  // HEAD sends no body and reads none
  std::string url;
  HttpHeaders headers;
  std::string body;  // sent when non-empty (or when method is POST/PUT)
  std::chrono::milliseconds timeout = kDefaultHttpTimeout;  // whole transfer
  bool path_as_is = false;  // send "/../" and "/./" unnormalised (traversal tests)
  // https: the only CA trusted (e.g. a test's self-signed certificate); empty = system CAs.
  std::string ca_file;
  // http1_0: the server closes after the reply (no keep-alive asked for).
  enum class Version {
    http1_0,
    http1_1,
    http2_tls,
    http2_prior_knowledge
  } version = Version::http1_1;
  long max_recv_bytes_per_s = 0;  // > 0: read the body no faster (a slow viewer)
  // https: offer TLS 1.2 only, with exactly these OpenSSL cipher names (empty = curl's defaults).
  std::string tls12_ciphers;
  // Local address the connection comes from (e.g. "127.0.0.23": every 127/8 address
  // reaches a server on 127.0.0.1), so a test can be many clients; empty = the default.
  std::string source_address;
  // When set, the body bytes received so far (another thread may watch it).
  std::atomic<uint64_t>* body_progress = nullptr;
  // https: when set, the length of every TLS record of application data received (the
  // record's own length field: ciphertext), in order; handshake messages are left out.
  std::vector<size_t>* tls_records_received = nullptr;
};

// Performs one request; never throws for transfer errors (see HttpResponse::error).
HttpResponse http_request(const HttpRequest& request);

HttpResponse http_request(std::string_view method, std::string_view url,
                          const HttpHeaders& headers = {}, std::string_view body = {},
                          std::chrono::milliseconds timeout = kDefaultHttpTimeout);

HttpResponse http_get(std::string_view url, const HttpHeaders& headers = {},
                      std::chrono::milliseconds timeout = kDefaultHttpTimeout);

// "http://127.0.0.1:<port>" + path (path starts with '/').
std::string local_url(int port, std::string_view path);

// Case-insensitive ASCII comparison of header names.
bool header_name_equal(std::string_view a, std::string_view b);

}  // namespace balancer::test
