#include "http/tls/tls_records.h"

#include <algorithm>

namespace http {

size_t move_in_tls_records(evbuffer* src, evbuffer* dst, size_t limit, bool hold_short_tail) {
  size_t moved = 0;
  // Bounded: every round moves at least one byte, and at most `limit` bytes move.
  while (evbuffer_get_length(src) > 0 && moved < limit) {
    evbuffer_iovec first;
    if (evbuffer_peek(src, -1, nullptr, &first, 1) < 1) break;
    if (first.iov_len >= kTlsRecordPiece) {
      // Already a record or more (a file segment, a large body): moved, not copied.
      evbuffer_remove_buffer(src, dst, first.iov_len);
      moved += first.iov_len;
      continue;
    }
    size_t n = std::min(evbuffer_get_length(src), kTlsRecordPiece);
    // The transport still writes: it asks for more once it has drained, by when this
    // tail may have grown into a full record.
    if (n < kTlsRecordPiece && hold_short_tail && evbuffer_get_length(dst) > 0) break;
    evbuffer_iovec space;
    if (evbuffer_reserve_space(dst, static_cast<ev_ssize_t>(n), &space, 1) != 1 ||
        space.iov_len < n) {
      evbuffer_remove_buffer(src, dst, n);  // out of memory: unjoined, but nothing lost
      moved += n;
      continue;
    }
    int copied = evbuffer_remove(src, space.iov_base, n);
    if (copied <= 0) break;  // reserved space left uncommitted is not output
    space.iov_len = static_cast<size_t>(copied);
    evbuffer_commit_space(dst, &space, 1);
    moved += space.iov_len;
  }
  return moved;
}

}  // namespace http
