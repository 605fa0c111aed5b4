#include "http/transport/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/host_lookup.h"
#include "http/tls/tls.h"
#include "http/tls/tls_records.h"

namespace http {
namespace {

// The most plaintext one TLS record carries: each SSL_write is one record and one write.
constexpr size_t kTlsRecordBytes = 16 * 1024;

bool would_block() {
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

}  // namespace

Transport::Transport(Transport&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      hello_low_water_(std::exchange(other.hello_low_water_, uint16_t{1})),
      read_wants_write_(std::exchange(other.read_wants_write_, false)),
      write_wants_read_(std::exchange(other.write_wants_read_, false)),
      tls_(std::exchange(other.tls_, nullptr)),
      ssl_(std::move(other.ssl_)) {}

Transport& Transport::operator=(Transport&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    tls_ = std::exchange(other.tls_, nullptr);
    ssl_ = std::move(other.ssl_);
    hello_low_water_ = std::exchange(other.hello_low_water_, uint16_t{1});
    read_wants_write_ = std::exchange(other.read_wants_write_, false);
    write_wants_read_ = std::exchange(other.write_wants_read_, false);
  }
  return *this;
}

void Transport::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ssl_.reset();
}

Transport::Hello Transport::await_hello() {
  if (ssl_ != nullptr || tls_ == nullptr) return Hello::ready;
  // A TLS record: type (1), version (2), length (2), then the length's bytes.
  unsigned char header[5];
  const ssize_t n = ::recv(fd_, header, sizeof header, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && would_block()) return Hello::waiting;
  if (n <= 0)
    return Hello::failed;  // the client left (or the socket failed) before saying anything
  int available = 0;
  size_t wanted = sizeof header;
  if (n == static_cast<ssize_t>(sizeof header))
    wanted += static_cast<size_t>(header[3]) << 8 | header[4];
  // Anything but a handshake record of a sane size is left to OpenSSL to refuse.
  if (header[0] == 0x16 && wanted <= kTlsRecordBytes + 2048 &&
      ioctl(fd_, FIONREAD, &available) == 0 && static_cast<size_t>(available) < wanted) {
    // Woken short of the mark: the client closed its side, or the socket failed.
    if (static_cast<size_t>(hello_low_water_) == wanted) return Hello::failed;
    hello_low_water_ = static_cast<uint16_t>(wanted);
    const int low_water = hello_low_water_;
    setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &low_water, sizeof low_water);
    return Hello::waiting;
  }
  if (hello_low_water_ != 1) {
    hello_low_water_ = 1;
    const int low_water = 1;
    setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &low_water, sizeof low_water);
  }
  ssl_.reset(tls_->new_connection());
  SSL* ssl = ssl_.get();
  if (ssl == nullptr || SSL_set_fd(ssl, fd_) != 1) {
    ERR_clear_error();
    ssl_.reset();
    return Hello::failed;
  }
  SSL_set_accept_state(ssl);
  // A retried write may come from another address: joining pieces can move them. Buffers
  // released when empty: an idle keep-alive connection holds no 17 KiB read buffer.
  SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  // Many clients (players among them) close without close_notify: that is an end, not an
  // error. Read-ahead: a record in one read instead of its header and then its body.
  SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_set_read_ahead(ssl, 1);
  return Hello::ready;
}

Transport::Handshake Transport::handshake() {
  SSL* ssl = ssl_.get();
  ERR_clear_error();
  const int done = SSL_do_handshake(ssl);
  if (done == 1) return Handshake::done;
  switch (SSL_get_error(ssl, done)) {
    case SSL_ERROR_WANT_READ:
      return Handshake::want_read;
    case SSL_ERROR_WANT_WRITE:
      return Handshake::want_write;
    default:  // not TLS, no protocol or cipher in common, a bad certificate on their side
      ERR_clear_error();
      return Handshake::failed;
  }
}

std::string Transport::negotiated_protocol() const {
  return ssl_ != nullptr ? http::negotiated_protocol(ssl_.get()) : std::string();
}

bool Transport::session_reused() const {
  return ssl_ != nullptr && SSL_session_reused(ssl_.get()) == 1;
}

Transport::Io Transport::tls_result(int result, Io on_want_write, Io on_want_read) {
  switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
      return on_want_read;
    case SSL_ERROR_WANT_WRITE:
      return on_want_write;
    case SSL_ERROR_ZERO_RETURN:  // close_notify, or the socket's EOF
      return Io::closed;
    default:
      ERR_clear_error();
      return Io::failed;
  }
}

Transport::Io Transport::read(char* buffer, size_t size, size_t& n) {
  if (ssl_ == nullptr) return read_raw(buffer, size, n);
  ERR_clear_error();  // SSL_get_error reads the thread's queue: other code may have left errors
  const int result =
      SSL_read(ssl_.get(), buffer, static_cast<int>(std::min<size_t>(size, 1 << 30)));
  if (result > 0) {
    n = static_cast<size_t>(result);
    return Io::done;
  }
  const Io io = tls_result(result, Io::want_write, Io::again);
  if (io == Io::want_write) read_wants_write_ = true;
  return io;
}

Transport::Io Transport::read_raw(char* buffer, size_t size, size_t& n) {
  const ssize_t result = ::read(fd_, buffer, size);
  if (result > 0) {
    n = static_cast<size_t>(result);
    return Io::done;
  }
  if (result == 0) return Io::closed;
  return would_block() ? Io::again : Io::failed;
}

bool Transport::read_ahead() const {
  return ssl_ != nullptr && SSL_has_pending(ssl_.get()) == 1;
}

bool Transport::bytes_waiting() const {
  char byte = 0;
  return ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

Transport::Io Transport::write(evbuffer* out, size_t& n) {
  if (ssl_ == nullptr) {
    const int result = evbuffer_write_atmost(out, fd_, -1);
    if (result > 0) {
      n = static_cast<size_t>(result);
      return Io::done;
    }
    return result == 0 || would_block() ? Io::again : Io::failed;
  }
  // Short pieces (a reply's head, a small body, HTTP/2 frames) are joined into one record; a
  // piece about a record long or more is encrypted where it lies (move_in_tls_records' rule).
  // A write that must be retried is retried with at least as many bytes, as OpenSSL asks: the
  // joined piece stays first in the buffer, and the buffer only grows behind it.
  size_t piece = std::min(evbuffer_get_length(out), kTlsRecordBytes);
  evbuffer_iovec first;
  if (evbuffer_peek(out, -1, nullptr, &first, 1) >= 1 && first.iov_len >= kTlsRecordPiece)
    piece = std::min(first.iov_len, kTlsRecordBytes);
  const unsigned char* bytes = evbuffer_pullup(out, static_cast<ev_ssize_t>(piece));
  if (bytes == nullptr) return Io::failed;  // out of memory
  ERR_clear_error();
  const int result = SSL_write(ssl_.get(), bytes, static_cast<int>(piece));
  if (result > 0) {
    evbuffer_drain(out, static_cast<size_t>(result));
    n = static_cast<size_t>(result);
    return Io::done;
  }
  const Io io = tls_result(result, Io::again, Io::want_read);
  if (io == Io::want_read) write_wants_read_ = true;
  if (io == Io::closed) return Io::failed;  // no more writing to a session that ended
  return io;
}

void Transport::cork() {
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
}

void Transport::send_close_notify() {
  if (ssl_ == nullptr || !SSL_is_init_finished(ssl_.get())) return;
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

void Transport::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

std::string Transport::peer_address() const {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (fd_ < 0 || getpeername(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "";
  return core::address_text(reinterpret_cast<const sockaddr*>(&address));
}

}  // namespace http
