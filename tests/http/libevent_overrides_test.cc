// evbuffer_add_printf, evutil_ascii_strcasecmp and sscanf as evhttp calls them are replaced
// (src/http/libevent_overrides.cc): the lines written must be byte-identical to printf's,
// other formats still work, header names compare as libevent's own function (found with
// dlsym(RTLD_NEXT)) does, versions read as glibc's sscanf reads them, and evhttp's calls reach
// ours. On a libevent other than the one
// they were written for, every call goes to libevent's own function.
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/handles.h"
#include "http/libevent_overrides.h"
#include "support/libevent_owners.h"

using balancer::test::drain;

// libevent_extra's own (exported, not in its public headers): reads a request or status line
// into `req`; 1 when read, -1 when refused.
extern "C" int evhttp_parse_firstline_(evhttp_request* req, evbuffer* buffer);

namespace {

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
  int major = -1, minor = -1;
  char after = '?';
  out += std::to_string(sscanf("HTTP/1.1", "HTTP/%d.%d%c", &major, &minor, &after));
  out += std::to_string(major) + std::to_string(minor) + after;
  return out;
}

// glibc's own sscanf: vsscanf is its __isoc99_vsscanf, which the program does not replace.
int glibc_sscanf(const char* s, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const int n = vsscanf(s, fmt, ap);
  va_end(ap);
  return n;
}

}  // namespace

TEST_CASE("the overrides run only on the libevent they were written for, unless switched off") {
  using common::libevent_overrides_for;
  CHECK(libevent_overrides_for(0x02010c00, nullptr) == common::kAllOverrides);  // 2.1.12-stable
  CHECK(libevent_overrides_for(0x02010c00, "") == common::kAllOverrides);
  CHECK(libevent_overrides_for(0x02010c00, "on") == common::kAllOverrides);
  CHECK(libevent_overrides_for(0x02010c00, "off") == 0);
  CHECK(libevent_overrides_for(0x02010c00, "printf,read") == common::override_printf);
  CHECK(libevent_overrides_for(0x02010c00, "strcasecmp") == common::override_strcasecmp);
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
  // A test hook: what the version check chooses for libevent 2.2.1-alpha.
  common::set_libevent_overrides_for_testing(common::libevent_overrides_for(0x02020100, nullptr));
  const uint64_t lines = common::fast_header_lines();
  const uint64_t forwarded = common::libevent_override_forwarded_calls();
  const std::string libevents = exercise_overrides();
  CHECK(libevents == ours);
  CHECK(common::fast_header_lines() == lines);
  // 4 formats, 81 comparisons and a version: every one went to libevent's (glibc's).
  CHECK(common::libevent_override_forwarded_calls() - forwarded == 4 + 81 + 1);
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
  // Headers before the Content-Type line keep the page's state until it comes.
  evbuffer_add_printf(body.get(), "<HTML><HEAD>\n<TITLE>%d %s</TITLE>", 413, "Too Large");
  evbuffer_add_printf(head.get(), "HTTP/%d.%d %d %s\r\n", 1, 1, 413, "Too Large");
  evbuffer_add_printf(head.get(), "%s: %s\r\n", "Connection", "close");
  evbuffer_add_printf(head.get(), "%s: %s\r\n", "Content-Type", "text/html");
  CHECK(drain(head.get()) ==
        "HTTP/1.1 413 Too Large\r\nConnection: close\r\nContent-Type: application/json\r\n");
  CHECK(drain(body.get()).rfind("{\"error\":{\"code\":\"body_too_large\"", 0) == 0);
}

