// The smuggling table (docs/http.md, "Request framing"): request heads a proxy could frame
// differently from us, each to be refused with nothing behind it read as a request. The HTTP/1
// codec's socketless test (http/http1_codec_test.cc) and the servers' test on the wire
// (integration/http_framing_test.cc) both run it.
#pragma once

#include <string>
#include <vector>

namespace balancer::test {

// Where the head parser refuses a malformed field line before the framing check sees it, the
// code is "bad_request" (not counted by reason).
inline const std::string kParserRefusal = "bad_request";

struct SmugglingCase {
  const char* what;
  std::string head;  // request line + fields + blank line, with `{P}` for the path
  std::string body;  // what the head's framing (as a proxy might read it) covers
  std::string code;  // the framing problem's code (the JSON error's), or kParserRefusal
  bool head_request = false;
};

// `text` with each `{P}` replaced by `path`.
inline std::string with_path(std::string text, const std::string& path) {
  for (size_t at = text.find("{P}"); at != std::string::npos; at = text.find("{P}", at))
    text.replace(at, 3, path);
  return text;
}

inline std::vector<SmugglingCase> smuggling_cases() {
  return {
      {"two different Content-Length values (a reader may take the first)",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n", "AAAAA",
       "repeated_content_length"},
      {"two identical Content-Length fields",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "AAAAA",
       "repeated_content_length"},
      {"Content-Length: 5, 5", "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
       "AAAAA", "bad_content_length"},
      {"Transfer-Encoding: identity, chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"Transfer-Encoding: gzip, chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"Transfer-Encoding: gzip and Transfer-Encoding: chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
       "chunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"Transfer-Encoding: <tab>chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"Transfer-Encoding: <space><tab>chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tchunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"chunked on HTTP/1.0 keep-alive",
       "POST {P} HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
       "0\r\n\r\n", "bad_transfer_encoding"},
      {"Content-Length with Transfer-Encoding: chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       "0\r\n\r\n", "content_length_with_transfer_encoding"},
      {"Content-Length : 5 (a reader may store a field named \"Content-Length \", no body)",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", "AAAAA", kParserRefusal},
      {"Transfer-Encoding : chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", kParserRefusal},
      {"Content-Length: +5 (strtoll reads 5)",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "AAAAA", "bad_content_length"},
      {"Content-Length: 0x5", "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
       "AAAAA", "bad_content_length"},
      {"Content-Length: -1", "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "AAAAA",
       "bad_content_length"},
      {"HEAD with a body (a reader may read none for HEAD)",
       "HEAD {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", "AAAAA", "head_with_body",
       true},
      {"HTTP/1.1 without Host", "GET {P} HTTP/1.1\r\n\r\n", "", "missing_host"},
      {"two Host fields", "GET {P} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "", "repeated_host"},
      {"a Host that is no host", "GET {P} HTTP/1.1\r\nHost: a/b@c\r\n\r\n", "", "bad_host"},
  };
}

// The request hidden behind each refused head: it must never be read, nor answered.
inline std::string smuggled_request(const std::string& path) {
  return "GET " + path + "?smuggled=1 HTTP/1.1\r\nHost: a\r\n\r\n";
}

}  // namespace balancer::test
