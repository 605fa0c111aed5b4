// A hand-made HTTP/2 client with prior knowledge (nghttp2 in client mode) on a blocking
// socket to 127.0.0.1, or h2 over TLS by ALPN (Options::tls; the certificate is not checked), for
// what curl cannot do: many streams at once on one h2c connection (curl 7.88 fails the second
// stream of a reused h2c connection with a framing error, against nghttpd too), and hostile
// patterns (rapid reset, huge header lists, windows never read, PINGs alone, windows left at 0). It
// records every stream's status, body and DATA order, GOAWAY and the close. The test drives the
// session itself for the rest (session()). One thread at a time.
#pragma once

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace balancer::test {

class RawH2Client {
 public:
  struct Options {
    std::chrono::milliseconds receive_timeout = std::chrono::seconds(5);  // of one read
    int receive_buffer = 0;                        // SO_RCVBUF; 0: the system's
    size_t max_send_header_block = 0;              // 0: nghttp2's limit on our own header blocks
    std::vector<nghttp2_settings_entry> settings;  // the first SETTINGS frame's
    bool tls = false;  // h2 over TLS (ALPN) instead of h2c with prior knowledge
    // No WINDOW_UPDATE unless the test submits one: the windows are the test's to open.
    bool manual_windows = false;
  };
  struct Stream {
    int status = 0;
    std::string body;
    bool closed = false;
    // Positions of the stream's first and last DATA chunks among all the connection's.
    size_t first_chunk = SIZE_MAX, last_chunk = 0;
  };

  explicit RawH2Client(int port) : RawH2Client(port, Options{}) {}
  RawH2Client(int port, const Options& options);
  ~RawH2Client();
  RawH2Client(const RawH2Client&) = delete;
  RawH2Client& operator=(const RawH2Client&) = delete;

  // Connected (over TLS: the handshake done and h2 agreed).
  bool connected() const { return fd_ >= 0; }
  nghttp2_session* session() { return session_; }

  // A GET of `path` (which must outlive the headers) with `extra` headers after the
  // pseudo-headers; nghttp2 copies them when the request is submitted.
  std::vector<nghttp2_nv> get_request(const std::string& path,
                                      const std::vector<nghttp2_nv>& extra = {}) const;
  // Submits a request (sent by the next send()); its stream id, or nghttp2's error (< 0).
  int32_t submit(const std::vector<nghttp2_nv>& headers);
  // Sends what is queued; false when the connection failed.
  bool send();
  // Sends what is queued, then reads once (at most the receive timeout); false once the
  // server closed the connection (or it failed).
  bool exchange();
  // Exchanges until every submitted stream closed, a read times out or the connection
  // ends, `max_exchanges` at the most.
  void run_until_answered(int max_exchanges);
  // Exchanges until the connection ends or a read times out, `max_exchanges` at the most.
  void run_until_closed(int max_exchanges);
  // Sends a PING and an empty SETTINGS, exchanges twice (the acknowledgements, then a read
  // timeout), and again, until GOAWAY, the close or `limit`: the seconds that took.
  double ping_until_closed(std::chrono::milliseconds limit);

  const Stream& stream(int32_t id) { return streams_[id]; }
  const std::vector<int>& statuses() const { return statuses_; }  // every :status, in order
  bool got_goaway() const { return got_goaway_; }
  uint32_t goaway_error() const { return goaway_error_; }
  bool closed() const { return closed_; }

 private:
  static nghttp2_session_callbacks* callbacks();
  bool start_tls();
  ssize_t write_some(const uint8_t* data, size_t length);
  ssize_t read_some(uint8_t* buf, size_t size);

  int fd_ = -1;
  SSL_CTX* tls_context_ = nullptr;  // owned, with tls_
  SSL* tls_ = nullptr;              // owned; null on h2c
  std::string authority_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, Stream> streams_;
  size_t open_ = 0;
  size_t chunks_ = 0;
  std::vector<int> statuses_;
  bool got_goaway_ = false;
  uint32_t goaway_error_ = UINT32_MAX;
  bool closed_ = false;
  bool timed_out_ = false;  // the last exchange's read ended with the receive timeout
};

}  // namespace balancer::test
