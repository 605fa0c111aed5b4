// The servers' replacements of functions evhttp calls (libevent_overrides.cc;
// docs/architecture.md, "evhttp's formatting"): our evbuffer_add_printf and
// evutil_ascii_strcasecmp take the place of libevent's, and our __isoc99_sscanf (what sscanf is
// called by in a C99 program) glibc's, for the whole process, through the dynamic linker. Linked
// into the balancer and cache_node programs only (the object library libevent_overrides), and into
// the tests that check them; these say whether they are in effect.
#pragma once

#include <cstdint>

namespace common {

class MetricsRegistry;

// The environment variable that switches overrides off, read once at the first call:
// unset, empty or "on" = all; "off" = none; or a comma-separated list of the ones to keep
// ("printf,strcasecmp,version"). For measurements (docs/architecture.md gives the figures).
inline constexpr const char* kLibeventOverridesVariable = "BALANCER_LIBEVENT_OVERRIDES";

// One bit per override.
enum LibeventOverride : unsigned {
  override_printf = 1,      // evbuffer_add_printf
  override_strcasecmp = 2,  // evutil_ascii_strcasecmp
  override_version = 4,     // sscanf of an HTTP version ("HTTP/%d.%d%c")
};
inline constexpr unsigned kAllOverrides = 7;

// "printf", "strcasecmp", "version": the names the environment variable uses.
const char* libevent_override_name(LibeventOverride which);

// Pure: the overrides that run with libevent `libevent_version` (event_get_version_number())
// and the environment variable's value `setting` (null when unset): none unless the version is
// 2.1.12-stable's, 0x02010c00, the one they were written for.
unsigned libevent_overrides_for(uint32_t libevent_version, const char* setting);

// The overrides that run in this process (worked out at the first call). Any thread.
unsigned libevent_overrides_active();

// Tests only: runs `active` from now on, as libevent_overrides_for would choose for another
// version (0) or setting. Not while other threads call libevent.
void set_libevent_overrides_for_testing(unsigned active);

// Calls forwarded to libevent's own functions because their override is off. Any thread.
uint64_t libevent_override_forwarded_calls();

// Lines evhttp wrote through our evbuffer_add_printf instead of printf, in this
// process: non-zero once a reply was sent, if the replacement is in effect. Any thread.
uint64_t fast_header_lines();

// HTTP versions ("HTTP/1.1") read without glibc's scanf, in this process: one per request
// line evhttp parsed, if the replacement is in effect. Any thread.
uint64_t fast_version_reads();

// Whether the dynamic linker resolves evbuffer_add_printf, evutil_ascii_strcasecmp and
// __isoc99_sscanf to ours, as it does for evhttp's calls: false in a static build or when the
// program does not export them. Any thread.
bool libevent_overrides_bound();

// Bound, and evbuffer_add_printf's override runs (the libevent version is the one it was
// written for, and the environment did not switch it off). Without it evhttp's own refusals
// are HTML pages and headers go through printf. Any thread.
bool libevent_overrides_in_effect();

// Adds http_evhttp_format_in_effect (1 or 0) and http_fast_header_lines_total to `metrics`
// and logs a warning when the overrides are not in effect. Once, at start, on the thread that
// owns `metrics` (common::ServiceSpec::add_process_metrics).
void add_libevent_override_metrics(MetricsRegistry& metrics);

}  // namespace common
