// Property over the shared HLS corpus: every multivariant playlist the balancer
// serves with content steering passes the players' rules (support/steering_rules.h:
// Media3's pathway, group id and variant set checks, PATHWAY-ID on every variant, an
// absolute SERVER-URI) and still parses, with each pathway's copy of every variant; so does
// the form the balancer serves, the cache choice's pathway alone (the others are clones).
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "balancer/viewers/playlist_mapper.h"
#include "hls/playlist.h"
#include "hls/steering.h"
#include "support/hls_corpus.h"
#include "support/steering_rules.h"

namespace balancer {
namespace {

constexpr const char* kOrigin = "http://origin.test/files";

// A multivariant playlist of the corpus, parsed as served from kOrigin/live/<its name>/.
struct CorpusMaster {
  std::string name;
  std::string text;
  hls::Playlist playlist;
};
std::vector<CorpusMaster> corpus_masters() {
  std::vector<CorpusMaster> masters;
  for (const test::CorpusFile& file : test::hls_corpus_files()) {
    auto parsed = hls::parse_playlist(
        file.text, std::string(kOrigin) + "/live/" + file.path.stem().string() + "/index.m3u8");
    if (parsed.ok() && parsed->kind == hls::PlaylistKind::master)
      masters.push_back({file.path.filename().string(), file.text, std::move(parsed).value()});
  }
  return masters;
}

TEST_CASE("every corpus master steered for one or three pathways passes Media3's rules") {
  const std::vector<CorpusMaster> corpus = corpus_masters();
  if (corpus.empty()) return;  // skipped
  const std::string origin = kOrigin;
  size_t masters = 0, steered = 0, steered_by_origin = 0;
  for (const CorpusMaster& master : corpus) {
    const std::string& text = master.text;
    const hls::Playlist* parsed = &master.playlist;
    ++masters;
    INFO(master.name);
    RewritePlan plan = plan_rewrite(parsed->tmpl, origin);
    REQUIRE(plan.chunk_slots == 0);
    std::vector<std::string> texts;
    for (const char* query : {"cache=venue-a&viewer=v1", "cache=venue-a&viewer=v1&pathway=venue-b",
                              "cache=venue-a&viewer=v1&pathway=origin"}) {
      ViewerLinks links;
      links.channel = "demo";
      links.viewer_query = query;
      texts.push_back(render_for_viewer(parsed->tmpl, plan, links));
    }
    auto out = hls::steered_master(
        {{"venue-a", texts[0]}, {"venue-b", texts[1]}, {"origin", texts[2]}},
        "https://balancer.test/steering/demo?cache=venue-a&viewer=v1", "venue-a");
    if (!out) {
      // Only a master the origin steers itself, or one without variants, is left as it is.
      const bool by_origin = text.find("#EXT-X-CONTENT-STEERING") != std::string::npos ||
                             text.find("PATHWAY-ID=") != std::string::npos;
      bool variants = false;
      for (const auto& v : parsed->master.variants)
        variants = variants || v.kind == hls::Variant::Kind::stream;
      CHECK((by_origin || !variants));
      steered_by_origin += by_origin;
      continue;
    }
    ++steered;
    CHECK(test_support::steering_rules_problem(*out) == "");
    hls::ParseOptions options;
    options.imported_variables = parsed->variables;
    auto again =
        hls::parse_playlist(*out, "https://balancer.test/hls/demo/live/x/index.m3u8", options);
    REQUIRE_MESSAGE(again.ok(), (again.ok() ? "" : again.error().message));
    auto streams = [](const hls::Playlist& playlist) {
      size_t n = 0;
      for (const auto& v : playlist.master.variants) n += v.kind == hls::Variant::Kind::stream;
      return n;
    };
    CHECK(streams(*again) == 3 * streams(*parsed));
    auto alone = hls::steered_master(
        {{"venue-a", texts[0]}},
        "https://balancer.test/steering/demo?cache=venue-a&viewer=v1&pathway=venue-a", "venue-a");
    REQUIRE(alone);
    CHECK(test_support::steering_rules_problem(*alone) == "");
    auto alone_again =
        hls::parse_playlist(*alone, "https://balancer.test/hls/demo/live/x/index.m3u8", options);
    REQUIRE_MESSAGE(alone_again.ok(), (alone_again.ok() ? "" : alone_again.error().message));
    CHECK(streams(*alone_again) == streams(*parsed));
  }
  MESSAGE(steered << " of " << masters << " corpus masters steered, " << steered_by_origin
                  << " steered by their origin");
  CHECK(steered > 10);
}

TEST_CASE(
    "every corpus master's steered shape gives each viewer the bytes steered_master() makes of "
    "the viewer's copy") {
  const std::vector<CorpusMaster> corpus = corpus_masters();
  if (corpus.empty()) return;  // skipped
  const std::string origin = kOrigin;
  size_t masters = 0, steered = 0;
  for (const CorpusMaster& master : corpus) {
    const hls::Playlist* parsed = &master.playlist;
    ++masters;
    INFO(master.name);
    const RewritePlan plan = plan_rewrite(parsed->tmpl, origin);
    const std::optional<hls::SteeredShape> shape = hls::SteeredShape::of(parsed->tmpl);
    hls::SlotTexts slot_texts;
    for (const char* pathway : {"venue-a", "origin"}) {
      const std::string query = std::string("cache=venue-a&viewer=v1&pathway=") + pathway;
      const std::string server = "https://balancer.test/steering/demo?" + query;
      ViewerLinks links;
      links.balancer_base = "https://balancer.test";
      links.channel = "demo";
      links.viewer_query = query;
      const std::string copy = render_for_viewer(parsed->tmpl, plan, links);
      render_viewer_slots(parsed->tmpl, plan, links, slot_texts);
      const auto expected = hls::steered_master({{pathway, copy}}, server, pathway);
      CHECK((shape ? shape->render(parsed->tmpl, slot_texts, pathway, server) : std::nullopt) ==
            expected);
      steered += expected.has_value();
    }
  }
  MESSAGE(steered << " steered copies of " << masters << " corpus masters compared");
  CHECK(steered > 20);
}

}  // namespace
}  // namespace balancer
