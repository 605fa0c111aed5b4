#include "cmcd/playback_quality.h"

namespace cmcd {

const PlaybackQuality::Place& PlaybackQuality::bounded(const Place& where) {
  auto it = stalls_.find(where);
  if (it != stalls_.end()) return it->first;
  if (stalls_.size() >= limits_.max_places) return other_;
  return stalls_.emplace(where, 0).first->first;
}

PlaybackQuality::Recorded PlaybackQuality::record(Time now, const Place& where, const Data& data) {
  Recorded out;
  if (data.buffer_starvation) {
    out.stall = true;
    ++stalls_[bounded(where)];
    ++stalls_total_;
  }
  if (data.session_id.empty() || limits_.max_sessions == 0) return out;
  auto it = sessions_.find(data.session_id);
  if (it == sessions_.end()) {
    if (sessions_.size() >= limits_.max_sessions) {
      sessions_.erase(heard_order_.front());
      heard_order_.pop_front();
    }
    heard_order_.push_back(data.session_id);
    it = sessions_.emplace(data.session_id, Session{}).first;
    it->second.in_order = std::prev(heard_order_.end());
    out.new_session = true;
  } else {
    heard_order_.splice(heard_order_.end(), heard_order_, it->second.in_order);
  }
  Session& s = it->second;
  s.last_heard = now;
  if (data.buffer_length_ms) s.buffer_ms = data.buffer_length_ms;
  // A playlist or key request carries no object bitrate; only media objects change it.
  if (data.bitrate_kbps) s.bitrate_kbps = data.bitrate_kbps;
  if (data.measured_throughput_kbps) s.throughput_kbps = data.measured_throughput_kbps;
  return out;
}

void PlaybackQuality::expire(Time now) {
  while (!heard_order_.empty()) {
    auto it = sessions_.find(heard_order_.front());
    if (it != sessions_.end() && now - it->second.last_heard < limits_.session_idle) break;
    if (it != sessions_.end()) sessions_.erase(it);
    heard_order_.pop_front();
  }
}

PlaybackQuality::Summary PlaybackQuality::summary(Time now) {
  expire(now);
  Summary out;
  out.sessions = sessions_.size();
  for (const auto& [id, s] : sessions_) {
    if (s.buffer_ms) {
      ++out.sessions_with_buffer;
      if (*s.buffer_ms >= limits_.healthy_buffer_ms) ++out.healthy_buffer;
    }
    if (s.bitrate_kbps) ++out.bitrate_mix[*s.bitrate_kbps];
  }
  for (const auto& [place, count] : stalls_) {
    if (count > 0) out.stalls[place] = count;
  }
  out.stalls_total = stalls_total_;
  return out;
}

}  // namespace cmcd
