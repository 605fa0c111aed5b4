// One simulated HLS player driven by the event loop: optional sign-in, channel list, access
// check honouring the queue, master playlist → variant (top, bottom or ABR), content steering
// when the master carries it, media playlist reloads as RFC 8216 §6.3.4 from near the live
// edge, segments fetched from the host the playlist names (bytes counted and discarded) into
// a playout buffer model, retries with backoff; on a Low-Latency HLS playlist, parts and
// preload hints with blocking reloads (RFC 8216bis §6.2.5, §6.3.4), as hls.js and Media3
// play one. How far behind live the frame on screen is comes from EXT-X-PROGRAM-DATE-TIME.
// It knows the deployment by URL only.
// Loop thread only; the Audience owns every Viewer for the whole run.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "audience/player_rules.h"
#include "audience/playout_buffer.h"
#include "audience/recorder.h"
#include "audience/scenario.h"
#include "core/event_loop.h"
#include "hls/playlist.h"
#include "http/client/http_client.h"

namespace audience {

// What every viewer shares (owned by the Audience, outlives the viewers).
struct PlayerContext {
  core::EventLoop& loop;
  // Viewer n's requests go through clients[n % clients.size()] (Audience::create says why).
  std::vector<std::unique_ptr<http::HttpClient>>& clients;
  const Scenario& scenario;
  Recorder& recorder;
  std::function<double()> now;       // seconds since the run began
  std::function<double()> wall_now;  // the wall clock, Unix seconds (for program dates)
};

class Viewer {
 public:
  // home: signed in ahead (a sign_in phase), not arrived yet.
  enum class Phase : std::uint8_t {
    arrived,
    signing_in,
    home,
    ready,
    access,
    queued,
    starting,
    playing,
    left,
    failed
  };

  Viewer(PlayerContext& context, uint64_t number, std::string cache);
  Viewer(const Viewer&) = delete;
  Viewer& operator=(const Viewer&) = delete;

  // Signs in now, before arriving (a viewer who signed in days before the event).
  void sign_in_ahead();
  // The viewer arrives: refreshes its session when it signed in ahead, else signs in when
  // the scenario says so; `play`: presses play at once.
  void arrive(bool play);
  bool has_arrived() const { return arrived_; }
  void press_play();
  // The viewer's network changes: its next balancer requests carry `cache` ("" = none).
  void walk_out(const std::string& cache);
  void walk_in();
  // Stops every request and timer; the viewer is gone.
  void leave();
  // Once a second: moves the playout clock, reports stalls that began.
  void sample(double now);
  // At the end: reports its figures to the recorder.
  void finish(double now);

  Phase phase() const { return phase_; }
  bool play_pressed() const { return play_pressed_; }
  bool walked_out() const { return cache_ != own_cache_; }
  bool stalled() const { return buffer_.stalled(); }

 private:
  // Backoff before retry `attempt` (1-based): 0.5, 1, 2, 4 s.
  static double backoff_s(int attempt);
  // "scheme://host[:port]" of an absolute URL; "" for a relative one.
  static std::string host_of(const std::string& url);

  struct Reply {
    int status = 0;  // 0: the transfer failed
    std::string body;
    double retry_after_s = 0;
    double latency_s = 0;
    uint64_t bytes = 0;
  };
  struct Variant {
    std::string uri;
    uint64_t bandwidth = 0;
    std::string pathway;
  };
  struct Segment {
    uint64_t sequence = 0;
    double duration = 0;
    std::string uri;
    std::string variant;  // the media playlist's URL without query
    std::optional<double> program_date_s;
  };
  // A part's place: its segment's media sequence number and its index in that segment.
  struct PartPlace {
    uint64_t msn = 0;
    uint64_t index = 0;
    auto operator<=>(const PartPlace&) const = default;
  };
  struct Part {
    PartPlace place;
    double duration = 0;
    std::string uri;
    std::string range;  // a Range header value ("bytes=a-b"), or empty
    bool independent = false;
    std::optional<double> program_date_s;
  };

  void request(RequestKind kind, http::FetchRequest request, bool keep_body,
               std::function<void(Reply)> done);
  void after(core::LoopTimer& timer, double seconds);
  void fail(const std::string& reason);
  // Runs `step` after `seconds` on the step timer (one pending step at a time).
  void step_in(double seconds, std::function<void()> step);

