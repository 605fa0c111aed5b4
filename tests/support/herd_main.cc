// herd: command-line front end of run_herd (support/herd.h) for scripts/bench.
//   herd --url U -n N [--expect-size S] [--verify-gen] [--timeout-ms T] [-H 'Name: value']
//        [--keep-alive [--hold-s S]] [--json]
// --hold-s: the connections stay open S seconds after the last answer; "holding N" is
// printed on stderr as the hold begins (N: clients answered).
// --verify-gen: the URL names a test_origin /gen/<size>/<name> body (behind any prefix);
// a client whose bytes differ from generated_body(name, size) counts as an error.
// Exit status: 0 when the herd ran (see "ok"/"errors" in the output), 2 on bad usage
// or when the herd could not start.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "support/generated_body.h"
#include "support/herd.h"

namespace {

void usage() {
  std::fprintf(
      stderr,
      "usage: herd --url URL -n N [--expect-size BYTES|1M] [--verify-gen] [--timeout-ms MS]\n"
      "            [-H 'Name: value']... [--keep-alive [--hold-s S]] [--json]\n");
}

int bad_usage() {
  usage();
  return 2;
}

std::optional<long> to_long(const char* s) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0) return std::nullopt;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using balancer::test::HerdOptions;
  HerdOptions options;
  bool json = false;
  bool verify_gen = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_next = i + 1 < argc;
    if (arg == "--json") {
      json = true;
    } else if (arg == "--verify-gen") {
      verify_gen = true;
    } else if (arg == "--keep-alive") {
      options.forbid_reuse = false;
    } else if (arg == "--hold-s" && has_next) {
      const auto v = to_long(argv[++i]);
      if (!v || *v < 1 || *v > 3600) return bad_usage();
      options.hold = std::chrono::seconds(*v);
      options.on_holding = [](size_t answered) {
        std::fprintf(stderr, "holding %zu\n", answered);
        std::fflush(stderr);
      };
    } else if (arg == "--url" && has_next) {
      options.url = argv[++i];
    } else if ((arg == "-n" || arg == "--clients") && has_next) {
      const auto v = to_long(argv[++i]);
      if (!v || *v < 1 || *v > 100000) return bad_usage();
      options.clients = static_cast<int>(*v);
    } else if (arg == "--expect-size" && has_next) {
      const auto v = balancer::test::parse_size(argv[++i]);
      if (!v) return bad_usage();
      options.expect_size = *v;
    } else if (arg == "--timeout-ms" && has_next) {
      const auto v = to_long(argv[++i]);
      if (!v || *v < 1) return bad_usage();
      options.timeout = std::chrono::milliseconds(*v);
    } else if (arg == "-H" && has_next) {
      const std::string h = argv[++i];
      const auto colon = h.find(':');
      if (colon == std::string::npos) return bad_usage();
      std::string value = h.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      options.headers.emplace_back(h.substr(0, colon), value);
    } else {
      usage();
      return 2;
    }
  }
  if (options.url.empty() || (options.hold.count() > 0 && options.forbid_reuse)) {
    usage();
    return 2;
  }
  if (verify_gen) {
    const auto target = balancer::test::generated_target(options.url);
    if (!target) {
      std::fprintf(stderr, "herd: --verify-gen needs a URL with /gen/<size>/<name>\n");
      return 2;
    }
    options.expect_size = target->first;
    options.expect_hash =
        balancer::test::body_hash(balancer::test::generated_body(target->second, target->first));
  }

  const auto result = balancer::test::run_herd(options);
  if (!result.setup_error.empty()) {
    std::fprintf(stderr, "herd: %s\n", result.setup_error.c_str());
    return 2;
  }
  if (json) {
    std::printf("%s\n", result.summary_json(options.url).c_str());
    return 0;
  }
  const auto fb = result.first_byte_ms();
  const auto total = result.total_ms();
  std::printf("url            %s\n", options.url.c_str());
  std::printf("clients        %zu  ok %zu  errors %zu  distinct bodies %zu\n",
              result.clients.size(), result.ok_count(), result.error_count(),
              result.hash_counts().size());
  std::printf("first byte ms  p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", fb.p50, fb.p95, fb.p99,
              fb.max);
  std::printf("total ms       p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", total.p50, total.p95,
              total.p99, total.max);
  for (const auto& c : result.clients) {
    if (!c.ok()) {
      std::printf("first error    %s\n", c.error.c_str());
      break;
    }
  }
  return 0;
}
