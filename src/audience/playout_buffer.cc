#include "audience/playout_buffer.h"

#include <algorithm>

namespace audience {

void PlayoutBuffer::press_play(double now) {
  if (pressed_at_) return;
  pressed_at_ = now;
  last_now_ = now;
}

void PlayoutBuffer::advance(double now) {
  if (!pressed_at_ || now <= last_now_) return;
  if (started() && !stalled_) {
    const double can_play = arrived_s_ - position_s_;
    const double elapsed = now - last_now_;
    if (elapsed > can_play) {
      // The position reached the end of what arrived: the stall began then.
      position_s_ = arrived_s_;
      stalled_ = true;
      stall_began_ = last_now_ + can_play;
      ++stalls_;
    } else {
      position_s_ += elapsed;
    }
  }
  last_now_ = now;
  // A piece is dropped once the position is past its end (the last one stays while it plays).
  while (dated_.size() > 1 && dated_[1].position_s <= position_s_) dated_.pop_front();
}

std::optional<double> PlayoutBuffer::playing_program_date() const {
  if (!started() || dated_.empty()) return std::nullopt;
  const Dated& piece = dated_.front();
  if (position_s_ < piece.position_s || position_s_ > piece.position_s + piece.duration_s)
    return std::nullopt;  // what plays now came without a date
  return piece.program_date_s + (position_s_ - piece.position_s);
}

void PlayoutBuffer::on_segment(double duration_s, double now,
                               std::optional<double> program_date_s) {
  if (!pressed_at_) return;
  advance(now);
  duration_s = std::max(0.0, duration_s);
  if (program_date_s) dated_.push_back({arrived_s_, duration_s, *program_date_s});
  last_piece_s_ = arrived_s_;
  arrived_s_ += duration_s;
  if (!started()) {
    if (arrived_s_ >= start_buffer_s_) startup_s_ = now - *pressed_at_;
    return;
  }
  if (stalled_) {
    stalled_total_s_ += std::max(0.0, now - stall_began_);
    stalled_ = false;
  }
}

void PlayoutBuffer::amend_last(double duration_s, std::optional<double> program_date_s) {
  if (!pressed_at_) return;
  duration_s = std::max(0.0, duration_s);
  arrived_s_ = last_piece_s_ + duration_s;
  if (!dated_.empty() && dated_.back().position_s == last_piece_s_) dated_.pop_back();
  if (program_date_s) dated_.push_back({last_piece_s_, duration_s, *program_date_s});
  if (started() && !stalled_ && position_s_ > arrived_s_) {
    position_s_ = arrived_s_;
    stalled_ = true;
    stall_began_ = last_now_;
    ++stalls_;
  }
}

}  // namespace audience
