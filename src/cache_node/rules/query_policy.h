// Which query parameters of a request under /o/<origin>/ count, per origin and
// kind of object, as pure functions. A parameter the policy drops is neither
// part of the cache key nor sent to the origin: with "ignore" (the default for
// chunks) a thousand query strings on one chunk path are one stored copy and
// one origin fetch. The signature parameters are verified on the whole target
// before anything is dropped (signing/url_signing.h), and they are never part of
// a key. The run parameter (kRunParam) is always kept, whatever the policy: it
// tells a restarted encoder's chunk from the previous run's under a reused name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cache_node {

// Always part of the cache key and the origin fetch: the balancer marks the
// chunk links of a restarted encoder run with brun=<run id> (signed like the
// rest), so a reused name never hits the previous run's stored bytes.
inline constexpr std::string_view kRunParam = "brun";

// Never part of the cache key or the origin fetch, whatever the policy: the balancer marks
// the links of Low-Latency HLS parts and preload hints with bpt=<PART-TARGET in ms> (signed
// like the rest), and a 404 for one is remembered at most that long, since the part is due
// within a part target (a hint may be asked for before its part exists).
inline constexpr std::string_view kPartTargetParam = "bpt";

// The part target a chunk request's raw query names (kPartTargetParam: 1–60000 ms), or
// nullopt when it names none or an unusable one.
std::optional<int64_t> part_target_ms(std::string_view query);

struct QueryPolicy {
  enum class Mode { ignore, keep, listed };
  Mode mode = Mode::keep;
  std::vector<std::string> names;  // listed: the parameter names kept (raw, as written in URLs)
};

// Per origin: chunks (segments, keys, init sections, anything that is not a
// playlist by its path) and playlists (.m3u8, .m3u, .mpd). Playlists keep
// every parameter: low-latency HLS asks for parts with _HLS_msn/_HLS_part.
struct OriginQueryPolicy {
  QueryPolicy chunks{QueryPolicy::Mode::ignore, {}};
  QueryPolicy playlists{QueryPolicy::Mode::keep, {}};
};

// The parameters of `query` (raw, without '?', signature parameters already
// removed) that `policy` keeps, in their order and as written: all for keep;
// for listed the named ones; for ignore none; kRunParam in every mode and
// kPartTargetParam in none. A
// parameter's name is what precedes its first '='. Empty parameters go.
std::string kept_query(std::string_view query, const QueryPolicy& policy);

// The policy for `origin_path` (a playlist by its extension, else a chunk).
const QueryPolicy& policy_for_path(const OriginQueryPolicy& policy, std::string_view origin_path);

// Parses the config form: "ignore", "keep", or a list of parameter names.
// False (and `problem` set) for another word or an empty name.
bool parse_query_mode(std::string_view word, QueryPolicy& out, std::string& problem);

}  // namespace cache_node