TEST_CASE("an error page abandoned before its status line changes no other reply") {
  if (!overrides_run()) return;
  common::EvbufferPtr body(evbuffer_new());
  common::EvbufferPtr head(evbuffer_new());
  const char* page =
      "<HTML><HEAD>\n<TITLE>%d %s</TITLE>\n</HEAD><BODY>\n<H1>%s</H1>\n</BODY></HTML>\n";
  // The body, then a chunk line of another reply: the page is forgotten.
  evbuffer_add_printf(body.get(), page, 400, "Bad Request", "Bad Request");
  evbuffer_add_printf(head.get(), "%x\r\n", 16u);
  evbuffer_add_printf(head.get(), "HTTP/%d.%d %d %s\r\n", 1, 1, 400, "Bad Request");
  evbuffer_add_printf(head.get(), "%s: %s\r\n", "Content-Type", "text/plain");
  CHECK(drain(head.get()) == "10\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n");
  // The body, then another reply's status line with another status: forgotten too.
  evbuffer_add_printf(body.get(), page, 400, "Bad Request", "Bad Request");
  evbuffer_add_printf(head.get(), "HTTP/%d.%d %d %s\r\n", 1, 1, 200, "OK");
  evbuffer_add_printf(head.get(), "%s: %s\r\n", "Content-Type", "video/mp2t");
  CHECK(drain(head.get()) == "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n");
  // The body, then a header line before any status line: forgotten.
  evbuffer_add_printf(body.get(), page, 400, "Bad Request", "Bad Request");
  evbuffer_add_printf(head.get(), "%s: %s\r\n", "Content-Type", "text/css");
  evbuffer_add_printf(head.get(), "HTTP/%d.%d %d %s\r\n", 1, 1, 400, "Bad Request");
  evbuffer_add_printf(head.get(), "%s: %s\r\n", "Content-Type", "text/css");
  CHECK(drain(head.get()) ==
        "Content-Type: text/css\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: text/css\r\n");
}

TEST_CASE("header names compare as libevent's own evutil_ascii_strcasecmp does") {
  using Compare = int (*)(const char*, const char*);
  const auto libevents = reinterpret_cast<Compare>(dlsym(RTLD_NEXT, "evutil_ascii_strcasecmp"));
  REQUIRE(reinterpret_cast<void*>(libevents) != nullptr);
  REQUIRE(reinterpret_cast<void*>(libevents) != reinterpret_cast<void*>(&evutil_ascii_strcasecmp));
  std::vector<std::string> names = {"Content-Type",
                                    "content-type",
                                    "CONTENT-TYPE",
                                    "Content-Length",
                                    "Content",
                                    "",
                                    "Host",
                                    "host",
                                    "X-Cache",
                                    "x-cache-choice",
                                    "\xc3\xa9t\xc3\xa9",
                                    "\xc3\x89T\xc3\x89"};
  // Every single byte, alone and after an equal prefix in either case: letters, the
  // characters beside them ('@', '[', '`', '{'), and the non-ASCII bytes (negative as char).
  for (int c = 1; c < 256; ++c) {
    names.push_back(std::string(1, static_cast<char>(c)));
    names.push_back("x-Cache" + std::string(1, static_cast<char>(c)));
    names.push_back("X-cache" + std::string(1, static_cast<char>(c)) + "z");
  }
  auto sign = [](int r) { return (r > 0) - (r < 0); };
  size_t compared = 0;
  for (const std::string& a : names) {
    for (const std::string& b : names) {
      const int ours = evutil_ascii_strcasecmp(a.c_str(), b.c_str());
      const int theirs = libevents(a.c_str(), b.c_str());
      if (sign(ours) != sign(theirs)) {
        INFO(a, " vs ", b);
        CHECK(sign(ours) == sign(theirs));
      }
      ++compared;
    }
  }
  CHECK(compared == names.size() * names.size());
}

