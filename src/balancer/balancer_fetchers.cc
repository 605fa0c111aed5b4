// The balancer's fetch loop: its fetchers (source playlists, keys, cache health),
// what a config changes in them, and the one-second tick.
#include "balancer/balancer_fetchers.h"

#include <event2/event.h>

#include "core/answer_here.h"
#include "core/json.h"
#include "core/thread_rule.h"

namespace balancer {
namespace {

// An origin's connections the slow lane leaves to the others (of max_host_connections, 64).
constexpr long kFastLaneConnections = 16;

}  // namespace

BalancerFetchers::BalancerFetchers(core::EventLoop& fetch_loop, AnyLoopState& shared)
    : loop_(fetch_loop), shared_(shared) {}

BalancerFetchers::~BalancerFetchers() = default;

core::Result<std::unique_ptr<BalancerFetchers>> BalancerFetchers::create(
    core::EventLoop& fetch_loop, const core::Clock& clock, core::MetricsRegistry& registry,
    const BalancerConfig& config, AnyLoopState& shared, core::Published<HealthView>& health) {
  std::unique_ptr<BalancerFetchers> fetchers(new BalancerFetchers(fetch_loop, shared));
  http::HttpClientOptions client_options;
  client_options.connect_timeout = config.upstream_connect_timeout;
  client_options.request_timeout = config.playlists.blocking_timeout;
  client_options.http2 = config.upstream_http2;
  client_options.user_agent = "balancer";
  // Slow playlists (source_policy.h, slow_lane_fetch) share at most this many of an origin's
  // connections: the rest stay free for the fast ones, however many slow ones there are.
  client_options.max_host_slow_transfers =
      client_options.max_host_connections - kFastLaneConnections;
  event_base& base = fetch_loop.base();
  auto client = http::HttpClient::create(base, client_options);
  if (!client) return client.error();
  fetchers->client_ = std::move(client).value();
  fetchers->sources_ = std::make_unique<SourceCache>(fetch_loop, *fetchers->client_, registry,
                                                     config.playlists, clock);
  fetchers->source_asker_ = std::make_unique<SourceAsker>(*fetchers->sources_);
  fetchers->keys_ = std::make_unique<KeyStore>(
      fetch_loop, *fetchers->client_, registry,
      KeyStoreOptions{config.key_ttl, config.playlists.fetch_timeout, config.key_max_bytes}, clock);
  fetchers->poller_ = std::make_unique<HealthPoller>(base, *fetchers->client_, registry, clock);
  // Every poll result is published for the loops' cache choice.
  HealthPoller& poller = *fetchers->poller_;
  poller.on_update([&health, &poller] {
    health.publish(std::make_shared<const HealthView>(poller.snapshot()));
  });
  // What the nodes' chunk fetches say of each origin is a source's health too.
  poller.on_chunk_fetches([sources = fetchers->sources_.get()](const std::string& origin,
                                                               uint64_t answered, uint64_t failed) {
    sources->chunk_fetches_reported(origin, answered, failed);
  });
  // Live prefetch: new segments revealed by a refresh go to the usable nodes of their viewers.
  fetchers->prefetch_ =
      std::make_unique<PrefetchClient>(fetch_loop, *fetchers->client_, registry, clock,
                                       [&poller, &clock](const std::string& cache_id) {
                                         const HealthView view = poller.snapshot();
                                         auto it = view.find(cache_id);
                                         return it != view.end() && it->second.usable(clock.now());
                                       });
  fetchers->sources_->set_prefetch_sink(
      [prefetch = fetchers->prefetch_.get()](
          const std::string& origin_id, const std::vector<std::string>& targets, uint64_t caches) {
        prefetch->offer(origin_id, targets, caches);
      });
  fetchers->tick_timer_.reset(event_new(
      &base, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<BalancerFetchers*>(arg)->tick(); },
      fetchers.get()));
  timeval one_second{1, 0};
  evtimer_add(fetchers->tick_timer_.get(), &one_second);
  return fetchers;
}

void BalancerFetchers::configure(const BalancerConfig& c) {
  core::expect_on(loop_);
  sources_->set_timings(c.playlists);
  keys_->set_options(KeyStoreOptions{c.key_ttl, c.playlists.fetch_timeout, c.key_max_bytes});
  std::vector<HealthPollTarget> targets;
  for (const auto& cache : c.caches) targets.push_back({cache.id, cache.health_url});
  HealthPollOptions options;
  options.interval = c.health.interval;
  options.timeout = c.health.timeout;
  options.thresholds.up_after = c.health.up_after;
  options.thresholds.down_after = c.health.down_after;
  options.thresholds.stale_after = c.health.interval * (c.health.down_after + 1) + c.health.timeout;
  poller_->configure(targets, options);
  prefetch_->configure(c.prefetch, c.caches);
}

void BalancerFetchers::fetch_key(core::EventLoop& back, const std::string& url, KeyCallback done) {
  if (&back == &loop_) return keys_->get(url, std::move(done));
  // No guard: `done` belongs to a loop's request, and the loops live as long as the fetchers.
  core::ask_there_answer_here(
      loop_, back, core::LifetimeWatch::forever(),
      [this, url](auto reply) { keys_->get(url, std::move(reply)); }, std::move(done));
}

void BalancerFetchers::choose_source(core::EventLoop& back, const std::string& channel,
                                     std::optional<size_t> index,
                                     std::function<void(SourceCache::SourceChoice)> done) {
  auto choose = [this, channel, index] {
    const SourceCache::SourceChoice made = sources_->force_source(channel, index);
    publish_sources_board();
    return made;
  };
  if (&back == &loop_) return done(choose());
  core::ask_there_answer_here(
      loop_, back, core::LifetimeWatch::forever(), [choose](auto reply) { reply(choose()); },
      std::move(done));
}

void BalancerFetchers::publish_sources_board() {
  std::string json = "{";
  for (const std::string& channel : sources_->channels_with_sources()) {
    auto view = sources_->channel_sources(channel);
    if (!view) continue;
    if (json.size() > 1) json += ",";
    json += core::json_string(channel) + ":{\"active\":" + std::to_string(view->active);
    json += ",\"forced\":" + (view->forced ? std::to_string(*view->forced) : std::string("null"));
    json += ",\"sources\":[";
    for (size_t i = 0; i < view->sources.size(); ++i) {
      const SourceState& source = view->sources[i];
      if (i > 0) json += ",";
      json += "{\"origin\":" + core::json_string(view->origins[i]);
      json += ",\"known\":" + std::string(source.known ? "true" : "false");
      json += ",\"healthy\":" +
              std::string(source.known && source.fault == SourceFault::none ? "true" : "false");
      json += ",\"fault\":" + core::json_string(to_string(source.fault)) + "}";
    }
    json += "]}";
  }
  shared_.sources_board.write(json + "}");
}

void BalancerFetchers::stop() {
  core::expect_on(loop_);
  sources_->stop_refreshing();
  poller_->stop();
}

// Every second on the fetch loop: publishes the source cache's size.
void BalancerFetchers::tick() {
  core::expect_on(loop_);
  shared_.source_entries.store(sources_->entries());
  shared_.sources_refreshing.store(sources_->refreshing());
  publish_sources_board();
}

}  // namespace balancer
