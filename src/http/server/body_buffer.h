// A response body under construction, independent of the protocol front end
// that will send it: bytes copied in, bytes referenced without a copy (kept
// alive until sent), or a file segment (sent with sendfile where possible).
// Filled by one thread, then moved into HttpExchange::reply() or send().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace http {

class BodyBuffer {
 public:
  BodyBuffer();
  ~BodyBuffer();
  BodyBuffer(BodyBuffer&&) noexcept;
  BodyBuffer& operator=(BodyBuffer&&) noexcept;
  BodyBuffer(const BodyBuffer&) = delete;
  BodyBuffer& operator=(const BodyBuffer&) = delete;

  void append(std::string_view bytes);
  // `data` stays valid while `keep` lives; `keep` is released once the bytes are sent.
  void append_reference(const char* data, size_t size, std::shared_ptr<const void> keep);
  // Takes ownership of `fd` on success; false (fd still the caller's) on failure.
  // With `send_file` the segment is sent with sendfile, never mapped or read into this
  // process, so its bytes cannot be read back from the buffer (only for an exchange
  // whose sends_files() is true); without, it is mapped and read by the front end.
  bool append_file(int fd, uint64_t offset, uint64_t length, bool send_file = true);
  size_t size() const;

  // The front end's storage (an evbuffer for the HTTP/1.1 server), made on first use. Internal.
  void* native() const;

 private:
  // Made when first needed, and not remade for a buffer moved from: a reply's buffer is moved
  // twice on its way to the connection, and each move made a new empty one before.
  mutable void* native_ = nullptr;
};

}  // namespace http
