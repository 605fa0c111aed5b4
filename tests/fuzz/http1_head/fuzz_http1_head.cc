// Fuzz target for the HTTP/1 request-head parser (src/http/h1/http1_head.h): any bytes, under two
// limits. It must never crash or read outside the bytes (ASan, UBSan); a complete head lies
// within the bytes and the limit, its views point into them, and reading just its bytes, or its
// bytes and more after them, gives the same head; incomplete means no more than the limit has
// arrived; a refusal says why. The parsed fields then go through the framing check. The same
// bytes as a chunked body: decoded whole and in pieces of 1 and 7 bytes, the decoder says the
// same and gives the same body, within the limit, never using bytes it was not given. The same
// bytes to the HTTP/1 codec (src/http/h1/http1_codec.h) as a connection's input, whole and in
// pieces of 1 and 7 bytes: bodies within the limit, input only ever used up, and the requests
// read whole and in pieces the same, up to the first that is not read to its end in either.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "http/h1/http1_codec.h"
#include "http/h1/http1_head.h"
#include "http/h1/request_framing.h"

namespace {

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool same_head(const http::Http1Head& a, const http::Http1Head& b) {
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
  const http::HeadParse parsed = http::parse_http1_head(bytes, limit);
  switch (parsed.status) {
    case http::HeadStatus::complete: {
      const http::Http1Head& head = parsed.head;
      FUZZ_CHECK(head.size <= bytes.size() && head.size <= limit);
      FUZZ_CHECK(!head.method.empty() && !head.target.empty());
      FUZZ_CHECK(inside(head.method, bytes.substr(0, head.size)));
      FUZZ_CHECK(inside(head.target, bytes.substr(0, head.size)));
      for (const http::HeaderField& f : head.fields) {
        FUZZ_CHECK(!f.name.empty() && inside(f.name, bytes.substr(0, head.size)));
        FUZZ_CHECK(inside(f.value, bytes.substr(0, head.size)));
      }
      const http::HeadParse alone = http::parse_http1_head(bytes.substr(0, head.size), limit);
      FUZZ_CHECK(alone.status == http::HeadStatus::complete && same_head(alone.head, head));
      const std::string more = std::string(bytes) + "GET / HTTP/1.1\r\n";
      const http::HeadParse followed = http::parse_http1_head(more, limit);
      FUZZ_CHECK(followed.status == http::HeadStatus::complete && followed.head.size == head.size);
      (void)http::check_request_framing(head.method, head.major, head.minor, head.fields);
      break;
    }
    case http::HeadStatus::incomplete:
      FUZZ_CHECK(bytes.size() < limit);
      break;
    case http::HeadStatus::too_large:
      break;
    case http::HeadStatus::malformed:
      FUZZ_CHECK(!parsed.error.empty());
      break;
  }
}

struct ChunkedResult {
  http::ChunkedBodyDecoder::Status status;
  std::string body;
  size_t used = 0;  // of all the bytes, when complete
};

// `bytes` fed to one decoder in pieces of `piece` (each call gets what the last left unused).
ChunkedResult decode_chunked(std::string_view bytes, size_t piece, size_t max_body) {
  http::ChunkedBodyDecoder decoder;
  ChunkedResult result{http::ChunkedBodyDecoder::Status::more, {}, 0};
  std::string unused;
  size_t consumed = 0;  // bytes of `bytes` used so far
  for (size_t at = 0; at < bytes.size(); at += piece) {
    unused.append(bytes.substr(at, piece));
    size_t used = 0;
    result.status = decoder.feed(unused, result.body, max_body, used);
    FUZZ_CHECK(used <= unused.size());
    FUZZ_CHECK(result.body.size() <= max_body);
    unused.erase(0, used);
    consumed += used;
    if (result.status != http::ChunkedBodyDecoder::Status::more) break;
  }
  result.used = consumed;
  return result;
}

void check_chunked(std::string_view bytes) {
  constexpr size_t kMaxBody = 4096;
  const ChunkedResult whole = decode_chunked(bytes, bytes.size() + 1, kMaxBody);
  for (size_t piece : {size_t{1}, size_t{7}}) {
    const ChunkedResult pieces = decode_chunked(bytes, piece, kMaxBody);
    // A line longer than the decoder's bound may be refused whole yet still be "more" while
    // it arrives in pieces (and the reverse): compare only where both finished the body.
    if (whole.status == http::ChunkedBodyDecoder::Status::complete ||
        pieces.status == http::ChunkedBodyDecoder::Status::complete) {
      FUZZ_CHECK(whole.status == pieces.status);
      FUZZ_CHECK(whole.body == pieces.body);
      FUZZ_CHECK(whole.used == pieces.used);
    }
  }
}

// What the codec read of one request: clean (read to its end, the next may follow) or not.
struct CodecRead {
  bool clean = false;
  std::string method, target, body;
};

// `bytes` to a codec in pieces of `piece`, requests read as a connection reads them, until one
// is not read to its end (a refusal, a framing problem, a body over the limit).
std::vector<CodecRead> read_codec(std::string_view bytes, size_t piece) {
  http::Http1Codec::Limits limits;
  limits.max_header_bytes = 256;
  limits.max_body_bytes = 1024;
  http::Http1Codec codec;
  http::Http1Request request;
  std::vector<CodecRead> reads;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    codec.input().append(bytes.substr(at, piece));
    for (;;) {
      const size_t before = codec.input().size();
      http::Http1Codec::Step step = codec.read(request, limits);
      FUZZ_CHECK(codec.input().size() <= before);
      if (step == http::Http1Codec::Step::head) step = codec.read(request, limits);
      if (step == http::Http1Codec::Step::more) break;
      FUZZ_CHECK(step != http::Http1Codec::Step::head);
      FUZZ_CHECK(request.body.size() <= limits.max_body_bytes);
      FUZZ_CHECK(request.body_bytes <= limits.max_body_bytes + 1);
      CodecRead read;
      read.clean = step == http::Http1Codec::Step::request && !request.leave_input;
      read.method = std::string(request.parsed.head.method);
      read.target = std::string(request.parsed.head.target);
      read.body = request.body;
      reads.push_back(read);
      request.clear(0);
      if (!read.clean) return reads;
    }
  }
  return reads;
}

void check_codec(std::string_view bytes) {
  const std::vector<CodecRead> whole = read_codec(bytes, bytes.size() + 1);
  for (size_t piece : {size_t{1}, size_t{7}}) {
    const std::vector<CodecRead> pieces = read_codec(bytes, piece);
    for (size_t i = 0; i < whole.size() && i < pieces.size(); ++i) {
      if (!whole[i].clean || !pieces[i].clean) break;
      FUZZ_CHECK(whole[i].method == pieces[i].method);
      FUZZ_CHECK(whole[i].target == pieces[i].target);
      FUZZ_CHECK(whole[i].body == pieces[i].body);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check(bytes, 16 * 1024);
  check(bytes, 64);
  check_chunked(bytes);
  check_codec(bytes);
  return 0;
}
