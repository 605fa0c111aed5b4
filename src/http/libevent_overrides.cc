// evhttp formats every response line and header with evbuffer_add_printf
// ("HTTP/%d.%d %d %s\r\n", then "%s: %s\r\n" per header, "%x\r\n" per chunk),
// through glibc's printf machinery. This definition takes the place of libevent's for
// the process (libevent_extra calls it through the dynamic linker, and the
// executable's definition comes first): the formats evhttp uses are written
// with plain copies; any other format goes to libevent's evbuffer_add_vprintf.
// It saves a quarter of a small cached reply's instructions (callgrind; the figures are in
// docs/architecture.md, "evhttp's formatting").
//
// evhttp compares header names with libevent's evutil_ascii_strcasecmp, which lowers each
// character through a function call; each lookup walks the header list. The definition below,
// the same comparison, takes its place the same way and saves 4 % of that reply.
//
// evhttp reads the version of every request line with sscanf(version, "HTTP/%d.%d%c", ...),
// through glibc's scanf machinery: a tenth of the instructions of a small playlist reply
// (callgrind). A C99 program's sscanf is glibc's __isoc99_sscanf, which libevent_extra calls
// through the dynamic linker like the two above: the definition below reads the one string
// every client sends, "HTTP/" digit "." digit, and hands anything else, in that format or any
// other (another library's sscanf), to glibc's own __isoc99_vsscanf.
//
// libevent's evbuffer_read is not replaced: a definition that skipped its ioctl(FIONREAD) saved
// no measurable instructions (docs/architecture.md), and bufferevent calls it inside
// libevent_core, where a -Bsymbolic-functions build would silently bypass ours.
//
// Each definition was written for libevent 2.1.12-stable (0x02010c00), Debian 12's. On any
// other version (event_get_version_number(), checked once), or when switched off with
// BALANCER_LIBEVENT_OVERRIDES (read once), it forwards every call to libevent's own function,
// found with dlsym(RTLD_NEXT): a new libevent is then run as its authors wrote it.
//
// It also keeps DESIGN.md's error contract for the replies evhttp makes on its
// own (a request it cannot parse, headers far over the limit): evhttp writes an
// HTML page for them; here the page becomes the JSON error body, and the
// text/html Content-Type of that same reply becomes application/json.
#include "http/libevent_overrides.h"

#include <dlfcn.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <strings.h>

#include "core/log.h"
#include "core/metrics.h"
#include "http/value_names.h"

// Defined at the end of this file (the replacement of glibc's), and glibc's own, which its
// __isoc99_sscanf calls too (stdio.h names it only through vsscanf's redirection).
extern "C" int __isoc99_sscanf(const char* s, const char* fmt, ...);
extern "C" int __isoc99_vsscanf(const char* s, const char* fmt, va_list ap);

