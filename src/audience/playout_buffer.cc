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
}

void PlayoutBuffer::on_segment(double duration_s, double now) {
  if (!pressed_at_) return;
  advance(now);
  arrived_s_ += std::max(0.0, duration_s);
  if (!started()) {
    if (arrived_s_ >= start_buffer_s_) startup_s_ = now - *pressed_at_;
    return;
  }
  if (stalled_) {
    stalled_total_s_ += std::max(0.0, now - stall_began_);
    stalled_ = false;
  }
}

}  // namespace audience
