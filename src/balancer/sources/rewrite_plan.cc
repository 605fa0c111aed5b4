#include "balancer/sources/rewrite_plan.h"

#include <algorithm>
#include <cassert>

#include "core/ascii.h"
#include "core/url.h"
#include "hls/uri.h"
#include "signing/url_signing.h"

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

uint64_t chunk_hash(std::string_view origin_target) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : origin_target) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace balancer
