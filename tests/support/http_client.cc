#include "support/http_client.h"

#include <openssl/ssl.h>

#include <cctype>

#include "support/curl_util.h"

namespace balancer::test {

namespace curl {
namespace {

// curl_global_init once per process (thread-safe); true when libcurl is usable.
bool global_init() {
  static const bool ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  return ok;
}

bool append_header(SlistPtr& list, const char* line) {
  curl_slist* grown = curl_slist_append(list.get(), line);
  if (grown == nullptr) return false;
  (void)list.release();  // curl_slist_append returns the same head (or a new one if empty)
  list.reset(grown);
  return true;
}

// `init()` after curl_global_init; on failure null, and `error` names the call that failed.
template <class Ptr, class Init>
Ptr new_handle(Init init, const char* init_name, std::string& error) {
  if (!global_init()) {
    error = "curl_global_init failed";
    return nullptr;
  }
  Ptr handle(init());
  if (!handle) error = std::string(init_name) + " failed";
  return handle;
}

}  // namespace

EasyPtr new_easy(std::string& error) {
  return new_handle<EasyPtr>(curl_easy_init, "curl_easy_init", error);
}

MultiPtr new_multi(std::string& error) {
  return new_handle<MultiPtr>(curl_multi_init, "curl_multi_init", error);
}

SlistPtr request_headers(const HttpHeaders& headers, std::string& error) {
  SlistPtr list;
  bool ok = append_header(list, "Expect:");
  for (const auto& [k, v] : headers) {
    const std::string line = v.empty() ? k + ";" : k + ": " + v;
    ok = ok && append_header(list, line.c_str());
  }
  if (ok) return list;
  error = "curl_slist_append failed";
  return nullptr;
}

}  // namespace curl

bool header_name_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (header_name_equal(k, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> HttpResponse::header_values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (header_name_equal(k, name)) out.push_back(v);
  }
  return out;
}

namespace {

using Micros = std::chrono::microseconds;

struct Context {
  std::chrono::steady_clock::time_point start;
  HttpResponse* response;
  std::atomic<uint64_t>* progress = nullptr;
};

Micros since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<Micros>(std::chrono::steady_clock::now() - start);
}

size_t on_header(char* data, size_t size, size_t count, void* arg) {
  auto* ctx = static_cast<Context*>(arg);
  const size_t n = size * count;
  std::string_view line(data, n);
  if (ctx->response->first_byte.count() < 0) ctx->response->first_byte = since(ctx->start);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.rfind("HTTP/", 0) == 0) {
    ctx->response->headers.clear();  // a new (final or interim) response starts
    return n;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  ctx->response->headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  return n;
}

size_t on_body(char* data, size_t size, size_t count, void* arg) {
  auto* ctx = static_cast<Context*>(arg);
  const size_t n = size * count;
  if (n > 0 && ctx->response->first_body_byte.count() < 0) {
    ctx->response->first_body_byte = since(ctx->start);
  }
  ctx->response->body.append(data, n);
  if (ctx->progress != nullptr) ctx->progress->store(ctx->response->body.size());
  return n;
}

// OpenSSL reports each record's 5-byte header, and under TLS 1.3, where every record's
// outer type is application data, the inner type next: a record that carried a handshake
// message (certificate, session ticket) is taken back out.
void on_tls_message(int write_p, int, int content_type, const void* buf, size_t len, SSL*,
                    void* arg) {
  if (write_p != 0 || len < 1) return;
  auto* records = static_cast<std::vector<size_t>*>(arg);
  const auto* bytes = static_cast<const unsigned char*>(buf);
  if (content_type == SSL3_RT_HEADER && len >= 5 && bytes[0] == SSL3_RT_APPLICATION_DATA) {
    records->push_back((size_t{bytes[3]} << 8) | bytes[4]);
  } else if (content_type == SSL3_RT_INNER_CONTENT_TYPE && bytes[0] != SSL3_RT_APPLICATION_DATA &&
             !records->empty()) {
    records->pop_back();
  }
}

long curl_http_version(HttpRequest::Version version) {
  switch (version) {
    case HttpRequest::Version::http1_0:
      return CURL_HTTP_VERSION_1_0;
    case HttpRequest::Version::http1_1:
      return CURL_HTTP_VERSION_1_1;
    case HttpRequest::Version::http2_tls:
      return CURL_HTTP_VERSION_2TLS;
    case HttpRequest::Version::http2_prior_knowledge:
      return CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
  }
  return CURL_HTTP_VERSION_NONE;
}

CURLcode watch_tls_records(CURL*, void* ssl_ctx, void* records) {
  SSL_CTX_set_msg_callback(static_cast<SSL_CTX*>(ssl_ctx), on_tls_message);
  SSL_CTX_set_msg_callback_arg(static_cast<SSL_CTX*>(ssl_ctx), records);
  return CURLE_OK;
}

}  // namespace

