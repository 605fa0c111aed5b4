#include "balancer/caches/connection_watch.h"

#include <event2/buffer.h>
#include <event2/util.h>

#include <cstdint>
#include <cstring>

namespace balancer {

std::optional<sockaddr_storage> numeric_url_address(std::string_view url) {
  std::string_view default_port;
  if (url.starts_with("http://")) {
    url.remove_prefix(7);
    default_port = "80";
  } else if (url.starts_with("https://")) {
    url.remove_prefix(8);
    default_port = "443";
  } else {
    return std::nullopt;
  }
  std::string authority(url.substr(0, url.find_first_of("/?#")));
  if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
  // A port is given when the last ':' follows the host (after ']' for IPv6).
  const size_t colon = authority.rfind(':');
  const bool has_port =
      colon != std::string::npos && (authority[0] != '[' || colon > authority.find(']'));
  if (!has_port) authority.append(":").append(default_port);
  sockaddr_storage out{};
  int length = sizeof(out);
  if (evutil_parse_sockaddr_port(authority.c_str(), reinterpret_cast<sockaddr*>(&out), &length) !=
      0) {
    return std::nullopt;
  }
  return out;
}

ConnectionWatch::ConnectionWatch(event_base& base, const core::Clock& clock,
                                 std::function<void(const std::string& id)> on_closed)
    : base_(base), clock_(clock), on_closed_(std::move(on_closed)) {}

ConnectionWatch::~ConnectionWatch() {
  stop();
}

void ConnectionWatch::stop() {
  for (auto& [id, w] : watched_) close(*w);
}

void ConnectionWatch::configure(const std::map<std::string, std::string>& urls) {
  std::map<std::string, std::unique_ptr<Watched>> next;
  for (const auto& [id, url] : urls) {
    std::optional<sockaddr_storage> address = numeric_url_address(url);
    if (!address) continue;
    auto it = watched_.find(id);
    if (it != watched_.end() &&
        std::memcmp(&it->second->address, &*address, sizeof(sockaddr_storage)) == 0) {
      next.emplace(id, std::move(it->second));
      continue;
    }
    auto w = std::make_unique<Watched>();
    w->owner = this;
    w->id = id;
    w->address = *address;
    next.emplace(id, std::move(w));
  }
  for (auto& [id, w] : watched_) {
    if (w) close(*w);
  }
  watched_ = std::move(next);
  for (auto& [id, w] : watched_) {
    if (w->connection == nullptr) connect(*w);
  }
}

void ConnectionWatch::rearm(const std::string& id, std::chrono::milliseconds min_gap) {
  auto it = watched_.find(id);
  if (it == watched_.end()) return;
  Watched& w = *it->second;
  if (w.connection != nullptr || clock_.now() - w.last_attempt < min_gap) return;
  connect(w);
}

bool ConnectionWatch::connected(const std::string& id) const {
  auto it = watched_.find(id);
  return it != watched_.end() && it->second->open;
}

void ConnectionWatch::connect(Watched& w) {
  w.last_attempt = clock_.now();
  w.open = false;
  w.connection = bufferevent_socket_new(&base_, -1, BEV_OPT_CLOSE_ON_FREE);
  if (w.connection == nullptr) return;
  // Whatever the node sends (a timeout's reply, say) is read and dropped.
  bufferevent_setcb(
      w.connection,
      [](bufferevent* bev, void*) { evbuffer_drain(bufferevent_get_input(bev), SIZE_MAX); },
      nullptr, &ConnectionWatch::on_event, &w);
  bufferevent_enable(w.connection, EV_READ);
  const int length = w.address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (bufferevent_socket_connect(w.connection, reinterpret_cast<sockaddr*>(&w.address), length) !=
      0) {
    close(w);
    on_closed_(w.id);
  }
}

void ConnectionWatch::close(Watched& w) {
  if (w.connection != nullptr) bufferevent_free(w.connection);
  w.connection = nullptr;
  w.open = false;
}

void ConnectionWatch::on_event(bufferevent*, short what, void* arg) {
  Watched& w = *static_cast<Watched*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    w.open = true;
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
    close(w);
    w.owner->on_closed_(w.id);
  }
}

}  // namespace balancer
