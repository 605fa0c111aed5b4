// Inside the balancer (not a public header): what every loop touches directly.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "balancer/viewers/admission_names.h"
#include "balancer/viewers/stable_links.h"

namespace balancer {

// Any thread, no lock of ours: each member is safe by itself (an interface that
// any loop may ask, a table with its own locks, atomics).
struct AnyLoopState {
  explicit AnyLoopState(std::unique_ptr<Admission> limits_and_queue)
      : admission(std::move(limits_and_queue)) {}

  // Limits and queue (admission/admission.h): in this process or shared through Redis, as
  // admission.backend chose at start. Any loop asks it; the home loop ticks it.
  std::unique_ptr<Admission> admission;
  // Stable segment hosts per viewer and playlist (stable_links.h).
  ListingTable listings{400000, std::chrono::seconds(60)};
  // Bytes of playlist replies not yet written to their clients' sockets (every loop adds
  // and subtracts; playlists.max_unsent_bytes bounds it).
  std::atomic<size_t> unsent_playlist_bytes{0};
  // The source cache's size, stored by the fetch loop each second for /health and /metrics.
  std::atomic<size_t> source_entries{0};
  std::atomic<size_t> sources_refreshing{0};
  // Channels with several sources as the fetch loop last saw them (JSON, written each second
  // and at each switch), for /admin/status and /admin/sources.
  class SourcesBoard {
   public:
    void write(std::string json) {
      std::lock_guard lock(mutex_);
      json_ = std::move(json);
    }
    std::string read() const {
      std::lock_guard lock(mutex_);
      return json_;
    }

   private:
    mutable std::mutex mutex_;
    std::string json_ = "{}";
  };
  SourcesBoard sources_board;
};

}  // namespace balancer
