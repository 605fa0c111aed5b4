#include "support/raw_h2_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "support/sockets.h"

namespace balancer::test {
namespace {

nghttp2_nv header(const char* name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), strlen(name),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

nghttp2_session_callbacks* RawH2Client::callbacks() {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_send_callback(
      cb, [](nghttp2_session*, const uint8_t* data, size_t length, int, void* user) -> ssize_t {
        const ssize_t n = static_cast<RawH2Client*>(user)->write_some(data, length);
        return n < 0 ? static_cast<ssize_t>(NGHTTP2_ERR_CALLBACK_FAILURE) : n;
      });
  nghttp2_session_callbacks_set_on_header_callback(
      cb, [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
             const uint8_t* value, size_t valuelen, uint8_t, void* user) {
        auto* c = static_cast<RawH2Client*>(user);
        if (std::string_view(reinterpret_cast<const char*>(name), namelen) == ":status") {
          const int status = std::stoi(std::string(reinterpret_cast<const char*>(value), valuelen));
          c->streams_[frame->hd.stream_id].status = status;
          c->statuses_.push_back(status);
        }
        return 0;
      });
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      cb, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
        auto* c = static_cast<RawH2Client*>(user);
        Stream& s = c->streams_[id];
        s.body.append(reinterpret_cast<const char*>(data), len);
        s.first_chunk = std::min(s.first_chunk, c->chunks_);
        s.last_chunk = c->chunks_++;
        return 0;
      });
  nghttp2_session_callbacks_set_on_stream_close_callback(
      cb, [](nghttp2_session*, int32_t id, uint32_t, void* user) {
        auto* c = static_cast<RawH2Client*>(user);
        c->streams_[id].closed = true;
        if (c->open_ > 0) --c->open_;
        return 0;
      });
  nghttp2_session_callbacks_set_on_frame_recv_callback(
      cb, [](nghttp2_session*, const nghttp2_frame* frame, void* user) {
        auto* c = static_cast<RawH2Client*>(user);
        if (frame->hd.type == NGHTTP2_GOAWAY) {
          c->got_goaway_ = true;
          c->goaway_error_ = frame->goaway.error_code;
        }
        return 0;
      });
  return cb;
}

RawH2Client::RawH2Client(int port, const Options& options)
    : fd_(connect_loopback(port, options.receive_timeout)),
      authority_("127.0.0.1:" + std::to_string(port)) {
  if (fd_ >= 0 && options.receive_buffer > 0) {
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer, sizeof options.receive_buffer);
  }
  if (fd_ >= 0 && options.tls && !start_tls()) {
    close(fd_);
    fd_ = -1;
  }
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  if (options.manual_windows) nghttp2_option_set_no_auto_window_update(option, 1);
  if (options.max_send_header_block > 0) {
    nghttp2_option_set_max_send_header_block_length(option, options.max_send_header_block);
  }
  nghttp2_session_callbacks* cb = callbacks();
  nghttp2_session_client_new2(&session_, cb, this, option);
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(option);
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, options.settings.data(),
                          options.settings.size());
}

RawH2Client::~RawH2Client() {
  nghttp2_session_del(session_);
  if (tls_ != nullptr) SSL_free(tls_);
  if (tls_context_ != nullptr) SSL_CTX_free(tls_context_);
  if (fd_ >= 0) close(fd_);
}

bool RawH2Client::start_tls() {
  tls_context_ = SSL_CTX_new(TLS_client_method());
  if (tls_context_ == nullptr) return false;
  static const unsigned char kH2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(tls_context_, kH2, sizeof kH2);
  tls_ = SSL_new(tls_context_);
  if (tls_ == nullptr || SSL_set_fd(tls_, fd_) != 1 || SSL_connect(tls_) != 1) return false;
  const unsigned char* agreed = nullptr;
  unsigned int agreed_length = 0;
  SSL_get0_alpn_selected(tls_, &agreed, &agreed_length);
  return agreed_length == 2 && std::memcmp(agreed, "h2", 2) == 0;
}

ssize_t RawH2Client::write_some(const uint8_t* data, size_t length) {
  if (tls_ == nullptr) return ::send(fd_, data, length, MSG_NOSIGNAL);
  const int n = SSL_write(tls_, data, static_cast<int>(length));
  return n > 0 ? n : -1;
}

// Like recv(): -1 with errno EAGAIN when the receive timeout passed with nothing read.
ssize_t RawH2Client::read_some(uint8_t* buf, size_t size) {
  if (tls_ == nullptr) return recv(fd_, buf, size, 0);
  errno = 0;
  const int n = SSL_read(tls_, buf, static_cast<int>(size));
  if (n > 0) return n;
  const int error = SSL_get_error(tls_, n);
  if (error == SSL_ERROR_WANT_READ || (error == SSL_ERROR_SYSCALL && errno == EAGAIN)) {
    errno = EAGAIN;
    return -1;
  }
  errno = ECONNRESET;
  return n == 0 ? 0 : -1;
}

std::vector<nghttp2_nv> RawH2Client::get_request(const std::string& path,
                                                 const std::vector<nghttp2_nv>& extra) const {
  static const std::string kGet = "GET", kHttp = "http";
  std::vector<nghttp2_nv> out = {header(":method", kGet), header(":scheme", kHttp),
                                 header(":authority", authority_), header(":path", path)};
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

int32_t RawH2Client::submit(const std::vector<nghttp2_nv>& headers) {
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), nullptr, nullptr);
  if (id > 0) {
    streams_[id];
    ++open_;
  }
  return id;
}

bool RawH2Client::send() {
  return nghttp2_session_send(session_) == 0;
}

bool RawH2Client::exchange() {
  timed_out_ = false;
  if (closed_) return false;
  if (!send()) return !(closed_ = true);
  uint8_t buf[16384];
  const ssize_t n = read_some(buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    timed_out_ = true;
    return true;
  }
  if (n <= 0 || nghttp2_session_mem_recv(session_, buf, static_cast<size_t>(n)) < 0) {
    return !(closed_ = true);
  }
  return true;
}

void RawH2Client::run_until_answered(int max_exchanges) {
  for (int i = 0; i < max_exchanges && open_ > 0 && exchange() && !timed_out_; ++i) {
  }
}

void RawH2Client::run_until_closed(int max_exchanges) {
  for (int i = 0; i < max_exchanges && exchange() && !timed_out_; ++i) {
  }
}

double RawH2Client::ping_until_closed(std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  // Each round takes at least one read timeout; the count only bounds the loop.
  for (int i = 0;
       i < 100000 && !got_goaway_ && !closed_ && std::chrono::steady_clock::now() - start < limit;
       ++i) {
    const uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, payload);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
    exchange();  // sends them and reads the acknowledgements
    exchange();  // nothing else comes: one read timeout
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace balancer::test
