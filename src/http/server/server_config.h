// The config sections every server reads alike ("listen", "server", "threads", and with the
// "log" and "cors" sections read_server_sections), on the core's config reader (core/config.h).
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"

namespace http {

struct HttpServerOptions;
// Reads the "listen" section shared by every binary: host, port, plain (serve
// plain HTTP, default true), http2 (only where `http2_capable`) and the "tls"
// object (enabled, port, certificate, key; files relative to `config_file`'s
// directory, loaded once here so a bad certificate is a config error).
void read_listen_section(core::ConfigReader& listen, const std::string& config_file,
                         uint16_t default_port, bool http2_capable, HttpServerOptions& options);
// Reads the "server" section shared by every binary (request limits, timeouts,
// access log) into `options`, keeping its service name and listen address.
void read_server_section(core::ConfigReader& server, HttpServerOptions& options);
// Reads the top-level "threads" key (event loops; 0 or absent = one per core).
void read_threads(core::ConfigReader& root, HttpServerOptions& options);
struct CorsOptions;
// Reads what every server reads alike: the "server" section and "threads" into `server`,
// the "log" level and the "cors" section (http/server/cors.h).
void read_server_sections(core::ConfigReader& root, HttpServerOptions& server,
                          std::string& log_level, CorsOptions& cors);

}  // namespace http
