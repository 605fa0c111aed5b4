// test_origin: a small real HTTP/1.1 origin for integration tests and benchmarks.
//
// URL language (see docs/testing.md):
//   GET|HEAD /gen/<size>/<name>   deterministic body (support/generated_body.h)
//   GET|HEAD /files/<path>        file under --root, read from disk at request time
//   /x/<k=v,k=v>/<path>           <path> with behaviour parameters in the path
//   /missing/...                  404
//   GET /__stats[?path=P|agent=A] request counters (agent: requests whose User-Agent starts
//                                 with A, and "others", the rest); POST|GET /__reset zeroes them
//   GET|POST /__outage?status=N   every /gen and /files request answers N (0 ends it); with
//                                 &chunks=1 only those that are not playlists (.m3u8): a source
//                                 whose playlists move while its chunks fail
//   GET|POST /__stall?on=1|0      while on, every .m3u8 under /files answers the copy it had when
//                                 first asked during the stall (a live encoder that stopped
//                                 moving while its origin answers 200)
//   GET|POST /__release           answers every request held by hold=1
// Query parameters on /gen and /files: delay_ms, rate_kbps, status, reset_after (+rst=1),
// hang=1, hold=1, blocking_delay_ms (only requests with _HLS_msn wait); caching headers: cc,
// expires, age, etag=0, lm=0 (cc, expires and age on status replies too); hdr=Name:Value
// (repeatable) adds any header. --delay-ms / --rate-kbps set defaults for /gen only. If-None-Match
// / If-Modified-Since → 304 (counted). Every /gen and /files answer carries
// Access-Control-Allow-Origin: * (browser players).
//
// Single-threaded: everything runs on one libevent loop; SIGTERM/SIGINT are loop events.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "support/generated_body.h"
#include "support/libevent_owners.h"
#include "support/origin_main.h"

namespace balancer::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kTick{10};  // throttle granularity

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string root;
  long delay_ms = 0;
  long rate_kbps = 0;
  int backlog = 4096;
  int timeout_s = 600;
  bool verbose = false;
};

// How one request is answered; defaults come from Options for /gen, query overrides.
struct Behaviour {
  long delay_ms = 0;
  long rate_kbps = 0;
  int status = 0;  // 0: normal reply
  std::optional<size_t> reset_after;
  bool rst = false;
  bool hang = false;
  bool hold = false;  // answered when /__release comes (then as the other parameters say)
  // Caching headers (query only: a value may contain ',' and '=').
  std::optional<std::string> cache_control;  // cc=...: replaces Cache-Control; empty: none sent
  std::optional<long> expires_in;            // expires=N: Expires = now + N s (N may be negative)
  std::optional<long> age;                   // age=N: Age: N
  bool etag = true;                          // etag=0: no ETag
  bool last_modified = true;                 // lm=0: no Last-Modified
  // hdr=Name:Value (repeatable): extra response headers, on status replies too (a
  // Location for status=302, a Content-Encoding, a second Expires line).
  std::vector<std::pair<std::string, std::string>> headers;
};

