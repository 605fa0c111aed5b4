// Typed configuration from JSON files. A component loads its file (plus
// `--set key=value` overrides) into a ConfigDocument and reads it through a
// ConfigReader into an immutable struct; every wrong type, out-of-range value or
// unknown key becomes an error naming the file and the dotted key.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace core {

// A parsed config file with overrides applied. Owns the JSON tree.
class ConfigDocument {
 public:
  // Reads `path` (JSON object) and applies each "dotted.key=value" override; a
  // value that parses as JSON is used as such, anything else as a string.
  // Fails with code "bad_config" naming the file, and the key for overrides.
  static Result<ConfigDocument> load(const std::string& path,
                                     const std::vector<std::string>& overrides);
  // Same from text (tests); `name` stands for the file in messages.
  static Result<ConfigDocument> parse(const std::string& name, const std::string& text,
                                      const std::vector<std::string>& overrides);

  const std::string& file() const { return file_; }
  const rapidjson::Value& root() const { return *doc_; }

 private:
  std::string file_;
  std::shared_ptr<rapidjson::Document> doc_;
};

// Reads typed values from one JSON object, remembering which keys were used so
// that finish() can reject unknown ones. Errors accumulate in a shared list.
class ConfigReader {
 public:
  ConfigReader(const ConfigDocument& doc);  // NOLINT: reads the root object
  ConfigReader(const rapidjson::Value* object, std::string file, std::string prefix,
               std::shared_ptr<std::vector<std::string>> errors);

  // Whether `key` is present (and not null).
  bool has(const char* key);
  std::string string(const char* key, std::string fallback);
  std::optional<std::string> optional_string(const char* key);
  std::string required_string(const char* key);
  int64_t integer(const char* key, int64_t fallback, int64_t min, int64_t max);
  double number(const char* key, double fallback, double min, double max);
  bool boolean(const char* key, bool fallback);
  std::vector<std::string> string_list(const char* key, std::vector<std::string> fallback);
  // A value that is either one string or a list of strings; nullopt when absent
  // or of another type (an error is recorded).
  struct StringOrList {
    bool is_list = false;
    std::string text;               // !is_list
    std::vector<std::string> list;  // is_list
  };
  std::optional<StringOrList> string_or_list(const char* key);
  // A string that names one of a few settings: absent → `fallback`; an unknown name is an
  // error listing the accepted ones, each with its meaning when it has one.
  template <typename T>
  struct Choice {
    const char* name;
    T value;
    const char* meaning = nullptr;
  };
  template <typename T>
  T choice(const char* key, T fallback, std::initializer_list<Choice<T>> choices) {
    const std::optional<std::string> given = optional_string(key);
    if (!given) return fallback;
    std::vector<std::pair<const char*, const char*>> accepted;
    for (const Choice<T>& c : choices) {
      if (*given == c.name) return c.value;
      accepted.emplace_back(c.name, c.meaning);
    }
    fail(key, must_be_one_of(accepted));
    return fallback;
  }
  // A nested object; absent → an empty object (all defaults).
  ConfigReader object(const char* key);
  // Calls fn(name, reader) for each member of the object at `key` (a map).
  void each_member(const char* key,
                   const std::function<void(const std::string&, ConfigReader&)>& fn);
  // Calls fn(index, reader) for each element (objects) of the array at `key`.
  void each_element(const char* key, const std::function<void(size_t, ConfigReader&)>& fn);

  // Records a semantic error about `key` (e.g. "must be below max").
  void fail(const char* key, const std::string& problem);
  // Rejects keys that were never read. Call once after reading everything.
  void finish();

  // All errors so far, one per line, or empty.
  bool ok() const { return errors_->empty(); }
  std::string error_text() const;
  // ok() ? Status{} : Error{"bad_config", error_text()}
  Status status() const;

 private:
  const rapidjson::Value* find(const char* key);
  std::string path(const char* key) const;
  void error(const char* key, const std::string& problem);
  // `must be "a" (meaning), "b" or "c"`
  static std::string must_be_one_of(const std::vector<std::pair<const char*, const char*>>& names);

  const rapidjson::Value* object_;
  std::string file_;
  std::string prefix_;
  std::shared_ptr<std::vector<std::string>> errors_;
  std::vector<std::string> used_;
};

// Reads the "log" section: returns the level name, failing on an unknown one.
std::string read_log_section(ConfigReader& log);

// Command line shared by every binary: --config FILE, --check-config, --set k=v.
struct CommandLine {
  std::string config_path;
  bool check_config = false;
  std::vector<std::string> overrides;
  bool help = false;
};
// Fails with a usage message on unknown arguments.
Result<CommandLine> parse_command_line(int argc, char** argv, const std::string& default_config);

}  // namespace core
