#include "signing/playback_ticket.h"

#include <openssl/crypto.h>

#include <charconv>

#include "signing/keyed_hmac.h"

namespace signing {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kMacPrefix = "playback-ticket.";
constexpr std::string_view kVersion = "1";

int decode_char(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::string mac(const std::string& key, std::string_view payload_b64) {
  std::string message;
  message.reserve(kMacPrefix.size() + payload_b64.size());
  message.append(kMacPrefix).append(payload_b64);
  unsigned char digest[kHmacSha256Bytes];
  // Failing (OpenSSL out of memory), no MAC: verify() accepts none then.
  if (!hmac_sha256(key, message, digest)) return std::string();
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

core::Error error(const char* code, const char* message) {
  return core::Error{code, message};
}

}  // namespace

bool valid_channel_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool valid_viewer_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxViewerIdBytes) return false;
  for (char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string base64url_encode(std::string_view bytes) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == n) {
    uint32_t v = uint32_t{data[i]} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == n) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

bool base64url_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 == 1) return false;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = decode_char(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Canonical encoding only: leftover bits must be zero.
  return (acc & ((1u << bits) - 1)) == 0;
}

core::Result<PlaybackTickets> PlaybackTickets::create(std::vector<std::string> keys) {
  if (keys.empty())
    return core::Error{"bad_config", "at least one playback ticket key is required"};
  for (const auto& k : keys) {
    if (k.size() < 16)
      return core::Error{"bad_config", "playback ticket keys must be at least 16 bytes long"};
  }
  return PlaybackTickets(std::move(keys));
}

core::Result<std::string> PlaybackTickets::issue(const PlaybackTicket& ticket) const {
  if (ticket.channel != kAnyChannel && !valid_channel_id(ticket.channel)) {
    return error("bad_ticket", "The channel id is not valid.");
  }
  if (!valid_viewer_id(ticket.viewer)) return error("bad_ticket", "The viewer id is not valid.");
  std::string payload;
  payload.append(kVersion).append("\n").append(std::to_string(ticket.expires_unix));
  payload.append("\n").append(ticket.channel).append("\n").append(ticket.viewer);
  std::string token = base64url_encode(payload);
  std::string signature = mac(keys_[0], token);
  token.append(".").append(signature);
  return token;
}

core::Result<PlaybackTicket> PlaybackTickets::verify(std::string_view token,
                                                     std::string_view channel_id,
                                                     int64_t now_unix) const {
  if (token.empty() || token.size() > kMaxTicketBytes) {
    return error("ticket_malformed", "The playback ticket is not well formed.");
  }
  size_t dot = token.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= token.size()) {
    return error("ticket_malformed", "The playback ticket is not well formed.");
  }
  std::string_view payload_b64 = token.substr(0, dot);
  std::string_view signature = token.substr(dot + 1);
  std::string payload;
  std::string raw_signature;
  if (!base64url_decode(payload_b64, payload) || !base64url_decode(signature, raw_signature)) {
    return error("ticket_malformed", "The playback ticket is not well formed.");
  }
  bool match = false;
  for (const auto& key : keys_) {
    std::string expected = mac(key, payload_b64);
    // Constant-time: never reveal how many leading characters matched.
    if (!expected.empty() && expected.size() == signature.size() &&
        CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) == 0) {
      match = true;
    }
  }
  if (!match) return error("ticket_invalid", "The playback ticket's signature is not valid.");

  // Only a validly signed payload is parsed, so these checks guard issuer bugs.
  std::string_view rest = payload;
  std::string_view fields[4];
  for (int i = 0; i < 3; ++i) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      return error("ticket_malformed", "The playback ticket is not well formed.");
    }
    fields[i] = rest.substr(0, nl);
    rest = rest.substr(nl + 1);
  }
  fields[3] = rest;
  if (fields[0] != kVersion) {
    return error("ticket_malformed", "The playback ticket has an unknown version.");
  }
  PlaybackTicket ticket;
  auto [end, ec] =
      std::from_chars(fields[1].data(), fields[1].data() + fields[1].size(), ticket.expires_unix);
  if (ec != std::errc() || end != fields[1].data() + fields[1].size() ||
      (fields[2] != kAnyChannel && !valid_channel_id(fields[2])) || !valid_viewer_id(fields[3])) {
    return error("ticket_malformed", "The playback ticket is not well formed.");
  }
  ticket.channel.assign(fields[2]);
  ticket.viewer.assign(fields[3]);
  if (ticket.expires_unix < now_unix) {
    return error("ticket_expired", "The playback ticket has expired; ask the app for a new one.");
  }
  if (!ticket.covers(channel_id)) {
    return error("ticket_wrong_channel", "The playback ticket does not grant this channel.");
  }
  return ticket;
}

}  // namespace signing
