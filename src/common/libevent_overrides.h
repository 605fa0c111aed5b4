// evhttp's formatting replacement (evhttp_format.cc; docs/architecture.md,
// "evhttp's formatting"): our evbuffer_add_printf, evutil_ascii_strcasecmp and
// evbuffer_read take the place of libevent's for the whole process, through the dynamic
// linker. These say whether they do.
#pragma once

#include <cstdint>

namespace common {

// Lines evhttp wrote through our evbuffer_add_printf instead of printf, in this
// process: non-zero once a reply was sent, if the replacement is in effect.
uint64_t fast_header_formats();

// Whether the dynamic linker resolves evbuffer_add_printf, evutil_ascii_strcasecmp and
// evbuffer_read to ours, as it does for evhttp's and bufferevent's calls: false in a static
// build or when the program does not export them.
// Without it evhttp's own refusals are HTML pages and headers go through printf.
bool evhttp_format_in_effect();

}  // namespace common
