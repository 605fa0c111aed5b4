// Session tickets shared by servers given the same secret: the key schedule (pure), and
// real handshakes between an OpenSSL client and server contexts built by
// build_server_tls_context, through an in-memory BIO pair: a ticket one context issued
// resumes on another with the same secret file, TLS 1.3 and 1.2; not with another secret.
#include <doctest/doctest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <fstream>

#include "http/tls/tls.h"
#include "http/tls/tls_tickets.h"
#include "support/process.h"
#include "support/test_certificate.h"

using namespace http;
using balancer::test::TempDir;
using balancer::test::TestTlsFiles;

namespace {

void write_secret(const std::string& path, const std::string& secret) {
  std::ofstream(path, std::ios::binary) << secret;
}

SSL_CTX* server_context(const TestTlsFiles& files, const std::string& ticket_file) {
  TlsOptions options;
  options.enabled = true;
  options.certificate = files.cert;
  options.key = files.key;
  options.ticket_key_file = ticket_file;
  auto ctx = build_server_tls_context(options);
  REQUIRE_MESSAGE(ctx.ok(), (ctx.ok() ? std::string() : ctx.error().message));
  return std::move(ctx).value().release();
}

struct Handshake {
  bool done = false;
  bool resumed = false;
  SSL_SESSION* session = nullptr;  // the client's, with the server's ticket (owned by the caller)
};

// One handshake over a BIO pair, then one byte from the server so the client takes in the
// TLS 1.3 tickets that follow the handshake. Bounded: 200 rounds.
Handshake handshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx, SSL_SESSION* resume) {
  Handshake out;
  SSL* client = SSL_new(client_ctx);
  SSL* server = SSL_new(server_ctx);
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  REQUIRE(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0) == 1);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  if (resume != nullptr) SSL_set_session(client, resume);
  bool client_done = false, server_done = false;
  for (int round = 0; round < 200 && !(client_done && server_done); ++round) {
    if (!client_done) client_done = SSL_do_handshake(client) == 1;
    if (!server_done) server_done = SSL_do_handshake(server) == 1;
  }
  out.done = client_done && server_done;
  if (out.done) {
    out.resumed = SSL_session_reused(client) == 1;
    char byte = 'x';
    REQUIRE(SSL_write(server, &byte, 1) == 1);
    for (int round = 0; round < 200 && SSL_read(client, &byte, 1) != 1; ++round) {
      (void)SSL_do_handshake(server);
    }
    out.session = SSL_get1_session(client);
  }
  // A clean close: freed without one, OpenSSL takes the session for broken and never resumes it.
  SSL_set_shutdown(client, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_set_shutdown(server, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(client);
  SSL_free(server);
  return out;
}

SSL_CTX* client_context(int version) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_min_proto_version(ctx, version);
  SSL_CTX_set_max_proto_version(ctx, version);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  return ctx;
}

}  // namespace

TEST_CASE("ticket keys: one per secret and window, the same on every server") {
  const std::string secret(48, 's');
  const TicketKey a = ticket_key_for_window(secret, 100);
  const TicketKey again = ticket_key_for_window(secret, 100);
  CHECK(a.name == again.name);
  CHECK(a.aes == again.aes);
  CHECK(a.mac == again.mac);
  const TicketKey next = ticket_key_for_window(secret, 101);
  CHECK(a.name != next.name);
  CHECK(a.aes != next.aes);
  CHECK(a.mac != next.mac);
  const TicketKey other = ticket_key_for_window(std::string(48, 't'), 100);
  CHECK(a.name != other.name);
  CHECK(a.aes != other.aes);
  CHECK(a.aes != a.mac);

  CHECK(ticket_window(0, 3600) == 0);
  CHECK(ticket_window(3599, 3600) == 0);
  CHECK(ticket_window(3600, 3600) == 1);
  CHECK(ticket_window(1767225600, 3600) == 490896);
  CHECK(ticket_window(-1, 3600) == -1);
  CHECK(ticket_window(10, 0) == 10);  // a nonsense rotation is one second, not a division by zero
}

TEST_CASE(
    "ticket keys kept per window are the derived ones, whatever the order windows are asked in") {
  const std::string secret(48, 's');
  const TicketKeys keys(secret);
  CHECK_FALSE(keys.empty());
  CHECK(TicketKeys("").empty());
  // Around a rotation (the sealing window, the ones before and after), then windows far apart
  // that push the kept ones out, then back.
  const int64_t asked[] = {100, 99, 101, 100, 102, 101, 103, 104, 105, 99, 100, 7, 105, 100};
  for (const int64_t window : asked) {
    CAPTURE(window);
    const TicketKey kept = keys.for_window(window);
    const TicketKey derived = ticket_key_for_window(secret, window);
    CHECK(kept.name == derived.name);
    CHECK(kept.aes == derived.aes);
    CHECK(kept.mac == derived.mac);
  }
}

TEST_CASE(
    "a ticket from one server resumes on another given the same secret file (TLS 1.3 and 1.2), not "
    "on one with another") {
  TempDir dir;
  const TestTlsFiles files(dir.path());
  write_secret(dir.file("fleet.key"), std::string(48, 'f'));
  write_secret(dir.file("other.key"), std::string(48, 'o'));
  SSL_CTX* first = server_context(files, dir.file("fleet.key"));
  SSL_CTX* sibling = server_context(files, dir.file("fleet.key"));
  SSL_CTX* stranger = server_context(files, dir.file("other.key"));
  SSL_CTX* own_secret = server_context(files, "");
  SSL_CTX* own_secret_reloaded = server_context(files, "");

  for (const int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    CAPTURE(version);
    SSL_CTX* client = client_context(version);
    Handshake full = handshake(client, first, nullptr);
    REQUIRE(full.done);
    CHECK_FALSE(full.resumed);
    REQUIRE(full.session != nullptr);
    CHECK(SSL_SESSION_is_resumable(full.session) == 1);

    Handshake on_sibling = handshake(client, sibling, full.session);
    CHECK(on_sibling.done);
    CHECK(on_sibling.resumed);
    Handshake on_stranger = handshake(client, stranger, full.session);
    CHECK(on_stranger.done);  // a full handshake instead
    CHECK_FALSE(on_stranger.resumed);

    // No file: the process's own secret, kept across a reload's new context.
    Handshake own = handshake(client, own_secret, nullptr);
    REQUIRE(own.session != nullptr);
    Handshake after_reload = handshake(client, own_secret_reloaded, own.session);
    CHECK(after_reload.resumed);

    for (SSL_SESSION* s : {full.session, on_sibling.session, on_stranger.session, own.session,
                           after_reload.session}) {
      SSL_SESSION_free(s);
    }
    SSL_CTX_free(client);
  }
  for (SSL_CTX* ctx : {first, sibling, stranger, own_secret, own_secret_reloaded})
    SSL_CTX_free(ctx);
}

TEST_CASE(
    "a ticket secret that is missing or too short is refused, naming the file and not its "
    "contents") {
  TempDir dir;
  write_secret(dir.file("short.key"), "tiny-secret-value");
  const core::Status short_one = check_ticket_key_file(dir.file("short.key"));
  REQUIRE_FALSE(short_one.ok());
  CHECK(short_one.error().code == "tls_config");
  CHECK(short_one.error().message.find(dir.file("short.key")) != std::string::npos);
  CHECK(short_one.error().message.find("tiny-secret-value") == std::string::npos);
  CHECK_FALSE(check_ticket_key_file(dir.file("missing.key")).ok());
  write_secret(dir.file("good.key"), std::string(32, 'g'));
  CHECK(check_ticket_key_file(dir.file("good.key")).ok());
}
