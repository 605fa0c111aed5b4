// evbuffer_add_printf and evutil_ascii_strcasecmp as evhttp calls them, and evbuffer_read as
// bufferevent calls it, are replaced (src/common/libevent_overrides.cc): the lines written must be
// byte-identical to printf's, other formats still work, header names compare exactly as
// libevent's own function does, and reads keep libevent's limits and results. On a libevent
// other than the one they were written for, every call goes to libevent's own function.
#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/handles.h"
#include "common/libevent_overrides.h"

namespace {

std::string drain(evbuffer* buf) {
  std::string out(evbuffer_get_length(buf), '\0');
  evbuffer_remove(buf, out.data(), out.size());
  return out;
}

// Whether this process runs all the overrides: the libevent they were written for, and
// BALANCER_LIBEVENT_OVERRIDES unset. Elsewhere libevent's own functions run and the checks of
// the fast path are skipped with a message.
bool overrides_run() {
  if (common::libevent_overrides_active() == common::kAllOverrides) return true;
  MESSAGE("libevent ", event_get_version(),
          ": the overrides are off here, libevent's own functions were checked");
  return false;
}

// What a sequence of calls produced: every line and result, to compare two runs.
std::string exercise_overrides() {
  std::string out;
  common::EvbufferPtr buf(evbuffer_new());
  out += std::to_string(evbuffer_add_printf(buf.get(), "%s: %s\r\n", "Content-Type", "video/mp2t"));
  out += std::to_string(
      evbuffer_add_printf(buf.get(), "HTTP/%d.%d %d %s\r\n", 1, 1, 404, "Not Found"));
  out += std::to_string(evbuffer_add_printf(buf.get(), "%x\r\n", 0xbeefu));
  out += std::to_string(evbuffer_add_printf(buf.get(), "%d-%s", 7, "x"));
  out += drain(buf.get()) + "|";
  const char* names[] = {"Host", "host", "HOST", "Hostx", "", "\xc3\xa9", "\xc3\x89", "[", "{"};
  for (const char* a : names) {
    for (const char* b : names) {
      const int r = evutil_ascii_strcasecmp(a, b);
      out += r < 0 ? '-' : r > 0 ? '+' : '0';
    }
  }
  out += "|";
  int fds[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
  const std::string sent(6000, 'r');
  REQUIRE(write(fds[1], sent.data(), sent.size()) == static_cast<ssize_t>(sent.size()));
  for (int howmuch : {10, -1, 0, 1 << 20, -1}) {  // the last finds nothing: EAGAIN
    errno = 0;
    const int n = evbuffer_read(buf.get(), fds[0], howmuch);
    out += std::to_string(n) + "/" + std::to_string(n < 0 ? errno : 0) + " ";
  }
  close(fds[1]);
  out += std::to_string(evbuffer_read(buf.get(), fds[0], -1));
  close(fds[0]);
  out += "|" + std::to_string(evbuffer_get_length(buf.get()));
  return out;
}

}  // namespace

TEST_CASE("the overrides run only on the libevent they were written for, unless switched off") {
  using common::libevent_overrides_for;
  CHECK(libevent_overrides_for(0x02010c00, nullptr) == common::kAllOverrides);  // 2.1.12-stable
  CHECK(libevent_overrides_for(0x02010c00, "") == common::kAllOverrides);
  CHECK(libevent_overrides_for(0x02010c00, "on") == common::kAllOverrides);
  CHECK(libevent_overrides_for(0x02010c00, "off") == 0);
  CHECK(libevent_overrides_for(0x02010c00, "printf,read") ==
        (common::kOverridePrintf | common::kOverrideRead));
  CHECK(libevent_overrides_for(0x02010c00, "strcasecmp") == common::kOverrideStrcasecmp);
  CHECK(libevent_overrides_for(0x02010b00, nullptr) == 0);  // 2.1.11-stable
  CHECK(libevent_overrides_for(0x02010c01, nullptr) == 0);  // a later 2.1.12 build
  CHECK(libevent_overrides_for(0x02020100, "on") == 0);     // 2.2.1-alpha
  CHECK(common::libevent_overrides_active() ==
        libevent_overrides_for(event_get_version_number(),
                               getenv(common::kLibeventOverridesVariable)));
}

TEST_CASE("on another libevent version every call goes to libevent's own function, same results") {
  const unsigned running = common::libevent_overrides_active();
  const std::string ours = exercise_overrides();
  CHECK(ours.find(" -1/" + std::to_string(EAGAIN) + " ") != std::string::npos);
  // A test hook: what the version check chooses for libevent 2.2.1-alpha.
  common::set_libevent_overrides_for_testing(common::libevent_overrides_for(0x02020100, nullptr));
  const uint64_t lines = common::fast_header_lines();
  const uint64_t forwarded = common::libevent_override_forwarded_calls();
  const std::string libevents = exercise_overrides();
  CHECK(libevents == ours);
  CHECK(common::fast_header_lines() == lines);
  // 4 formats, 81 comparisons, 6 reads: every one went to libevent's.
  CHECK(common::libevent_override_forwarded_calls() - forwarded == 4 + 81 + 6);
  CHECK_FALSE(common::libevent_overrides_in_effect());
  // evhttp's own error page stays libevent's HTML.
  common::EvbufferPtr body(evbuffer_new());
  evbuffer_add_printf(
      body.get(),
      "<HTML><HEAD>\n<TITLE>%d %s</TITLE>\n</HEAD><BODY>\n<H1>%s</H1>\n</BODY></HTML>\n", 400,
      "Bad Request", "Bad Request");
  CHECK(drain(body.get()).rfind("<HTML><HEAD>\n<TITLE>400 Bad Request</TITLE>", 0) == 0);
  common::set_libevent_overrides_for_testing(running);
}

TEST_CASE("evhttp's header, status and chunk lines come out as printf would write them") {
  if (!overrides_run()) return;
  common::EvbufferPtr buf(evbuffer_new());
  const uint64_t before = common::fast_header_lines();
  CHECK(evbuffer_add_printf(buf.get(), "%s: %s\r\n", "Content-Type", "video/mp2t") == 26);
  CHECK(drain(buf.get()) == "Content-Type: video/mp2t\r\n");
  CHECK(evbuffer_add_printf(buf.get(), "HTTP/%d.%d %d %s\r\n", 1, 1, 206, "Partial Content") == 30);
  CHECK(drain(buf.get()) == "HTTP/1.1 206 Partial Content\r\n");
  CHECK(evbuffer_add_printf(buf.get(), "%x\r\n", 0x1a2bu) == 6);
  CHECK(drain(buf.get()) == "1a2b\r\n");
  CHECK(evbuffer_add_printf(buf.get(), "%x\r\n", 0u) == 3);
  CHECK(drain(buf.get()) == "0\r\n");
  CHECK(common::fast_header_lines() == before + 4);

  // A header line longer than the stack buffer.
  std::string long_value(2000, 'v');
  CHECK(evbuffer_add_printf(buf.get(), "%s: %s\r\n", "X-Long", long_value.c_str()) == 2010);
  CHECK(drain(buf.get()) == "X-Long: " + long_value + "\r\n");

  // Anything else goes through libevent's own formatting.
  CHECK(evbuffer_add_printf(buf.get(), "%d-%s-%05.1f", 42, "x", 3.14159) == 10);
  CHECK(drain(buf.get()) == "42-x-003.1");
}

TEST_CASE("an error page evhttp makes by itself becomes a JSON error with a JSON content type") {
  if (!overrides_run()) return;
  common::EvbufferPtr body(evbuffer_new());
  common::EvbufferPtr head(evbuffer_new());
  // The calls evhttp_send_error makes, in its order: body, then status line, then headers.
  evbuffer_add_printf(
      body.get(),
      "<HTML><HEAD>\n<TITLE>%d %s</TITLE>\n</HEAD><BODY>\n<H1>%s</H1>\n</BODY></HTML>\n", 400,
      "Bad Request", "Bad Request");
  std::string json = drain(body.get());
  CHECK(json.rfind("{\"error\":{\"code\":\"bad_request\",\"message\":\"", 0) == 0);
  CHECK(json.back() == '\n');
  evbuffer_add_printf(head.get(), "HTTP/%d.%d %d %s\r\n", 1, 1, 400, "Bad Request");
  evbuffer_add_printf(head.get(), "%s: %s\r\n", "Content-Type", "text/html");
  CHECK(drain(head.get()) == "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n");
  // Only that reply: the next one keeps its own content type.
  evbuffer_add_printf(head.get(), "HTTP/%d.%d %d %s\r\n", 1, 1, 200, "OK");
  evbuffer_add_printf(head.get(), "%s: %s\r\n", "Content-Type", "text/html");
  CHECK(drain(head.get()) == "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n");
}

TEST_CASE("header names compare as libevent's evutil_ascii_strcasecmp does, and evhttp uses ours") {
  // libevent's definition: ASCII letters without case, characters as (signed) char.
  auto reference = [](const char* a, const char* b) {
    for (;; ++a, ++b) {
      char x = *a >= 'A' && *a <= 'Z' ? static_cast<char>(*a + 32) : *a;
      char y = *b >= 'A' && *b <= 'Z' ? static_cast<char>(*b + 32) : *b;
      if (x < y) return -1;
      if (x > y) return 1;
      if (x == 0) return 0;
    }
  };
  const char* names[] = {"Content-Type",
                         "content-type",
                         "CONTENT-TYPE",
                         "Content-Length",
                         "Content",
                         "",
                         "Host",
                         "host",
                         "X-Cache",
                         "x-cache-choice",
                         "[",
                         "{",
                         "@",
                         "`",
                         "\xc3\xa9t\xc3\xa9",
                         "\xc3\x89T\xc3\x89",
                         "Z",
                         "z",
                         "_"};
  for (const char* a : names) {
    for (const char* b : names) {
      INFO(a, " vs ", b);
      CHECK(evutil_ascii_strcasecmp(a, b) == reference(a, b));
    }
  }
  CHECK(common::libevent_overrides_bound());

  // evhttp's own lookups go through it.
  evkeyvalq headers;
  headers.tqh_first = nullptr;  // TAILQ_INIT
  headers.tqh_last = &headers.tqh_first;
  REQUIRE(evhttp_add_header(&headers, "X-Cache-Choice", "venue-a") == 0);
  REQUIRE(evhttp_add_header(&headers, "Content-Type", "application/vnd.apple.mpegurl") == 0);
  const char* found = evhttp_find_header(&headers, "content-TYPE");
  REQUIRE(found != nullptr);
  CHECK(std::string(found) == "application/vnd.apple.mpegurl");
  CHECK(evhttp_find_header(&headers, "Content-Typ") == nullptr);
  evhttp_clear_headers(&headers);
}

TEST_CASE(
    "evbuffer_read reads as libevent's does, without asking the socket how much waits first") {
  int fds[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
  std::string sent(10000, '\0');
  for (size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(i * 7);
  REQUIRE(write(fds[1], sent.data(), sent.size()) == static_cast<ssize_t>(sent.size()));
  common::EvbufferPtr buf(evbuffer_new());
  evbuffer_add(buf.get(), "head", 4);                   // bytes already there stay in front
  CHECK(evbuffer_read(buf.get(), fds[0], -1) == 4096);  // at most libevent's 4096 at once
  CHECK(evbuffer_read(buf.get(), fds[0], 100) == 100);  // at most what the caller asks
  CHECK(evbuffer_read(buf.get(), fds[0], 1 << 20) == 4096);
  CHECK(evbuffer_read(buf.get(), fds[0], -1) == 10000 - 4096 - 100 - 4096);
  errno = 0;
  CHECK(evbuffer_read(buf.get(), fds[0], -1) == -1);  // nothing waiting: -1, errno says why
  CHECK(errno == EAGAIN);
  CHECK(drain(buf.get()) == "head" + sent);
  close(fds[1]);
  CHECK(evbuffer_read(buf.get(), fds[0], -1) == 0);  // end of stream
  CHECK(evbuffer_get_length(buf.get()) == 0);
  close(fds[0]);
  CHECK(common::libevent_overrides_bound());
}
