// Property over the shared HLS corpus: for every playlist the library accepts,
// the balancer's copy parses again with the same URI slots in the same order, and
// every URI leads where its role says (balancer, signed cache link, or left
// pointing at a foreign host), never elsewhere; every cache link is one the
// cache node accepts, and a chunk on the origin is left at its origin URL only
// when the cache node would refuse it.
#include <doctest/doctest.h>

#include <string>

#include "balancer/viewers/playlist_mapper.h"
#include "cache_node/serving/chunk_request.h"
#include "hls/playlist.h"
#include "support/hls_corpus.h"

namespace balancer {
namespace corpus_rewrite_test {

const std::string kOrigin = "http://origin.test/files";
const std::string kCache = "http://cache.test:8081";
const std::string kSigningKey = "corpus-test-signing-key-1";
constexpr int64_t kExpires = 1'900'000'000;

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

TEST_CASE(
    "every accepted corpus playlist is rewritten with each URI pointing where its role says") {
  const std::vector<test::CorpusFile> corpus = test::hls_corpus_files();
  if (corpus.empty()) return;  // skipped
  auto signer = signing::UrlSigner::create({kSigningKey});
  REQUIRE(signer.ok());
  size_t files = 0, accepted = 0, slots_checked = 0, cache_links = 0, left_at_origin = 0;
  for (const test::CorpusFile& entry : corpus) {
    ++files;
    const std::string& text = entry.text;
    const std::string source_url = kOrigin + "/live/" + entry.path.stem().string() + "/index.m3u8";
    auto parsed = hls::parse_playlist(text, source_url);
    if (!parsed.ok()) continue;
    ++accepted;
    const hls::Template& tmpl = parsed->tmpl;
    RewritePlan plan = plan_rewrite(tmpl, kOrigin);
    std::vector<std::string> chunks =
        chunk_links(tmpl, plan, ChunkDestination{kCache, "demo", &*signer, kExpires});
    ViewerLinks links;
    links.channel = "demo";
    links.viewer_query = "cache=venue-a&viewer=v1";
    links.chunk_links = &chunks;
    std::string out = render_for_viewer(tmpl, plan, links);

    // The viewer fetched it from the balancer: resolve against that URL.
    const std::string viewer_url = "http://balancer.test/hls/demo/live/" +
                                   entry.path.stem().string() +
                                   "/index.m3u8?cache=venue-a&viewer=v1";
    hls::ParseOptions options;
    options.imported_variables = parsed->variables;
    auto again = hls::parse_playlist(out, viewer_url, options);
    INFO(entry.path.filename().string());
    REQUIRE_MESSAGE(again.ok(), (again.ok() ? "" : again.error().message));
    const auto& before = tmpl.slots();
    const auto& after = again->tmpl.slots();
    REQUIRE(before.size() == after.size());
    for (size_t i = 0; i < before.size(); ++i) {
      INFO("slot ", i, " (", before[i].tag, ") ", before[i].uri, " -> ", after[i].uri);
      CHECK(before[i].role == after[i].role);
      CHECK(before[i].tag == after[i].tag);
      bool ours = origin_target_of(before[i].uri, kOrigin).has_value();
      const std::string& uri = after[i].uri;
      switch (plan.slots[i].kind) {
        case SlotTarget::Kind::playlist:
          CHECK(ours);
          CHECK(starts_with(uri, "http://balancer.test/hls/demo/"));
          CHECK(uri.find("cache=venue-a&viewer=v1") != std::string::npos);
          break;
        case SlotTarget::Kind::key:
          CHECK(ours);
          CHECK(starts_with(uri, "http://balancer.test/key/demo/"));
          break;
        case SlotTarget::Kind::chunk:
          CHECK(ours);
          REQUIRE(starts_with(uri, kCache + "/o/demo/"));
          {
            std::string unsigned_target;
            CHECK(signer->verify(uri.substr(kCache.size()), kExpires, &unsigned_target) ==
                  signing::SignatureVerdict::ok);
            auto request = cache_node::parse_chunk_request(unsigned_target);
            CHECK_MESSAGE(request.ok(), (request.ok() ? "" : request.error().message));
            ++cache_links;
          }
          break;
        case SlotTarget::Kind::passthrough:
          // Left as the source meant it: the same absolute URI, never our hosts.
          CHECK(uri == before[i].uri);
          if (ours && before[i].role == hls::Role::chunk) {
            // Only a chunk the cache node would refuse stays at the origin.
            std::string target =
                "/o/demo" + normalize_chunk_target(*origin_target_of(before[i].uri, kOrigin));
            CHECK_FALSE(cache_node::parse_chunk_request(target).ok());
            ++left_at_origin;
          } else {
            CHECK((!ours || before[i].role == hls::Role::other));
          }
          break;
      }
      ++slots_checked;
    }
  }
  MESSAGE(accepted << " of " << files << " corpus playlists accepted; " << slots_checked
                   << " URIs checked; " << cache_links << " cache links, " << left_at_origin
                   << " chunks the cache node would refuse left at origin");
  CHECK(accepted > 50);
  CHECK(cache_links > 0);
}

}  // namespace corpus_rewrite_test
}  // namespace balancer
