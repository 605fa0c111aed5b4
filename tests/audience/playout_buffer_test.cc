// The playout buffer model: startup once the start condition is met, a stall from the moment
// the playout position reaches the end of what arrived until the next segment arrives.
#include <doctest/doctest.h>

#include "audience/playout_buffer.h"

using audience::PlayoutBuffer;

TEST_CASE("playback starts when the start buffer has arrived, measured from pressing play") {
  PlayoutBuffer b(4);
  b.press_play(10);
  b.on_segment(2, 11);
  CHECK_FALSE(b.started());
  b.on_segment(2, 12.5);
  REQUIRE(b.started());
  CHECK(*b.startup_s() == doctest::Approx(2.5));
  CHECK(b.stalls() == 0);
}

TEST_CASE("a stall begins when the buffer runs dry and ends with the next segment") {
  PlayoutBuffer b(2);
  b.press_play(0);
  b.on_segment(2, 1);  // plays from 1 s; media lasts until 3 s
  b.advance(2.5);
  CHECK_FALSE(b.stalled());
  CHECK(b.buffered_s() == doctest::Approx(0.5));
  b.advance(4);
  REQUIRE(b.stalled());
  CHECK(b.stalls() == 1);
  CHECK(b.stall_began() == doctest::Approx(3));
  b.on_segment(2, 4.5);  // stalled from 3 to 4.5
  CHECK_FALSE(b.stalled());
  CHECK(b.stalled_s() == doctest::Approx(1.5));
  b.advance(6);  // 2 s arrived at 4.5 last until 6.5
  CHECK_FALSE(b.stalled());
  b.on_segment(2, 6.4);
  b.advance(8);
  CHECK(b.stalls() == 1);
}

TEST_CASE("segments that arrive in time never stall, whatever the sampling rate") {
  PlayoutBuffer b(2);
  b.press_play(0);
  for (int i = 0; i < 100; ++i) {
    b.on_segment(2, 0.5 + 1.9 * i);  // each one a little before the buffer runs dry
    b.advance(1.0 + 1.9 * i);
  }
  CHECK(b.started());
  CHECK(b.stalls() == 0);
  CHECK(b.stalled_s() == 0);
}

TEST_CASE("nothing counts before play is pressed") {
  PlayoutBuffer b(2);
  b.on_segment(2, 1);
  b.advance(5);
  CHECK_FALSE(b.started());
  CHECK(b.stalls() == 0);
}

TEST_CASE("the frame on screen has a capture time: latency behind live, growing in a stall") {
  PlayoutBuffer b(1);
  b.press_play(0);
  CHECK_FALSE(b.playing_program_date());
  // Two parts of 0.5 s captured at 1000.0 and 1000.5, arriving at 1 s and 1.4 s.
  b.on_segment(0.5, 1, 1000.0);
  CHECK_FALSE(b.started());
  b.on_segment(0.5, 1.4, 1000.5);
  REQUIRE(b.started());  // from 1.4 s
  b.advance(1.6);        // 0.2 s into the first part
  REQUIRE(b.playing_program_date());
  CHECK(*b.playing_program_date() == doctest::Approx(1000.2));
  b.advance(2.1);  // 0.7 s played: 0.2 s into the second part
  CHECK(*b.playing_program_date() == doctest::Approx(1000.7));
  // The buffer runs dry at 2.4 s; the frame on screen stays while the wall clock moves on.
  b.advance(3.0);
  REQUIRE(b.stalled());
  CHECK(*b.playing_program_date() == doctest::Approx(1001.0));
  // Media without a date (a playlist without EXT-X-PROGRAM-DATE-TIME) has no capture time.
  b.on_segment(1, 3.2);
  b.advance(3.5);
  CHECK_FALSE(b.playing_program_date());
}

TEST_CASE(
    "a hinted part counted as PART-TARGET long is amended to its listed length and date: the "
    "buffer and the latency behind live stay true") {
  // Parts of 0.2 s listed late, first counted as 0.25 s (PART-TARGET): forty of them would put
  // 2 s of media that does not exist in the buffer, and the latency behind live grows by as
  // much without a stall. Amended, the buffer holds what arrived.
  PlayoutBuffer b(0.4);  // playing from the second part, at 0.35 s
  b.press_play(0);
  double captured = 1000.0;
  for (int i = 0; i < 40; ++i) {
    const double now = 0.2 * i + 0.15;
    b.on_segment(0.25, now);
    b.amend_last(0.2, captured);
    captured += 0.2;
  }
  // At 7.95 s: 8 s arrived, 7.6 s played.
  CHECK(b.buffered_s() == doctest::Approx(0.4));
  REQUIRE(b.playing_program_date());
  CHECK(*b.playing_program_date() == doctest::Approx(1000.0 + 7.6));
  CHECK(b.stalls() == 0);
}

TEST_CASE("an amended part shorter than what was already played from it begins a stall") {
  PlayoutBuffer b(0.25);
  b.press_play(0);
  b.on_segment(0.25, 1, 1000.0);  // playing from 1 s
  b.advance(1.22);                // 0.22 s of it played
  b.amend_last(0.2, 1000.0);      // it was 0.2 s long: the buffer ran dry before now
  CHECK(b.stalled());
  CHECK(b.stalls() == 1);
  CHECK(b.buffered_s() == doctest::Approx(0.0));
  b.on_segment(0.2, 1.5, 1000.2);  // the next part ends the stall
  CHECK_FALSE(b.stalled());
}
