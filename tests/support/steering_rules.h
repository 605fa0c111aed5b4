// What a steered multivariant playlist must satisfy for every player we serve, as a
// test oracle: Media3's checks (androidx/media 1.11, HlsRedundantGroup.Factory, which
// throws ParserException and refuses the stream) plus what the browser players need
// (every variant names its pathway: video.js finds none otherwise; an absolute
// SERVER-URI: Shaka Player cannot resolve another; the tag's PATHWAY-ID one of the
// variants' pathways: Media3's HlsContentSteeringTracker.start() checks it, an
// IllegalStateException otherwise). Media3 groups variants that are
// the same stream (same Format and STABLE-VARIANT-ID) and renditions (same Format,
// STABLE-RENDITION-ID and NAME); the keys here are coarser (BANDWIDTH; TYPE and NAME),
// so a playlist they accept Media3 accepts too. Header-only; needs the hls library.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hls/attribute_list.h"
#include "support/text_lines.h"

namespace test_support {

// "" when `master` passes, else what fails first.
inline std::string steering_rules_problem(std::string_view master) {
  auto attrs = [](std::string_view line) {
    std::map<std::string, std::string> out;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return out;
    for (const auto& a : hls::detail::parse_attribute_list(line.substr(colon + 1)).attrs)
      out.emplace(std::string(a.name), std::string(a.value));
    return out;
  };
  auto value = [](const std::map<std::string, std::string>& m, const std::string& name) {
    auto it = m.find(name);
    return it == m.end() ? std::string() : it->second;
  };
  const std::vector<std::string> lines = balancer::test::split_lines(master);
  bool steering = false;
  std::string start_pathway;
  // key → pathway → playlist URI, for variants and for renditions.
  std::map<std::string, std::map<std::string, std::string>> variant_groups, rendition_groups;
  std::map<std::string, std::string> group_pathway;  // "<TYPE>\n<GROUP-ID>" → pathway
  std::vector<std::map<std::string, std::string>> renditions;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.rfind("#EXT-X-CONTENT-STEERING:", 0) == 0) {
      steering = true;
      start_pathway = value(attrs(line), "PATHWAY-ID");
      std::string server = value(attrs(line), "SERVER-URI");
      if (server.rfind("http://", 0) != 0 && server.rfind("https://", 0) != 0)
        return "SERVER-URI is not absolute: " + server;
    } else if (line.rfind("#EXT-X-MEDIA:", 0) == 0) {
      auto a = attrs(line);
      if (!value(a, "URI").empty()) renditions.push_back(a);
    } else if (line.rfind("#EXT-X-STREAM-INF:", 0) == 0) {
      auto a = attrs(line);
      std::string uri;
      for (size_t j = i + 1; j < lines.size() && uri.empty(); ++j) {
        if (!lines[j].empty() && lines[j][0] != '#') uri = lines[j];
      }
      const std::string pathway = value(a, "PATHWAY-ID");
      if (pathway.empty()) return "a variant without PATHWAY-ID: " + std::string(line);
      auto& by_pathway =
          variant_groups[value(a, "BANDWIDTH") + "\n" + value(a, "STABLE-VARIANT-ID")];
      if (by_pathway.count(pathway) && by_pathway[pathway] != uri)
        return "two look-alike variants of pathway " + pathway + " have different URIs: " + uri;
      by_pathway[pathway] = uri;
      for (const char* type : {"AUDIO", "VIDEO", "SUBTITLES"}) {
        std::string group = value(a, type);
        if (group.empty()) continue;
        auto [it, added] = group_pathway.emplace(std::string(type) + "\n" + group, pathway);
        if (!added && it->second != pathway)
          return std::string(type) + " group " + group + " spans pathways " + it->second + " and " +
                 pathway;
      }
    }
  }
  if (!steering) return "no EXT-X-CONTENT-STEERING";
  if (variant_groups.empty()) return "no variant";
  std::set<std::string> pathways;
  for (const auto& [pathway, uri] : variant_groups.begin()->second) pathways.insert(pathway);
  if (!start_pathway.empty() && !pathways.count(start_pathway))
    return "the steering tag's PATHWAY-ID " + start_pathway + " is no variant's pathway";
  for (const auto& [key, by_pathway] : variant_groups) {
    std::set<std::string> here;
    for (const auto& [pathway, uri] : by_pathway) here.insert(pathway);
    if (here != pathways)
      return "pathways offer different variants (BANDWIDTH " + key.substr(0, key.find('\n')) + ")";
  }
  for (const auto& a : renditions) {
    std::string type = value(a, "TYPE");
    auto it = group_pathway.find(type + "\n" + value(a, "GROUP-ID"));
    if (it == group_pathway.end()) continue;  // no variant of ours refers to it: Media3 skips it
    auto& by_pathway =
        rendition_groups[type + "\n" + value(a, "NAME") + "\n" + value(a, "STABLE-RENDITION-ID")];
    const std::string& uri = a.at("URI");
    if (by_pathway.count(it->second) && by_pathway[it->second] != uri)
      return "two look-alike renditions of pathway " + it->second + " have different URIs: " + uri;
    by_pathway[it->second] = uri;
  }
  for (const auto& [key, by_pathway] : rendition_groups) {
    std::set<std::string> here;
    for (const auto& [pathway, uri] : by_pathway) here.insert(pathway);
    if (here != pathways) return "a rendition is not offered on every pathway: " + key;
  }
  return {};
}

}  // namespace test_support