std::optional<long> parse_long(const char* text, long min, long max) {
  if (text == nullptr) return std::nullopt;
  const std::string_view s(text);
  long value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::time_t> parse_http_date(const char* text) {
  std::tm tm{};
  const char* end = strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return timegm(&tm);
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// Adds `body` to `buf` by reference; the evbuffer holds a shared_ptr until it is done.
void add_shared(evbuffer* buf, const std::shared_ptr<const std::string>& body) {
  auto* holder = new std::shared_ptr<const std::string>(body);
  const auto release = [](const void* /*data*/, size_t /*len*/, void* arg) {
    delete static_cast<std::shared_ptr<const std::string>*>(arg);
  };
  if (evbuffer_add_reference(buf, body->data(), body->size(), release, holder) != 0) {
    delete holder;
    evbuffer_add(buf, body->data(), body->size());
  }
}

// Recently generated /gen bodies, so a herd on one URL costs one generation.
class BodyCache {
 public:
  std::shared_ptr<const std::string> get(const std::string& name, size_t size) {
    const auto key = std::make_pair(name, size);
    if (const auto it = entries_.find(key); it != entries_.end()) return it->second;
    auto body = std::make_shared<const std::string>(generated_body(name, size));
    if (size > kMaxBytes / 4) return body;
    entries_.emplace(key, body);
    order_.push_back(key);
    bytes_ += size;
    while (bytes_ > kMaxBytes) {
      bytes_ -= order_.front().second;
      entries_.erase(order_.front());
      order_.pop_front();
    }
    return body;
  }

 private:
  static constexpr size_t kMaxBytes = size_t{64} << 20;
  std::map<std::pair<std::string, size_t>, std::shared_ptr<const std::string>> entries_;
  std::deque<std::pair<std::string, size_t>> order_;  // oldest first
  size_t bytes_ = 0;
};

class Origin;

// One counted request while it is in our hands. Owned by Origin::exchanges_.
struct Exchange {
  enum class Phase { waiting, streaming, closing, replied };

  Origin* origin = nullptr;
  evhttp_request* req = nullptr;
  evhttp_connection* conn = nullptr;
  Behaviour behaviour;
  bool head = false;
  std::string name;  // /gen name or file name (for Content-Type)
  size_t size = 0;
  std::shared_ptr<const std::string> body;  // null for HEAD of /gen
  std::string etag;
  std::string last_modified;
  std::string cache_control;
  std::vector<std::string> count_keys;  // the counters this request adds to (path, path?query)
  size_t limit = 0;                     // bytes to send before ending (size, or reset_after)
  size_t sent = 0;
  Phase phase = Phase::waiting;
  bool held = false;  // hold=1 and /__release has not come yet
  Clock::time_point stream_start{};
  Clock::time_point close_deadline{};
  EventPtr timer;
};

class Origin {
 public:
  Origin(event_base& base, Options options)
      : base_(base), options_(std::move(options)), last_modified_(http_date(std::time(nullptr))) {}

  ~Origin() {
    // Requests libevent detached from a closed connection are ours to free; attached
    // ones are freed with their connection by evhttp_free below.
    for (auto& [ptr, ex] : exchanges_) {
      if (evhttp_request_get_connection(ex->req) == nullptr) evhttp_request_free(ex->req);
    }
    exchanges_.clear();
    http_.reset();
  }

  Origin(const Origin&) = delete;
  Origin& operator=(const Origin&) = delete;

  // Binds and starts serving; returns the bound port, or -1 with `error` set.
  int listen(std::string& error) {
    http_.reset(evhttp_new(&base_));
    if (!http_) {
      error = "evhttp_new failed";
      return -1;
    }
    evhttp_set_timeout(http_.get(), options_.timeout_s);
    evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                                EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(http_.get(), &Origin::on_request, this);

    // evutil_parse_sockaddr_port rejects port 0, so build the address by hand.
    sockaddr_storage addr{};
    int addr_len = 0;
    const std::string spec = options_.host + " port " + std::to_string(options_.port);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (inet_pton(AF_INET, options_.host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<uint16_t>(options_.port));
      addr_len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, options_.host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<uint16_t>(options_.port));
      addr_len = sizeof(sockaddr_in6);
    } else {
      error = "--host must be an IPv4 or IPv6 address: " + options_.host;
      return -1;
    }
    // Own listener so the backlog is large enough for a herd of 1000 connects.
    evconnlistener* listener = evconnlistener_new_bind(
        &base_, nullptr, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        options_.backlog, reinterpret_cast<sockaddr*>(&addr), addr_len);
    if (listener == nullptr) {
      error = "cannot bind " + spec + ": " + std::strerror(errno);
      return -1;
    }
    if (evhttp_bind_listener(http_.get(), listener) == nullptr) {  // takes ownership
      evconnlistener_free(listener);
      error = "evhttp_bind_listener failed";
      return -1;
    }
    sockaddr_storage bound{};
    socklen_t bound_len = sizeof bound;
    if (getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&bound),
                    &bound_len) != 0) {
      error = std::string("getsockname: ") + std::strerror(errno);
      return -1;
    }
    if (bound.ss_family == AF_INET6)
      return ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    return ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }

 private:
  static void on_request(evhttp_request* req, void* arg) { static_cast<Origin*>(arg)->handle(req); }

  static void on_complete(evhttp_request* /*req*/, void* arg) {
    auto* ex = static_cast<Exchange*>(arg);
    ex->origin->finish(ex);
  }

  static void on_connection_close(evhttp_connection* conn, void* arg) {
    static_cast<Origin*>(arg)->abort_connection(conn);
  }

  static void on_timer(evutil_socket_t /*fd*/, short /*what*/, void* arg) {
    auto* ex = static_cast<Exchange*>(arg);
    ex->origin->advance(ex);
  }

  void handle(evhttp_request* req) {
    const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
    const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
    const std::string path = raw_path != nullptr && raw_path[0] != '\0' ? raw_path : "/";
    const char* query = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
    const auto command = evhttp_request_get_command(req);
    if (options_.verbose) {
      std::fprintf(stderr, "test_origin: %d %s\n", static_cast<int>(command),
                   evhttp_request_get_uri(req));
    }

    if (path.rfind("/__", 0) == 0) {
      handle_control(req, path, query);
      return;
    }

    ++total_;
    ++counts_[path];
    if (query != nullptr) ++counts_[path + "?" + query];
    const char* agent = evhttp_find_header(evhttp_request_get_input_headers(req), "User-Agent");
    ++agents_[agent != nullptr ? agent : ""];

    auto owned = std::make_unique<Exchange>();
    Exchange* ex = owned.get();
    ex->count_keys.push_back(path);
    if (query != nullptr) ex->count_keys.push_back(path + "?" + query);
    ex->origin = this;
    ex->req = req;
    ex->conn = evhttp_request_get_connection(req);
    ex->head = command == EVHTTP_REQ_HEAD;
    exchanges_.emplace(ex, std::move(owned));
    max_in_flight_ = std::max<uint64_t>(max_in_flight_, exchanges_.size());
    evhttp_request_set_on_complete_cb(req, &Origin::on_complete, ex);
    evhttp_connection_set_closecb(ex->conn, &Origin::on_connection_close, this);

    // /x/<k=v,k=v>/<path>: behaviour in the path, for proxies that drop or rewrite
    // the query string. Query parameters override path parameters.
    std::string route = path;
    std::string behaviour_query = query != nullptr ? query : "";
    if (route.rfind("/x/", 0) == 0) {
      const auto end = route.find('/', 3);
      std::string path_params = route.substr(3, end == std::string::npos ? end : end - 3);
      std::replace(path_params.begin(), path_params.end(), ',', '&');
      behaviour_query += (behaviour_query.empty() ? "" : "&") + path_params;
      route = end == std::string::npos ? "/" : route.substr(end);
    }
    const bool is_gen = route.rfind("/gen/", 0) == 0;
    const bool is_files = route.rfind("/files/", 0) == 0;
    if (!is_gen && !is_files) {
      reply_text(ex, HTTP_NOTFOUND, "not found\n");
      return;
    }
    // A public origin as browsers need it: a web player on the balancer's page may fall back to it.
    evhttp_add_header(evhttp_request_get_output_headers(req), "Access-Control-Allow-Origin", "*");
    if (command != EVHTTP_REQ_GET && command != EVHTTP_REQ_HEAD) {
      evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
      reply_text(ex, 405, "method not allowed\n");
      return;
    }

    QueryParams params(behaviour_query.c_str());
    if (is_gen) {
      ex->behaviour.delay_ms = options_.delay_ms;
      ex->behaviour.rate_kbps = options_.rate_kbps;
    }
    std::string bad;
    if (!params.valid() || !parse_behaviour(params, ex->behaviour, bad)) {
      reply_text(ex, HTTP_BADREQUEST, "bad query parameter " + bad + "\n");
      return;
    }

    if (is_gen) {
      // /gen/<size>/<name>; the name may contain further slashes.
      const std::string rest = route.substr(5);
      const auto slash = rest.find('/');
      const auto size =
          slash == std::string::npos ? std::nullopt : parse_size(rest.substr(0, slash));
      if (!size || slash + 1 >= rest.size()) {
        reply_text(ex, HTTP_BADREQUEST, "expected /gen/<size>/<name>\n");
        return;
      }
      ex->name = rest.substr(slash + 1);
      ex->size = *size;
      if (!ex->head) ex->body = bodies_.get(ex->name, ex->size);
      ex->etag = generated_etag(ex->name, ex->size);
      ex->last_modified = last_modified_;
      ex->cache_control = "public, max-age=86400";
    } else {
      const int status = load_file(route.substr(7), *ex);
      if (status != HTTP_OK) {
        reply_text(ex, status, status == 403 ? "forbidden\n" : "not found\n");
        return;
      }
      if (stalled_ && ex->body && route.ends_with(".m3u8")) {
        auto [frozen, first] = stalled_playlists_.emplace(route, ex->body);
        if (!first) ex->body = frozen->second;
        ex->etag.clear();  // the validators describe the file now, not the copy answered
        ex->last_modified.clear();
      }
    }
    if (ex->behaviour.cache_control) ex->cache_control = *ex->behaviour.cache_control;
    if (!ex->behaviour.etag) ex->etag.clear();
    if (!ex->behaviour.last_modified) ex->last_modified.clear();
    if (outage_status_ != 0 && !(outage_chunks_only_ && route.ends_with(".m3u8")))
      ex->behaviour.status = outage_status_;

    if (ex->behaviour.hang) {
      watch_for_close(ex);  // never answered; finishes when the client goes away
      return;
    }
    if (ex->behaviour.hold) {
      ex->held = true;
      watch_for_close(ex);  // /__release goes on with delay_ms and the rest
      return;
    }
    go_on(ex);
  }

  // Answers now, or after delay_ms.
  void go_on(Exchange* ex) {
    if (ex->behaviour.delay_ms > 0) {
      watch_for_close(ex);
      start_timer(ex, std::chrono::milliseconds(ex->behaviour.delay_ms), false);
      return;
    }
    respond(ex);
  }

  // /__release: every held request goes on, in no particular order; returns how many.
  size_t release_held() {
    std::vector<Exchange*> held;
    for (auto& [ptr, ex] : exchanges_) {
      if (ex->held) held.push_back(ptr);
    }
    for (Exchange* ex : held) {
      ex->held = false;
      if (evhttp_request_get_connection(ex->req) == nullptr) {
        evhttp_request_free(ex->req);  // the client went away while held
        finish(ex);
        continue;
      }
      go_on(ex);
    }
    return held.size();
  }

  // Reads an optional integer query parameter; false (and `bad` set) when malformed.
  static bool read_param(const QueryParams& params, const char* key, long min, long max,
                         std::optional<long>& out, std::string& bad) {
    const char* v = params.get(key);
    if (v == nullptr) return true;
    out = parse_long(v, min, max);
    if (!out) bad = key;
    return out.has_value();
  }

  static bool parse_behaviour(const QueryParams& params, Behaviour& b, std::string& bad) {
    std::optional<long> delay, rate, status, reset;
    if (!read_param(params, "delay_ms", 0, 3'600'000, delay, bad) ||
        !read_param(params, "rate_kbps", 0, 100'000'000, rate, bad) ||
        !read_param(params, "status", 100, 599, status, bad) ||
        !read_param(params, "reset_after", 0, std::numeric_limits<long>::max(), reset, bad)) {
      return false;
    }
    if (delay) b.delay_ms = *delay;
    // blocking_delay_ms=N: an LL-HLS blocking reload (_HLS_msn) waits N ms, as an origin
    // holds one until the playlist reaches the segment or part asked for.
    std::optional<long> blocking_delay;
    if (!read_param(params, "blocking_delay_ms", 0, 3'600'000, blocking_delay, bad)) return false;
    if (blocking_delay && params.get("_HLS_msn") != nullptr) b.delay_ms = *blocking_delay;
    if (rate) b.rate_kbps = *rate;
    if (status) b.status = static_cast<int>(*status);
    if (reset) b.reset_after = static_cast<size_t>(*reset);
    if (const char* v = params.get("rst")) b.rst = std::string_view(v) == "1";
    if (const char* v = params.get("hang")) b.hang = std::string_view(v) == "1";
    if (const char* v = params.get("hold")) b.hold = std::string_view(v) == "1";
    if (const char* v = params.get("cc")) b.cache_control = v;
    std::optional<long> expires, age;
    if (!read_param(params, "expires", -1'000'000'000, 1'000'000'000, expires, bad) ||
        !read_param(params, "age", 0, 1'000'000'000, age, bad)) {
      return false;
    }
    b.expires_in = expires;
    b.age = age;
    if (const char* v = params.get("etag")) b.etag = std::string_view(v) != "0";
    if (const char* v = params.get("lm")) b.last_modified = std::string_view(v) != "0";
    for (const std::string& h : params.all("hdr")) {
      const size_t colon = h.find(':');
      if (colon == 0 || colon == std::string::npos) {
        bad = "hdr";
        return false;
      }
      b.headers.emplace_back(h.substr(0, colon), h.substr(colon + 1));
    }
    return true;
  }

  // Fills ex from the file under --root; returns 200, 403 (traversal) or 404.
  int load_file(const std::string& encoded_rel, Exchange& ex) {
    if (options_.root.empty()) return HTTP_NOTFOUND;
    size_t decoded_len = 0;
    MallocPtr decoded(evhttp_uridecode(encoded_rel.c_str(), 0, &decoded_len));
    if (!decoded) return HTTP_NOTFOUND;
    const std::string rel(decoded.get(), decoded_len);
    if (rel.find('\0') != std::string::npos || rel.empty() || rel.front() == '/') return 403;
    std::istringstream segments(rel);
    for (std::string seg; std::getline(segments, seg, '/');) {
      if (seg == "..") return 403;
    }
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root = fs::canonical(options_.root, ec);
    if (ec) return HTTP_NOTFOUND;
    const fs::path full = fs::weakly_canonical(root / rel, ec);
    if (ec) return HTTP_NOTFOUND;
    // Refuse anything resolving outside root, symlinks included.
    const auto [root_end, full_it] =
        std::mismatch(root.begin(), root.end(), full.begin(), full.end());
    if (root_end != root.end()) return 403;
    struct stat st {};
    if (::stat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return HTTP_NOTFOUND;
    std::ifstream in(full, std::ios::binary);
    if (!in) return HTTP_NOTFOUND;
    ex.body = std::make_shared<const std::string>(std::istreambuf_iterator<char>(in),
                                                  std::istreambuf_iterator<char>());
    ex.size = ex.body->size();
    ex.name = full.filename().string();
    char etag[64];
    std::snprintf(etag, sizeof etag, "\"f%llx-%llx-%zx\"",
                  static_cast<unsigned long long>(st.st_mtim.tv_sec),
                  static_cast<unsigned long long>(st.st_mtim.tv_nsec), ex.size);
    ex.etag = etag;
    ex.last_modified = http_date(st.st_mtim.tv_sec);
    // A live playlist is fresh for about a second (as packagers send it), the rest for an hour.
    ex.cache_control = full.extension() == ".m3u8" ? "max-age=1" : "public, max-age=3600";
    return HTTP_OK;
  }

  // While we hold a request without writing, libevent does not read the socket, so a
  // client that goes away is not noticed. Reading with no read callback (what evhttp
  // itself does while writing) lets EOF reach evhttp's error path and our close callback.
  void watch_for_close(Exchange* ex) {
    bufferevent* bev = evhttp_connection_get_bufferevent(ex->conn);
    if (bev == nullptr) return;
    bufferevent_data_cb writecb = nullptr;
    bufferevent_event_cb eventcb = nullptr;
    void* cbarg = nullptr;
    bufferevent_getcb(bev, nullptr, &writecb, &eventcb, &cbarg);
    bufferevent_setcb(bev, nullptr, writecb, eventcb, cbarg);
    bufferevent_enable(bev, EV_READ);
  }

  void start_timer(Exchange* ex, std::chrono::milliseconds after, bool persist) {
    ex->timer.reset(event_new(&base_, -1, persist ? EV_PERSIST : 0, &Origin::on_timer, ex));
    const timeval tv{static_cast<time_t>(after.count() / 1000),
                     static_cast<suseconds_t>((after.count() % 1000) * 1000)};
    event_add(ex->timer.get(), &tv);
  }

  // Timer fired: the delay ended, a throttle tick, or a pending abrupt close.
  void advance(Exchange* ex) {
    if (evhttp_request_get_connection(ex->req) == nullptr) {
      // Client went away and libevent handed the request back to us.
      evhttp_request_free(ex->req);
      finish(ex);
      return;
    }
    switch (ex->phase) {
      case Exchange::Phase::waiting:
        ex->timer.reset();
        respond(ex);
        return;
      case Exchange::Phase::streaming:
        pump(ex);
        return;
      case Exchange::Phase::closing:
        maybe_close(ex);
        return;
      case Exchange::Phase::replied:
        ex->timer.reset();
        return;
    }
  }

  void respond(Exchange* ex) {
    evhttp_request* req = ex->req;
    const Behaviour& b = ex->behaviour;
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    for (const auto& [name, value] : b.headers) evhttp_add_header(out, name.c_str(), value.c_str());
    if (b.status != 0) {
      // The caching headers asked for go on status replies too (a 404 with no-store).
      if (b.cache_control && !b.cache_control->empty())
        evhttp_add_header(out, "Cache-Control", b.cache_control->c_str());
      if (b.expires_in)
        evhttp_add_header(out, "Expires", http_date(std::time(nullptr) + *b.expires_in).c_str());
      if (b.age) evhttp_add_header(out, "Age", std::to_string(*b.age).c_str());
      reply_text(ex, b.status, "test_origin: status " + std::to_string(b.status) + "\n");
      return;
    }
    evhttp_add_header(out, "Content-Type", std::string(content_type_for(ex->name)).c_str());
    if (!ex->etag.empty()) evhttp_add_header(out, "ETag", ex->etag.c_str());
    if (!ex->last_modified.empty())
      evhttp_add_header(out, "Last-Modified", ex->last_modified.c_str());
    if (!ex->cache_control.empty())
      evhttp_add_header(out, "Cache-Control", ex->cache_control.c_str());
    if (b.expires_in)
      evhttp_add_header(out, "Expires", http_date(std::time(nullptr) + *b.expires_in).c_str());
    if (b.age) evhttp_add_header(out, "Age", std::to_string(*b.age).c_str());

    const evkeyvalq* in = evhttp_request_get_input_headers(req);
    const char* inm = evhttp_find_header(in, "If-None-Match");
    const char* ims = evhttp_find_header(in, "If-Modified-Since");
    if (inm != nullptr || ims != nullptr) {
      for (const auto& key : ex->count_keys) ++conditional_[key];
    }
    bool not_modified = false;
    if (inm != nullptr) {
      not_modified =
          std::string_view(inm) == "*" ||
          (!ex->etag.empty() && std::string_view(inm).find(ex->etag) != std::string_view::npos);
    } else if (ims != nullptr && !ex->last_modified.empty()) {
      const auto since = parse_http_date(ims);
      const auto modified = parse_http_date(ex->last_modified.c_str());
      not_modified = since && modified && *modified <= *since;
    }
    if (not_modified) {
      for (const auto& key : ex->count_keys) ++not_modified_[key];
      ++not_modified_total_;
      ex->phase = Exchange::Phase::replied;
      evhttp_send_reply(req, HTTP_NOTMODIFIED, nullptr, nullptr);
      return;
    }
    evhttp_add_header(out, "Content-Length", std::to_string(ex->size).c_str());
    if (ex->head) {
      ex->phase = Exchange::Phase::replied;
      evhttp_send_reply(req, HTTP_OK, nullptr, nullptr);
      return;
    }

    ex->limit = std::min(ex->size, b.reset_after.value_or(ex->size));
    if (b.rate_kbps == 0 && !b.reset_after) {
      EvbufferPtr buf(evbuffer_new());
      add_shared(buf.get(), ex->body);  // zero-copy: the buffer keeps the body alive
      ex->phase = Exchange::Phase::replied;
      evhttp_send_reply(req, HTTP_OK, nullptr, buf.get());
      return;
    }
    // With Content-Length set, evhttp streams the body raw (no chunked framing).
    evhttp_send_reply_start(req, HTTP_OK, nullptr);
    ex->phase = Exchange::Phase::streaming;
    ex->stream_start = Clock::now();
    if (b.rate_kbps == 0) {
      send_slice(ex, ex->limit);
      return;
    }
    pump(ex);
    if (ex->phase == Exchange::Phase::streaming) start_timer(ex, kTick, true);
  }

  // Throttle tick: sends what the rate allows since the stream started.
  void pump(Exchange* ex) {
    bufferevent* bev = evhttp_connection_get_bufferevent(ex->conn);
    // Client slower than the rate: let the socket drain before queueing more.
    if (bev != nullptr && evbuffer_get_length(bufferevent_get_output(bev)) > (size_t{1} << 20)) {
      return;
    }
    // One tick of credit up front, so the first bytes leave with the headers.
    const double elapsed = std::chrono::duration<double>(Clock::now() - ex->stream_start).count() +
                           kTick.count() / 1000.0;
    const double due = elapsed * static_cast<double>(ex->behaviour.rate_kbps) * 1000.0 / 8.0;
    const size_t target = std::min(ex->limit, static_cast<size_t>(due));
    if (target > ex->sent) send_slice(ex, target - ex->sent);
  }

  void send_slice(Exchange* ex, size_t length) {
    if (length > 0) {
      EvbufferPtr buf(evbuffer_new());
      evbuffer_add(buf.get(), ex->body->data() + ex->sent, length);
      evhttp_send_reply_chunk(ex->req, buf.get());
      ex->sent += length;
    }
    if (ex->sent < ex->limit) return;
    if (ex->behaviour.reset_after) {
      // Let the bytes reach the client, then drop the connection mid-body.
      ex->phase = Exchange::Phase::closing;
      ex->close_deadline = Clock::now() + std::chrono::seconds(2);
      start_timer(ex, std::chrono::milliseconds(1), true);
      return;
    }
    ex->phase = Exchange::Phase::replied;
    ex->timer.reset();
    evhttp_send_reply_end(ex->req);  // on_complete fires once flushed
  }

  void maybe_close(Exchange* ex) {
    bufferevent* bev = evhttp_connection_get_bufferevent(ex->conn);
    const evutil_socket_t fd = bev != nullptr ? bufferevent_getfd(bev) : -1;
    int unsent = 0;
    const bool flushed = bev != nullptr && evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
                         (fd < 0 || ioctl(fd, SIOCOUTQ, &unsent) != 0 || unsent == 0);
    if (!flushed && Clock::now() < ex->close_deadline) return;
    if (ex->behaviour.rst && fd >= 0) {
      const linger lin{1, 0};  // close() then sends RST instead of FIN
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    }
    evhttp_connection* conn = ex->conn;
    evhttp_request_set_on_complete_cb(ex->req, nullptr, nullptr);
    finish(ex);                    // frees ex and its timer; safe inside the timer callback
    evhttp_connection_free(conn);  // frees the request too
  }

  void reply_text(Exchange* ex, int status, const std::string& text) {
    ex->phase = Exchange::Phase::replied;
    evkeyvalq* out = evhttp_request_get_output_headers(ex->req);
    evhttp_add_header(out, "Content-Type", "text/plain");
    EvbufferPtr buf(evbuffer_new());
    const bool has_body = !ex->head && status != 204 && status != 304 && status >= 200;
    if (has_body) evbuffer_add(buf.get(), text.data(), text.size());
    evhttp_send_reply(ex->req, status, nullptr, buf.get());
  }

  void finish(Exchange* ex) { exchanges_.erase(ex); }

  size_t held_count() const {
    return static_cast<size_t>(std::count_if(exchanges_.begin(), exchanges_.end(),
                                             [](const auto& e) { return e.second->held; }));
  }

  void abort_connection(evhttp_connection* conn) {
    std::vector<Exchange*> gone;
    for (auto& [ptr, ex] : exchanges_) {
      if (ex->conn == conn) gone.push_back(ptr);
    }
    for (Exchange* ex : gone) {
      // A request libevent detached (EOF while we held it) is ours to free; an attached
      // one is freed by libevent right after this callback.
      if (evhttp_request_get_connection(ex->req) == nullptr) {
        evhttp_request_free(ex->req);
      } else {
        evhttp_request_set_on_complete_cb(ex->req, nullptr, nullptr);
      }
      finish(ex);
    }
  }

  void handle_control(evhttp_request* req, const std::string& path, const char* query) {
    const auto command = evhttp_request_get_command(req);
    std::string body;
    int status = HTTP_OK;
    if (path == "/__stats" && command == EVHTTP_REQ_GET) {
      QueryParams params(query);
      if (const char* prefix = params.get("agent")) {
        uint64_t n = 0;
        uint64_t others = 0;  // the rest, from the same moment: count + others is every request
        for (const auto& [agent, count] : agents_) {
          (agent.rfind(prefix, 0) == 0 ? n : others) += count;
        }
        body = "{\"count\":" + std::to_string(n) + ",\"others\":" + std::to_string(others) + "}";
      } else if (const char* p = params.get("path")) {
        const auto counted = [p](const std::map<std::string, uint64_t>& counts) {
          const auto it = counts.find(p);
          return std::to_string(it == counts.end() ? 0 : it->second);
        };
        body = "{\"count\":" + counted(counts_) + ",\"conditional\":" + counted(conditional_) +
               ",\"not_modified\":" + counted(not_modified_) + "}";
      } else {
        body = "{\"total\":" + std::to_string(total_) +
               ",\"not_modified\":" + std::to_string(not_modified_total_) +
               ",\"in_flight\":" + std::to_string(exchanges_.size()) +
               ",\"held\":" + std::to_string(held_count()) +
               ",\"max_in_flight\":" + std::to_string(max_in_flight_) + ",\"paths\":{";
        bool first = true;
        for (const auto& [key, count] : counts_) {
          if (!first) body += ',';
          first = false;
          core::append_json_string(body, key);
          body += ':' + std::to_string(count);
        }
        body += "}}";
      }
    } else if (path == "/__reset" && (command == EVHTTP_REQ_GET || command == EVHTTP_REQ_POST)) {
      total_ = 0;
      not_modified_total_ = 0;
      counts_.clear();
      agents_.clear();
      conditional_.clear();
      not_modified_.clear();
      max_in_flight_ = exchanges_.size();
      body = "{\"reset\":true}";
    } else if (path == "/__outage" && (command == EVHTTP_REQ_GET || command == EVHTTP_REQ_POST)) {
      QueryParams params(query);
      const auto code = parse_long(params.get("status"), 0, 599);
      if (code && (*code == 0 || *code >= 100)) {
        outage_status_ = static_cast<int>(*code);
        const char* chunks_only = params.get("chunks");
        outage_chunks_only_ = chunks_only != nullptr && std::string_view(chunks_only) == "1";
        body = "{\"outage_status\":" + std::to_string(outage_status_) +
               ",\"chunks_only\":" + (outage_chunks_only_ ? "true" : "false") + "}";
      } else {
        status = HTTP_BADREQUEST;
        body =
            "{\"error\":{\"code\":\"bad_request\",\"message\":\"status must be 0 or 100 to 599\"}}";
      }
    } else if (path == "/__stall" && (command == EVHTTP_REQ_GET || command == EVHTTP_REQ_POST)) {
      QueryParams params(query);
      const auto on = parse_long(params.get("on"), 0, 1);
      if (on) {
        stalled_ = *on == 1;
        stalled_playlists_.clear();
        body = std::string("{\"stalled\":") + (stalled_ ? "true" : "false") + "}";
      } else {
        status = HTTP_BADREQUEST;
        body = "{\"error\":{\"code\":\"bad_request\",\"message\":\"on must be 0 or 1\"}}";
      }
    } else if (path == "/__release" && (command == EVHTTP_REQ_GET || command == EVHTTP_REQ_POST)) {
      body = "{\"released\":" + std::to_string(release_held()) + "}";
    } else if (path == "/__health") {
      body = "{\"status\":\"ok\"}";
    } else {
      status = HTTP_NOTFOUND;
      body = "{\"error\":{\"code\":\"not_found\",\"message\":\"unknown control path\"}}";
    }
    body += '\n';
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", "application/json");
    evhttp_add_header(out, "Cache-Control", "no-store");
    EvbufferPtr buf(evbuffer_new());
    evbuffer_add(buf.get(), body.data(), body.size());
    evhttp_send_reply(req, status, nullptr, buf.get());
  }

  event_base& base_;
  const Options options_;
  const std::string last_modified_;
  EvhttpPtr http_;
  std::unordered_map<Exchange*, std::unique_ptr<Exchange>> exchanges_;
  BodyCache bodies_;
  uint64_t total_ = 0;
  uint64_t max_in_flight_ = 0;
  uint64_t not_modified_total_ = 0;
  int outage_status_ = 0;            // /__outage: every /gen and /files request answers this status
  bool outage_chunks_only_ = false;  // /__outage&chunks=1: but playlists
  bool stalled_ = false;  // /__stall: playlists answer the copy they had when first asked
  std::map<std::string, std::shared_ptr<const std::string>> stalled_playlists_;
  std::map<std::string, uint64_t> counts_;
  std::map<std::string, uint64_t> agents_;       // by User-Agent ("" without one)
  std::map<std::string, uint64_t> conditional_;  // requests with If-None-Match or If-Modified-Since
  std::map<std::string, uint64_t> not_modified_;  // answered 304
};

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: test_origin [--host 127.0.0.1] [--port 0] [--root DIR]\n"
               "                   [--delay-ms N] [--rate-kbps N] [--backlog N]\n"
               "                   [--timeout-s N] [--verbose]\n"
               "Prints {\"event\":\"listening\",\"port\":N} on stdout once bound.\n");
}

