// Output over TLS goes to SSL_write in pieces that fill a record (move_in_tls_records):
// an HTTP/2 DATA frame's 9-byte head and its payload referenced apart, or a reply's head
// apart from its body, must not become records of their own.
#include <doctest/doctest.h>
#include <event2/buffer.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/handles.h"
#include "http/tls/tls_records.h"
#include "support/libevent_owners.h"

using balancer::test::drain;

namespace {

std::vector<evbuffer_iovec> pieces_of(evbuffer* buf) {
  int n = evbuffer_peek(buf, -1, nullptr, nullptr, 0);
  std::vector<evbuffer_iovec> pieces(static_cast<size_t>(n));
  evbuffer_peek(buf, -1, nullptr, pieces.data(), n);
  return pieces;
}

// The records SSL_write makes of these pieces: one per 16 KiB of each piece.
std::vector<size_t> records_of(const std::vector<evbuffer_iovec>& pieces) {
  std::vector<size_t> records;
  for (const auto& piece : pieces) {
    for (size_t at = 0; at < piece.iov_len; at += 16 * 1024)
      records.push_back(std::min<size_t>(16 * 1024, piece.iov_len - at));
  }
  return records;
}

void add_reference(evbuffer* buf, const std::string& bytes) {
  evbuffer_add_reference(buf, bytes.data(), bytes.size(), nullptr, nullptr);
}

}  // namespace

TEST_CASE(
    "HTTP/2 frames over TLS: 9-byte heads and referenced payloads leave in record-sized pieces") {
  core::EvbufferPtr src(evbuffer_new()), dst(evbuffer_new());
  std::string payload(16 * 1024, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  std::string expected;
  for (int frame = 0; frame < 64; ++frame) {
    std::string head(9, static_cast<char>(frame));
    evbuffer_add(src.get(), head.data(), head.size());
    add_reference(src.get(), payload);
    expected += head + payload;
  }
  CHECK(http::move_in_tls_records(src.get(), dst.get(), SIZE_MAX, false) == expected.size());
  CHECK(evbuffer_get_length(src.get()) == 0);
  auto records = records_of(pieces_of(dst.get()));
  // 1 MiB and 64 heads: 66 records, where a record per head and payload would be 128.
  CHECK(records.size() <= 66);
  for (size_t i = 0; i + 1 < records.size(); ++i) {
    CAPTURE(i);
    CHECK(records[i] >= 8 * 1024);
  }
  CHECK(drain(dst.get()) == expected);
}

TEST_CASE(
    "over TLS a reply's head joins its body, and a body a record long or more moves without a "
    "copy") {
  core::EvbufferPtr src(evbuffer_new()), dst(evbuffer_new());
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
  const std::string body(100000, 'x');
  evbuffer_add(src.get(), head.data(), head.size());
  add_reference(src.get(), body);
  http::move_in_tls_records(src.get(), dst.get(), SIZE_MAX, false);
  auto pieces = pieces_of(dst.get());
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0].iov_len == http::kTlsRecordPiece);  // the head and the body's start
  // The rest of the body is the referenced memory itself.
  CHECK(static_cast<const char*>(pieces[1].iov_base) ==
        body.data() + (http::kTlsRecordPiece - head.size()));
  CHECK(drain(dst.get()) == head + body);

  SUBCASE("a short reply is one piece") {
    const std::string short_body = body.substr(0, 2048);  // referenced: must outlive the move
    evbuffer_add(src.get(), head.data(), head.size());
    add_reference(src.get(), short_body);
    http::move_in_tls_records(src.get(), dst.get(), SIZE_MAX, false);
    CHECK(pieces_of(dst.get()).size() == 1);
    CHECK(evbuffer_get_length(dst.get()) == head.size() + 2048);
  }
}

TEST_CASE("over TLS the transport's bound stops the move at a piece, the rest waits in order") {
  core::EvbufferPtr src(evbuffer_new()), dst(evbuffer_new());
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    std::string bit(500, static_cast<char>('A' + i % 26));
    evbuffer_add(src.get(), bit.data(), bit.size());
    expected += bit;
  }
  size_t moved = http::move_in_tls_records(src.get(), dst.get(), 20000, false);
  CHECK(moved == 2 * http::kTlsRecordPiece);  // stops after the piece that passed the bound
  CHECK(evbuffer_get_length(src.get()) == expected.size() - moved);
  CHECK(http::move_in_tls_records(src.get(), dst.get(), 0, false) == 0);
  http::move_in_tls_records(src.get(), dst.get(), SIZE_MAX, false);
  CHECK(drain(dst.get()) == expected);
}

TEST_CASE(
    "over TLS a short tail waits while the transport still writes, and goes once it has drained") {
  core::EvbufferPtr src(evbuffer_new()), dst(evbuffer_new());
  const std::string bytes(http::kTlsRecordPiece + 300, 'y');
  for (size_t at = 0; at < bytes.size(); at += 1000) {  // pieces short of a record: joined
    evbuffer_add_reference(src.get(), bytes.data() + at, std::min<size_t>(1000, bytes.size() - at),
                           nullptr, nullptr);
  }
  CHECK(http::move_in_tls_records(src.get(), dst.get(), SIZE_MAX, true) == http::kTlsRecordPiece);
  CHECK(evbuffer_get_length(src.get()) == 300);  // the transport has a record to write first
  CHECK(http::move_in_tls_records(src.get(), dst.get(), SIZE_MAX, true) == 0);
  std::string written = drain(dst.get());  // the socket took it
  CHECK(http::move_in_tls_records(src.get(), dst.get(), SIZE_MAX, true) == 300);
  CHECK(written + drain(dst.get()) == bytes);
}