TEST_CASE("HTTP versions read as glibc's sscanf reads them") {
  std::vector<std::string> versions = {
      "HTTP/1.1",  "HTTP/1.0",   "HTTP/0.9",   "HTTP/2.0",  "HTTP/9.9",   "HTTP/1.1 ",
      "HTTP/1.1x", "HTTP/1.1\r", "HTTP/11.1",  "HTTP/1.12", "HTTP/ 1.1",  "HTTP/+1.1",
      "HTTP/-1.1", "HTTP/1.-1",  "HTTP/1.+1",  "HTTP/1",    "HTTP/1.",    "HTTP/.1",
      "http/1.1",  "HTTP/1,1",   "HTTP/a.b",   "HTTP/",     "HTTP",       "",
      "HTTP/1. 1", "HTTP/01.01", "HTTP/1.1.1", "HTTPS/1.1", "HTTP/\t1.1", "HTTP/99999999999.1"};
  // Every string of "HTTP/" and three characters from a set that reaches each branch.
  const std::string chars = "019.+- x\t";
  for (char a : chars) {
    for (char b : chars) {
      for (char c : chars) versions.push_back(std::string("HTTP/") + a + b + c);
    }
  }
  const uint64_t fast = common::fast_version_reads();
  size_t plain = 0;
  for (const std::string& v : versions) {
    int major = -7, minor = -7, their_major = -7, their_minor = -7;
    char after = '?', their_after = '?';
    const int n = sscanf(v.c_str(), "HTTP/%d.%d%c", &major, &minor, &after);
    const int theirs =
        glibc_sscanf(v.c_str(), "HTTP/%d.%d%c", &their_major, &their_minor, &their_after);
    INFO("\"", v, "\"");
    CHECK(n == theirs);
    CHECK(major == their_major);
    CHECK(minor == their_minor);
    CHECK(after == their_after);
    const bool digits = v.size() == 8 && v[5] >= '0' && v[5] <= '9' && v[7] >= '0' && v[7] <= '9';
    if (digits && v.rfind("HTTP/", 0) == 0 && v[6] == '.') ++plain;
  }
  // The plain ones took the fast path (where the overrides run); the rest went to glibc.
  if (overrides_run()) CHECK(common::fast_version_reads() - fast == plain);
  CHECK(plain == 5 + 9);  // the five listed, and "HTTP/" digit "." digit from the set (3 x 3)

  // Any other format is glibc's.
  int number = 0;
  char word[8] = {};
  CHECK(sscanf("42 words", "%d %7s", &number, word) == 2);
  CHECK(number == 42);
  CHECK(std::string(word) == "words");
}

TEST_CASE("evhttp's calls reach the program's definitions, not libevent's own") {
  CHECK(common::libevent_overrides_bound());
  // With the overrides off, ours forward to libevent's and count it: a count that moves
  // shows evhttp (libevent_extra) called the program's definition, as the dynamic linker
  // binds it. Both calls cross from libevent_extra to libevent_core, which a libevent built
  // with -Bsymbolic-functions still resolves through the dynamic linker; a static libevent or a
  // program that does not export the names would leave the count standing.
  const unsigned running = common::libevent_overrides_active();
  common::set_libevent_overrides_for_testing(0);
  const uint64_t before = common::libevent_override_forwarded_calls();
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
  const uint64_t after_lookups = common::libevent_override_forwarded_calls();
  CHECK(after_lookups - before >= 2);  // evhttp_find_header: evutil_ascii_strcasecmp
  // evhttp_uri_join writes a URI's user and port with evbuffer_add_printf.
  evhttp_uri* uri = evhttp_uri_parse("http://user@example.com:8080/x");
  REQUIRE(uri != nullptr);
  char joined[128];
  REQUIRE(evhttp_uri_join(uri, joined, sizeof joined) != nullptr);
  CHECK(std::string(joined) == "http://user@example.com:8080/x");
  evhttp_uri_free(uri);
  CHECK(common::libevent_override_forwarded_calls() - after_lookups == 2);
  // evhttp reads a status line's (as a request line's) version with sscanf.
  evhttp_request* req = evhttp_request_new(nullptr, nullptr);
  REQUIRE(req != nullptr);
  common::EvbufferPtr line(evbuffer_new());
  evbuffer_add_printf(line.get(), "HTTP/1.0 200 OK\r\n");
  const uint64_t before_version = common::libevent_override_forwarded_calls();
  CHECK(evhttp_parse_firstline_(req, line.get()) == 1);
  CHECK(common::libevent_override_forwarded_calls() - before_version == 1);
  CHECK(req->major == 1);
  CHECK(req->minor == 0);
  CHECK(evhttp_request_get_response_code(req) == 200);
  common::set_libevent_overrides_for_testing(running);
  if (overrides_run()) {
    evbuffer_add_printf(line.get(), "HTTP/1.1 404 Not Found\r\n");
    const uint64_t fast = common::fast_version_reads();
    CHECK(evhttp_parse_firstline_(req, line.get()) == 1);
    CHECK(common::fast_version_reads() - fast == 1);
    CHECK(req->minor == 1);
    CHECK(evhttp_request_get_response_code(req) == 404);
  }
  evhttp_request_free(req);
}
