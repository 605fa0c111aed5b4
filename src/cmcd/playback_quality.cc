#include "cmcd/playback_quality.h"

#include <algorithm>
#include <bit>

namespace cmcd {
namespace {

struct SipState {
  uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = std::rotl(v1, 13) ^ v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16) ^ v2;
    v0 += v3;
    v3 = std::rotl(v3, 21) ^ v0;
    v2 += v1;
    v1 = std::rotl(v1, 17) ^ v2;
    v2 = std::rotl(v2, 32);
  }
  void absorb(uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

uint64_t little_endian_word(std::string_view bytes) {
  uint64_t word = 0;
  for (size_t i = 0; i < bytes.size(); ++i)
    word |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return word;
}

}  // namespace

size_t bitrate_bucket(int64_t kbps) {
  return static_cast<size_t>(
      std::lower_bound(kBitrateBucketsKbps.begin(), kBitrateBucketsKbps.end(), kbps) -
      kBitrateBucketsKbps.begin());
}

size_t latency_bucket(int64_t ms) {
  return static_cast<size_t>(
      std::lower_bound(kLatencyBucketsMs.begin(), kLatencyBucketsMs.end(), ms) -
      kLatencyBucketsMs.begin());
}

uint64_t keyed_hash(std::string_view text, const std::array<uint64_t, 2>& key) {
  SipState s{key[0] ^ 0x736f6d6570736575ULL, key[1] ^ 0x646f72616e646f6dULL,
             key[0] ^ 0x6c7967656e657261ULL, key[1] ^ 0x7465646279746573ULL};
  size_t at = 0;
  for (; at + 8 <= text.size(); at += 8) s.absorb(little_endian_word(text.substr(at, 8)));
  s.absorb(little_endian_word(text.substr(at)) | (uint64_t(text.size()) << 56));
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

const PlaybackQuality::Place& PlaybackQuality::bounded(const Place& where) {
  auto it = stalls_.find(where);
  if (it != stalls_.end()) return it->first;
  if (stalls_.size() >= limits_.max_places) return other_;
  return stalls_.emplace(where, 0).first->first;
}

int64_t PlaybackQuality::healthy_bar_ms(const Session& s) const {
  if (s.kind == StreamKind::regular) return limits_.healthy_buffer_ms;
  return s.part_ms > 0 ? s.part_ms : limits_.healthy_buffer_low_latency_ms;
}

void PlaybackQuality::count(const Session& s, bool adding) {
  auto change = [adding](size_t& total) { adding ? ++total : --total; };
  if (s.buffer_ms >= 0) {
    Buffers& b = buffers_[static_cast<size_t>(s.kind)];
    change(b.with_buffer);
    if (s.buffer_ms >= healthy_bar_ms(s)) change(b.healthy);
  }
  if (s.bitrate != kNoBitrate) change(bitrate_mix_[s.bitrate]);
  if (s.latency != kNoLatency) change(latency_mix_[s.latency]);
}

void PlaybackQuality::drop(std::unordered_map<uint64_t, Session>::iterator it) {
  count(it->second, false);
  heard_order_.erase(it->second.in_order);
  sessions_.erase(it);
}

PlaybackQuality::Recorded PlaybackQuality::record(Time now, const Place& where, const Data& data) {
  Recorded out;
  if (data.session_id.empty() || limits_.max_sessions == 0) return out;
  expire(now);  // a session silent for the idle time starts anew
  const uint64_t id = keyed_hash(data.session_id, limits_.session_key);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    if (sessions_.size() >= limits_.max_sessions) drop(sessions_.find(heard_order_.front()));
    heard_order_.push_back(id);
    it = sessions_.emplace(id, Session{}).first;
    it->second.in_order = std::prev(heard_order_.end());
    out.new_session = true;
  } else {
    heard_order_.splice(heard_order_.end(), heard_order_, it->second.in_order);
  }
  Session& s = it->second;
  s.last_heard = now;
  if (data.buffer_starvation && (!s.stalled || now - s.last_stall >= limits_.stall_gap)) {
    s.stalled = true;
    s.last_stall = now;
    out.stall = true;
    ++stalls_[bounded(where)];
    ++stalls_total_;
  }
  count(s, false);
  if (data.buffer_length_ms) s.buffer_ms = std::max<int64_t>(0, *data.buffer_length_ms);
  // A playlist or key request carries no object bitrate; only media objects change it.
  if (data.bitrate_kbps) s.bitrate = static_cast<uint8_t>(bitrate_bucket(*data.bitrate_kbps));
  if (!data.stream_type.empty())
    s.kind = data.stream_type == "ll" ? StreamKind::low_latency : StreamKind::regular;
  // A media object's duration: a low-latency player's shortest is a part.
  if (data.bitrate_kbps && data.object_duration_ms && *data.object_duration_ms > 0) {
    const auto d = static_cast<uint16_t>(std::min<int64_t>(*data.object_duration_ms, 0xffff));
    s.part_ms = s.part_ms == 0 ? d : std::min(s.part_ms, d);
  }
  if (data.live_latency_ms) s.latency = static_cast<uint8_t>(latency_bucket(*data.live_latency_ms));
  count(s, true);
  return out;
}

void PlaybackQuality::expire(Time now) {
  while (!heard_order_.empty()) {
    auto it = sessions_.find(heard_order_.front());
    if (now - it->second.last_heard < limits_.session_idle) break;
    drop(it);
  }
}

PlaybackQuality::Summary PlaybackQuality::summary(Time now) {
  expire(now);
  Summary out;
  out.sessions = sessions_.size();
  out.by_kind = buffers_;
  for (const Buffers& b : buffers_) {
    out.sessions_with_buffer += b.with_buffer;
    out.healthy_buffer += b.healthy;
  }
  out.bitrate_mix = bitrate_mix_;
  out.latency_mix = latency_mix_;
  for (size_t n : latency_mix_) out.sessions_with_latency += n;
  out.stalls_total = stalls_total_;
  return out;
}

}  // namespace cmcd
