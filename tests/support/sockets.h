// Raw TCP to our servers on 127.0.0.1, for tests that speak below HTTP clients
// (protocol mix-ups, hand-made HTTP/2 clients). TESTS ONLY.
#pragma once

#include <chrono>

namespace balancer::test {

// A blocking socket connected to 127.0.0.1:port whose reads give up after
// `receive_timeout`; -1 when the connection fails. The caller closes it.
int connect_loopback(int port, std::chrono::milliseconds receive_timeout = std::chrono::seconds(5));

}  // namespace balancer::test
