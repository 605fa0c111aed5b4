// fleet_load: a small closed-loop HTTP load generator for scripts/bench/fleet_bench.sh.
//   fleet_load --threads T --seconds S --viewers V [--fresh] URL...
// Each thread keeps one connection per URL (keep-alive) and sends GETs back to back for S
// seconds, alternating between the URLs (e.g. two balancers). "{v}" in a URL is replaced by a
// viewer id: with --fresh every request is a new viewer (each one an admission decision),
// without it ids cycle through V viewers (refreshes of admitted viewers). Prints one JSON line:
// requests, per-second rate, status counts, p50/p99 latency in ms.
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

size_t discard(char*, size_t size, size_t n, void*) {
  return size * n;
}

std::string with_viewer(const std::string& url, const std::string& viewer) {
  std::string out = url;
  const size_t at = out.find("{v}");
  if (at != std::string::npos) out.replace(at, 3, viewer);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 4;
  double seconds = 5;
  long viewers = 1000;
  bool fresh = false;
  std::vector<std::string> urls;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--viewers" && i + 1 < argc) {
      viewers = std::atol(argv[++i]);
    } else if (a == "--fresh") {
      fresh = true;
    } else {
      urls.push_back(a);
    }
  }
  if (urls.empty() || threads < 1 || seconds <= 0 || viewers < 1) {
    std::fprintf(stderr,
                 "usage: fleet_load --threads T --seconds S --viewers V [--fresh] URL...\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::mutex mutex;
  std::vector<double> latencies_ms;
  std::map<long, uint64_t> statuses;
  std::atomic<uint64_t> next_fresh{0};
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  auto run = [&](int thread) {
    std::vector<CURL*> handles;
    for (size_t u = 0; u < urls.size(); ++u) {
      CURL* h = curl_easy_init();
      curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
      curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
      handles.push_back(h);
    }
    std::vector<double> mine;
    std::map<long, uint64_t> my_statuses;
    uint64_t n = 0;
    while (std::chrono::steady_clock::now() < end) {
      const size_t u = n % urls.size();
      const uint64_t id =
          fresh ? next_fresh.fetch_add(1) : (thread + n * threads) % static_cast<uint64_t>(viewers);
      const std::string url = with_viewer(urls[u], (fresh ? "f" : "r") + std::to_string(id));
      curl_easy_setopt(handles[u], CURLOPT_URL, url.c_str());
      const auto t0 = std::chrono::steady_clock::now();
      const CURLcode rc = curl_easy_perform(handles[u]);
      const auto t1 = std::chrono::steady_clock::now();
      long status = 0;
      if (rc == CURLE_OK) curl_easy_getinfo(handles[u], CURLINFO_RESPONSE_CODE, &status);
      ++my_statuses[status];
      mine.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      ++n;
    }
    for (CURL* h : handles) curl_easy_cleanup(h);
    std::lock_guard lock(mutex);
    latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    for (auto [s, c] : my_statuses) statuses[s] += c;
  };
  std::vector<std::thread> pool;
  const auto started = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) pool.emplace_back(run, t);
  for (auto& t : pool) t.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[std::min(latencies_ms.size() - 1,
                                 static_cast<size_t>(p * latencies_ms.size()))];
  };
  std::printf("{\"requests\":%zu,\"per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"statuses\":{",
              latencies_ms.size(), static_cast<double>(latencies_ms.size()) / elapsed, pct(0.5),
              pct(0.99));
  bool first = true;
  for (auto [s, c] : statuses) {
    std::printf("%s\"%ld\":%llu", first ? "" : ",", s, static_cast<unsigned long long>(c));
    first = false;
  }
  std::printf("}}\n");
  curl_global_cleanup();
  return 0;
}
