// NodeLoop's viewers waiting on a flight (a miss in progress, here or on another loop):
// what is already downloaded is sent at once, the rest as the flight's progress reaches this
// loop; the flight's end, failure or a stalled reader end the wait. Verifying, serving what is
// stored, starting a miss and prefetch are in node_loop.cc.
#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <limits>
#include "cache_node/rules/http_semantics.h"
#include "cache_node/rules/site_owner.h"
#include "cache_node/serving/node_loop.h"
#include "core/thread_rule.h"
#include "core/url.h"
#include "signing/site_fetch.h"

namespace cache_node {

using http::HttpExchange;

// A request waiting on a flight; it receives the body as it arrives.
class NodeLoop::ExchangeWaiter final : public FlightWaiter {
 public:
  ExchangeWaiter(NodeLoop& node, HttpExchange ex, bool first)
      : node_(node), exchange_(std::move(ex)), first_(first) {
    // A Range is served from the bytes as they arrive once the object's length is known
    // (an LL-HLS byte-range part, an open-ended hint); with If-Range, from the whole object.
    range_ = exchange_.header("Range");
    deferred_ = exchange_.is_head() || (range_ && exchange_.header("If-Range").has_value());
    exchange_.set_log_note(first ? "MISS" : "COALESCED");
  }

  bool advance(const FlightProgress& p, const Flight& flight, int64_t now_ms) override {
    HttpExchange& ex = exchange_;
    if (ex.closed() || ex.finished()) return false;
    if (answer_end_without_body(p, flight, now_ms)) return false;
    if (p.head_known && relayed_as_is(p.status)) {
      // Relayed as the origin sent it (never stored): answered whole once it is complete.
      if (p.end != FlightProgress::End::stored) return true;
      node_.set_chunk_headers(ex, p.meta, first_ ? "MISS" : "COALESCED", now_ms);
      http::BodyBuffer buffer;
      const size_t size = flight.body()->size();
      if (!ex.is_head() && size > 0) flight.body()->add_to(buffer, 0, size);
      ex.reply(p.status, std::move(buffer), size, "");
      return false;
    }
    if (!deferred_ && !streaming_ && p.head_known && p.status == 200 &&
        (!range_ || p.content_length)) {
      if (!start_streaming(p, now_ms)) return false;
    }
    const size_t available = std::min(p.bytes, end_);
    if (streaming_ && sent_ < available) {
      http::BodyBuffer buffer;
      flight.body()->add_to(buffer, sent_, available);
      node_.parts_.counters.bytes_served.inc(available - sent_);
      ex.send(std::move(buffer));
      sent_ = available;
    }
    if (streaming_ && sent_ == end_) {
      ex.end();  // the range is complete; the fetch goes on for the others
      return false;
    }
    if (p.end != FlightProgress::End::stored) return true;
    if (streaming_) {
      ex.end();
    } else {
      // Deferred (HEAD, Range) or joined before a head without length: serve whole.
      node_.serve_stored(ex, p.meta, flight.body(), "", "COALESCED", now_ms);
    }
    return false;
  }

 private:
  // A flight that ended without a body for this request (failed, not found, or the stored
  // copy revalidated or served stale): answers it and returns true; false otherwise.
  bool answer_end_without_body(const FlightProgress& p, const Flight& flight, int64_t now_ms) {
    HttpExchange& ex = exchange_;
    switch (p.end) {
      case FlightProgress::End::failed:
      case FlightProgress::End::not_found:
        if (streaming_) {
          ex.abort();  // the head is out; a truncated body must not look complete
        } else {
          if (!p.fail_retry_after.empty()) ex.add_header("Retry-After", p.fail_retry_after);
          ex.reply_error(p.fail_status, p.fail_code, p.fail_message);
        }
        return true;
      case FlightProgress::End::revalidated:
      case FlightProgress::End::stale:
        if (streaming_) {
          ex.abort();  // a new body broke off after its head: the stale one cannot follow it
        } else {
          const StoreHit* copy = flight.stale();
          node_.serve_stored(ex, p.meta, copy->memory, copy->disk_path,
                             p.end == FlightProgress::End::revalidated ? "REVALIDATED" : "STALE",
                             now_ms);
        }
        return true;
      case FlightProgress::End::running:
      case FlightProgress::End::stored:
        break;
    }
    return false;
  }

  // A 200 head known (with its length for a Range): sends the head (206 for a satisfiable
  // Range) so the body follows as it arrives. False when the answer is complete without a
  // body (304, 416).
  bool start_streaming(const FlightProgress& p, int64_t now_ms) {
    HttpExchange& ex = exchange_;
    node_.set_chunk_headers(ex, p.meta, first_ ? "MISS" : "COALESCED", now_ms);
    if (not_modified(ex.header("If-None-Match"), ex.header("If-Modified-Since"), p.meta.etag,
                     p.meta.last_modified)) {
      ex.reply(304, "", "");
      return false;
    }
    int status = 200;
    if (range_) {
      const uint64_t size = *p.content_length;
      const RangeDecision d = evaluate_range(range_, size);
      if (d.outcome == RangeOutcome::unsatisfiable) {
        ex.add_header("Content-Range", "bytes */" + std::to_string(size));
        ex.reply_error(416, "range_not_satisfiable", "The requested range is outside the chunk.");
        return false;
      }
      if (d.outcome == RangeOutcome::satisfiable) {
        status = 206;
        sent_ = d.range.first;
        end_ = d.range.last + 1;
        ex.add_header("Content-Range", "bytes " + std::to_string(d.range.first) + "-" +
                                           std::to_string(d.range.last) + "/" +
                                           std::to_string(size));
        ex.add_header("Content-Length", std::to_string(d.range.length()));
      }
    }
    if (status == 200 && p.content_length)
      ex.add_header("Content-Length", std::to_string(*p.content_length));
    ex.start(status);
    streaming_ = true;
    return true;
  }

  NodeLoop& node_;
  HttpExchange exchange_;
  size_t sent_ = 0;                                  // the next body offset to send
  size_t end_ = std::numeric_limits<size_t>::max();  // a range's end (exclusive)
  std::optional<std::string> range_;                 // the request's Range
  const bool first_;                                 // the request that started the fetch
  bool streaming_ = false;                           // head sent, body follows as it arrives
  bool deferred_ = false;  // HEAD, or a Range with If-Range: answered from the whole chunk
};

void NodeLoop::wait_on(const std::shared_ptr<Flight>& flight, HttpExchange ex, bool first) {
  flights_.join(flight, std::make_unique<ExchangeWaiter>(*this, std::move(ex), first));
}

}  // namespace cache_node
