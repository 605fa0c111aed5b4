// One accepted connection's bytes, in the clear or over TLS: the transport under both
// protocols (docs/http.md, "The transport"). It owns the non-blocking socket and, over TLS,
// the OpenSSL session straight on it (no bufferevent, no filter), and it knows nothing of
// HTTP: the HTTP/1 connection (http/h1/http1_connection.h) does the handshake through it and
// reads and writes its requests and replies; when the client turns out to speak HTTP/2, the
// Http2Connection (http/h2/http2_connection.h) takes the same object over, session and all.
//
// Over TLS the session is made only once the client's first record (its ClientHello) is here
// whole (await_hello): until then the connection holds no OpenSSL state (a session with its
// read and handshake buffers is ~40 KB; a client sending half a ClientHello and nothing more
// held all of it until the timeout).
//
// Its owner watches the socket (fd()) on its loop and calls it when the socket is ready; the
// transport makes no event and calls nothing back. Movable, not copyable: the moved-from
// object owns nothing. Loop thread only.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "http/http_handles.h"

namespace http {

// What a connection on a Transport does in one turn of its loop, on either protocol, before
// yielding to the loop's other connections: bytes read at a time, TLS records read (what
// OpenSSL has read ahead is taken in the next turn), writes before waiting for the socket.
inline constexpr size_t kTurnReadBytes = 16 * 1024;
inline constexpr int kTurnTlsReads = 16;
inline constexpr int kTurnWrites = 64;

class TlsContext;

class Transport {
 public:
  // What a read or a write did.
  enum class Io {
    done,        // bytes moved (`n` says how many)
    again,       // nothing now: wait for the socket
    want_write,  // over TLS, a read must first write (a key update's reply): wait until writable
    want_read,   // over TLS, a write must first read: retry the write when readable
    closed,      // the client closed its sending side (EOF, or TLS close_notify)
    failed,      // the connection failed (a reset, a TLS error)
  };
  enum class Handshake { done, want_read, want_write, failed };
  // The ClientHello gate (await_hello).
  enum class Hello { ready, waiting, failed };

  Transport() = default;
  // Owns `fd` (a non-blocking socket) from now on; with `tls`, TLS is spoken over it, with
  // sessions made from `tls` (which must outlive this object's await_hello).
  Transport(evutil_socket_t fd, const TlsContext* tls) : fd_(fd), tls_(tls) {}
  ~Transport() { close(); }
  Transport(Transport&& other) noexcept;
  Transport& operator=(Transport&& other) noexcept;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  evutil_socket_t fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  // Over TLS (a session made or to be made).
  bool tls() const { return tls_ != nullptr || ssl_ != nullptr; }
  // Over TLS, once the session exists (await_hello gave ready).
  bool has_session() const { return ssl_ != nullptr; }

  // TLS before the session exists: ready once the client's first record is here whole and
  // the session is made (at once in the clear, or when the session exists already); waiting
  // for more bytes, which the socket reports only once there are enough (SO_RCVLOWAT), so
  // waiting costs no wake-ups; failed when the client left, the socket failed or OpenSSL
  // could not make a session (the owner closes).
  Hello await_hello();
  // Moves the TLS handshake on (the session exists).
  Handshake handshake();
  // What the finished handshake agreed on: ALPN's protocol ("h2", "http/1.1", or empty), and
  // whether a session was resumed.
  std::string negotiated_protocol() const;
  bool session_reused() const;

  // How a turn of reading (read_turn) ended.
  enum class TurnEnd {
    waiting,     // nothing more now, or the owner stopped: the loop says when more is here
    want_write,  // over TLS a read must first write: read again once the socket is writable
    closed,      // the client closed its sending side (EOF, or TLS close_notify)
    failed,      // the connection failed (a reset, a TLS error)
  };

