// Small JSON helpers shared by every server: escaping for hand-built bodies,
// the error body of the error contract, and the one way we parse JSON we did
// not write ourselves (request bodies, stored records, health replies, config).
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.h"

namespace core {

// Appends `text` to `out` as a JSON string literal (with quotes).
void append_json_string(std::string& out, std::string_view text);
std::string json_string(std::string_view text);

// Appends `before` as written (a member's name and its punctuation) and then `value` as a JSON
// number: hand-built bodies asked often (a node's /health) without printf or temporaries.
void append_json_number(std::string& out, std::string_view before, uint64_t value);
void append_json_number(std::string& out, std::string_view before, int64_t value);

// {"error":{"code":"...","message":"..."}}
std::string json_error_body(std::string_view code, std::string_view message);

// Deepest array/object nesting accepted from files and peers (config, stored
// records, health replies). Our own documents nest a few levels.
inline constexpr size_t kMaxJsonDepth = 64;

// True when `text` nests arrays or objects more than `max_depth` levels deep.
// One pass over the bytes, no recursion and no allocation; brackets inside
// strings (escapes included) do not count. For invalid JSON the answer covers
// the prefix a parser would accept, which is all a parser could build.
bool json_nesting_exceeds(std::string_view text, size_t max_depth);

// Parses `text` into `doc`. RapidJSON's parser, DOM destructor and our own
// walks recurse once per level, so a deep document is refused before anything
// is built: "json_too_deep" (`doc` untouched) when the nesting passes
// `max_depth`, "malformed_json" (RapidJSON's reason; `doc` holds the parse
// error and its offset) when the text is not JSON. Any thread.
Status parse_json(std::string_view text, rapidjson::Document& doc,
                  size_t max_depth = kMaxJsonDepth);

}  // namespace core
