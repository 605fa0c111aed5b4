// ll_origin: a Low-Latency HLS live origin (RFC 8216bis §4.4.3.7–4.4.5.3, §6.2.5–6.2.6) for
// tests, benchmarks and the demo. It publishes real media: CMAF fMP4 files that ffmpeg made
// once (`-movflags cmaf+frag_keyframe+empty_moov+default_base_moof -frag_duration …`), split
// here into their init section (ftyp+moov) and their fragments (moof+mdat), each fragment one
// part. Parts are published on a timer, one every fragment duration, the material looping
// forever on one timeline: each part lasts what its samples last, and each loop's tfdt is moved
// on by the material's length, so every part starts where the previous one ended.
//
//   ll_origin --rendition NAME=FILE [--rendition NAME=FILE ...] [--port N] [--segment S]
//             [--window N] [--part-hold-back S] [--byterange] [--verbose]
//             [--clock-start-ms UNIX_MS] [--first-msn N]
// (--window: segments listed; by default enough for delta updates to skip some: the
// CAN-SKIP-UNTIL of six target durations and three target durations more)
// (--verbose: each counted request on stderr, with the seconds since the start)
// (--clock-start-ms, --first-msn: a second encoder of the same event: the same media at the same
// moments, with program dates on the same clock, numbered from N)
//
// URL language (every rendition under /<name>/):
//   GET /master.m3u8                  the multivariant playlist naming every rendition
//   GET /<name>/index.m3u8            the media playlist; _HLS_msn/_HLS_part block (§6.2.5.2),
//                                     _HLS_skip=YES|v2 asks for a delta update (§6.2.5.1)
//   GET /<name>/init.mp4              the init section
//   GET /<name>/seg<M>.m4s            segment M (its parts, concatenated), once complete; with
//                                     --byterange, a Range on the segment in progress is
//                                     held until its first byte is published (206, length *)
//   GET /<name>/seg<M>.<P>.m4s        part P of segment M; the hinted part is held until it
//                                     is published; parts and segments stay downloadable
//                                     three target durations after they leave the playlist
//   GET /__stats[?path=P]             {"total":N,"count":N,"kinds":{"high/part":N,...}} requests
//                                     counted (per path+query; per rendition and kind)
//   GET|POST /__fault?late_ms=N       the next part is published N ms late
//   GET|POST /__fault?stall_ms=N      no part is published for N ms
//   GET|POST /__fault?restart=1       the encoder restarts: numbering from 0, names reused;
//                                     what the old run published stays downloadable three
//                                     target durations (until its name is written again), as
//                                     an origin's storage keeps it
//   GET|POST /__fault?hint_404=1|0    a request for a part not yet published gets 404
// Every answer carries Access-Control-Allow-Origin: * (browser players).
//
// Single-threaded: one libevent loop; SIGTERM/SIGINT are loop events.
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/cmaf_fragments.h"
#include "support/libevent_owners.h"
#include "support/origin_main.h"

namespace balancer::test {
namespace {

using SteadyClock = std::chrono::steady_clock;

// ---- CMAF material ----

void put32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (24 - 8 * i));
}
void put64(std::string& s, size_t at, uint64_t v) {
  put32(s, at, static_cast<uint32_t>(v >> 32));
  put32(s, at + 4, static_cast<uint32_t>(v));
}

struct Fragment {
  std::string bytes;  // moof + mdat
  struct TrackTime {
    size_t track = 0;           // in Material::tracks
    size_t decode_time_at = 0;  // offset of its tfdt's baseMediaDecodeTime in `bytes`
    bool decode_time_64 = false;
    uint64_t decode_time = 0;  // in the material, in its track's timescale
  };
  std::vector<TrackTime> times;  // one per traf
  size_t sequence_at = 0;        // offset of mfhd's sequence_number
  uint64_t duration = 0;         // its samples' of the first track, in that track's timescale
  bool independent = false;
};

struct Material {
  std::string init;  // ftyp + moov
  std::vector<CmafTrack> tracks;
  std::vector<Fragment> fragments;
  std::vector<uint64_t> loop_ticks;  // one loop, per track, in the track's timescale
  // Parts are timed by the first track (the video of our material).
  uint32_t timescale() const { return tracks.front().timescale; }
  double loop_s() const { return static_cast<double>(loop_ticks.front()) / timescale(); }
};

