// ConnectionLimits: the total and the per-address count (an IPv6 client by its network), exempt
// networks, slots given back when destroyed or moved over, and exact counts with several threads
// admitting at once.
#include "http/server/connection_limits.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <string_view>
#include <thread>
#include <vector>

namespace http {
namespace {

sockaddr_in v4(const char* text) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, text, &a.sin_addr) == 1);
  return a;
}

sockaddr_in6 v6(const char* text) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  REQUIRE(inet_pton(AF_INET6, text, &a.sin6_addr) == 1);
  return a;
}

// Admits a connection from `ip`, IPv4 or IPv6 by its text.
ConnectionLimits::Verdict admit(ConnectionLimits& limits, const char* ip, ConnectionSlot& slot,
                                ConnectionLimits::Pass pass = ConnectionLimits::Pass::only) {
  if (std::string_view(ip).find(':') != std::string_view::npos) {
    const sockaddr_in6 a = v6(ip);
    return limits.admit(reinterpret_cast<const sockaddr*>(&a), slot, pass);
  }
  const sockaddr_in a = v4(ip);
  return limits.admit(reinterpret_cast<const sockaddr*>(&a), slot, pass);
}

using Verdict = ConnectionLimits::Verdict;

TEST_CASE("per address: the limit refuses one address, not another, and frees on release") {
  core::MetricsRegistry metrics;
  ConnectionLimits limits({100, 2, {}}, metrics);
  ConnectionSlot a, b, c, other;
  CHECK(admit(limits, "10.0.0.1", a) == Verdict::admitted);
  CHECK(admit(limits, "10.0.0.1", b) == Verdict::admitted);
  CHECK(admit(limits, "10.0.0.1", c) == Verdict::over_address);
  CHECK(admit(limits, "10.0.0.2", other) == Verdict::admitted);
  CHECK(limits.open() == 3);
  a.release();
  CHECK(limits.open() == 2);
  CHECK(admit(limits, "10.0.0.1", c) == Verdict::admitted);
  CHECK(metrics.render().find("http_connections_refused_total{reason=\"per_address\"} 1") !=
        std::string::npos);
  CHECK(metrics.render().find("http_connections_open 3") != std::string::npos);
}

TEST_CASE("total: past it every address is refused; exempt networks skip the per-address count") {
  core::MetricsRegistry metrics;
  ConnectionLimits limits({3, 1, {*core::Cidr::parse("192.168.0.0/16")}}, metrics);
  std::vector<ConnectionSlot> slots(4);
  CHECK(admit(limits, "192.168.1.1", slots[0]) == Verdict::admitted);
  CHECK(admit(limits, "192.168.1.1", slots[1]) == Verdict::admitted);  // exempt
  CHECK(admit(limits, "10.0.0.1", slots[2]) == Verdict::admitted);
  CHECK(admit(limits, "10.0.0.2", slots[3]) == Verdict::over_total);
  CHECK(limits.open() == 3);
  {
    ConnectionSlot moved = std::move(slots[2]);  // a connection handed over keeps its place
    CHECK(limits.open() == 3);
  }
  CHECK(limits.open() == 2);
  CHECK(admit(limits, "10.0.0.1", slots[2]) == Verdict::admitted);
}

TEST_CASE("IPv6: the addresses of one /64 share one count; another /64 has its own") {
  core::MetricsRegistry metrics;
  ConnectionLimits limits({100, 3, {}}, metrics);
  std::vector<ConnectionSlot> slots(6);
  CHECK(admit(limits, "2001:db8:1::1", slots[0]) == Verdict::admitted);
  CHECK(admit(limits, "2001:db8:1::2", slots[1]) == Verdict::admitted);
  CHECK(admit(limits, "2001:db8:1:0:ffff:ffff:ffff:ffff", slots[2]) == Verdict::admitted);
  CHECK(admit(limits, "2001:db8:1:0:1234::5", slots[3]) == Verdict::over_address);
  CHECK(admit(limits, "2001:db8:1:1::1", slots[4]) == Verdict::admitted);
  // IPv4 (and IPv4 as a dual-stack listener reports it) is counted by the whole address.
  CHECK(admit(limits, "::ffff:10.0.0.1", slots[5]) == Verdict::admitted);
  CHECK(limits.open() == 5);
  // A place given back by one address of the network is a place for any other.
  slots[0].release();
  CHECK(admit(limits, "2001:db8:1::99", slots[0]) == Verdict::admitted);
  CHECK(admit(limits, "2001:db8:1::100", slots[3]) == Verdict::over_address);
}

