#include "hls/hold_back.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <vector>

namespace hls {
namespace {

constexpr std::string_view kServerControlTag = "#EXT-X-SERVER-CONTROL:";
constexpr std::string_view kTargetDurationTag = "#EXT-X-TARGETDURATION:";
constexpr std::string_view kPartInfTag = "#EXT-X-PART-INF:";

std::optional<double> plain_number(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data() || value < 0) return std::nullopt;
  return value;
}

// The value of `name` in an attribute list ("A=1,B=2"), unquoted attributes only.
std::optional<double> unquoted_attribute(std::string_view list, std::string_view name) {
  for (size_t at = 0; at <= list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const std::string_view item = list.substr(at, comma - at);
    if (item.size() > name.size() && item.substr(0, name.size()) == name &&
        item[name.size()] == '=')
      return plain_number(item.substr(name.size() + 1));
    at = comma + 1;
  }
  return std::nullopt;
}

// `list` without HOLD-BACK and PART-HOLD-BACK (unquoted attributes of EXT-X-SERVER-CONTROL).
std::string without_hold_backs(std::string_view list) {
  std::string out;
  for (size_t at = 0; at < list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const std::string_view item = list.substr(at, comma - at);
    const bool hold = item.rfind("HOLD-BACK=", 0) == 0 || item.rfind("PART-HOLD-BACK=", 0) == 0;
    if (!hold && !item.empty()) {
      if (!out.empty()) out += ',';
      out += item;
    }
    at = comma + 1;
  }
  return out;
}

std::string three_decimals(double value) {
  char text[32];
  const int n = std::snprintf(text, sizeof text, "%.3f", value);
  return std::string(text, static_cast<size_t>(n));
}

struct LineBounds {
  size_t start, end;  // [start, end): the line without its ending
};

}  // namespace

HoldBack hold_back_for(double target_s, double target_duration_s,
                       std::optional<double> part_target_s) {
  HoldBack out;
  out.hold_back_s = std::max(target_s, 3 * target_duration_s);
  if (part_target_s) out.part_hold_back_s = std::max(target_s, 2 * *part_target_s);
  return out;
}

std::optional<std::string> with_hold_back(std::string_view text, double target_s) {
  std::vector<LineBounds> lines;
  std::optional<size_t> target_line, control_line;
  std::optional<double> target_duration, part_target;
  for (size_t at = 0; at < text.size();) {
    const size_t newline = std::min(text.find('\n', at), text.size());
    size_t end = newline;
    if (end > at && text[end - 1] == '\r') --end;
    const std::string_view line = text.substr(at, end - at);
    if (line.rfind(kTargetDurationTag, 0) == 0 && !target_line) {
      target_line = lines.size();
      target_duration = plain_number(line.substr(kTargetDurationTag.size()));
    } else if (line.rfind(kPartInfTag, 0) == 0) {
      part_target = unquoted_attribute(line.substr(kPartInfTag.size()), "PART-TARGET");
    } else if (line.rfind(kServerControlTag, 0) == 0 && !control_line) {
      control_line = lines.size();
    }
    lines.push_back({at, end});
    at = newline + 1;
  }
  if (!target_line || !target_duration) return std::nullopt;
  const HoldBack wanted = hold_back_for(target_s, *target_duration, part_target);
  std::string kept;
  if (control_line) {
    const LineBounds& l = lines[*control_line];
    kept = without_hold_backs(text.substr(l.start + kServerControlTag.size(),
                                          l.end - l.start - kServerControlTag.size()));
  }
  std::string control(kServerControlTag);
  control += kept;
  if (!kept.empty()) control += ',';
  control += "HOLD-BACK=" + three_decimals(wanted.hold_back_s);
  if (wanted.part_hold_back_s)
    control += ",PART-HOLD-BACK=" + three_decimals(*wanted.part_hold_back_s);

  std::string out;
  out.reserve(text.size() + control.size() + 1);
  const LineBounds& anchor = lines[control_line.value_or(*target_line)];
  if (control_line) {
    out.append(text.substr(0, anchor.start)).append(control).append(text.substr(anchor.end));
  } else {
    // A new line after EXT-X-TARGETDURATION's, with that line's ending ("\n" when it has none).
    const size_t newline = text.find('\n', anchor.end);
    const size_t after = newline == std::string_view::npos ? text.size() : newline + 1;
    const std::string_view ending = newline == std::string_view::npos
                                        ? std::string_view("\n")
                                        : text.substr(anchor.end, after - anchor.end);
    out.append(text.substr(0, after));
    if (newline == std::string_view::npos) out.append(ending);
    out.append(control).append(ending).append(text.substr(after));
  }
  return out;
}

}  // namespace hls
