#include "http/transport/protocol_choice.h"

#include <algorithm>

namespace http {

ProtocolChoice choose_after_handshake(std::string_view alpn, bool http2_offered) {
  return http2_offered && alpn == "h2" ? ProtocolChoice::http2 : ProtocolChoice::http1;
}

ProtocolChoice choose_by_first_bytes(std::string_view first_bytes) {
  const size_t compared = std::min(first_bytes.size(), kHttp2ClientPreface.size());
  if (first_bytes.substr(0, compared) != kHttp2ClientPreface.substr(0, compared))
    return ProtocolChoice::http1;
  return compared < kHttp2ClientPreface.size() ? ProtocolChoice::undecided : ProtocolChoice::http2;
}

}  // namespace http
