#include "http/client/coalesced_fetch.h"

namespace http {

std::optional<UpstreamFailure> classify_fetch(const FetchResult& result, int head_status,
                                              bool too_large, bool not_modified_ok) {
  // The cap first: the caller may have cancelled the transfer over it.
  if (too_large) return UpstreamFailure::too_large;
  if (!result.ok) {
    if (result.timed_out) return UpstreamFailure::timeout;
    return head_status != 0 ? UpstreamFailure::broken : UpstreamFailure::unreachable;
  }
  if (result.status == 200 || (result.status == 304 && not_modified_ok)) return std::nullopt;
  if (result.status == 404 || result.status == 410) return UpstreamFailure::not_found;
  return UpstreamFailure::bad_status;
}

UpstreamErrorReply upstream_error(UpstreamFailure failure, const UpstreamWording& wording,
                                  int origin_status) {
  const std::string noun(wording.noun);
  switch (failure) {
    case UpstreamFailure::unreachable:
      return {502, {"origin_unreachable", "The origin could not be reached for the " + noun + "."}};
    case UpstreamFailure::timeout:
      return {504, {"origin_timeout", "The origin did not send the " + noun + " in time."}};
    case UpstreamFailure::broken:
      return {502,
              {"origin_error", "The origin connection failed during the " + noun + " transfer."}};
    case UpstreamFailure::truncated:
      return {
          502,
          {"origin_error", "The origin sent fewer bytes of the " + noun + " than it announced."}};
    case UpstreamFailure::not_found:
      return {404, {"not_found", "The origin has no such " + noun + "."}};
    case UpstreamFailure::bad_status:
      return {502,
              {"origin_error", "The origin answered the " + noun + " request with status " +
                                   std::to_string(origin_status) + "."}};
    case UpstreamFailure::too_large:
      return {
          502,
          {std::string(wording.too_large_code), "The origin's " + noun + " is larger than " +
                                                    std::string(wording.accepter) + " accepts."}};
  }
  return {502, {"origin_error", "The origin's " + noun + " could not be fetched."}};
}

UpstreamErrorReply overflow_error(const UpstreamWording& wording) {
  return {503,
          {"busy", "Too many requests wait for this " + std::string(wording.noun) +
                       "; try again shortly."}};
}

}  // namespace http
