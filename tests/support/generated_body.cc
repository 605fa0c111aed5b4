#include "support/generated_body.h"

#include <bit>
#include <cstdio>
#include <cstring>

namespace balancer::test {
namespace {

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Word k of the stream for a name; byte i of the body is byte (i % 8) of word i / 8,
// least significant first, so the content is the same on any host byte order.
uint64_t stream_word(uint64_t seed, uint64_t k) {
  return splitmix64(seed ^ (k * 0xd6e8feb86659fd93ULL));
}

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

void store_le(char* dst, uint64_t word) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(dst, &word, 8);
  } else {
    for (int b = 0; b < 8; ++b) dst[b] = static_cast<char>((word >> (8 * b)) & 0xff);
  }
}

uint64_t load_le(const unsigned char* src) {
  uint64_t word = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&word, src, 8);
  } else {
    for (int b = 0; b < 8; ++b) word |= uint64_t{src[b]} << (8 * b);
  }
  return word;
}

}  // namespace

void append_generated_slice(std::string_view name, size_t offset, size_t length, std::string& out) {
  const uint64_t seed = fnv1a64(name);
  const size_t start = out.size();
  out.resize(start + length);
  char* dst = out.data() + start;
  size_t pos = offset;
  const size_t end = offset + length;
  // Unaligned head and tail byte by byte, whole words in between.
  while (pos < end && (pos % 8 != 0 || end - pos < 8)) {
    *dst++ = static_cast<char>((stream_word(seed, pos / 8) >> (8 * (pos % 8))) & 0xff);
    ++pos;
  }
  for (; end - pos >= 8; pos += 8, dst += 8) store_le(dst, stream_word(seed, pos / 8));
  while (pos < end) {
    *dst++ = static_cast<char>((stream_word(seed, pos / 8) >> (8 * (pos % 8))) & 0xff);
    ++pos;
  }
}

std::string generated_body(std::string_view name, size_t size) {
  std::string out;
  out.reserve(size);
  append_generated_slice(name, 0, size, out);
  return out;
}

std::string generated_etag(std::string_view name, size_t size) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "\"g%016llx-%zx\"", static_cast<unsigned long long>(fnv1a64(name)),
                size);
  return buf;
}

std::optional<size_t> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  size_t multiplier = 1;
  switch (text.back()) {
    case 'k':
    case 'K':
      multiplier = size_t{1} << 10;
      break;
    case 'm':
    case 'M':
      multiplier = size_t{1} << 20;
      break;
    case 'g':
    case 'G':
      multiplier = size_t{1} << 30;
      break;
    default:
      break;
  }
  if (multiplier != 1) text.remove_suffix(1);
  if (text.empty() || text.size() > 12) return std::nullopt;
  size_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  constexpr size_t kMax = size_t{16} << 30;
  if (value > kMax / multiplier) return std::nullopt;
  return value * multiplier;
}

std::string_view content_type_for(std::string_view name) {
  const auto dot = name.rfind('.');
  const auto slash = name.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && slash > dot)) {
    return "application/octet-stream";
  }
  const std::string_view ext = name.substr(dot + 1);
  if (ext == "ts") return "video/mp2t";
  if (ext == "m4s" || ext == "mp4") return "video/mp4";
  if (ext == "m3u8") return "application/vnd.apple.mpegurl";
  if (ext == "aac") return "audio/aac";
  if (ext == "vtt") return "text/vtt";
  if (ext == "json") return "application/json";
  if (ext == "txt") return "text/plain";
  return "application/octet-stream";
}

void BodyHasher::mix_word(uint64_t word) {
  state_ = rotl(state_ ^ (word * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
}

void BodyHasher::update(std::string_view bytes) {
  size_ += bytes.size();
  size_t i = 0;
  while (partial_len_ != 0 && i < bytes.size()) {
    partial_ |= uint64_t{static_cast<unsigned char>(bytes[i++])} << (8 * partial_len_);
    if (++partial_len_ == 8) {
      mix_word(partial_);
      partial_ = 0;
      partial_len_ = 0;
    }
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 8 <= bytes.size(); i += 8) mix_word(load_le(p + i));
  for (; i < bytes.size(); ++i) {
    partial_ |= uint64_t{p[i]} << (8 * partial_len_);
    ++partial_len_;
  }
}

uint64_t BodyHasher::finish() const {
  uint64_t h = state_;
  if (partial_len_ != 0)
    h = rotl(h ^ (partial_ * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
  return splitmix64(h ^ size_);
}

uint64_t body_hash(std::string_view bytes) {
  BodyHasher hasher;
  hasher.update(bytes);
  return hasher.finish();
}

}  // namespace balancer::test
