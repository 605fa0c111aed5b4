#include "balancer/viewers/playlist_mapper.h"

#include <algorithm>
#include <cassert>

#include "balancer/viewers/request_params.h"
#include "balancer/viewers/stable_links.h"
#include "core/ascii.h"
#include "core/url.h"
#include "hls/uri.h"

namespace balancer {
namespace {

using core::ascii_lower;
using core::iequals;

// "host[:port]" with the scheme's default port removed, lower-cased; nullopt
// when userinfo is present (never treated as our origin).
std::optional<std::string> canonical_authority(std::string_view scheme,
                                               std::string_view authority) {
  if (authority.find('@') != std::string_view::npos) return std::nullopt;
  std::string out;
  out.reserve(authority.size());
  for (char c : authority) out += ascii_lower(c);
  std::string_view default_port = iequals(scheme, "https")  ? ":443"
                                  : iequals(scheme, "http") ? ":80"
                                                            : "";
  if (!default_port.empty() && out.size() > default_port.size() &&
      std::string_view(out).substr(out.size() - default_port.size()) == default_port) {
    out.resize(out.size() - default_port.size());
  }
  if (!out.empty() && out.back() == ':') out.pop_back();
  return out;
}

bool servable_by_cache(std::string_view origin_target) {
  size_t q = origin_target.find('?');
  std::string_view query =
      q == std::string_view::npos ? std::string_view{} : origin_target.substr(q + 1);
  return core::check_servable_origin_target(origin_target.substr(0, q), query).ok();
}

}  // namespace

std::optional<std::string> origin_target_of(std::string_view uri, std::string_view origin_base) {
  hls::UriParts u = hls::split_uri(uri);
  hls::UriParts b = hls::split_uri(origin_base);
  if (!u.scheme || !b.scheme || !u.authority || !b.authority) return std::nullopt;
  if (!iequals(*u.scheme, *b.scheme)) return std::nullopt;
  if (!iequals(*u.scheme, "http") && !iequals(*u.scheme, "https")) return std::nullopt;
  auto ua = canonical_authority(*u.scheme, *u.authority);
  auto ba = canonical_authority(*b.scheme, *b.authority);
  if (!ua || !ba || *ua != *ba) return std::nullopt;
  std::string_view base_path = b.path;
  while (!base_path.empty() && base_path.back() == '/') base_path.remove_suffix(1);
  std::string_view path = u.path;
  if (path.substr(0, base_path.size()) != base_path) return std::nullopt;
  path.remove_prefix(base_path.size());
  if (path.empty() || path.front() != '/' || path == "/") return std::nullopt;
  std::string out(path);
  if (u.query && !u.query->empty()) out.append("?").append(*u.query);
  return out;
}

std::string normalize_chunk_target(std::string_view target) {
  return signing::canonical_unsigned_target(target);
}

RewritePlan plan_rewrite(const hls::Template& tmpl, std::string_view origin_base,
                         const std::vector<OtherOrigin>& others) {
  RewritePlan plan;
  plan.slots.reserve(tmpl.slots().size());
  for (const hls::UriSlot& slot : tmpl.slots()) {
    SlotTarget target;
    if (slot.role != hls::Role::other) {
      std::optional<std::string> on_origin = origin_target_of(slot.uri, origin_base);
      for (size_t i = 0; !on_origin && i < others.size(); ++i) {
        on_origin = origin_target_of(slot.uri, others[i].base);
        if (on_origin) target.origin_id = others[i].id;
      }
      if (on_origin) {
        switch (slot.role) {
          case hls::Role::playlist:
            target.kind = SlotTarget::Kind::playlist;
            target.origin_target = std::move(*on_origin);
            break;
          case hls::Role::key:
            target.kind = SlotTarget::Kind::key;
            target.origin_target = std::move(*on_origin);
            break;
          case hls::Role::chunk: {
            std::string chunk_target = normalize_chunk_target(*on_origin);
            // A link the cache node would refuse (".//x.ts" resolves to an empty
            // segment) could never be served: such a chunk stays at its origin URL.
            if (!servable_by_cache(chunk_target)) break;
            target.kind = SlotTarget::Kind::chunk;
            target.origin_target = std::move(chunk_target);
            ++plan.chunk_slots;
            break;
          }
          case hls::Role::other:
            break;
        }
      }
    }
    plan.slots.push_back(std::move(target));
  }
  hash_chunks(plan);
  return plan;
}

void hash_chunks(RewritePlan& plan) {
  plan.chunk_hashes.clear();
  plan.chunk_hashes.reserve(plan.chunk_slots);
  for (const SlotTarget& target : plan.slots) {
    if (target.kind == SlotTarget::Kind::chunk)
      plan.chunk_hashes.push_back(chunk_hash(target.origin_target));
  }
}

namespace {

// Per chunk slot, in slot order: whether its tag is `tag`.
std::vector<bool> chunks_of_tag(const hls::Template& tmpl, const RewritePlan& plan,
                                std::string_view tag) {
  assert(plan.slots.size() == tmpl.slots().size());
  std::vector<bool> out;
  out.reserve(plan.chunk_slots);
  for (size_t i = 0; i < plan.slots.size(); ++i) {
    if (plan.slots[i].kind != SlotTarget::Kind::chunk) continue;
    out.push_back(tmpl.slots()[i].tag == tag);
  }
  return out;
}

}  // namespace

std::vector<bool> segment_chunks(const hls::Template& tmpl, const RewritePlan& plan) {
  return chunks_of_tag(tmpl, plan, "EXTINF");
}

std::vector<bool> map_chunks(const hls::Template& tmpl, const RewritePlan& plan) {
  return chunks_of_tag(tmpl, plan, "EXT-X-MAP");
}

int64_t link_expiry(int64_t first_listed, int64_t now_unix, int64_t lifetime_s) {
  lifetime_s = std::max<int64_t>(lifetime_s, 2);
  if (first_listed < 0 || first_listed > now_unix) first_listed = now_unix;
  int64_t expires = first_listed + lifetime_s;
  const int64_t least = now_unix + lifetime_s / 2;
  if (expires < least) expires += (least - expires + lifetime_s - 1) / lifetime_s * lifetime_s;
  return expires;
}

std::vector<std::string> chunk_links(const hls::Template& tmpl, const RewritePlan& plan,
                                     const ChunkDestination& destination) {
  std::vector<std::string> out;
  out.reserve(plan.chunk_slots);
  std::string signed_path;
  const bool first_listed_known = plan.chunk_first_listed.size() == plan.chunk_slots;
  size_t chunk = 0;
  for (size_t i = 0; i < plan.slots.size(); ++i) {
    const SlotTarget& target = plan.slots[i];
    if (target.kind != SlotTarget::Kind::chunk) continue;
    const int64_t first_listed = first_listed_known ? plan.chunk_first_listed[chunk] : -1;
    ++chunk;
    const hls::UriSlot& slot = tmpl.slots()[i];
    if (destination.cache_url.empty()) {
      if (target.run.empty()) {
        out.push_back(hls::escape_replacement(slot, slot.uri));  // straight to origin, unsigned
      } else {
        // The run's name keeps a browser's cache from answering with a previous run's bytes.
        std::string uri = slot.uri.substr(0, slot.uri.find('#'));
        core::append_query(uri, target.run);
        out.push_back(hls::escape_replacement(slot, uri));
      }
      continue;
    }
    assert(destination.signer != nullptr);
    const std::string& origin_id =
        target.origin_id.empty() ? destination.origin_id : target.origin_id;
    signed_path.assign("/o/").append(origin_id).append(target.origin_target);
    if (plan.part_target_ms > 0 && (slot.tag == "EXT-X-PART" || slot.tag == "EXT-X-PRELOAD-HINT")) {
      core::append_query_param(signed_path, kPartTargetParameter,
                               std::to_string(plan.part_target_ms));
    }
    const int64_t lifetime_s = slot.tag == "EXT-X-MAP"
                                   ? std::max(destination.lifetime_s, kMapLinkLifetimeS)
                                   : destination.lifetime_s;
    std::string link = destination.cache_url;
    link.append(destination.signer->sign(
        signed_path, link_expiry(first_listed, destination.now_unix, lifetime_s)));
    out.push_back(hls::escape_replacement(slot, link));
  }
  return out;
}

std::string render_for_viewer(const hls::Template& tmpl, const RewritePlan& plan,
                              const ViewerLinks& links) {
  assert(plan.slots.size() == tmpl.slots().size());
  size_t next_chunk = 0;
  std::string prefix_hls, prefix_key;
  prefix_hls.append(links.balancer_base).append("/hls/").append(links.channel);
  prefix_key.append(links.balancer_base).append("/key/").append(links.channel);
  size_t index = 0;
  std::string scratch;
  auto mapper = [&](const hls::UriSlot& slot) -> hls::Replacement {
    const SlotTarget& target = plan.slots[index++];
    switch (target.kind) {
      case SlotTarget::Kind::playlist:
      case SlotTarget::Kind::key: {
        scratch.assign(target.kind == SlotTarget::Kind::playlist ? prefix_hls : prefix_key);
        scratch.append(target.origin_target);
        if (target.kind == SlotTarget::Kind::key && !target.origin_id.empty()) {
          core::append_query(scratch, std::string(kKeySourceParameter) + "=" + target.origin_id);
        }
        core::append_query(scratch, links.viewer_query);
        return {scratch};
      }
      case SlotTarget::Kind::chunk:
        assert(links.chunk_links != nullptr && next_chunk < links.chunk_links->size());
        return {(*links.chunk_links)[next_chunk++], true};
      case SlotTarget::Kind::passthrough:
        break;
    }
    return {slot.uri};
  };
  std::string out;
  out.reserve(tmpl.literal_bytes() + tmpl.slots().size() * 160);
  hls::render_views_to(out, tmpl, mapper);
  return out;
}

}  // namespace balancer