// One loop of the material is the whole file: each fragment lasts what its samples last (the
// last one too: it is often shorter, 6 frames of 30 fps against 8), and each track's loop is
// its fragments' durations summed, so the next loop starts where this one ends, no hole, no
// overlap. The tracks must end together: a loop of audio a frame longer or shorter than the
// video would move the tracks apart at every seam, so such material is refused, not trimmed
// (our material is video only; with AAC at 48 kHz, a multiple of 0.64 s, 8 s for instance,
// holds whole frames of both). The error says what is wrong.
std::optional<Material> load_material(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path;
    return std::nullopt;
  }
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto file = read_cmaf(data, error);
  if (!file) {
    error = path + ": " + error;
    return std::nullopt;
  }
  if (file->init.empty() || file->tracks.empty() || file->fragments.size() < 2) {
    error = path + ": needs ftyp, moov (with a timescale) and at least two fragments";
    return std::nullopt;
  }
  Material m;
  m.init = std::move(file->init);
  m.tracks = std::move(file->tracks);
  m.loop_ticks.assign(m.tracks.size(), 0);
  std::vector<std::optional<uint64_t>> ends(m.tracks.size());
  for (const MovieFragment& mf : file->fragments) {
    Fragment f;
    f.bytes = data.substr(mf.start, mf.end - mf.start);
    f.sequence_at = mf.sequence_at - mf.start;
    f.independent = true;
    bool has_first_track = false;
    for (const TrackFragment& t : mf.tracks) {
      const size_t track = static_cast<size_t>(find_track(m.tracks, t.track_id) - &m.tracks[0]);
      if (ends[track] && *ends[track] != t.decode_time) {
        error = path + ": track " + std::to_string(t.track_id) +
                " is not contiguous: a fragment "
                "starts at " +
                std::to_string(t.decode_time) + ", the previous ended at " +
                std::to_string(*ends[track]);
        return std::nullopt;
      }
      ends[track] = t.decode_time + t.duration;
      m.loop_ticks[track] += t.duration;
      f.times.push_back({track, t.decode_time_at - mf.start, t.decode_time_64, t.decode_time});
      // A fragment whose first samples are sync samples starts an INDEPENDENT part.
      f.independent = f.independent && t.starts_with_sync;
      if (track == 0) {
        f.duration = t.duration;
        has_first_track = true;
      }
    }
    if (!has_first_track || f.duration == 0) {
      error = path + ": a fragment without samples of the first track";
      return std::nullopt;
    }
    m.fragments.push_back(std::move(f));
  }
  for (size_t t = 1; t < m.tracks.size(); ++t) {
    if (m.loop_ticks[t] * m.timescale() != m.loop_ticks[0] * m.tracks[t].timescale) {
      error = path + ": track " + std::to_string(m.tracks[t].track_id) + " lasts " +
              std::to_string(m.loop_ticks[t]) + "/" + std::to_string(m.tracks[t].timescale) +
              " s, the first " + std::to_string(m.loop_ticks[0]) + "/" +
              std::to_string(m.timescale()) +
              " s: looped, they would drift apart; cut the material where both end";
      return std::nullopt;
    }
  }
  m.fragments.front().independent = true;
  return m;
}

// ---- publication ----

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::vector<std::pair<std::string, std::string>> renditions;  // name, file
  double segment_s = 2.0;     // a segment closes at the first independent part past this
  size_t window = 0;          // segments listed; 0: delta_update_window()
  double part_hold_back = 0;  // PART-HOLD-BACK; 0: three part targets (the least §4.4.3.8 allows)
  bool byterange = false;     // parts as byte ranges of their segment
  bool verbose = false;
  // --clock-start-ms: the wall-clock moment media time 0 is captured at (program dates and the
  // part schedule count from it), so that two origins publish the same media at the same time
  // as two encoders on a shared clock do; 0: its own start.
  int64_t clock_start_ms = 0;
  uint64_t first_msn = 0;  // --first-msn: its first segment's number (another encoder's count)
};

struct Part {
  uint64_t msn = 0;
  size_t index = 0;     // in its segment
  double duration = 0;  // seconds
  bool independent = false;
  size_t offset = 0;               // in its segment
  std::vector<std::string> bytes;  // per rendition
};

struct Segment {
  uint64_t msn = 0;
  int64_t pdt_ms = 0;  // wall clock at the capture of its first frame
  double duration = 0;
  bool complete = false;
  std::vector<Part> parts;
  SteadyClock::time_point left_at{};  // when it left the playlist (retention)
  bool listed = true;
};

