// Output over TLS in pieces that fill a record: HTTP/2's rounds of frames on their way to the
// Transport (http/transport/transport.h), which writes one record per SSL_write.
#pragma once

#include <event2/buffer.h>

#include <cstddef>

namespace http {

// Plaintext of one TLS record (16 KiB), less room for the evbuffer chain's own head so
// that a piece's allocation stays within 16 KiB.
inline constexpr size_t kTlsRecordPiece = 16 * 1024 - 256;

// Over TLS, moves up to about `limit` bytes of `src` to `dst` in pieces that fill a record:
// the transport encrypts a piece about a record long where it lies (one SSL_write, one
// record), so an HTTP/2 DATA frame's 9-byte head, or a reply's head apart from its body, is
// not a record and a write of its own. Short pieces are copied together; a piece already a
// record long moves without a copy.
// With `hold_short_tail`, a last piece short of a record stays in `src` while `dst` still
// has bytes to write (the transport asks again when it has drained them). Returns the
// bytes moved.
size_t move_in_tls_records(evbuffer* src, evbuffer* dst, size_t limit, bool hold_short_tail);

}  // namespace http