namespace common {
namespace {

std::atomic<uint64_t> g_fast_formats{0};
std::atomic<uint64_t> g_fast_versions{0};
std::atomic<uint64_t> g_forwarded{0};

// The libevent these definitions were written for, and read (its semantics, its formats).
constexpr uint32_t kWrittenForLibevent = 0x02010c00;  // 2.1.12-stable

// Which overrides run, one bit each; -1 until the first call works it out.
std::atomic<int> g_active{-1};

unsigned parse_setting(const char* setting) {
  if (setting == nullptr || *setting == '\0' || strcmp(setting, "on") == 0) return kAllOverrides;
  unsigned bits = 0;
  std::string_view rest(setting);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view name = rest.substr(0, comma);
    for (unsigned bit = 1; bit & kAllOverrides; bit <<= 1) {
      if (name == libevent_override_name(static_cast<LibeventOverride>(bit))) bits |= bit;
    }
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return bits;  // "off", or a list naming none, switches all off
}

unsigned active_overrides() {
  int active = g_active.load(std::memory_order_relaxed);
  if (active < 0) {
    active = static_cast<int>(
        libevent_overrides_for(event_get_version_number(), getenv(kLibeventOverridesVariable)));
    g_active.store(active, std::memory_order_relaxed);
  }
  return static_cast<unsigned>(active);
}

bool active(LibeventOverride which) {
  return (active_overrides() & which) != 0;
}

// libevent's own definition of `name`, the next one after the program's.
template <class Function>
Function original(const char* name) {
  void* found = dlsym(RTLD_NEXT, name);
  if (found == nullptr) {
    fprintf(stderr, "libevent_overrides: libevent's %s not found (%s)\n", name, dlerror());
    abort();
  }
  return reinterpret_cast<Function>(found);
}

// An error page evhttp is sending on this thread. libevent 2.1.12 has no supported way to
// change the page evhttp makes for a request it refuses itself (evhttp_set_errorcb came in
// 2.2; 2.1's evhttp_request_set_error_cb is for client requests), so the body and the
// Content-Type are changed where they are written. evhttp_send_error writes the body, then,
// in the same call on the same thread with no other evbuffer_add_printf between, the status
// line and the header lines, Content-Type first. So the state lives for exactly that
// sequence: every call of evbuffer_add_printf clears it, and only the next expected line with
// the same status carries it on. A page abandoned midway (evhttp_send returns early when the
// request has lost its connection) is forgotten at the next call, whatever it writes.
struct ErrorPage {
  enum Phase { none, body_written, status_written } phase = none;
  int status = 0;
};
thread_local ErrorPage t_error_page;

constexpr std::pair<int, const char*> kErrorCodes[] = {
    {400, "bad_request"},    {404, "not_found"},       {405, "method_not_allowed"},
    {413, "body_too_large"}, {501, "not_implemented"}, {503, "unavailable"},
};

const char* error_code_for(int status) {
  return name_in(kErrorCodes, status, "http_error");
}

int add_error_body(evbuffer* buf, int status) {
  std::string body =
      std::string("{\"error\":{\"code\":\"") + error_code_for(status) + "\",\"message\":\"" +
      (status == 400 ? "The request could not be parsed: a malformed request line or header, or "
                       "headers far larger than the server accepts."
                     : "The server refused this request at the HTTP layer.") +
      "\"}}\n";
  t_error_page = {ErrorPage::body_written, status};
  return evbuffer_add(buf, body.data(), body.size()) == 0 ? static_cast<int>(body.size()) : -1;
}

// Appends the decimal digits of `v` at `out`; returns the end.
char* put_uint(char* out, unsigned v) {
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

char* put_hex(char* out, unsigned v) {
  static const char kHex[] = "0123456789abcdef";
  char digits[12];
  int n = 0;
  do {
    digits[n++] = kHex[v & 15];
    v >>= 4;
  } while (v != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

int add_pieces(evbuffer* buf, const char* a, size_t la, const char* sep, size_t lsep, const char* b,
               size_t lb) {
  char line[512];
  size_t total = la + lsep + lb + 2;
  if (total <= sizeof line) {
    char* p = line;
    memcpy(p, a, la);
    p += la;
    memcpy(p, sep, lsep);
    p += lsep;
    memcpy(p, b, lb);
    p += lb;
    *p++ = '\r';
    *p++ = '\n';
    return evbuffer_add(buf, line, total) == 0 ? static_cast<int>(total) : -1;
  }
  if (evbuffer_add(buf, a, la) != 0 || evbuffer_add(buf, sep, lsep) != 0 ||
      evbuffer_add(buf, b, lb) != 0 || evbuffer_add(buf, "\r\n", 2) != 0) {
    return -1;
  }
  return static_cast<int>(total);
}

// "HTTP/" digit "." digit and nothing after: what glibc's sscanf reads in "HTTP/%d.%d%c" as 2
// conversions, the digits' values, and no %c (the string ends there).
bool is_plain_http_version(const char* s) {
  return strncmp(s, "HTTP/", 5) == 0 && s[5] >= '0' && s[5] <= '9' && s[6] == '.' && s[7] >= '0' &&
         s[7] <= '9' && s[8] == '\0';
}

constexpr std::pair<LibeventOverride, const char*> kOverrideNames[] = {
    {override_printf, "printf"},
    {override_strcasecmp, "strcasecmp"},
    {override_version, "version"},
};

}  // namespace

const char* libevent_override_name(LibeventOverride which) {
  return name_in(kOverrideNames, which, "?");
}

unsigned libevent_overrides_for(uint32_t libevent_version, const char* setting) {
  return libevent_version == kWrittenForLibevent ? parse_setting(setting) : 0;
}

unsigned libevent_overrides_active() {
  return active_overrides();
}

void set_libevent_overrides_for_testing(unsigned active) {
  g_active.store(static_cast<int>(active & kAllOverrides), std::memory_order_relaxed);
}

uint64_t libevent_override_forwarded_calls() {
  return g_forwarded.load(std::memory_order_relaxed);
}

uint64_t fast_header_lines() {
  return g_fast_formats.load(std::memory_order_relaxed);
}

uint64_t fast_version_reads() {
  return g_fast_versions.load(std::memory_order_relaxed);
}

bool libevent_overrides_bound() {
  // What evhttp's calls resolve to: the first definition in the global scope.
  return dlsym(RTLD_DEFAULT, "evbuffer_add_printf") ==
             reinterpret_cast<void*>(&evbuffer_add_printf) &&
         dlsym(RTLD_DEFAULT, "evutil_ascii_strcasecmp") ==
             reinterpret_cast<void*>(&evutil_ascii_strcasecmp) &&
         dlsym(RTLD_DEFAULT, "__isoc99_sscanf") == reinterpret_cast<void*>(&__isoc99_sscanf);
}

bool libevent_overrides_in_effect() {
  return libevent_overrides_bound() && active(override_printf);
}

void add_libevent_override_metrics(MetricsRegistry& metrics) {
  const unsigned active = active_overrides();
  const bool in_effect = libevent_overrides_in_effect();
  if (event_get_version_number() != kWrittenForLibevent) {
    LOG_WARN("http", "libevent ", event_get_version(),
             " is not 2.1.12-stable, which the libevent overrides were written for: libevent's "
             "own functions are used, and evhttp's own refusals will be HTML pages, not JSON "
             "errors (docs/architecture.md)");
  } else if (!libevent_overrides_bound()) {
    LOG_WARN("http",
             "the libevent overrides are not in effect (static or re-linked build): evhttp's own "
             "refusals will be HTML pages, not JSON errors (docs/architecture.md)");
  } else if (active != kAllOverrides) {
    std::string on;
    for (unsigned bit = 1; bit & kAllOverrides; bit <<= 1) {
      if (active & bit)
        on += std::string(on.empty() ? "" : ",") +
              libevent_override_name(static_cast<LibeventOverride>(bit));
    }
    const char* setting = getenv(kLibeventOverridesVariable);
    LOG_WARN("http", kLibeventOverridesVariable, "=", setting ? setting : "",
             ": libevent overrides on: ", on.empty() ? "none" : on,
             in_effect ? "" : " (evhttp's own refusals will be HTML pages, not JSON errors)");
  }
  metrics.gauge_fn(
      "http_evhttp_format_in_effect",
      "1 when evhttp's own replies and lines go through the server's formatting (JSON error pages)",
      [in_effect] { return in_effect ? 1.0 : 0.0; });
  metrics.counter_fn(
      "http_fast_header_lines_total",
      "Status, header and chunk-size lines evhttp wrote without printf, in this process",
      [] { return static_cast<double>(fast_header_lines()); });
}

}  // namespace common

// Off, libevent's own evbuffer_add_printf is va_start, evbuffer_add_vprintf, va_end (a
// variadic call cannot be forwarded through a pointer): the same, here.
extern "C" int evbuffer_add_printf(struct evbuffer* buf, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n;
  const common::ErrorPage page = common::t_error_page;
  common::t_error_page = {};
  if (!common::active(common::override_printf)) {
    common::g_forwarded.fetch_add(1, std::memory_order_relaxed);
    n = evbuffer_add_vprintf(buf, fmt, ap);
  } else if (strcmp(fmt, "%s: %s\r\n") == 0) {
    const char* key = va_arg(ap, const char*);
    const char* value = va_arg(ap, const char*);
    if (page.phase == common::ErrorPage::status_written) {
      if (strcasecmp(key, "Content-Type") == 0) {
        value = "application/json";
      } else {
        common::t_error_page = page;  // still before the Content-Type line
      }
    }
    n = common::add_pieces(buf, key, strlen(key), ": ", 2, value, strlen(value));
    common::g_fast_formats.fetch_add(1, std::memory_order_relaxed);
  } else if (strncmp(fmt, "<HTML><HEAD>\n<TITLE>%d %s</TITLE>", 33) == 0) {
    n = common::add_error_body(buf, va_arg(ap, int));
  } else if (strcmp(fmt, "HTTP/%d.%d %d %s\r\n") == 0) {
    int major = va_arg(ap, int);
    int minor = va_arg(ap, int);
    int code = va_arg(ap, int);
    const char* reason = va_arg(ap, const char*);
    if (page.phase == common::ErrorPage::body_written && code == page.status) {
      common::t_error_page = {common::ErrorPage::status_written, code};
    }
    if (major >= 0 && minor >= 0 && code >= 0 && major < 10 && minor < 10) {
      char head[32] = "HTTP/";
      char* p = head + 5;
      p = common::put_uint(p, static_cast<unsigned>(major));
      *p++ = '.';
      p = common::put_uint(p, static_cast<unsigned>(minor));
      *p++ = ' ';
      p = common::put_uint(p, static_cast<unsigned>(code));
      n = common::add_pieces(buf, head, static_cast<size_t>(p - head), " ", 1, reason,
                             strlen(reason));
      common::g_fast_formats.fetch_add(1, std::memory_order_relaxed);
    } else {
      va_end(ap);  // not a line evhttp writes: format it the usual way
      va_start(ap, fmt);
      n = evbuffer_add_vprintf(buf, fmt, ap);
    }
  } else if (strcmp(fmt, "%x\r\n") == 0) {
    unsigned size = va_arg(ap, unsigned);
    char line[16];
    char* p = common::put_hex(line, size);
    *p++ = '\r';
    *p++ = '\n';
    n = evbuffer_add(buf, line, static_cast<size_t>(p - line)) == 0 ? static_cast<int>(p - line)
                                                                    : -1;
    common::g_fast_formats.fetch_add(1, std::memory_order_relaxed);
  } else {
    n = evbuffer_add_vprintf(buf, fmt, ap);
  }
  va_end(ap);
  return n;
}

// libevent's semantics exactly: ASCII letters compared without case, the characters as
// (signed) char, -1/0/1. Most header names differ in their first character: compared
// without a call per character.
extern "C" int evutil_ascii_strcasecmp(const char* s1, const char* s2) {
  if (!common::active(common::override_strcasecmp)) {
    static const auto libevents =
        common::original<int (*)(const char*, const char*)>("evutil_ascii_strcasecmp");
    common::g_forwarded.fetch_add(1, std::memory_order_relaxed);
    return libevents(s1, s2);
  }
  for (;; ++s1, ++s2) {
    char c1 = *s1;
    char c2 = *s2;
    if (c1 != c2) {
      if (c1 >= 'A' && c1 <= 'Z') c1 = static_cast<char>(c1 + ('a' - 'A'));
      if (c2 >= 'A' && c2 <= 'Z') c2 = static_cast<char>(c2 + ('a' - 'A'));
      if (c1 != c2) return c1 < c2 ? -1 : 1;
    }
    if (c1 == 0) return 0;
  }
}

extern "C" int __isoc99_sscanf(const char* s, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n;
  const bool version = strcmp(fmt, "HTTP/%d.%d%c") == 0 && common::is_plain_http_version(s);
  if (version && common::active(common::override_version)) {
    *va_arg(ap, int*) = s[5] - '0';
    *va_arg(ap, int*) = s[7] - '0';
    n = 2;
    common::g_fast_versions.fetch_add(1, std::memory_order_relaxed);
  } else {
    if (version) common::g_forwarded.fetch_add(1, std::memory_order_relaxed);
    n = __isoc99_vsscanf(s, fmt, ap);
  }
  va_end(ap);
  return n;
}
