// Which protocol a connection speaks (docs/http.md, "One transport, then HTTP/1 or HTTP/2"),
// decided once, before its first request, in one place: every connection starts as HTTP/1 on
// its Transport (http/transport/transport.h), and goes to HTTP/2 when
// - over TLS, the handshake agreed on h2 by ALPN (the listener offered it);
// - in the clear on a listener with h2c, the client's first bytes are HTTP/2's connection
//   preface (prior knowledge, RFC 9113 §3.3). Bytes that could still be the preface's start
//   wait; anything else is HTTP/1.
// "Upgrade: h2c" (RFC 7540 §3.2) is not offered: such a request is served as HTTP/1.1.
// Pure functions of what they are given; any thread.
#pragma once

#include <string_view>

namespace http {

// What an HTTP/2 client sends first (RFC 9113 §3.4); on a plain connection, the sign of
// HTTP/2 with prior knowledge.
inline constexpr std::string_view kHttp2ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class ProtocolChoice {
  http1,
  http2,
  undecided,  // in the clear: the bytes so far are the preface's start; wait for more
};

// Over TLS, once the handshake is done: `alpn` is the protocol it agreed on ("" when none),
// `http2_offered` whether the listener offers h2.
ProtocolChoice choose_after_handshake(std::string_view alpn, bool http2_offered);

// In the clear on a listener with h2c (prior knowledge), by the client's first bytes.
ProtocolChoice choose_by_first_bytes(std::string_view first_bytes);

}  // namespace http
