// Fuzz target for the HTTP/1 request-head parser (src/http/http1_head.h): any bytes, under two
// limits. It must never crash or read outside the bytes (ASan, UBSan); a complete head lies
// within the bytes and the limit, its views point into them, and reading just its bytes, or its
// bytes and more after them, gives the same head; incomplete means no more than the limit has
// arrived; a refusal says why. The parsed fields then go through the framing check.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "http/http1_head.h"
#include "http/request_framing.h"

namespace {

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool same_head(const common::Http1Head& a, const common::Http1Head& b) {
  if (a.method != b.method || a.target != b.target || a.major != b.major || a.minor != b.minor ||
      a.size != b.size || a.fields.size() != b.fields.size()) {
    return false;
  }
  for (size_t i = 0; i < a.fields.size(); ++i) {
    if (a.fields[i].name != b.fields[i].name || a.fields[i].value != b.fields[i].value)
      return false;
  }
  return true;
}

void check(std::string_view bytes, size_t limit) {
  const common::HeadParse parsed = common::parse_http1_head(bytes, limit);
  switch (parsed.status) {
    case common::HeadStatus::complete: {
      const common::Http1Head& head = parsed.head;
      FUZZ_CHECK(head.size <= bytes.size() && head.size <= limit);
      FUZZ_CHECK(!head.method.empty() && !head.target.empty());
      FUZZ_CHECK(inside(head.method, bytes.substr(0, head.size)));
      FUZZ_CHECK(inside(head.target, bytes.substr(0, head.size)));
      for (const common::HeaderField& f : head.fields) {
        FUZZ_CHECK(!f.name.empty() && inside(f.name, bytes.substr(0, head.size)));
        FUZZ_CHECK(inside(f.value, bytes.substr(0, head.size)));
      }
      const common::HeadParse alone = common::parse_http1_head(bytes.substr(0, head.size), limit);
      FUZZ_CHECK(alone.status == common::HeadStatus::complete && same_head(alone.head, head));
      const std::string more = std::string(bytes) + "GET / HTTP/1.1\r\n";
      const common::HeadParse followed = common::parse_http1_head(more, limit);
      FUZZ_CHECK(followed.status == common::HeadStatus::complete &&
                 followed.head.size == head.size);
      (void)common::check_request_framing(head.method, head.major, head.minor, head.fields);
      break;
    }
    case common::HeadStatus::incomplete:
      FUZZ_CHECK(bytes.size() < limit);
      break;
    case common::HeadStatus::too_large:
      break;
    case common::HeadStatus::malformed:
      FUZZ_CHECK(!parsed.error.empty());
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check(bytes, 16 * 1024);
  check(bytes, 64);
  return 0;
}
