#include "support/herd.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "support/curl_util.h"
#include "support/generated_body.h"

namespace balancer::test {
namespace {

using SteadyClock = std::chrono::steady_clock;

double ms_since(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

struct ClientState {
  SteadyClock::time_point start;
  HerdClient* out = nullptr;
  BodyHasher hasher;
  bool keep_body = false;
  curl::EasyPtr easy;
  char error_buf[CURL_ERROR_SIZE] = {};
};

size_t on_header(char* /*data*/, size_t size, size_t count, void* arg) {
  auto* c = static_cast<ClientState*>(arg);
  if (c->out->headers_ms < 0) c->out->headers_ms = ms_since(c->start);
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* arg) {
  auto* c = static_cast<ClientState*>(arg);
  const size_t n = size * count;
  if (n > 0 && c->out->first_byte_ms < 0) c->out->first_byte_ms = ms_since(c->start);
  c->hasher.update(std::string_view(data, n));
  if (c->keep_body) c->out->body.append(data, n);
  return n;
}

std::string format_ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string percentiles_json(const Percentiles& p) {
  return "{\"count\":" + std::to_string(p.count) + ",\"p50\":" + format_ms(p.p50) +
         ",\"p95\":" + format_ms(p.p95) + ",\"p99\":" + format_ms(p.p99) +
         ",\"max\":" + format_ms(p.max) + "}";
}

}  // namespace

std::optional<std::pair<size_t, std::string>> generated_target(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    url.remove_prefix(scheme + 3);
    const auto slash = url.find('/');
    url = slash == std::string_view::npos ? std::string_view() : url.substr(slash);
  }
  url = url.substr(0, url.find_first_of("?#"));
  const auto gen = url.rfind("/gen/");
  if (gen == std::string_view::npos) return std::nullopt;
  const std::string_view rest = url.substr(gen + 5);
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 >= rest.size()) return std::nullopt;
  const auto size = parse_size(rest.substr(0, slash));
  if (!size) return std::nullopt;
  return std::make_pair(*size, std::string(rest.substr(slash + 1)));
}

size_t raise_open_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) getrlimit(RLIMIT_NOFILE, &lim);
  }
  return static_cast<size_t>(lim.rlim_cur);
}

Percentiles percentiles(std::vector<double> values) {
  Percentiles p;
  p.count = values.size();
  if (values.empty()) return p;
  std::sort(values.begin(), values.end());
  auto rank = [&](double q) {
    const auto idx = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
    return values[std::clamp<size_t>(idx, 1, values.size()) - 1];
  };
  p.p50 = rank(0.50);
  p.p95 = rank(0.95);
  p.p99 = rank(0.99);
  p.max = values.back();
  return p;
}

size_t HerdResult::ok_count() const {
  return static_cast<size_t>(
      std::count_if(clients.begin(), clients.end(), [](const HerdClient& c) { return c.ok(); }));
}

Percentiles HerdResult::first_byte_ms() const {
  std::vector<double> v;
  for (const auto& c : clients) {
    if (c.ok() && c.first_byte_ms >= 0) v.push_back(c.first_byte_ms);
  }
  return percentiles(std::move(v));
}

Percentiles HerdResult::total_ms() const {
  std::vector<double> v;
  for (const auto& c : clients) {
    if (c.ok()) v.push_back(c.total_ms);
  }
  return percentiles(std::move(v));
}

std::map<uint64_t, size_t> HerdResult::hash_counts() const {
  std::map<uint64_t, size_t> out;
  for (const auto& c : clients) {
    if (c.ok()) ++out[c.body_hash];
  }
  return out;
}

std::map<long, size_t> HerdResult::status_counts() const {
  std::map<long, size_t> out;
  for (const auto& c : clients) ++out[c.status];
  return out;
}

