// The servers' replacements of three libevent functions (libevent_overrides.cc;
// docs/architecture.md, "libevent overrides"): our evbuffer_add_printf, evutil_ascii_strcasecmp
// and evbuffer_read take the place of libevent's for the whole process, through the dynamic
// linker. Linked into the balancer and cache_node programs only (the object library
// libevent_overrides), and into the tests that check them; these say whether they are in effect.
#pragma once

#include <cstdint>

namespace common {

class MetricsRegistry;

// Lines evhttp wrote through our evbuffer_add_printf instead of printf, in this
// process: non-zero once a reply was sent, if the replacement is in effect. Any thread.
uint64_t fast_header_lines();

// Whether the dynamic linker resolves evbuffer_add_printf, evutil_ascii_strcasecmp and
// evbuffer_read to ours, as it does for evhttp's and bufferevent's calls: false in a static
// build or when the program does not export them.
// Without it evhttp's own refusals are HTML pages and headers go through printf. Any thread.
bool libevent_overrides_in_effect();

// Adds http_evhttp_format_in_effect (1 or 0) and http_fast_header_lines_total to `metrics`
// and logs a warning when the overrides are not in effect. Once, at start, on the thread that
// owns `metrics` (common::ServiceSpec::add_process_metrics).
void add_libevent_override_metrics(MetricsRegistry& metrics);

}  // namespace common