std::string format_pdt(int64_t unix_ms) {
  const time_t seconds = static_cast<time_t>(unix_ms / 1000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}

std::string fixed3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// Part durations to five decimals, as RFC 8216bis's examples write them: a player places each
// part by the durations listed before it, and three decimals put a segment's fourth part 1 ms
// off its media (Shaka 5.2 then drops that part's frames: a stall at every segment boundary).
std::string fixed5(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5f", v);
  return buf;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class LlOrigin {
 public:
  LlOrigin(event_base& base, Options options, std::vector<Material> material)
      : base_(base), options_(std::move(options)), material_(std::move(material)) {
    double longest = 0;
    for (const Fragment& f : material_[0].fragments)
      longest = std::max(longest, seconds(f.duration));
    part_target_ = std::ceil(longest * 1e5) / 1e5;
    // The target duration bounds every segment: the material's longest possible one.
    target_ = static_cast<int>(std::ceil(options_.segment_s + part_target_));
    if (options_.window == 0) options_.window = delta_update_window();
    timer_.reset(event_new(&base_, -1, 0, &LlOrigin::on_timer, this));
    held_timer_.reset(event_new(&base_, -1, EV_PERSIST, &LlOrigin::on_held_timer, this));
    const timeval tick{0, 100'000};
    event_add(held_timer_.get(), &tick);
  }

  // The server goes first: freeing it closes the held requests' connections, whose close
  // callback (on_close) reads held_.
  ~LlOrigin() { http_.reset(); }
  LlOrigin(const LlOrigin&) = delete;
  LlOrigin& operator=(const LlOrigin&) = delete;

  int listen(std::string& error) {
    http_.reset(evhttp_new(&base_));
    evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(http_.get(), &LlOrigin::on_request, this);
    evhttp_bound_socket* socket =
        evhttp_bind_socket_with_handle(http_.get(), options_.host.c_str(), options_.port);
    if (socket == nullptr) {
      error = "cannot listen on " + options_.host + ":" + std::to_string(options_.port);
      return -1;
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(evhttp_bound_socket_get_fd(socket), reinterpret_cast<sockaddr*>(&addr), &len);
    reset_clock(options_.clock_start_ms);
    next_msn_ = options_.first_msn;
    start_segment(program_date_ms(0));
    schedule_next();
    return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }

 private:
  struct Held {
    evhttp_request* req;
    SteadyClock::time_point since;
    std::function<bool()> try_answer;  // true once answered
  };
  // Holds `req` until `try_answer` succeeds (or the 503 of on_held_timer); forgotten if its
  // client leaves first.
  void hold(evhttp_request* req, std::function<bool()> try_answer) {
    evhttp_connection* conn = evhttp_request_get_connection(req);
    if (conn != nullptr) evhttp_connection_set_closecb(conn, &LlOrigin::on_close, this);
    held_.push_back({req, SteadyClock::now(), std::move(try_answer)});
  }
  static void on_close(evhttp_connection* conn, void* self) {
    std::erase_if(static_cast<LlOrigin*>(self)->held_,
                  [conn](const Held& h) { return evhttp_request_get_connection(h.req) == conn; });
  }

  // Segments to list so that a delta update (_HLS_skip, §6.2.5.1) skips some: a window no
  // longer than CAN-SKIP-UNTIL (six target durations) never has a segment old enough to skip,
  // and players would never see one. Three target durations more leave that much skippable
  // (six segments with the demo's 1 s segments and 2 s target: 18 listed, CAN-SKIP-UNTIL 12 s).
  // A segment lasts at least --segment.
  size_t delta_update_window() const {
    return static_cast<size_t>(std::ceil((6.0 + 3.0) * target_ / options_.segment_s));
  }

  double seconds(uint64_t ticks) const {
    return static_cast<double>(ticks) / material_[0].timescale();
  }

  // ---- the encoder's clock and the timer: one part per fragment duration ----
  // A part is out when its last frame has been captured: at clock_start_ plus the media time
  // to its end. A segment's program date is clock_start_wall_ms_ plus the media time at its
  // first frame. Counted from one start (not one part duration after the previous timer, which
  // drifts by the timer's lateness, ~1 % here), program dates are exactly as far apart as the
  // media they date: players that place segments by their dates (Shaka) then find no gaps and
  // no overlaps between them.
  // From `start_ms` on the wall clock (0: now); parts already due then are published at once.
  void reset_clock(int64_t start_ms = 0) {
    const int64_t now_ms = wall_ms();
    const int64_t start = start_ms > 0 && start_ms <= now_ms ? start_ms : now_ms;
    clock_start_ = SteadyClock::now() - std::chrono::milliseconds(now_ms - start);
    clock_start_wall_ms_ = start;
    media_ticks_ = 0;
  }
  int64_t program_date_ms(uint64_t ticks) const {
    return clock_start_wall_ms_ + static_cast<int64_t>(seconds(ticks) * 1000);
  }
  SteadyClock::time_point next_part_due() const {
    const Fragment& f = material_[0].fragments[next_fragment_ % material_[0].fragments.size()];
    return clock_start_ + std::chrono::microseconds(
                              static_cast<int64_t>(seconds(media_ticks_ + f.duration) * 1e6));
  }
  void schedule_after(std::chrono::microseconds delay) {
    delay = std::max(delay, std::chrono::microseconds(0));
    const timeval tv{static_cast<time_t>(delay.count() / 1'000'000),
                     static_cast<suseconds_t>(delay.count() % 1'000'000)};
    event_add(timer_.get(), &tv);
  }
  void schedule_next() {
    schedule_after(std::chrono::duration_cast<std::chrono::microseconds>(next_part_due() -
                                                                         SteadyClock::now()));
  }
  static void on_timer(evutil_socket_t, short, void* self) {
    static_cast<LlOrigin*>(self)->publish();
  }

  void start_segment(int64_t capture_ms) {
    Segment s;
    s.msn = next_msn_++;
    s.pdt_ms = capture_ms;
    segments_.push_back(std::move(s));
  }

  // The part of global number `g` of rendition `r`, each track's tfdt moved on by the loops
  // before it.
  std::string part_bytes(size_t r, uint64_t g) const {
    const Material& m = material_[std::min(r, material_.size() - 1)];
    const Fragment& f = m.fragments[g % m.fragments.size()];
    const uint64_t loop = g / m.fragments.size();
    std::string out = f.bytes;
    for (const Fragment::TrackTime& t : f.times) {
      const uint64_t time = t.decode_time + loop * m.loop_ticks[t.track];
      if (t.decode_time_64) {
        put64(out, t.decode_time_at, time);
      } else {
        put32(out, t.decode_time_at, static_cast<uint32_t>(time));
      }
    }
    put32(out, f.sequence_at, static_cast<uint32_t>(g + 1));
    return out;
  }

  void publish() {
    const auto now = SteadyClock::now();
    if (stall_until_ && now < *stall_until_) return schedule_after(std::chrono::milliseconds(50));
    // After a stall the encoder goes on where it stopped: its clock moves on by the pause
    // (program dates stay with the media; viewers end up that much further behind).
    if (stall_until_ && now > next_part_due()) clock_start_ += now - next_part_due();
    stall_until_.reset();
    const uint64_t g = next_fragment_++;
    const Fragment& f = material_[0].fragments[g % material_[0].fragments.size()];
    const double duration = seconds(f.duration);
    media_ticks_ += f.duration;
    Segment* open = &segments_.back();
    Part p;
    p.msn = open->msn;
    p.index = open->parts.size();
    p.duration = duration;
    p.independent = f.independent;
    p.offset =
        open->parts.empty() ? 0 : open->parts.back().offset + open->parts.back().bytes[0].size();
    for (size_t r = 0; r < options_.renditions.size(); ++r) p.bytes.push_back(part_bytes(r, g));
    open->parts.push_back(std::move(p));
    open->duration += duration;
    // The segment is complete with this part when the next one starts a new segment (an
    // independent part past --segment): so the playlist lists it at once, and the preload hint
    // names the part that really comes next.
    const Fragment& next = material_[0].fragments[next_fragment_ % material_[0].fragments.size()];
    if (next.independent && open->duration + 1e-6 >= options_.segment_s) {
      close_segment();
      start_segment(program_date_ms(media_ticks_));
    }
    forget_old();
    answer_held();
    // A late part (the fault knob): the next part and every one after it come late_ms_ after
    // their time.
    clock_start_ += std::chrono::milliseconds(late_ms_);
    late_ms_ = 0;
    schedule_next();
  }

  void close_segment() {
    segments_.back().complete = true;
    size_t listed = 0;
    for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
      if (!it->complete) continue;
      if (++listed > options_.window && it->listed) {
        it->listed = false;
        it->left_at = SteadyClock::now();
      }
    }
  }

  // Segments (and their parts) stay downloadable three target durations after they leave.
  void forget_old() {
    const auto keep = std::chrono::seconds(3 * target_);
    while (!segments_.empty() && !segments_.front().listed &&
           SteadyClock::now() - segments_.front().left_at > keep) {
      segments_.pop_front();
    }
    if (!previous_run_.empty() && SteadyClock::now() - restarted_at_ > keep) previous_run_.clear();
  }

  // ---- playlists ----
  const Segment* find_segment(uint64_t msn) const {
    for (const Segment& s : segments_) {
      if (s.msn == msn) return &s;
    }
    return nullptr;
  }

  // The chunk a name gives: this run's, else what the run before a restart published, unless
  // this run writes that name now or next (a request for it waits for the new bytes).
  const Segment* find_chunk(uint64_t msn) const {
    if (const Segment* s = find_segment(msn)) return s;
    if (msn <= segments_.back().msn + 1) return nullptr;
    for (const Segment& s : previous_run_) {
      if (s.msn == msn) return &s;
    }
    return nullptr;
  }

  uint64_t first_listed_msn() const {
    for (const Segment& s : segments_) {
      if (s.listed) return s.msn;
    }
    return segments_.back().msn;
  }

  // The last part published: (msn, index); the open segment may have none yet.
  std::pair<uint64_t, size_t> last_part() const {
    for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
      if (!it->parts.empty()) return {it->msn, it->parts.size() - 1};
    }
    return {0, 0};
  }

  std::string media_playlist(size_t r, bool skip, bool v2) const {
    const Segment& open = segments_.back();
    std::string out = "#EXTM3U\n#EXT-X-VERSION:" + std::string(v2 ? "10" : "9") + "\n";
    out += "#EXT-X-TARGETDURATION:" + std::to_string(target_) + "\n";
    out += "#EXT-X-PART-INF:PART-TARGET=" + fixed5(part_target_) + "\n";
    const double hold_back = std::max(options_.part_hold_back, 3 * part_target_);
    out += "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=" + fixed5(hold_back) +
           ",CAN-SKIP-UNTIL=" + fixed3(6.0 * target_) + "\n";
    const uint64_t first = first_listed_msn();
    out += "#EXT-X-MEDIA-SEQUENCE:" + std::to_string(first) + "\n";
    // Segments whose end is more than CAN-SKIP-UNTIL from the end of the playlist may be skipped.
    double from_end = 0;
    for (const Segment& s : segments_) {
      if (s.listed) from_end += s.duration;
    }
    size_t skipped = 0;
    if (skip) {
      double position = 0;
      for (const Segment& s : segments_) {
        if (!s.listed || !s.complete) continue;
        position += s.duration;
        if (from_end - position > 6.0 * target_) ++skipped;
      }
    }
    if (skipped > 0) {
      out += "#EXT-X-SKIP:SKIPPED-SEGMENTS=" + std::to_string(skipped);
      if (v2) out += ",RECENTLY-REMOVED-DATERANGES=\"\"";
      out += "\n";
    } else {
      out += "#EXT-X-MAP:URI=\"init.mp4\"\n";
    }
    const std::string& part_uri_base = "seg";
    size_t seen = 0;
    double remaining = from_end;
    for (const Segment& s : segments_) {
      if (!s.listed) continue;
      const bool is_skipped = s.complete && seen++ < skipped;
      remaining -= s.duration;
      if (is_skipped) continue;
      if (&s == &open && s.parts.empty()) break;
      out += "#EXT-X-PROGRAM-DATE-TIME:" + format_pdt(s.pdt_ms) + "\n";
      // Parts of the last three target durations (§6.2.2).
      if (!s.complete || remaining < 3.0 * target_) {
        for (const Part& p : s.parts) out += part_line(r, s, p, part_uri_base);
      }
      if (!s.complete) break;
      out += "#EXTINF:" + fixed3(s.duration) + ",\n" + part_uri_base + std::to_string(s.msn) +
             ".m4s\n";
    }
    // The next part: the one being written.
    const Segment& writing = segments_.back();
    const size_t next_index = writing.parts.size();
    const uint64_t next_msn = writing.msn;
    if (options_.byterange) {
      const size_t start = writing.parts.empty()
                               ? 0
                               : writing.parts.back().offset + writing.parts.back().bytes[r].size();
      out += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg" + std::to_string(next_msn) +
             ".m4s\",BYTERANGE-START=" + std::to_string(start) + "\n";
    } else {
      out += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg" + std::to_string(next_msn) + "." +
             std::to_string(next_index) + ".m4s\"\n";
    }
    const auto [last_msn, last_index] = last_part();
    for (size_t other = 0; other < options_.renditions.size(); ++other) {
      if (other == r) continue;
      out += "#EXT-X-RENDITION-REPORT:URI=\"../" + options_.renditions[other].first +
             "/index.m3u8\",LAST-MSN=" + std::to_string(last_msn) +
             ",LAST-PART=" + std::to_string(last_index) + "\n";
    }
    return out;
  }

  std::string part_line(size_t r, const Segment& s, const Part& p, const std::string& base) const {
    std::string line = "#EXT-X-PART:DURATION=" + fixed5(p.duration) + ",URI=\"";
    if (options_.byterange) {
      line += base + std::to_string(s.msn) + ".m4s\",BYTERANGE=\"" +
              std::to_string(p.bytes[r].size()) + "@" + std::to_string(p.offset) + "\"";
    } else {
      line += base + std::to_string(s.msn) + "." + std::to_string(p.index) + ".m4s\"";
    }
    if (p.independent) line += ",INDEPENDENT=YES";
    return line + "\n";
  }

  std::string master_playlist() const {
    std::string out = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n";
    for (size_t r = 0; r < options_.renditions.size(); ++r) {
      uint64_t bytes = 0;
      for (const Fragment& f : material_[r].fragments) bytes += f.bytes.size();
      const double loop_s = material_[r].loop_s();
      const uint64_t bandwidth = static_cast<uint64_t>(bytes * 8 / std::max(loop_s, 0.1) * 1.2);
      out += "#EXT-X-STREAM-INF:BANDWIDTH=" + std::to_string(bandwidth);
      const CmafTrack& video = material_[r].tracks.front();
      if (video.width > 0 && video.height > 0) {  // players name a rendition by it ("360p")
        out += ",RESOLUTION=" + std::to_string(video.width) + "x" + std::to_string(video.height);
      }
      out += ",CODECS=\"avc1.64001f\"\n" + options_.renditions[r].first + "/index.m3u8\n";
    }
    return out;
  }

  // ---- blocking reloads (§6.2.5.2) ----
  enum class Blocking { now, hold, bad };
  Blocking blocking(uint64_t msn, std::optional<uint64_t> part) const {
    uint64_t last_complete = 0;
    bool any_complete = false;
    for (const Segment& s : segments_) {
      if (s.complete) {
        last_complete = s.msn;
        any_complete = true;
      }
    }
    const uint64_t next = any_complete ? last_complete + 1 : segments_.front().msn;
    if (msn > next + 1) return Blocking::bad;
    if (part && msn < next) {
      const Segment* s = find_segment(msn);
      if (s && *part >= s->parts.size()) {
        ++msn;
        part = 0;
      }
    }
    if (msn < next) return Blocking::now;
    const Segment* s = find_segment(msn);
    if (!part) return Blocking::hold;
    const auto [last_msn, last_index] = last_part();
    const uint64_t per_segment =
        static_cast<uint64_t>(std::ceil(options_.segment_s / part_target_));
    const uint64_t limit = part_target_ < 1.0 ? static_cast<uint64_t>(3.0 / part_target_) : 3;
    if ((msn - std::min(msn, last_msn)) * per_segment + *part > last_index + limit)
      return Blocking::bad;
    return s && *part < s->parts.size() ? Blocking::now : Blocking::hold;
  }

  // ---- requests ----
  static void on_request(evhttp_request* req, void* self) {
    static_cast<LlOrigin*>(self)->handle(req);
  }

  static void reply(evhttp_request* req, int status, const std::string& type,
                    const std::string& body, const char* cache_control = nullptr) {
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Access-Control-Allow-Origin", "*");
    evhttp_add_header(out, "Content-Type", type.c_str());
    if (cache_control != nullptr) evhttp_add_header(out, "Cache-Control", cache_control);
    evbuffer* buf = evbuffer_new();
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
      evbuffer_add(buf, body.data(), body.size());
    evhttp_send_reply(req, status, nullptr, buf);
    evbuffer_free(buf);
  }
  static void not_found(evhttp_request* req) {
    reply(req, 404, "text/plain", "not found\n", "no-store");
  }

  static std::optional<std::string> query_value(const evhttp_uri* uri, const char* name) {
    const QueryParams params(evhttp_uri_get_query(uri));
    const char* value = params.get(name);
    return value == nullptr ? std::nullopt : std::optional<std::string>(value);
  }

  static std::optional<uint64_t> number(const std::optional<std::string>& text) {
    if (!text || text->empty() || text->size() > 18 ||
        text->find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    return std::stoull(*text);
  }

  void handle(evhttp_request* req) {
    const char* raw = evhttp_request_get_uri(req);
    EvhttpUriPtr uri(evhttp_uri_parse(raw));
    if (!uri || evhttp_uri_get_path(uri.get()) == nullptr)
      return reply(req, 400, "text/plain", "bad URI\n");
    const std::string path = evhttp_uri_get_path(uri.get());
    if (path == "/__stats") return stats(req, uri.get());
    if (path == "/__fault") return fault(req, uri.get());
    ++total_;
    ++counts_[raw];
    if (options_.verbose) {
      const auto since = std::chrono::duration<double>(SteadyClock::now() - started_).count();
      std::fprintf(stderr, "%.3f %s\n", since, raw);
    }
    if (path == "/master.m3u8") {
      ++kinds_["master"];
      return reply(req, 200, "application/vnd.apple.mpegurl", master_playlist(), "max-age=5");
    }
    const size_t slash = path.find('/', 1);
    const std::string name = slash == std::string::npos ? "" : path.substr(1, slash - 1);
    const std::string file = slash == std::string::npos ? "" : path.substr(slash + 1);
    size_t r = 0;
    while (r < options_.renditions.size() && options_.renditions[r].first != name) ++r;
    if (r == options_.renditions.size()) {
      ++kinds_["other"];
      return not_found(req);
    }
    // What a benchmark divides by the parts published: requests per kind and rendition.
    auto count = [this, &name](const char* kind) { ++kinds_[name + "/" + kind]; };
    if (file == "index.m3u8") {
      count("playlist");
      return playlist(req, uri.get(), r);
    }
    if (file == "init.mp4") {
      count("init");
      return reply(req, 200, "video/mp4", material_[r].init, "max-age=3600");
    }
    uint64_t msn = 0;
    size_t part = 0;
    char tail[8] = {0};
    if (std::sscanf(file.c_str(), "seg%" SCNu64 ".%zu.m4%1s", &msn, &part, tail) == 3 &&
        std::strcmp(tail, "s") == 0) {
      count("part");
      return part_request(req, r, msn, part);
    }
    if (std::sscanf(file.c_str(), "seg%" SCNu64 ".m4%1s", &msn, tail) == 2 &&
        std::strcmp(tail, "s") == 0) {
      count("segment");
      return segment_request(req, r, msn);
    }
    count("other");
    not_found(req);
  }

  void playlist(evhttp_request* req, const evhttp_uri* uri, size_t r) {
    const auto msn_text = query_value(uri, "_HLS_msn");
    const auto part_text = query_value(uri, "_HLS_part");
    const auto skip = query_value(uri, "_HLS_skip");
    const auto msn = number(msn_text);
    const auto part = number(part_text);
    if ((msn_text && !msn) || (part_text && !part) || (part_text && !msn_text) ||
        (skip && *skip != "YES" && *skip != "v2")) {
      return reply(req, 400, "text/plain", "bad delivery directive\n", "no-store");
    }
    const bool delta = skip.has_value();
    const bool v2 = delta && *skip == "v2";
    auto send = [this, req, r, delta, v2] {
      reply(req, 200, "application/vnd.apple.mpegurl", media_playlist(r, delta, v2), "max-age=1");
    };
    if (!msn) return send();
    switch (blocking(*msn, part)) {
      case Blocking::bad:
        return reply(req, 400, "text/plain", "_HLS_msn or _HLS_part too far ahead\n", "no-store");
      case Blocking::now:
        return send();
      case Blocking::hold:
        break;
    }
    const uint64_t m = *msn;
    hold(req, [this, m, part, send] {
      if (blocking(m, part) != Blocking::now) return false;
      send();
      return true;
    });
  }

  void part_request(evhttp_request* req, size_t r, uint64_t msn, size_t index) {
    auto send = [this, req, r, msn, index]() -> bool {
      const Segment* s = find_chunk(msn);
      if (s == nullptr || index >= s->parts.size()) return false;
      reply(req, 200, "video/mp4", s->parts[index].bytes[r], "max-age=60");
      return true;
    };
    if (send()) return;
    // Not yet published: the next part (the hint) or one after it is held; anything else is 404.
    const Segment& writing = segments_.back();
    const bool upcoming = (msn == writing.msn && index <= writing.parts.size() + 1) ||
                          (msn == writing.msn + 1 && index <= 1);
    if (!upcoming || hint_404_) return not_found(req);
    hold(req, send);
  }

  void segment_request(evhttp_request* req, size_t r, uint64_t msn) {
    const Segment* s = find_chunk(msn);
    evkeyvalq* in = evhttp_request_get_input_headers(req);
    const char* range = evhttp_find_header(in, "Range");
    uint64_t start = 0;
    const bool open_range =
        range != nullptr && std::sscanf(range, "bytes=%" SCNu64 "-", &start) == 1;
    if (s != nullptr && s->complete) {
      std::string body;
      for (const Part& p : s->parts) body += p.bytes[r];
      if (range == nullptr) return reply(req, 200, "video/mp4", body, "max-age=60");
      return send_range(req, body, start, body.size());
    }
    // The segment being written: a Range from a published byte (or the next part's first) is
    // answered with what is published from there, held until that byte exists (--byterange).
    if (!options_.byterange || !open_range || s == nullptr || msn != segments_.back().msn)
      return not_found(req);
    auto send = [this, req, r, msn, start]() -> bool {
      const Segment* seg = find_segment(msn);
      if (seg == nullptr) return false;
      std::string body;
      for (const Part& p : seg->parts) body += p.bytes[r];
      if (body.size() <= start) return false;
      send_range(req, body, start, seg->complete ? body.size() : 0);
      return true;
    };
    if (!send()) hold(req, send);
  }

  // 206 for bytes [start, end of `body`); `complete` the whole length, 0 while unknown (*).
  static void send_range(evhttp_request* req, const std::string& body, uint64_t start,
                         uint64_t complete) {
    if (start >= body.size()) {
      evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Range",
                        ("bytes */" + std::to_string(body.size())).c_str());
      return reply(req, 416, "text/plain", "range not satisfiable\n", "no-store");
    }
    const std::string length = complete ? std::to_string(complete) : "*";
    evhttp_add_header(
        evhttp_request_get_output_headers(req), "Content-Range",
        ("bytes " + std::to_string(start) + "-" + std::to_string(body.size() - 1) + "/" + length)
            .c_str());
    reply(req, 206, "video/mp4", body.substr(start), "max-age=60");
  }

  void answer_held() {
    std::erase_if(held_, [](Held& h) { return h.try_answer(); });
  }

  // Blocked requests are answered 503 after three target durations (§6.2.5.2); held parts too.
  static void on_held_timer(evutil_socket_t, short, void* self) {
    auto* origin = static_cast<LlOrigin*>(self);
    const auto limit = std::chrono::seconds(3 * origin->target_);
    std::erase_if(origin->held_, [&](Held& h) {
      if (SteadyClock::now() - h.since < limit) return false;
      reply(h.req, 503, "text/plain", "not available in time\n", "no-store");
      return true;
    });
  }

  void stats(evhttp_request* req, const evhttp_uri* uri) {
    std::string body = "{\"total\":" + std::to_string(total_);
    if (auto path = query_value(uri, "path")) {
      auto it = counts_.find(*path);
      body += ",\"count\":" + std::to_string(it == counts_.end() ? 0 : it->second);
    }
    body += ",\"held\":" + std::to_string(held_.size()) +
            ",\"next_msn\":" + std::to_string(segments_.back().msn) +
            ",\"parts_published\":" + std::to_string(next_fragment_) + ",\"kinds\":{";
    for (auto it = kinds_.begin(); it != kinds_.end(); ++it) {
      body +=
          (it == kinds_.begin() ? "\"" : ",\"") + it->first + "\":" + std::to_string(it->second);
    }
    body += "}}";
    reply(req, 200, "application/json", body, "no-store");
  }

  void fault(evhttp_request* req, const evhttp_uri* uri) {
    if (auto late = number(query_value(uri, "late_ms"))) late_ms_ = static_cast<int64_t>(*late);
    if (auto stall = number(query_value(uri, "stall_ms"))) {
      stall_until_ = SteadyClock::now() + std::chrono::milliseconds(*stall);
    }
    if (auto hint = query_value(uri, "hint_404")) hint_404_ = *hint == "1";
    if (query_value(uri, "restart") == std::optional<std::string>("1")) {
      // The encoder starts over: numbering from 0, the same names, a new timeline.
      for (const auto& h : held_) reply(h.req, 503, "text/plain", "restarted\n", "no-store");
      held_.clear();
      previous_run_ = std::move(segments_);
      segments_.clear();
      restarted_at_ = SteadyClock::now();
      next_msn_ = 0;
      reset_clock();
      start_segment(program_date_ms(0));
    }
    reply(req, 200, "application/json", "{\"ok\":true}", "no-store");
  }

  event_base& base_;
  Options options_;
  std::vector<Material> material_;
  EvhttpPtr http_;
  EventPtr timer_, held_timer_;
  double part_target_ = 0;
  int target_ = 2;
  uint64_t next_fragment_ = 0;
  uint64_t next_msn_ = 0;
  std::deque<Segment> segments_;
  std::deque<Segment> previous_run_;  // what the run before the last restart published
  SteadyClock::time_point restarted_at_{};
  std::vector<Held> held_;
  int64_t late_ms_ = 0;
  SteadyClock::time_point clock_start_{};
  int64_t clock_start_wall_ms_ = 0;
  uint64_t media_ticks_ = 0;  // of the parts published since clock_start_ (rendition 0's timescale)
  std::optional<SteadyClock::time_point> stall_until_;
  const SteadyClock::time_point started_ =
      SteadyClock::now();  // --verbose: request times from here
  bool hint_404_ = false;
  uint64_t total_ = 0;
  std::map<std::string, uint64_t> counts_;
  std::map<std::string, uint64_t>
      kinds_;  // "master", "other", "<rendition>/<playlist|init|part|segment|other>"
};

void usage() {
  std::fprintf(
      stderr,
      "usage: ll_origin --rendition NAME=FILE [--rendition NAME=FILE ...] [--host H] [--port N]\n"
      "                 [--segment SECONDS] [--window SEGMENTS (default: CAN-SKIP-UNTIL + 3 "
      "targets)]\n"
      "                 [--part-hold-back SECONDS] "
      "[--byterange]\n"
      "                 [--clock-start-ms UNIX_MS] [--first-msn N]\n"
      "                 [--verbose]\n");
}

int run(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (arg == "--rendition") {
      auto v = value();
      const size_t eq = v ? v->find('=') : std::string::npos;
      if (eq == std::string::npos || eq == 0) return usage(), 2;
      options.renditions.emplace_back(v->substr(0, eq), v->substr(eq + 1));
    } else if (arg == "--host") {
      auto v = value();
      if (!v) return usage(), 2;
      options.host = *v;
    } else if (arg == "--port") {
      auto v = value();
      if (!v) return usage(), 2;
      options.port = std::atoi(v->c_str());
    } else if (arg == "--segment") {
      auto v = value();
      if (!v || std::atof(v->c_str()) < 0.1) return usage(), 2;
      options.segment_s = std::atof(v->c_str());
    } else if (arg == "--window") {
      auto v = value();
      if (!v || std::atoi(v->c_str()) < 3) return usage(), 2;
      options.window = static_cast<size_t>(std::atoi(v->c_str()));
    } else if (arg == "--part-hold-back") {
      auto v = value();
      if (!v || std::atof(v->c_str()) <= 0) return usage(), 2;
      options.part_hold_back = std::atof(v->c_str());
    } else if (arg == "--clock-start-ms") {
      auto v = value();
      if (!v || std::atoll(v->c_str()) <= 0) return usage(), 2;
      options.clock_start_ms = std::atoll(v->c_str());
    } else if (arg == "--first-msn") {
      auto v = value();
      if (!v || std::atoll(v->c_str()) < 0) return usage(), 2;
      options.first_msn = static_cast<uint64_t>(std::atoll(v->c_str()));
    } else if (arg == "--byterange") {
      options.byterange = true;
    } else if (arg == "--verbose") {
      options.verbose = true;
    } else {
      return usage(), 2;
    }
  }
  if (options.renditions.empty()) return usage(), 2;
  std::vector<Material> material;
  for (const auto& [name, file] : options.renditions) {
    std::string error;
    auto m = load_material(file, error);
    if (!m) {
      std::fprintf(stderr, "ll_origin: %s\n", error.c_str());
      return 1;
    }
    material.push_back(std::move(*m));
  }
  EventBasePtr base(event_base_new());
  LlOrigin origin(*base, options, std::move(material));
  return serve_until_stopped("ll_origin", *base, origin);
}

}  // namespace
}  // namespace balancer::test

int main(int argc, char** argv) {
  return balancer::test::run(argc, argv);
}
