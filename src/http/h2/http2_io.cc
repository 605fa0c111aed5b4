// Http2Connection's bytes on its Transport: reading them into the session, the rounds of
// frames nghttp2 makes, writing them out (plain, or as TLS records), and the lingering close.
// The session, its callbacks and the streams' life are in http2_connection.cc.
#include <event2/buffer.h>
#include <event2/event.h>

#include <cstdint>

#include "core/log.h"
#include "http/h2/http2_connection.h"
#include "http/tls/tls_records.h"

namespace http {

size_t Http2Connection::buffered() const {
  return evbuffer_get_length(staged_.get()) + evbuffer_get_length(out_.get());
}

int Http2Connection::blocked() {
  send_blocked_ = true;
  return NGHTTP2_ERR_WOULDBLOCK;
}

void Http2Connection::on_readable() {
  if (transport_.take_write_wants_read() && !write_out()) return close_soon();
  if (closing_) return;
  const auto take = [this](const char* bytes, size_t size) {
    receive(bytes, size);
    return !closing_;
  };
  const Transport::TurnEnd end = transport_.read_turn(take, read_event_.get());
  if (end == Transport::TurnEnd::want_write) {
    watch_writes(true);
  } else if (end != Transport::TurnEnd::waiting) {
    close_soon();  // the client closed its side, or the connection failed
  }
}

void Http2Connection::receive(const char* bytes, size_t size) {
  if (closing_ || lingering_) return;  // dropped
  // Replies made inside nghttp2's callbacks are sent after it returns (flush must not
  // re-enter the session).
  in_recv_ = true;
  const ssize_t used =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes), size);
  in_recv_ = false;
  if (used < 0) {
    LOG_DEBUG("http2", "closing a connection from ", remote_ip_, ": ",
              nghttp2_strerror(static_cast<int>(used)));
    flush();  // a GOAWAY nghttp2 queued, if any
    close_soon();
    return;
  }
  flush();
}

void Http2Connection::flush() {
  if (closing_) return;
  if (in_recv_ || in_flush_) {
    flush_again_ = true;
    return;
  }
  in_flush_ = true;
  int rv = 0;
  // Replies made by callbacks during a send are sent by the next round (bounded:
  // each round sends what the output bound allows).
  for (int round = 0; round < 8 && rv == 0; ++round) {
    flush_again_ = false;
    rv = nghttp2_session_send(session_);
    if (!flush_again_) break;
  }
  in_flush_ = false;
  // One hand-over for the whole round, written in this turn. Over TLS the round's frames go
  // out in record-sized pieces (move_in_tls_records, then one SSL_write per piece) instead of
  // one record per frame head and per payload.
  if (transport_.tls()) {
    move_in_tls_records(staged_.get(), out_.get(), SIZE_MAX, false);
  } else {
    evbuffer_add_buffer(out_.get(), staged_.get());
  }
  if (rv != 0 || !write_out()) {
    close_soon();
    return;
  }
  // Done (GOAWAY sent and nothing left): close once the last bytes are out.
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
    finishing_ = true;
    if (buffered() == 0) linger();
  }
  if (streams_.empty()) set_idle(true);  // the last reply's frames are out, if they are
}

bool Http2Connection::write_out() {
  evbuffer* out = out_.get();
  for (int i = 0; i < kTurnWrites && evbuffer_get_length(out) > 0; ++i) {
    size_t n = 0;
    const Transport::Io io = transport_.write(out, n);
    if (io == Transport::Io::failed) return false;
    if (io != Transport::Io::done) break;
  }
  const bool waiting = evbuffer_get_length(out) > 0;
  // (A write that waits for a read, over TLS, is retried when the socket is readable.)
  watch_writes((waiting && !transport_.write_wants_read()) || transport_.read_wants_write());
  if (send_blocked_ && buffered() < kOutputBound) {
    // nghttp2 stopped at the output bound: its next frames are made in this turn, once this
    // call's caller is done (on_writable), as the socket took what was waiting.
    send_blocked_ = false;
    event_active(write_event_.get(), EV_WRITE, 1);
  }
  return true;
}

void Http2Connection::watch_writes(bool on) {
  if (on == write_watched_) return;
  if (on) {
    event_add(write_event_.get(), nullptr);
  } else {
    event_del(write_event_.get());
  }
  write_watched_ = on;
}

void Http2Connection::on_writable() {
  if (closing_) return;
  if (transport_.take_read_wants_write()) {
    on_readable();
    if (closing_) return;
  }
  if (!write_out()) return close_soon();
  if (finishing_ && buffered() == 0) return linger();
  flush();
}

void Http2Connection::linger() {
  if (lingering_ || closing_) return;
  // The GOAWAY is out. Closing now, with the client's last frames unread, would
  // make the kernel answer with a reset that can destroy the GOAWAY before the
  // client reads it: end our side, read and drop what still comes for a moment.
  lingering_ = true;
  if (!transport_.tls()) transport_.shutdown_write();
  timeval linger_time{1, 0};
  event_add(close_event_.get(), &linger_time);
}

}  // namespace http
