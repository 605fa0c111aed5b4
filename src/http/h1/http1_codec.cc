#include "http/h1/http1_codec.h"

#include <algorithm>
#include <charconv>

#include "core/ascii.h"

namespace http {
namespace {

// A field's value for RequestFramingCheck: from the first tab after the colon, if any. The
// parser drops the whitespace around a value as RFC 9110 says; a proxy in front may not
// drop a tab, and read "Transfer-Encoding:<tab>chunked" as no chunked coding at all, so the
// check refuses a value that starts with one, as it did when evhttp kept it.
std::string_view value_as_checked(const HeaderField& field) {
  const char* after_colon = field.name.data() + field.name.size() + 1;
  // A Host value the parser took from an absolute-form target (http1_head.h) lies before it.
  if (field.value.data() < after_colon) return field.value;
  std::string_view space(after_colon, static_cast<size_t>(field.value.data() - after_colon));
  const size_t tab = space.find('\t');
  if (tab == std::string_view::npos) return field.value;
  return std::string_view(after_colon + tab, space.size() - tab + field.value.size());
}

// The head's fields as the connection acts on them, and their framing check.
void read_fields(Http1Request& request) {
  const Http1Head& head = request.parsed.head;
  RequestFramingCheck framing(head.method, head.major, head.minor);
  request.header_bytes = head.target.size() + 16;
  bool close_asked = false;
  for (const HeaderField& field : head.fields) {
    request.header_bytes += field.name.size() + field.value.size() + 4;
    framing.field(field.name, value_as_checked(field));
    if (core::iequals(field.name, "Content-Length")) {
      // RequestFramingCheck refuses any value but digits; a refused one is not read.
      std::from_chars(field.value.data(), field.value.data() + field.value.size(),
                      request.content_length);
    } else if (core::iequals(field.name, "Transfer-Encoding")) {
      request.chunked_request = true;  // RequestFramingCheck refuses anything but "chunked"
    } else if (core::iequals(field.name, "Connection")) {
      for_each_token(field.value, [&](std::string_view token) {
        if (core::iequals(token, "close")) close_asked = true;
        if (core::iequals(token, "keep-alive")) request.keep_alive_asked = true;
      });
    } else if (core::iequals(field.name, "Expect")) {
      request.expect_continue = core::iequals(field.value, "100-continue");
    }
  }
  request.framing = framing.problem();
  // HTTP/1.1 stays open unless asked to close; HTTP/1.0 only when asked to stay.
  request.keep_alive = !close_asked && (head.minor >= 1 || request.keep_alive_asked);
}

}  // namespace

void Http1Request::clear(size_t keep_bytes) {
  for (std::string* buffer : {&head_bytes, &body, &refusal.message}) {
    buffer->clear();
    if (buffer->capacity() > keep_bytes) std::string().swap(*buffer);
  }
  parsed.status = HeadStatus::incomplete;
  parsed.error = {};
  Http1Head& head = parsed.head;
  head.method = head.target = {};
  head.major = head.minor = 0;
  head.fields.clear();
  head.size = 0;
  framing = FramingProblem::none;
  content_length = 0;
  header_bytes = 0;
  chunked = ChunkedBodyDecoder{};
  minor_version = 1;
  keep_alive = true;
  keep_alive_asked = expect_continue = chunked_request = false;
  continue_expected = leave_input = false;
  body_bytes = 0;
  refusal.status = 0;
  refusal.code = refusal.method = refusal.target = {};
  refusal.after_head = false;
}

Http1Codec::Step Http1Codec::read(Http1Request& request, const Limits& limits) {
  if (in_body_) return read_body(request, limits);
  if (!head_told_) return read_head(request, limits);
  // The head was told: where its request ends.
  head_told_ = false;
  if (request.framing != FramingProblem::none) {
    // Where this request ends is in doubt: nothing after its head is read as a request.
    return complete(request, 0, true);
  }
  request.body.clear();
  if (request.content_length > limits.max_body_bytes) {
    // Answered 413 without reading the body.
    return complete(
        request,
        static_cast<size_t>(std::min<uint64_t>(request.content_length, limits.max_body_bytes + 1)),
        true);
  }
  if (!request.chunked_request && request.content_length == 0) return complete(request, 0, false);
  in_body_ = true;
  request.chunked = ChunkedBodyDecoder{};
  return read_body(request, limits);
}

Http1Codec::Step Http1Codec::read_head(Http1Request& request, const Limits& limits) {
  if (input_.empty()) return Step::more;
  const size_t limit = limits.head_limit();
  const size_t from = head_searched_ > 3 ? head_searched_ - 3 : 0;
  if (http1_head_end(input_, from) == std::string::npos && input_.size() < limit) {
    head_searched_ = static_cast<uint32_t>(input_.size());
    return Step::more;
  }
  parse_http1_head(input_, limit, request.parsed);
  switch (request.parsed.status) {
    case HeadStatus::incomplete:
      head_searched_ = static_cast<uint32_t>(input_.size());
      return Step::more;
    case HeadStatus::too_large:
      request.parsed.head.fields.clear();  // views into bytes that are not kept
      return refuse(request, 431, "headers_too_large",
                    "The request headers are larger than " +
                        std::to_string(limits.max_header_bytes) + " bytes.");
    case HeadStatus::malformed:
      request.parsed.head.fields.clear();
      return refuse(request, 400, "bad_request", std::string(request.parsed.error));
    case HeadStatus::complete:
      break;
  }
  return take_head(request, limits);
}

Http1Codec::Step Http1Codec::take_head(Http1Request& request, const Limits& limits) {
  // The head's bytes move out of input_ (which the next reads append to), and its views
  // with them.
  Http1Head& head = request.parsed.head;
  request.head_bytes.assign(input_.data(), head.size);
  const char* old_base = input_.data();
  auto moved = [&](std::string_view view) {
    return std::string_view(request.head_bytes.data() + (view.data() - old_base), view.size());
  };
  head.method = moved(head.method);
  head.target = moved(head.target);
  for (HeaderField& field : head.fields) {
    field.name = moved(field.name);
    field.value = moved(field.value);
  }
  input_.erase(0, head.size);
  head_searched_ = 0;
  if (head.major != 1) {
    Step step = refuse(request, 505, "http_version_not_supported",
                       "This server speaks HTTP/1.1 and HTTP/1.0.");
    request.refusal.method = head.method;
    request.refusal.target = head.target;
    return step;
  }
  request.minor_version = head.minor;
  request.keep_alive_asked = request.expect_continue = request.chunked_request = false;
  request.content_length = 0;
  read_fields(request);
  const bool body_follows = request.framing == FramingProblem::none &&
                            request.content_length <= limits.max_body_bytes &&
                            (request.chunked_request || request.content_length > 0);
  const bool body_here = !request.chunked_request && input_.size() >= request.content_length;
  request.continue_expected =
      body_follows && request.expect_continue && head.minor >= 1 && !body_here;
  head_told_ = true;
  return Step::head;
}

Http1Codec::Step Http1Codec::read_body(Http1Request& request, const Limits& limits) {
  const size_t max_body = limits.max_body_bytes;
  if (!request.chunked_request) {
    if (input_.size() < request.content_length) return Step::more;
    request.body.assign(input_, 0, request.content_length);
    input_.erase(0, request.content_length);
    return complete(request, request.body.size(), false);
  }
  size_t used = 0;
  const ChunkedBodyDecoder::Status status =
      request.chunked.feed(input_, request.body, max_body, used);
  input_.erase(0, used);
  switch (status) {
    case ChunkedBodyDecoder::Status::more:
      return Step::more;
    case ChunkedBodyDecoder::Status::complete:
      return complete(request, request.body.size(), false);
    case ChunkedBodyDecoder::Status::too_large:
      return complete(request, max_body + 1, true);  // answered 413
    case ChunkedBodyDecoder::Status::malformed:
      break;
  }
  Step step = refuse(request, 400, "bad_chunked_body", std::string(request.chunked.error()));
  request.refusal.after_head = true;
  return step;
}

Http1Codec::Step Http1Codec::refuse(Http1Request& request, int status, std::string_view code,
                                    std::string message) {
  in_body_ = head_told_ = false;
  request.refusal.status = status;
  request.refusal.code = code;
  request.refusal.message = std::move(message);
  request.refusal.method = request.refusal.target = {};
  request.refusal.after_head = false;
  request.leave_input = true;
  return Step::refused;
}

Http1Codec::Step Http1Codec::complete(Http1Request& request, size_t body_bytes, bool leave_input) {
  in_body_ = head_told_ = false;
  request.body_bytes = body_bytes;
  request.leave_input = leave_input;
  return Step::request;
}

}  // namespace http
