// Who may watch: the viewer key a request's credentials give (playback ticket or, on a free
// channel, a viewer id), and who asks, as admission's per-address and per-account bounds count
// it (viewer_access.cc). Pure functions of the running config; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "balancer/operator/balancer_config.h"
#include "balancer/viewers/admission_names.h"
#include "balancer/viewers/request_params.h"
#include "core/result.h"

namespace balancer {

// The viewer key ("t:<ticket viewer>" or "v:<viewer id>") that `request`'s
// credentials give on `channel` at `now_unix`, or why not (ticket_*,
// credentials_required, ticket_required).
core::Result<std::string> authorize_viewer(const RuntimeConfig& rc, const ViewerRequest& request,
                                           const ChannelConfig& channel, int64_t now_unix);
// The status of an authorize_viewer() error: 403 for ticket_wrong_channel and
// not_entitled (a paid channel asked for with a made-up viewer id), else 401.
int credential_error_status(const std::string& code);
// Who asks, for admission's per-address bounds (anonymous viewers, queue tickets): the client's
// network (core::address_group_key: its IPv4 address, its IPv6 address's
// server.ipv6_prefix_length bits) unless its address is in limits.per_address_exempt; anonymous
// when the key is a made-up viewer id ("v:"). For limits.max_streams_per_account: the account of
// a ticket whose viewer id names one (ticket_account). Owns the text admission's ViewerSource
// views.
struct ViewerOrigin {
  std::string network;  // "" = not counted per address
  bool anonymous = false;
  std::string account;  // "" = not counted per account
  ViewerSource source() const { return {network, anonymous, account}; }
};
ViewerOrigin viewer_origin(const RuntimeConfig& rc, const std::string& remote_ip,
                           std::string_view viewer_key);
// The account a stream key ("t:<ticket viewer id>") plays for: a ticket viewer id
// "<account>/<device>" (as the access check issues them, "u<user id>/s<session>") names
// <account>; any other key names none ("").
std::string_view ticket_account(std::string_view viewer_key);

}  // namespace balancer
