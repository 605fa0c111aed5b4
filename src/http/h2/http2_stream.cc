// Http2Stream: what an exchange reads of its request and the reply it builds; the frames
// themselves (the head's HEADERS, DATA as the connection's window allows) are the
// connection's (http2_connection.cc).
#include <cctype>
#include <string>

#include "http/h2/http2_connection.h"

namespace http {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return out;
}

// HTTP/1.1 connection-specific fields have no meaning in HTTP/2 (RFC 9113 §8.2.2).
bool connection_specific(const std::string& name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade";
}

}  // namespace

std::optional<std::string> Http2Stream::request_header(const char* name) const {
  for (const auto& h : request_headers) {
    if (strcasecmp(h.name.c_str(), name) == 0) return h.value;
  }
  return std::nullopt;
}

std::vector<HttpHeader> Http2Stream::request_headers_with_prefix(std::string_view prefix) const {
  std::vector<HttpHeader> out;
  for (const auto& h : request_headers) {
    if (h.name.size() >= prefix.size() &&
        strncasecmp(h.name.data(), prefix.data(), prefix.size()) == 0)
      out.push_back(h);
  }
  return out;
}

void Http2Stream::add_response_header(std::string_view name, std::string_view value) {
  std::string n = lower(name);
  if (connection_specific(n)) return;
  response_headers.push_back({std::move(n), std::string(value)});
}

void Http2Stream::remove_response_header(const char* name) {
  std::erase_if(response_headers,
                [&](const HttpHeader& h) { return strcasecmp(h.name.c_str(), name) == 0; });
}

bool Http2Stream::has_response_header(const char* name) const {
  return std::any_of(response_headers.begin(), response_headers.end(),
                     [&](const HttpHeader& h) { return strcasecmp(h.name.c_str(), name) == 0; });
}

void Http2Stream::start_reply(int status) {
  if (!date_given) add_response_header("date", http_date(connection->server_.clock()));
  connection->server_.reply_pending();
  submit_head(status, true);
}

void Http2Stream::send_reply(int status, BodyBuffer bytes, bool has_body) {
  if (!date_given) add_response_header("date", http_date(connection->server_.clock()));
  if (!has_body) {
    body_complete = true;
    return submit_head(status, false);
  }
  body = std::make_shared<Http2Body>();
  evbuffer_add_buffer(body->bytes.get(), static_cast<evbuffer*>(bytes.native()));
  body_complete = true;
  submit_head(status, true);
}

void Http2Stream::send_body(BodyBuffer bytes) {
  if (!body) body = std::make_shared<Http2Body>();
  evbuffer_add_buffer(body->bytes.get(), static_cast<evbuffer*>(bytes.native()));
  if (deferred) {
    deferred = false;
    nghttp2_session_resume_data(connection->session(), id);
  }
  connection->flush();
}

void Http2Stream::end_reply() {
  body_complete = true;
  if (deferred) {
    deferred = false;
    nghttp2_session_resume_data(connection->session(), id);
  }
  connection->flush();
}

void Http2Stream::abort_reply() {
  nghttp2_submit_rst_stream(connection->session(), NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
  connection->flush();
}

}  // namespace http
