// The playout buffer of one simulated player, as a pure function of the media that
// arrived and the time passed in (seconds on any monotonic scale). Playback starts once
// `start_buffer_s` of media has arrived after play was pressed; a stall begins when the
// playout position reaches the end of what has arrived and ends when the next segment
// arrives. Startup time, stall count and stalled time are what a viewer would feel.
// Not thread-safe; one owner.
#pragma once

#include <deque>
#include <optional>

namespace audience {

class PlayoutBuffer {
 public:
  // `start_buffer_s`: media needed before the first frame (a player's start condition).
  explicit PlayoutBuffer(double start_buffer_s) : start_buffer_s_(start_buffer_s) {}

  // The viewer pressed play at `now` (startup is measured from here). Idempotent.
  void press_play(double now);
  // A whole segment (or part) of `duration_s` arrived at `now` (they arrive in playout
  // order); `program_date_s`: the wall-clock time its first frame was captured
  // (EXT-X-PROGRAM-DATE-TIME, Unix seconds), when the playlist says.
  void on_segment(double duration_s, double now,
                  std::optional<double> program_date_s = std::nullopt);
  // The last piece that arrived is `duration_s` long, not what on_segment() was told, and was
  // captured at `program_date_s`: a hinted LL part is played before the playlist that lists its
  // duration and date arrives, counted meanwhile as PART-TARGET long (the longest a part may be;
  // counting every part so makes the buffer grow and playback fall behind live). When the
  // shorter length leaves the position past what arrived, a stall begins there.
  void amend_last(double duration_s, std::optional<double> program_date_s);
  // Brings the playout clock to `now`; a stall that began before `now` is counted at the
  // moment the position reached the end of the buffer, not at `now`.
  void advance(double now);

  bool started() const { return startup_s_.has_value(); }
  bool stalled() const { return stalled_; }
  // Seconds from press_play() to the first frame; nullopt before playback started.
  std::optional<double> startup_s() const { return startup_s_; }
  int stalls() const { return stalls_; }
  // Total stalled seconds up to the last advance(), the current stall included.
  double stalled_s() const { return stalled_total_s_ + (stalled_ ? last_now_ - stall_began_ : 0); }
  // Media arrived and not yet played, as of the last advance().
  double buffered_s() const { return arrived_s_ - position_s_; }
  // When the current stall began (meaningful while stalled()).
  double stall_began() const { return stall_began_; }
  // The capture time (Unix seconds) of the frame at the playout position as of the last
  // advance(): latency behind live is the wall clock minus this. nullopt before playback or
  // when the media playing came without a program date.
  std::optional<double> playing_program_date() const;

 private:
  double start_buffer_s_;
  std::optional<double> pressed_at_;
  std::optional<double> startup_s_;
  double arrived_s_ = 0;     // media seconds arrived since play was pressed
  double last_piece_s_ = 0;  // where the last piece to arrive starts in them
  double position_s_ = 0;    // media seconds played
  double last_now_ = 0;
  bool stalled_ = false;
  double stall_began_ = 0;
  double stalled_total_s_ = 0;
  int stalls_ = 0;
  // Where each dated piece starts in the arrived media and its program date; those wholly
  // played are dropped, so this holds about a buffer's worth.
  struct Dated {
    double position_s = 0;
    double duration_s = 0;
    double program_date_s = 0;
  };
  std::deque<Dated> dated_;
};

}  // namespace audience