  // One turn of reading for either protocol: reads up to kTurnReadBytes at a time (decrypted,
  // over TLS) and hands each read's bytes to `take(const char* bytes, size_t size)`, which
  // returns whether to read on (false once its owner closed, paused reading or gave this
  // transport away: it is not touched after). In the clear one read (the loop reports more);
  // over TLS a read again only while OpenSSL holds records read ahead (another read would
  // find nothing), kTurnTlsReads at the most, then read_ahead_next_turn(read_event).
  template <typename Take>
  TurnEnd read_turn(Take&& take, event* read_event);
  // Over TLS, when OpenSSL holds records read ahead, which the socket will not report: makes
  // `read_event` (the owner's watch of fd()) active, so that they are read in the loop's next
  // turn. Nothing otherwise.
  void read_ahead_next_turn(event* read_event) const {
    if (read_ahead()) event_active(read_event, EV_READ, 1);
  }

  // Reads up to `size` bytes (decrypted, over TLS) into `buffer`; `n` is set with done.
  Io read(char* buffer, size_t size, size_t& n);
  // Reads the socket as it is, encrypted or not (a closing connection drops what still comes).
  Io read_raw(char* buffer, size_t size, size_t& n);
  // Over TLS, bytes OpenSSL has read ahead and not yet returned: the socket will not report
  // them, so the owner reads again (in a later turn) while this holds.
  bool read_ahead() const;
  // The client's bytes are in the socket, unread (one MSG_PEEK).
  bool bytes_waiting() const;

  // Writes from the front of `out`, draining what was written: in the clear as much as the
  // socket takes (one writev, or sendfile for file segments); over TLS one record of up to
  // 16 KiB plaintext, short pieces joined into it (a small reply is one record and one write)
  // and a piece about a record long or more encrypted where it lies.
  Io write(evbuffer* out, size_t& n);

  // Over TLS, what the last read or write must wait for before it is retried (want_write from
  // a read, want_read from a write); taking it clears it.
  bool take_read_wants_write() { return std::exchange(read_wants_write_, false); }
  bool take_write_wants_read() { return std::exchange(write_wants_read_, false); }
  bool read_wants_write() const { return read_wants_write_; }
  bool write_wants_read() const { return write_wants_read_; }

  // Holds the next segments until the close or shutdown (TCP_CORK): a connection's last reply,
  // TLS's close_notify and the FIN leave in one segment.
  void cork();
  // The clean end of a TLS session: close_notify (one short alert; a client already gone
  // makes it fail, harmlessly). Nothing in the clear or before the handshake is done.
  void send_close_notify();
  // Our sending side ends (FIN); reading goes on.
  void shutdown_write();
  // Closes the socket and frees the session now; is_open() is false after.
  void close();

  // The peer's address as text ("" when unknown).
  std::string peer_address() const;

 private:
  Io tls_result(int result, Io on_want_write, Io on_want_read);

  // (Small fields first: an idle HTTP/1 connection, which holds this, fits a 320-byte class.)
  evutil_socket_t fd_ = -1;
  uint16_t hello_low_water_ = 1;     // SO_RCVLOWAT while the first record is awaited (< 20 KiB)
  bool read_wants_write_ = false;    // SSL_read must write first (renegotiation is off; a
  bool write_wants_read_ = false;    // key update's reply), or SSL_write read first
  const TlsContext* tls_ = nullptr;  // TLS: the context the session is made from
  SslPtr ssl_;                       // TLS: the session over fd_, once await_hello() is ready
};

template <typename Take>
Transport::TurnEnd Transport::read_turn(Take&& take, event* read_event) {
  char buffer[kTurnReadBytes];
  for (int i = 0; i < kTurnTlsReads; ++i) {
    size_t n = 0;
    switch (read(buffer, sizeof buffer, n)) {
      case Io::done:
        if (!take(static_cast<const char*>(buffer), n) || !read_ahead()) return TurnEnd::waiting;
        continue;
      case Io::again:
      case Io::want_read:
        return TurnEnd::waiting;
      case Io::want_write:
        return TurnEnd::want_write;
      case Io::closed:
        return TurnEnd::closed;
      case Io::failed:
        return TurnEnd::failed;
    }
  }
  read_ahead_next_turn(read_event);
  return TurnEnd::waiting;
}

}  // namespace http
