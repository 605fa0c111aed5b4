#include "http/server/server_config.h"

#include <filesystem>

#include "http/server/cors.h"
#include "http/server/http_server.h"
#include "http/tls/tls.h"

namespace http {

void read_listen_section(core::ConfigReader& listen, const std::string& config_file,
                         uint16_t default_port, bool http2_capable, HttpServerOptions& options) {
  options.host = listen.string("host", "127.0.0.1");
  options.port = static_cast<uint16_t>(listen.integer("port", default_port, 0, 65535));
  options.plain = listen.boolean("plain", true);
  bool http2 = http2_capable && listen.boolean("http2", true);
  options.h2c = http2_capable && listen.boolean("h2c", false);
  auto tls = listen.object("tls");
  options.tls.enabled = tls.boolean("enabled", false);
  int64_t tls_port = tls.integer("port", -1, 0, 65535);
  std::filesystem::path dir = std::filesystem::path(config_file).parent_path();
  auto resolve = [&](const char* key, bool required = true) {
    std::string file = tls.string(key, "");
    if (required && options.tls.enabled && file.empty())
      tls.fail(key, "is required when tls.enabled is true");
    if (file.empty() || std::filesystem::path(file).is_absolute()) return file;
    return (dir / file).lexically_normal().string();
  };
  options.tls.certificate = resolve("certificate");
  options.tls.key = resolve("key");
  options.tls.ticket_key_file = resolve("ticket_key_file", false);
  options.tls.ticket_rotation_s = tls.integer("ticket_rotation_s", 3600, 60, 7 * 86400);
  options.tls.http2 = http2;
  options.http2 = http2;
  if (options.tls.enabled) {
    if (tls_port < 0) tls.fail("port", "is required when tls.enabled is true");
    options.tls.port = static_cast<uint16_t>(tls_port < 0 ? 0 : tls_port);
    core::Status tickets;
    if (!options.tls.ticket_key_file.empty()) {
      tickets = check_ticket_key_file(options.tls.ticket_key_file);
      if (!tickets) tls.fail("ticket_key_file", tickets.error().message);
    }
    if (tickets && !options.tls.certificate.empty() && !options.tls.key.empty()) {
      if (auto ctx = build_server_tls_context(options.tls); !ctx)
        tls.fail("certificate", ctx.error().message);
    }
    if (options.plain && options.port == options.tls.port && options.port != 0) {
      tls.fail("port", "must differ from listen.port");
    }
  } else if (!options.plain) {
    listen.fail("plain", "cannot be false without tls.enabled: the server would not listen at all");
  }
  tls.finish();
  listen.finish();
}

void read_server_section(core::ConfigReader& server, HttpServerOptions& options) {
  options.max_header_bytes =
      static_cast<size_t>(server.integer("max_header_bytes", 16384, 1024, 1 << 20));
  options.max_body_bytes = static_cast<size_t>(server.integer("max_body_bytes", 65536, 0, 1 << 24));
  options.listen_backlog = static_cast<int>(server.integer("listen_backlog", 4096, 16, 65535));
  options.io_timeout_s = static_cast<int>(server.integer("io_timeout_s", 30, 1, 3600));
  options.drain_timeout_s = static_cast<int>(server.integer("drain_timeout_s", 10, 0, 3600));
  options.watchdog_s = static_cast<int>(server.integer("watchdog_s", 10, 0, 3600));
  options.access_log = server.boolean("access_log", true);
  options.max_connections =
      static_cast<size_t>(server.integer("max_connections", 0, 0, 100'000'000));
  options.max_connections_per_address =
      static_cast<size_t>(server.integer("max_connections_per_address", 512, 0, 100'000'000));
  options.ipv6_prefix_length = static_cast<int>(
      server.integer("ipv6_prefix_length", core::kDefaultIpv6PrefixLength, 1, 128));
  options.connection_limit_exempt.clear();
  for (const auto& text : server.string_list("connection_limit_exempt", {})) {
    if (auto network = core::Cidr::parse(text)) {
      options.connection_limit_exempt.push_back(*network);
    } else {
      server.fail("connection_limit_exempt",
                  "'" + text + "' is not a network (e.g. 10.0.0.0/8 or 2001:db8::/32)");
    }
  }
  // Gone with evhttp's server path: a file naming it was written for a choice that no longer
  // exists, so it is refused with the reason (as an unknown key would be, but saying why)
  // rather than run otherwise than it says.
  if (server.optional_string("http1_transport")) {
    server.fail("http1_transport",
                "was removed with evhttp: HTTP/1 is always served by the servers' own transport "
                "(plain, TLS and h2c ports); delete the key");
  }
  server.finish();
}

void read_threads(core::ConfigReader& root, HttpServerOptions& options) {
  options.threads = static_cast<size_t>(root.integer("threads", 0, 0, 256));
}

void read_server_sections(core::ConfigReader& root, HttpServerOptions& server,
                          std::string& log_level, CorsOptions& cors) {
  auto server_section = root.object("server");
  read_server_section(server_section, server);
  read_threads(root, server);
  auto log = root.object("log");
  log_level = core::read_log_section(log);
  auto cors_section = root.object("cors");
  cors = read_cors_section(cors_section);
}

}  // namespace http
