#include "http/server/body_buffer.h"

#include <event2/buffer.h>

#include <new>
#include <utility>

namespace http {
namespace {
evbuffer* buf(void* p) {
  return static_cast<evbuffer*>(p);
}
}  // namespace

BodyBuffer::BodyBuffer() = default;
BodyBuffer::~BodyBuffer() {
  if (native_ != nullptr) evbuffer_free(buf(native_));
}
BodyBuffer::BodyBuffer(BodyBuffer&& other) noexcept : native_(other.native_) {
  other.native_ = nullptr;
}

void* BodyBuffer::native() const {
  if (native_ == nullptr) {
    native_ = evbuffer_new();
    if (native_ == nullptr) throw std::bad_alloc();  // as any allocation of ours would
  }
  return native_;
}
BodyBuffer& BodyBuffer::operator=(BodyBuffer&& other) noexcept {
  std::swap(native_, other.native_);
  return *this;
}

void BodyBuffer::append(std::string_view bytes) {
  evbuffer_add(buf(native()), bytes.data(), bytes.size());
}

void BodyBuffer::append_reference(const char* data, size_t size, std::shared_ptr<const void> keep) {
  auto* holder = new std::shared_ptr<const void>(std::move(keep));
  if (evbuffer_add_reference(
          buf(native()), data, size,
          [](const void*, size_t, void* arg) {
            delete static_cast<std::shared_ptr<const void>*>(arg);
          },
          holder) != 0) {
    delete holder;
    evbuffer_add(buf(native()), data, size);
  }
}

bool BodyBuffer::append_file(int fd, uint64_t offset, uint64_t length, bool send_file) {
  // Only a buffer marked as drained to a socket keeps a file segment as a file (sent with
  // sendfile once it reaches the connection's output); any other gets it mmapped, and the
  // pages a slow reader has been sent stay mapped in this process until the reply ends.
  // A BodyBuffer is only ever moved into a reply, never read back, so the mark holds.
  if (send_file) evbuffer_set_flags(buf(native()), EVBUFFER_FLAG_DRAINS_TO_FD);
  return evbuffer_add_file(buf(native()), fd, static_cast<ev_off_t>(offset),
                           static_cast<ev_off_t>(length)) == 0;
}

size_t BodyBuffer::size() const {
  return native_ != nullptr ? evbuffer_get_length(buf(native_)) : 0;
}

}  // namespace http
