#include "balancer/viewers/playlist_mapper.h"

#include <algorithm>
#include <cassert>

#include "balancer/viewers/request_params.h"
#include "core/url.h"
#include "hls/uri.h"

namespace balancer {

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

namespace {

// The replacement of each slot of a viewer's copy, asked in slot order (hls::render_views_to):
// a view valid until the next call.
class ViewerSlots {
 public:
  ViewerSlots(const RewritePlan& plan, const ViewerLinks& links) : plan_(plan), links_(links) {
    prefix_hls_.append(links.balancer_base).append("/hls/").append(links.channel);
    prefix_key_.append(links.balancer_base).append("/key/").append(links.channel);
  }

  hls::Replacement operator()(const hls::UriSlot& slot) {
    const SlotTarget& target = plan_.slots[index_++];
    switch (target.kind) {
      case SlotTarget::Kind::playlist:
      case SlotTarget::Kind::key: {
        scratch_.assign(target.kind == SlotTarget::Kind::playlist ? prefix_hls_ : prefix_key_);
        scratch_.append(target.origin_target);
        if (target.kind == SlotTarget::Kind::key && !target.origin_id.empty()) {
          core::append_query(scratch_, std::string(kKeySourceParameter) + "=" + target.origin_id);
        }
        core::append_query(scratch_, links_.viewer_query);
        return {scratch_};
      }
      case SlotTarget::Kind::chunk:
        assert(links_.chunk_links != nullptr && next_chunk_ < links_.chunk_links->size());
        return {(*links_.chunk_links)[next_chunk_++], true};
      case SlotTarget::Kind::passthrough:
        break;
    }
    return {slot.uri};
  }

 private:
  const RewritePlan& plan_;
  const ViewerLinks& links_;
  std::string prefix_hls_, prefix_key_;
  std::string scratch_;
  size_t index_ = 0;
  size_t next_chunk_ = 0;
};

}  // namespace

std::string render_for_viewer(const hls::Template& tmpl, const RewritePlan& plan,
                              const ViewerLinks& links) {
  assert(plan.slots.size() == tmpl.slots().size());
  ViewerSlots slots(plan, links);
  std::string out;
  out.reserve(tmpl.literal_bytes() + tmpl.slots().size() * 160);
  hls::render_views_to(out, tmpl, slots);
  return out;
}

void render_viewer_slots(const hls::Template& tmpl, const RewritePlan& plan,
                         const ViewerLinks& links, hls::SlotTexts& out) {
  assert(plan.slots.size() == tmpl.slots().size());
  ViewerSlots slots(plan, links);
  hls::render_slot_texts(out, tmpl, slots);
}

}  // namespace balancer