TEST_CASE("IPv6: the prefix length is configurable; exemptions match the whole address") {
  struct Arrival {
    const char* ip;
    Verdict verdict;
  };
  struct Case {
    const char* name;
    ConnectionLimitOptions options;  // one connection per client
    std::vector<Arrival> arrivals;   // in order, each holding its place
  };
  const Case cases[] = {
      {"at 128 every address is a client of its own",
       {100, 1, {}, 128},
       {{"2001:db8:1::1", Verdict::admitted},
        {"2001:db8:1::2", Verdict::admitted},
        {"2001:db8:1::1", Verdict::over_address}}},
      {"at 48 a site's /48 is one client",
       {100, 1, {}, 48},
       {{"2001:db8:1:5::1", Verdict::admitted},
        {"2001:db8:1:6::1", Verdict::over_address},
        {"2001:db8:2::1", Verdict::admitted}}},
      {"an exempt network narrower than the prefix exempts only its own addresses",
       {100, 1, {*core::Cidr::parse("2001:db8:1::ff00/120")}, 64},
       {{"2001:db8:1::ff01", Verdict::admitted},
        {"2001:db8:1::ff02", Verdict::admitted},  // exempt
        {"2001:db8:1::1", Verdict::admitted},
        {"2001:db8:1::2", Verdict::over_address},
        {"2001:db8:1::ff03", Verdict::admitted}}},  // exempt
  };
  for (const Case& c : cases) {
    INFO(c.name);
    core::MetricsRegistry metrics;
    ConnectionLimits limits(c.options, metrics);
    std::vector<ConnectionSlot> slots(c.arrivals.size());
    for (size_t i = 0; i < c.arrivals.size(); ++i) {
      INFO(c.arrivals[i].ip);
      CHECK(admit(limits, c.arrivals[i].ip, slots[i]) == c.arrivals[i].verdict);
    }
  }
}

TEST_CASE("nearly full: at a share of the total or more, whatever the addresses") {
  core::MetricsRegistry metrics;
  ConnectionLimits limits({50, 0, {}}, metrics);
  std::vector<ConnectionSlot> slots(50);
  for (size_t i = 0; i < 44; ++i) REQUIRE(admit(limits, "10.0.0.1", slots[i]) == Verdict::admitted);
  CHECK_FALSE(limits.nearly_full(90));
  CHECK(limits.nearly_full(88));
  REQUIRE(admit(limits, "2001:db8::1", slots[44]) == Verdict::admitted);
  CHECK(limits.nearly_full(90));  // 45 of 50
  CHECK_FALSE(limits.nearly_full(91));
  slots[0].release();
  CHECK_FALSE(limits.nearly_full(90));
  for (size_t i = 45; i < 50; ++i)
    REQUIRE(admit(limits, "10.0.0.2", slots[i]) == Verdict::admitted);
  CHECK(limits.open() == 49);
  CHECK_FALSE(limits.nearly_full(100));
  CHECK(limits.nearly_full(98));
  REQUIRE(admit(limits, "10.0.0.3", slots[0]) == Verdict::admitted);
  CHECK(limits.nearly_full(100));
}

TEST_CASE("the default total is most of the open-file limit, less a reserve") {
  CHECK(default_max_connections(1024) == 918 - 114);
  CHECK(default_max_connections(64) == 54 - 16);
  CHECK(default_max_connections(524288) == 471852 - 4096);
  core::MetricsRegistry metrics;
  ConnectionLimits limits({}, metrics);
  CHECK(limits.max_connections() == default_max_connections());
}

TEST_CASE("past the total, the operator's reserve: kOperatorReserve more, each operator_only") {
  core::MetricsRegistry metrics;
  ConnectionLimits limits({2, 0, {}}, metrics);
  ConnectionSlot a, b;
  CHECK(admit(limits, "10.0.0.1", a) == Verdict::admitted);
  CHECK(admit(limits, "10.0.0.2", b) == Verdict::admitted);
  CHECK_FALSE(a.operator_only());
  ConnectionSlot first;
  // A first pass at the total is refused uncounted: the server makes room and asks again.
  CHECK(admit(limits, "10.0.0.3", first, ConnectionLimits::Pass::first) == Verdict::over_total);
  CHECK(metrics.render().find("http_connections_refused_total{reason=\"total\"} 0") !=
        std::string::npos);
  std::vector<ConnectionSlot> reserve(kOperatorReserve);
  for (ConnectionSlot& slot : reserve) {
    CHECK(admit(limits, "10.0.0.3", slot, ConnectionLimits::Pass::reserve) == Verdict::admitted);
    CHECK(slot.operator_only());
  }
  ConnectionSlot over;
  CHECK(admit(limits, "10.0.0.4", over, ConnectionLimits::Pass::reserve) == Verdict::over_total);
  CHECK(metrics.render().find("http_connections_refused_total{reason=\"total\"} 1") !=
        std::string::npos);
  // Per network, counted without a per-address limit too: what makes a large holder.
  CHECK(limits.open_in_network(reserve[0]) == kOperatorReserve);
  CHECK(limits.open_in_network(a) == 1);
  reserve.clear();
  b.release();
  ConnectionSlot again;
  CHECK(admit(limits, "10.0.0.5", again) == Verdict::admitted);
  CHECK_FALSE(again.operator_only());
}

TEST_CASE("several threads admitting and releasing at once keep exact counts") {
  core::MetricsRegistry metrics;
  ConnectionLimits limits({1000, 50, {}}, metrics);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        std::vector<ConnectionSlot> held(40);
        for (ConnectionSlot& slot : held) (void)admit(limits, "10.0.0.7", slot);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(limits.open() == 0);
  // Everything given back: the address has its 50 places again, and no more.
  ConnectionSlot a;
  CHECK(admit(limits, "10.0.0.7", a) == Verdict::admitted);
  std::vector<ConnectionSlot> rest(49);
  for (ConnectionSlot& slot : rest) CHECK(admit(limits, "10.0.0.7", slot) == Verdict::admitted);
  ConnectionSlot over;
  CHECK(admit(limits, "10.0.0.7", over) == Verdict::over_address);
}

}  // namespace
}  // namespace http
