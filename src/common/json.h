// Small JSON helpers shared by every server: escaping for hand-built bodies and
// the error body of the error contract.
#pragma once

#include <string>
#include <string_view>

namespace common {

// Appends `text` to `out` as a JSON string literal (with quotes).
void append_json_string(std::string& out, std::string_view text);
std::string json_string(std::string_view text);

// {"error":{"code":"...","message":"..."}}
std::string json_error_body(std::string_view code, std::string_view message);

}  // namespace common
