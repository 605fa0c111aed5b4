#include "support/origin_fixture.h"

#include <stdexcept>

#include "support/http_client.h"

namespace balancer::test {

TestOrigin::TestOrigin(const TestOriginOptions& options) {
  const std::string binary = binary_path("test_origin");
  if (binary.empty()) throw std::runtime_error("test_origin not found under " + binary_dir());
  std::vector<std::string> argv{binary, "--host", "127.0.0.1", "--port", "0"};
  if (!options.root.empty()) argv.insert(argv.end(), {"--root", options.root});
  if (options.delay_ms > 0)
    argv.insert(argv.end(), {"--delay-ms", std::to_string(options.delay_ms)});
  if (options.rate_kbps > 0) {
    argv.insert(argv.end(), {"--rate-kbps", std::to_string(options.rate_kbps)});
  }
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  std::string error;
  if (!process_.start(argv, {}, {}, &error)) throw std::runtime_error(error);
  port_ = process_.wait_for_listening_port(deadline_in(options.start_timeout));
  if (port_ <= 0) {
    throw std::runtime_error("test_origin did not report a listening port; stderr:\n" +
                             process_.stderr_text());
  }
}

std::string TestOrigin::url(std::string_view path) const {
  return local_url(port_, path);
}

std::string TestOrigin::base_url() const {
  return local_url(port_, "");
}

namespace {

int64_t path_stat(const TestOrigin& origin, std::string_view path, std::string_view field) {
  const auto r = http_get(origin.url("/__stats?path=" + url_encode(path)));
  if (!r.ok() || r.status != 200) return -1;
  return json_integer(r.body, field).value_or(-1);
}

}  // namespace

int64_t TestOrigin::count(std::string_view path) const {
  return path_stat(*this, path, "count");
}

int64_t TestOrigin::conditional(std::string_view path) const {
  return path_stat(*this, path, "conditional");
}

int64_t TestOrigin::not_modified(std::string_view path) const {
  return path_stat(*this, path, "not_modified");
}

bool TestOrigin::outage(int status, bool chunks_only) const {
  const auto r = http_request(
      "POST", url("/__outage?status=" + std::to_string(status) + (chunks_only ? "&chunks=1" : "")));
  return r.ok() && r.status == 200;
}

bool TestOrigin::stall(bool on) const {
  const auto r = http_request("POST", url(std::string("/__stall?on=") + (on ? "1" : "0")));
  return r.ok() && r.status == 200;
}

std::string TestOrigin::stats_json() const {
  const auto r = http_get(url("/__stats"));
  return r.ok() && r.status == 200 ? r.body : std::string();
}

int64_t TestOrigin::total() const {
  return json_integer(stats_json(), "total").value_or(-1);
}

int64_t TestOrigin::count_from(std::string_view agent_prefix) const {
  const auto r = http_get(url("/__stats?agent=" + url_encode(agent_prefix)));
  return r.ok() && r.status == 200 ? json_integer(r.body, "count").value_or(-1) : -1;
}

int64_t TestOrigin::count_not_from(std::string_view agent_prefix) const {
  const auto r = http_get(url("/__stats?agent=" + url_encode(agent_prefix)));
  return r.ok() && r.status == 200 ? json_integer(r.body, "others").value_or(-1) : -1;
}

int64_t TestOrigin::in_flight() const {
  return json_integer(stats_json(), "in_flight").value_or(-1);
}

int64_t TestOrigin::max_in_flight() const {
  return json_integer(stats_json(), "max_in_flight").value_or(-1);
}

int64_t TestOrigin::held() const {
  return json_integer(stats_json(), "held").value_or(-1);
}

int64_t TestOrigin::release() const {
  const auto r = http_request("POST", url("/__release"));
  return r.ok() && r.status == 200 ? json_integer(r.body, "released").value_or(-1) : -1;
}

bool TestOrigin::reset() const {
  const auto r = http_request("POST", url("/__reset"));
  return r.ok() && r.status == 200;
}

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~' || c == '/';
    if (keep) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<int64_t> json_integer(std::string_view json, std::string_view key) {
  const std::string quoted = "\"" + std::string(key) + "\"";
  size_t pos = 0;
  while ((pos = json.find(quoted, pos)) != std::string_view::npos) {
    size_t i = pos + quoted.size();
    while (i < json.size() && json[i] == ' ') ++i;
    if (i < json.size() && json[i] == ':') {
      ++i;
      while (i < json.size() && json[i] == ' ') ++i;
      const bool negative = i < json.size() && json[i] == '-';
      if (negative) ++i;
      const size_t digits = i;
      int64_t v = 0;
      for (; i < json.size() && json[i] >= '0' && json[i] <= '9'; ++i) v = v * 10 + (json[i] - '0');
      if (i > digits) return negative ? -v : v;
    }
    pos += quoted.size();
  }
  return std::nullopt;
}

}  // namespace balancer::test