  void login();
  void refresh();
  void list_channels();
  void check_access();
  void on_queue_reply(const Reply& reply, const std::function<void()>& again);
  void admitted();
  void load_master();
  void load_steering();
  void choose_variant();
  void load_media();
  // Reads a media playlist that loaded: its segments, and its parts when playing low-latency.
  void read_media(const hls::Playlist& playlist, const std::string& asked, double started);
  // Low-latency: the parts and the preload hint of `media`; false when it has no parts.
  // `skipped`: segments_ that a delta update did not list (they come first).
  bool read_parts(const hls::Playlist& playlist, size_t skipped);
  void pump_segments();
  void pump_parts();
  // The part at or after `place` that is listed (or hinted), stepping over the end of a
  // complete segment; nullptr when it is not known yet.
  const Part* find_part(PartPlace& place) const;
  void on_part_done(const Part& part, const Reply& reply, double started);
  // Fetches one segment or part (one at a time: segment_fetch_), then `done` with the reply
  // and when it began, unless the viewer stopped meanwhile.
  void fetch_media(RequestKind kind, http::FetchRequest media_request,
                   std::function<void(const Reply&, double started)> done);
  // Fetches each new key URI of a media playlist once, as a player does before decrypting.
  void fetch_keys(const std::vector<std::string>& uris);
  // Switches to the next usable pathway of the steering manifest; false when there is none.
  bool leave_pathway(double now);
  void on_segment_done(const Segment& segment, const Reply& reply, double started);

  http::HttpClient& client() { return *ctx_.clients[number_ % ctx_.clients.size()]; }
  std::string balancer_url(std::string url) const;  // with the viewer's current cache id
  std::vector<http::HttpHeader> auth_headers() const;
  bool stopped() const { return phase_ == Phase::left || phase_ == Phase::failed; }

  PlayerContext& ctx_;
  uint64_t number_;
  std::string id_;
  std::string local_address_;  // own_connections: this viewer's own; "" otherwise
  std::string own_cache_;
  std::string cache_;
  std::string token_;
  Phase phase_ = Phase::arrived;
  bool play_pressed_ = false;
  bool arrived_ = false;
  double pressed_at_ = 0;
  int attempts_ = 0;  // consecutive failures of the current step
  std::vector<http::FetchId> in_flight_;

  // Queue.
  bool was_queued_ = false;
  QueueRecord queue_record_;
  double queue_since_ = 0;

  // Master and steering.
  std::string master_url_;
  std::vector<Variant> variants_;
  std::string steering_uri_;
  std::string pathway_;
  std::vector<std::string> pathway_priority_;
  std::map<std::string, double> penalized_;  // pathway → until when it is avoided
  std::string media_url_;
  ThroughputEstimate throughput_;

  // Media.
  std::vector<Segment> segments_;
  std::vector<std::string> keys_fetched_;  // key URIs asked for once each (the last 16)
  std::string signature_;
  double target_duration_ = 2;
  double load_started_ = 0;
  std::optional<uint64_t> next_sequence_;
  bool media_loading_ = false;
  http::FetchId segment_fetch_ = 0;
  int segment_attempts_ = 0;
  std::optional<double> failing_since_;
  std::string failing_host_;
  PlayoutBuffer buffer_;
  int reported_stalls_ = 0;
  bool startup_reported_ = false;

  // Low-latency play (parts, hints, blocking reloads), while the playlist has parts.
  bool playing_parts_ = false;
  bool can_block_reload_ = false;
  bool can_skip_ = false;  // the last playlist offered delta updates (CAN-SKIP-UNTIL)
  double part_target_ = 0;
  std::vector<Part> parts_;
  std::optional<Part> hint_;              // the part a PRELOAD-HINT names, at its place
  std::optional<PartPlace> next_part_;    // the next part to fetch
  std::optional<PartPlace> block_until_;  // the next reload asks for this part (_HLS_msn/_HLS_part)
  // Parts from the independent one the decoder starts at up to the live start point are
  // fetched but not shown: playback begins at this part, as hls.js and Media3 seek there.
  std::optional<PartPlace> first_shown_;
  // The last part played was a hint not yet listed: the playlist that lists it amends its
  // duration and date in the buffer (PlayoutBuffer::amend_last).
  std::optional<PartPlace> played_unlisted_;

  // Latency behind live, sampled once a second while playing dated media.
  double behind_live_sum_s_ = 0;
  double behind_live_max_s_ = 0;
  uint64_t behind_live_samples_ = 0;

  std::function<void()> next_step_;
  core::LoopTimer step_timer_;      // sign-in, access and master retries, queue waits
  core::LoopTimer reload_timer_;    // media playlist reloads
  core::LoopTimer segment_timer_;   // segment retries
  core::LoopTimer steering_timer_;  // steering manifest reloads
};

}  // namespace audience
