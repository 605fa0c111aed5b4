// Shared by the audience tests: a live two-variant source written in real time for
// test_origin to serve (each segment dated: EXT-X-PROGRAM-DATE-TIME), and a reader of the
// result JSON.
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <initializer_list>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "hls/program_date.h"
#include "support/balancer_fixture.h"

namespace balancer::test {

inline constexpr int kTargetDuration = 2;
inline constexpr int kWindow = 8;
inline const char* const kVariants[] = {"hi", "lo"};

// A live source: every target duration one more segment in each variant, in real time
// (a generator of content, not a wait for something to happen).
class LiveSource {
 public:
  // `with_key`: the media playlists name an AES-128 key (players fetch it; the segments are
  // not really encrypted, which a simulated player does not notice).
  explicit LiveSource(std::string root, bool with_key = false)
      : root_(std::move(root)),
        with_key_(with_key),
        // Segment n ends when it is published: the window's last segment ends now.
        first_date_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count() -
                       int64_t{kWindow} * kTargetDuration * 1000) {
    for (const char* v : kVariants)
      write_file(root_ + "/live/" + v + "/key.bin", std::string(16, 'k'));
    write_file(root_ + "/live/master.m3u8",
               "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=400000\nhi/index.m3u8\n"
               "#EXT-X-STREAM-INF:BANDWIDTH=150000\nlo/index.m3u8\n");
    for (next_ = 0; next_ < kWindow; ++next_) add_segment();
    thread_ = std::thread([this] {
      std::unique_lock lock(mutex_);
      auto due = std::chrono::steady_clock::now();
      while (!stop_) {
        due += std::chrono::seconds(kTargetDuration);
        if (stopped_.wait_until(lock, due, [this] { return stop_; })) break;
        add_segment();
        ++next_;
      }
    });
  }
  ~LiveSource() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    stopped_.notify_all();
    thread_.join();
  }

 private:
  void add_segment() {
    for (const char* v : kVariants) {
      const std::string dir = root_ + "/live/" + v;
      write_file(dir + "/seg" + std::to_string(next_) + ".ts",
                 std::string(v[0] == 'h' ? 24'000 : 9'000, 'x'));
      const uint64_t first = next_ + 1 >= kWindow ? next_ + 1 - kWindow : 0;
      // Written just before the first segment, the date is that segment's.
      const std::string date =
          "#EXT-X-PROGRAM-DATE-TIME:" +
          hls::format_program_date_ms(first_date_ms_ +
                                      static_cast<int64_t>(first) * kTargetDuration * 1000) +
          "\n";
      write_file(
          dir + "/index.m3u8",
          live_playlist(first, static_cast<int>(next_ + 1 - first), kTargetDuration,
                        (with_key_ ? "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n" : "") + date));
    }
  }

  std::string root_;
  bool with_key_ = false;
  int64_t first_date_ms_ = 0;  // the capture time of segment 0
  uint64_t next_ = 0;
  std::mutex mutex_;
  std::condition_variable stopped_;
  bool stop_ = false;
  std::thread thread_;
};

inline double number_at(const rapidjson::Value& v, std::initializer_list<const char*> path) {
  const rapidjson::Value* at = &v;
  for (const char* key : path) {
    if (!at->IsObject() || !at->HasMember(key)) return -1;
    at = &(*at)[key];
  }
  return at->IsNumber() ? at->GetDouble() : -1;
}

// Runs `audience` on `scenario` (its progress lines on our stderr, for a post-mortem) and
// returns the parsed result; REQUIREs that it ran to its end within `timeout`.
inline rapidjson::Document run_audience(const TempDir& dir, const std::string& scenario,
                                        std::chrono::seconds timeout = std::chrono::seconds(120)) {
  write_file(dir.file("scenario.json"), scenario);
  ChildProcess run;
  ChildOptions options;
  options.argv = {binary_path("audience"),
                  dir.file("scenario.json"),
                  "--json",
                  dir.file("result.json"),
                  "--html",
                  dir.file("report.html")};
  options.stderr_mode = StderrMode::pass_through;
  std::string error;
  REQUIRE_MESSAGE(run.start(options, &error), error);
  const auto exit_code = run.wait_exit(deadline_in(timeout));
  REQUIRE(exit_code.has_value());
  REQUIRE(*exit_code == 0);
  std::ifstream in(dir.file("result.json"));
  std::stringstream text;
  text << in.rdbuf();
  rapidjson::Document doc;
  doc.Parse(text.str().c_str());
  REQUIRE_MESSAGE(doc.IsObject(), text.str());
  MESSAGE(text.str().substr(0, text.str().find(",\"per_second\"")));
  return doc;
}

}  // namespace balancer::test
