#include "core/config.h"

#include <filesystem>

#include "core/json.h"
#include "core/log.h"

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace core {
namespace {

std::string describe(const rapidjson::Value& v) {
  if (v.IsString()) return std::string("\"") + v.GetString() + "\"";
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  std::string text = buffer.GetString();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

Status apply_override(rapidjson::Document& doc, const std::string& file, const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Error{"bad_config", file + ": override '" + spec + "': expected key=value"};
  }
  std::string key = spec.substr(0, eq);
  std::string text = spec.substr(eq + 1);
  auto& alloc = doc.GetAllocator();
  rapidjson::Value value;
  rapidjson::Document parsed;
  const Status json = parse_json(text, parsed);
  if (!json && json.error().code == "json_too_deep") {
    return Error{"bad_config", file + ": override '" + key + "': " + json.error().message};
  }
  if (json) {
    value.CopyFrom(parsed, alloc);
  } else {
    value.SetString(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), alloc);
  }
  rapidjson::Value* node = &doc;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part =
        key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) {
      return Error{"bad_config", file + ": override '" + key + "': empty key component"};
    }
    if (!node->IsObject()) {
      return Error{"bad_config", file + ": override '" + key + "': '" + part +
                                     "' is inside a value that is not an object"};
    }
    auto it = node->FindMember(part.c_str());
    if (dot == std::string::npos) {
      if (it != node->MemberEnd()) {
        it->value = value;
      } else {
        node->AddMember(rapidjson::Value(part.c_str(), alloc), value, alloc);
      }
      return {};
    }
    if (it == node->MemberEnd()) {
      node->AddMember(rapidjson::Value(part.c_str(), alloc),
                      rapidjson::Value(rapidjson::kObjectType), alloc);
      it = node->FindMember(part.c_str());
    }
    node = &it->value;
    start = dot + 1;
  }
}

}  // namespace

Result<ConfigDocument> ConfigDocument::load(const std::string& path,
                                            const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"bad_config", path + ": cannot open file"};
  std::ostringstream text;
  text << in.rdbuf();
  return parse(path, text.str(), overrides);
}

Result<ConfigDocument> ConfigDocument::parse(const std::string& name, const std::string& text,
                                             const std::vector<std::string>& overrides) {
  ConfigDocument out;
  out.file_ = name;
  out.doc_ = std::make_shared<rapidjson::Document>();
  const Status json = parse_json(text, *out.doc_);
  if (!json && json.error().code == "json_too_deep")
    return Error{"bad_config", name + ": " + json.error().message};
  if (!json) {
    // Report the line so an operator can find the typo.
    size_t offset = out.doc_->GetErrorOffset();
    size_t line = 1 + static_cast<size_t>(std::count(
                          text.begin(), text.begin() + std::min(offset, text.size()), '\n'));
    return Error{"bad_config", name + ": line " + std::to_string(line) + ": invalid JSON: " +
                                   rapidjson::GetParseError_En(out.doc_->GetParseError())};
  }
  if (!out.doc_->IsObject()) return Error{"bad_config", name + ": top level must be a JSON object"};
  for (const auto& spec : overrides) {
    auto status = apply_override(*out.doc_, name, spec);
    if (!status) return status.error();
  }
  return out;
}

ConfigReader::ConfigReader(const ConfigDocument& doc)
    : ConfigReader(&doc.root(), doc.file(), "", std::make_shared<std::vector<std::string>>()) {}

ConfigReader::ConfigReader(const rapidjson::Value* object, std::string file, std::string prefix,
                           std::shared_ptr<std::vector<std::string>> errors)
    : object_(object),
      file_(std::move(file)),
      prefix_(std::move(prefix)),
      errors_(std::move(errors)) {}

std::string ConfigReader::path(const char* key) const {
  return prefix_.empty() ? key : prefix_ + "." + key;
}

void ConfigReader::error(const char* key, const std::string& problem) {
  errors_->push_back(file_ + ": key '" + path(key) + "': " + problem);
}

void ConfigReader::fail(const char* key, const std::string& problem) {
  error(key, problem);
}

const rapidjson::Value* ConfigReader::find(const char* key) {
  used_.emplace_back(key);
  if (object_ == nullptr || !object_->IsObject()) return nullptr;
  auto it = object_->FindMember(key);
  if (it == object_->MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

bool ConfigReader::has(const char* key) {
  return find(key) != nullptr;
}

std::string ConfigReader::string(const char* key, std::string fallback) {
  const auto* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->IsString()) {
    error(key, "expected a string, got " + describe(*v));
    return fallback;
  }
  return std::string(v->GetString(), v->GetStringLength());
}

std::optional<std::string> ConfigReader::optional_string(const char* key) {
  const auto* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->IsString()) {
    error(key, "expected a string, got " + describe(*v));
    return std::nullopt;
  }
  return std::string(v->GetString(), v->GetStringLength());
}

std::string ConfigReader::must_be_one_of(
    const std::vector<std::pair<const char*, const char*>>& names) {
  std::string text = "must be ";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += i + 1 == names.size() ? " or " : ", ";
    text += '"' + std::string(names[i].first) + '"';
    if (names[i].second) text += " (" + std::string(names[i].second) + ")";
  }
  return text;
}

std::string ConfigReader::required_string(const char* key) {
  const auto* v = find(key);
  if (v == nullptr) {
    error(key, "is required");
    return {};
  }
  if (!v->IsString() || v->GetStringLength() == 0) {
    error(key, "expected a non-empty string, got " + describe(*v));
    return {};
  }
  return std::string(v->GetString(), v->GetStringLength());
}