std::optional<Options> parse_args(int argc, char** argv) {
  Options o;
  const std::map<std::string_view, std::string*> text_flags = {{"--host", &o.host},
                                                               {"--root", &o.root}};
  struct NumberFlag {
    long min;
    long max;
    std::function<void(long)> store;
  };
  const std::map<std::string_view, NumberFlag> number_flags = {
      {"--port", {0, 65535, [&](long v) { o.port = static_cast<int>(v); }}},
      {"--delay-ms", {0, 3'600'000, [&](long v) { o.delay_ms = v; }}},
      {"--rate-kbps", {0, 100'000'000, [&](long v) { o.rate_kbps = v; }}},
      {"--backlog", {1, 65535, [&](long v) { o.backlog = static_cast<int>(v); }}},
      {"--timeout-s", {1, 86400, [&](long v) { o.timeout_s = static_cast<int>(v); }}},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      has_value = true;
    }
    auto next = [&]() -> std::optional<std::string> {
      if (has_value) return value;
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (arg == "--verbose") {
      o.verbose = true;
    } else if (const auto text = text_flags.find(arg); text != text_flags.end()) {
      const auto v = next();
      if (!v) return std::nullopt;
      *text->second = *v;
    } else if (const auto number = number_flags.find(arg); number != number_flags.end()) {
      const auto v = next();
      const auto n =
          v ? parse_long(v->c_str(), number->second.min, number->second.max) : std::nullopt;
      if (!n) return std::nullopt;
      number->second.store(*n);
    } else {
      std::fprintf(stderr, "test_origin: unknown argument %s\n", argv[i]);
      return std::nullopt;
    }
  }
  return o;
}

int run(int argc, char** argv) {
  auto options = parse_args(argc, argv);
  if (!options) {
    usage(stderr);
    return 2;
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }

  EventBasePtr base(event_base_new());
  if (!base) {
    std::fprintf(stderr, "test_origin: event_base_new failed\n");
    return 1;
  }
  Origin origin(*base, *options);
  return serve_until_stopped("test_origin", *base, origin);
}

}  // namespace
}  // namespace balancer::test

int main(int argc, char** argv) {
  return balancer::test::run(argc, argv);
}