std::string HerdResult::summary_json(const std::string& url) const {
  std::string j = "{\"url\":" + json_string(url) + ",\"n\":" + std::to_string(clients.size()) +
                  ",\"ok\":" + std::to_string(ok_count()) +
                  ",\"errors\":" + std::to_string(error_count()) + ",\"statuses\":{";
  bool first = true;
  for (const auto& [status, n] : status_counts()) {
    j += (first ? "\"" : ",\"") + std::to_string(status) + "\":" + std::to_string(n);
    first = false;
  }
  j += "},\"first_byte_ms\":" + percentiles_json(first_byte_ms()) +
       ",\"total_ms\":" + percentiles_json(total_ms()) +
       ",\"distinct_hashes\":" + std::to_string(hash_counts().size()) + ",\"body_sizes\":[";
  std::set<size_t> sizes;
  for (const auto& c : clients) {
    if (c.ok()) sizes.insert(c.body_size);
  }
  first = true;
  for (size_t s : sizes) {
    j += (first ? "" : ",") + std::to_string(s);
    first = false;
  }
  j += "],\"wall_ms\":" + format_ms(wall_ms) + ",\"error_samples\":[";
  std::set<std::string> samples;
  for (const auto& c : clients) {
    if (!c.ok() && samples.size() < 5) samples.insert(c.error);
  }
  first = true;
  for (const auto& s : samples) {
    j += (first ? "" : ",") + json_string(s);
    first = false;
  }
  if (!setup_error.empty())
    j += "],\"setup_error\":" + json_string(setup_error) + "}";
  else
    j += "]}";
  return j;
}

HerdResult run_herd(const HerdOptions& options) {
  HerdResult result;
  const size_t n = static_cast<size_t>(std::max(options.clients, 0));
  result.clients.resize(n);
  raise_open_file_limit();
  curl::MultiPtr multi = curl::new_multi(result.setup_error);
  if (!multi) return result;
  curl_multi_setopt(multi.get(), CURLMOPT_MAXCONNECTS, static_cast<long>(n));

  const curl::SlistPtr headers = curl::request_headers(options.headers, result.setup_error);
  if (!headers) return result;

  std::vector<ClientState> states(n);
  for (size_t i = 0; i < n; ++i) {
    ClientState& s = states[i];
    s.out = &result.clients[i];
    s.keep_body = options.keep_bodies;
    s.easy = curl::new_easy(result.setup_error);
    if (!s.easy) {
      for (size_t k = 0; k < i; ++k) curl_multi_remove_handle(multi.get(), states[k].easy.get());
      return result;
    }
    CURL* h = s.easy.get();
    curl_easy_setopt(h, CURLOPT_URL, options.url.c_str());
    curl_easy_setopt(h, CURLOPT_PRIVATE, &s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s.error_buf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, options.forbid_reuse ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_multi_add_handle(multi.get(), h);
  }

  const auto start = SteadyClock::now();
  for (auto& s : states) s.start = start;
  int running = static_cast<int>(n);
  while (running > 0) {
    if (curl_multi_perform(multi.get(), &running) != CURLM_OK) break;
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi.get(), &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      ClientState* s = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &s);
      HerdClient& c = *s->out;
      c.total_ms = ms_since(start);
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &c.status);
      c.body_size = s->hasher.size();
      c.body_hash = s->hasher.finish();
      if (msg->data.result != CURLE_OK) {
        c.error = s->error_buf[0] != '\0' ? s->error_buf : curl_easy_strerror(msg->data.result);
      } else if (c.status < 200 || c.status > 299) {
        c.error = "status " + std::to_string(c.status);
      } else if (options.expect_size && c.body_size != *options.expect_size) {
        c.error = "body size " + std::to_string(c.body_size) + " != expected " +
                  std::to_string(*options.expect_size);
      } else if (options.expect_hash && c.body_hash != *options.expect_hash) {
        c.error = "body differs from the expected bytes";
      }
    }
    if (running > 0) curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
  }
  result.wall_ms = ms_since(start);
  if (options.hold.count() > 0 && !options.forbid_reuse) {
    // Each answered client's connection stays in the multi handle's cache (MAXCONNECTS n).
    if (options.on_holding) options.on_holding(result.ok_count());
    const auto until = SteadyClock::now() + options.hold;
    while (SteadyClock::now() < until) curl_multi_poll(multi.get(), nullptr, 0, 200, nullptr);
  }
  for (auto& s : states) {
    HerdClient& c = *s.out;
    if (c.total_ms < 0) {  // never completed (multi error)
      c.error = "transfer did not complete";
      c.body_size = s.hasher.size();
    }
    curl_multi_remove_handle(multi.get(), s.easy.get());
  }
  return result;
}

}  // namespace balancer::test
