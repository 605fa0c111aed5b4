// Which protocol a connection speaks (http/transport/protocol_choice.h): h2 by ALPN only when
// the listener offers it; in the clear, HTTP/2 only for the whole preface, undecided while the
// bytes are the preface's start, HTTP/1 at the first byte that differs.
#include <doctest/doctest.h>

#include <string>

#include "http/transport/protocol_choice.h"

using http::ProtocolChoice;

TEST_CASE("protocol choice: ALPN's h2 is HTTP/2 only where the listener offers it") {
  CHECK(http::choose_after_handshake("h2", true) == ProtocolChoice::http2);
  CHECK(http::choose_after_handshake("h2", false) == ProtocolChoice::http1);
  CHECK(http::choose_after_handshake("http/1.1", true) == ProtocolChoice::http1);
  CHECK(http::choose_after_handshake("", true) == ProtocolChoice::http1);
}

TEST_CASE("protocol choice: in the clear, the preface decides, even in pieces") {
  const std::string preface(http::kHttp2ClientPreface);
  for (size_t n = 0; n < preface.size(); ++n) {
    INFO(n);
    CHECK(http::choose_by_first_bytes(preface.substr(0, n)) == ProtocolChoice::undecided);
  }
  CHECK(http::choose_by_first_bytes(preface) == ProtocolChoice::http2);
  CHECK(http::choose_by_first_bytes(preface + "\x00\x00\x12\x04") == ProtocolChoice::http2);
  // "PRI * HTTP/1.1": a start like the preface's, then HTTP/1.
  CHECK(http::choose_by_first_bytes("PRI * HTTP/1.1\r\n") == ProtocolChoice::http1);
  CHECK(http::choose_by_first_bytes("GET / HTTP/1.1\r\n") == ProtocolChoice::http1);
  // "Upgrade: h2c" is an HTTP/1.1 request like any.
  CHECK(http::choose_by_first_bytes("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n") ==
        ProtocolChoice::http1);
}