int64_t ConfigReader::integer(const char* key, int64_t fallback, int64_t min, int64_t max) {
  const auto* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->IsInt64() || v->GetInt64() < min || v->GetInt64() > max) {
    error(key, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                   ", got " + describe(*v));
    return fallback;
  }
  return v->GetInt64();
}

double ConfigReader::number(const char* key, double fallback, double min, double max) {
  const auto* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->IsNumber() || v->GetDouble() < min || v->GetDouble() > max) {
    std::ostringstream range;
    range << "expected a number from " << min << " to " << max << ", got " << describe(*v);
    error(key, range.str());
    return fallback;
  }
  return v->GetDouble();
}

bool ConfigReader::boolean(const char* key, bool fallback) {
  const auto* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->IsBool()) {
    error(key, "expected true or false, got " + describe(*v));
    return fallback;
  }
  return v->GetBool();
}

std::vector<std::string> ConfigReader::string_list(const char* key,
                                                   std::vector<std::string> fallback) {
  const auto* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->IsArray()) {
    error(key, "expected a list of strings, got " + describe(*v));
    return fallback;
  }
  std::vector<std::string> out;
  for (const auto& item : v->GetArray()) {
    if (!item.IsString()) {
      error(key, "expected a list of strings, got element " + describe(item));
      return fallback;
    }
    out.emplace_back(item.GetString(), item.GetStringLength());
  }
  return out;
}

ConfigReader ConfigReader::object(const char* key) {
  const auto* v = find(key);
  if (v != nullptr && !v->IsObject()) {
    error(key, "expected an object, got " + describe(*v));
    v = nullptr;
  }
  return ConfigReader(v, file_, path(key), errors_);
}

std::optional<ConfigReader::StringOrList> ConfigReader::string_or_list(const char* key) {
  const auto* v = find(key);
  if (v == nullptr) return std::nullopt;
  StringOrList out;
  if (v->IsString()) {
    out.text.assign(v->GetString(), v->GetStringLength());
    return out;
  }
  if (!v->IsArray()) {
    error(key, "expected a string or a list of strings, got " + describe(*v));
    return std::nullopt;
  }
  out.is_list = true;
  for (const auto& item : v->GetArray()) {
    if (!item.IsString()) {
      error(key, "expected a list of strings, got element " + describe(item));
      return std::nullopt;
    }
    out.list.emplace_back(item.GetString(), item.GetStringLength());
  }
  return out;
}

void ConfigReader::each_member(const char* key,
                               const std::function<void(const std::string&, ConfigReader&)>& fn) {
  const auto* v = find(key);
  if (v == nullptr) return;
  if (!v->IsObject()) {
    error(key, "expected an object, got " + describe(*v));
    return;
  }
  for (const auto& member : v->GetObject()) {
    std::string name(member.name.GetString(), member.name.GetStringLength());
    if (!member.value.IsObject()) {
      errors_->push_back(file_ + ": key '" + path(key) + "." + name +
                         "': expected an object, got " + describe(member.value));
      continue;
    }
    ConfigReader child(&member.value, file_, path(key) + "." + name, errors_);
    fn(name, child);
    child.finish();
  }
}

void ConfigReader::each_element(const char* key,
                                const std::function<void(size_t, ConfigReader&)>& fn) {
  const auto* v = find(key);
  if (v == nullptr) return;
  if (!v->IsArray()) {
    error(key, "expected a list, got " + describe(*v));
    return;
  }
  size_t index = 0;
  for (const auto& item : v->GetArray()) {
    std::string item_path = path(key) + "[" + std::to_string(index) + "]";
    if (!item.IsObject()) {
      errors_->push_back(file_ + ": key '" + item_path + "': expected an object, got " +
                         describe(item));
    } else {
      ConfigReader child(&item, file_, item_path, errors_);
      fn(index, child);
      child.finish();
    }
    ++index;
  }
}

void ConfigReader::finish() {
  if (object_ == nullptr || !object_->IsObject()) return;
  for (const auto& member : object_->GetObject()) {
    std::string name(member.name.GetString(), member.name.GetStringLength());
    if (std::find(used_.begin(), used_.end(), name) == used_.end()) {
      errors_->push_back(file_ + ": key '" + path(name.c_str()) + "': unknown key");
    }
  }
}

std::string ConfigReader::error_text() const {
  std::string out;
  for (const auto& e : *errors_) {
    if (!out.empty()) out += "\n";
    out += e;
  }
  return out;
}

Status ConfigReader::status() const {
  if (ok()) return {};
  return Error{"bad_config", error_text()};
}

std::string read_log_section(ConfigReader& log) {
  std::string level_name = log.string("level", "info");
  LogLevel level;
  if (!parse_log_level(level_name, level)) log.fail("level", "expected debug, info, warn or error");
  log.finish();
  return level_name;
}

Result<CommandLine> parse_command_line(int argc, char** argv, const std::string& default_config) {
  CommandLine out;
  out.config_path = default_config;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      (void)name;
      return std::string(argv[++i]);
    };
    if (arg == "--config" || arg == "-c") {
      auto v = value("--config");
      if (!v) return Error{"usage", "--config needs a file"};
      out.config_path = *v;
    } else if (arg.rfind("--config=", 0) == 0) {
      out.config_path = arg.substr(9);
    } else if (arg == "--check-config") {
      out.check_config = true;
    } else if (arg == "--set") {
      auto v = value("--set");
      if (!v) return Error{"usage", "--set needs key=value"};
      out.overrides.push_back(*v);
    } else if (arg.rfind("--set=", 0) == 0) {
      out.overrides.push_back(arg.substr(6));
    } else if (arg == "--help" || arg == "-h") {
      out.help = true;
    } else {
      return Error{"usage", "unknown argument '" + arg + "'"};
    }
  }
  return out;
}

}  // namespace core