HttpResponse http_request(const HttpRequest& request) {
  HttpResponse response;
  Context ctx{std::chrono::steady_clock::now(), &response, request.body_progress};
  curl::EasyPtr easy = curl::new_easy(response.error);
  if (!easy) return response;
  CURL* h = easy.get();
  char error_buf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buf);
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROXY, "");  // never route test traffic through $http_proxy
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, request.path_as_is ? 1L : 0L);
  const std::string interface = "host!" + request.source_address;
  if (!request.source_address.empty()) curl_easy_setopt(h, CURLOPT_INTERFACE, interface.c_str());
  if (!request.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, request.ca_file.c_str());
  if (!request.tls12_ciphers.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLVERSION,
                     static_cast<long>(CURL_SSLVERSION_TLSv1_2) |
                         static_cast<long>(CURL_SSLVERSION_MAX_TLSv1_2));
    curl_easy_setopt(h, CURLOPT_SSL_CIPHER_LIST, request.tls12_ciphers.c_str());
  }
  if (request.tls_records_received != nullptr) {
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, &watch_tls_records);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, request.tls_records_received);
  }
  if (request.max_recv_bytes_per_s > 0) {
    curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE,
                     static_cast<curl_off_t>(request.max_recv_bytes_per_s));
  }
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, curl_http_version(request.version));
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);

  const std::string& m = request.method;
  if (m == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (m != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m.c_str());
  }
  if (!request.body.empty() || m == "POST" || m == "PUT") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
  }

  const curl::SlistPtr headers = curl::request_headers(request.headers, response.error);
  if (!headers) return response;
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());

  const CURLcode code = curl_easy_perform(h);
  response.total = since(ctx.start);
  response.curl_code = static_cast<int>(code);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  long version = 0;
  curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &version);
  response.http_version = version == CURL_HTTP_VERSION_2_0   ? 20
                          : version == CURL_HTTP_VERSION_1_1 ? 11
                          : version == CURL_HTTP_VERSION_1_0 ? 10
                                                             : 0;
  if (code != CURLE_OK) {
    response.error = error_buf[0] != '\0' ? error_buf : curl_easy_strerror(code);
  }
  return response;
}

HttpResponse http_request(std::string_view method, std::string_view url, const HttpHeaders& headers,
                          std::string_view body, std::chrono::milliseconds timeout) {
  HttpRequest request;
  request.method = std::string(method);
  request.url = std::string(url);
  request.headers = headers;
  request.body = std::string(body);
  request.timeout = timeout;
  return http_request(request);
}

HttpResponse http_get(std::string_view url, const HttpHeaders& headers,
                      std::chrono::milliseconds timeout) {
  return http_request("GET", url, headers, {}, timeout);
}

std::string local_url(int port, std::string_view path) {
  return "http://127.0.0.1:" + std::to_string(port) + std::string(path);
}

}  // namespace balancer::test
