// Deterministic synthetic bodies served by test_origin under /gen/<size>/<name>.
//
// The byte at offset i of the body named `name` depends only on (name, i), never on
// the size, so a prefix of a long body equals the short body of the same name and a
// test can check any slice (a Range reply, a truncated transfer) on its own.
// Pure functions: no I/O, no global state, callable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace balancer::test {

// The whole body of `size` bytes for `name`.
std::string generated_body(std::string_view name, size_t size);

// Bytes [offset, offset + length) of the body for `name`; appends to `out`.
void append_generated_slice(std::string_view name, size_t offset, size_t length, std::string& out);

// Strong ETag (quoted) that test_origin sends for /gen/<size>/<name>.
std::string generated_etag(std::string_view name, size_t size);

// Parses a /gen size: decimal bytes with an optional K, M or G suffix (binary
// multiples, case-insensitive): "1048576", "1M", "2K". nullopt when malformed or
// above 16 GiB.
std::optional<size_t> parse_size(std::string_view text);

// Content-Type test_origin sends for a file or /gen name, by extension.
std::string_view content_type_for(std::string_view name);

// Streaming 64-bit hash of a byte sequence; the result does not depend on how the
// bytes are split across update() calls. Not cryptographic: for comparing bodies.
class BodyHasher {
 public:
  void update(std::string_view bytes);
  uint64_t finish() const;
  size_t size() const { return size_; }

 private:
  void mix_word(uint64_t word);

  uint64_t state_ = 0x6a09e667f3bcc908ULL;
  uint64_t partial_ = 0;  // up to 7 pending bytes, little-endian
  size_t partial_len_ = 0;
  size_t size_ = 0;
};

// BodyHasher over a whole string.
uint64_t body_hash(std::string_view bytes);

}  // namespace balancer::test
