// `balancer user add|list|disable|passwd`: account administration against the
// configured store (docs/api.md, "Accounts"). Passwords come from stdin.
#include <openssl/crypto.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>

#include "api/api.h"
#include "api/lmdb_accounts.h"
#include "api/password.h"
#include "api/pg_accounts.h"

namespace api {

namespace {

constexpr const char* kUsage =
    "usage: balancer user add LOGIN | list | disable LOGIN | passwd LOGIN [--config FILE] [--set "
    "key=value]...\n"
    "       (add and passwd read the password from stdin, one line)\n";

// One line from stdin, without the line end; nullopt when empty or too long.
std::optional<std::string> read_password() {
  if (isatty(STDIN_FILENO)) fprintf(stderr, "password: ");
  std::string line;
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty() || line.size() > kMaxPasswordBytes) {
    OPENSSL_cleanse(line.data(), line.size());
    return std::nullopt;
  }
  return line;
}

int fail(const std::string& message, int code = 1) {
  fprintf(stderr, "balancer user: %s\n", message.c_str());
  return code;
}

// The same verbs against PostgreSQL (api.store: postgresql), one statement each.
int run_pg(const std::string& verb, const std::string& login, const ApiConfig& config) {
  const stores::PgOptions& pg = config.postgresql;
  if (auto migrated = migrate_pg_schema(pg); !migrated) return fail(migrated.error().message);
  if (verb == "list") {
    auto r = pg_exec_blocking(pg, "SELECT id, login, disabled FROM users ORDER BY id", {});
    if (!r) return fail(r.error().message);
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      printf("%s\t%s\t%s\n", PQgetvalue(r->get(), i, 0), PQgetvalue(r->get(), i, 1),
             PQgetvalue(r->get(), i, 2)[0] == 't' ? "disabled" : "active");
    }
    return 0;
  }
  if (!valid_login(login)) return fail("a login is 1 to 64 letters, digits or . _ - @ +", 2);
  if (verb == "disable") {
    auto r = pg_exec_blocking(
        pg, "UPDATE users SET disabled = true, session_epoch = session_epoch + 1 WHERE login = $1",
        {login});
    if (!r) return fail(r.error().message);
    if (std::atoi(PQcmdTuples(r->get())) == 0) return fail("no user with login '" + login + "'");
    printf("disabled user %s; its sessions are signed out\n", login.c_str());
    return 0;
  }
  auto password = read_password();
  if (!password)
    return fail(
        "read a password of 1 to " + std::to_string(kMaxPasswordBytes) + " bytes from stdin", 2);
  auto hash = hash_password(*password, config.kdf);
  OPENSSL_cleanse(password->data(), password->size());
  if (!hash) return fail(hash.error().message);
  if (verb == "add") {
    auto r =
        pg_exec_blocking(pg,
                         "INSERT INTO users (login, password_hash, created_at) VALUES ($1, $2, $3) "
                         "ON CONFLICT (login) DO NOTHING RETURNING id",
                         {login, *hash, std::to_string(time(nullptr))});
    if (!r) return fail(r.error().message);
    if (PQntuples(r->get()) == 0) return fail("a user with login '" + login + "' already exists");
    printf("added user %s (id %s)\n", login.c_str(), PQgetvalue(r->get(), 0, 0));
    return 0;
  }
  auto r = pg_exec_blocking(
      pg, "UPDATE users SET password_hash = $2, session_epoch = session_epoch + 1 WHERE login = $1",
      {login, *hash});
  if (!r) return fail(r.error().message);
  if (std::atoi(PQcmdTuples(r->get())) == 0) return fail("no user with login '" + login + "'");
  printf("password of %s changed; its sessions are signed out\n", login.c_str());
  return 0;
}

// What the command line says: the config to load and the words (verb and login).
struct UserCommandLine {
  std::string config_path;
  std::vector<std::string> overrides;
  std::vector<std::string> words;
};

// nullopt (after printing why and the usage) when the command line is not a valid one.
std::optional<UserCommandLine> parse_user_command_line(const std::vector<std::string>& args,
                                                       const std::string& default_config) {
  UserCommandLine line{.config_path = default_config, .overrides = {}, .words = {}};
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--config" || args[i] == "--set") && i + 1 < args.size()) {
      (args[i] == "--config" ? line.config_path : line.overrides.emplace_back()) = args[i + 1];
      ++i;
    } else if (args[i].rfind("--", 0) == 0) {
      fprintf(stderr, "balancer user: unknown option %s\n%s", args[i].c_str(), kUsage);
      return std::nullopt;
    } else {
      line.words.push_back(args[i]);
    }
  }
  if (line.words.empty()) {
    fputs(kUsage, stderr);
    return std::nullopt;
  }
  const std::string& verb = line.words[0];
  const bool needs_login = verb == "add" || verb == "disable" || verb == "passwd";
  if ((verb != "list" && !needs_login) || line.words.size() != (needs_login ? 2u : 1u)) {
    fputs(kUsage, stderr);
    return std::nullopt;
  }
  return line;
}

// One verb against the LMDB store (api.store: lmdb).
struct LmdbCommand {
  LmdbAccounts& accounts;
  const std::string& verb;
  const std::string& login;
  const ApiConfig& config;
  int64_t now;
};

int list_lmdb_users(LmdbAccounts& a) {
  auto users = a.list_users();
  if (!users) {
    fprintf(stderr, "balancer user: %s\n", users.error().message.c_str());
    return 1;
  }
  for (const auto& u : *users) {
    printf("%llu\t%s\t%s\n", static_cast<unsigned long long>(u.id), u.login.c_str(),
           u.disabled ? "disabled" : "active");
  }
  return 0;
}

// add and passwd: both read a password from stdin.
int set_lmdb_password(const LmdbCommand& c) {
  LmdbAccounts& a = c.accounts;
  const std::string& verb = c.verb;
  const std::string& login = c.login;
  auto existing = a.find_user(login);
  if (!existing) {
    fprintf(stderr, "balancer user: %s\n", existing.error().message.c_str());
    return 1;
  }
  if (verb == "add" && existing->has_value()) {
    fprintf(stderr, "balancer user: a user with login '%s' already exists\n", login.c_str());
    return 1;
  }
  if (verb == "passwd" && !existing->has_value()) {
    fprintf(stderr, "balancer user: no user with login '%s'\n", login.c_str());
    return 1;
  }
  auto password = read_password();
  if (!password) {
    fprintf(stderr, "balancer user: read a password of 1 to %zu bytes from stdin\n",
            kMaxPasswordBytes);
    return 2;
  }
  auto hash = hash_password(*password, c.config.kdf);
  OPENSSL_cleanse(password->data(), password->size());
  if (!hash) {
    fprintf(stderr, "balancer user: %s\n", hash.error().message.c_str());
    return 1;
  }
  if (verb == "add") {
    auto user = a.add_user(login, *hash, c.now);
    if (!user) {
      fprintf(stderr, "balancer user: %s\n", user.error().message.c_str());
      return 1;
    }
    printf("added user %s (id %llu)\n", login.c_str(), static_cast<unsigned long long>(user->id));
    return 0;
  }
  User u = **existing;
  u.password_hash = *hash;
  ++u.session_epoch;  // signs out every session of the old password
  if (auto s = a.update_user(u); !s) {
    fprintf(stderr, "balancer user: %s\n", s.error().message.c_str());
    return 1;
  }
  printf("password of %s changed; its sessions are signed out\n", login.c_str());
  return 0;
}

int disable_lmdb_user(LmdbAccounts& a, const std::string& login) {
  auto existing = a.find_user(login);
  if (!existing || !existing->has_value()) {
    fprintf(stderr, "balancer user: no user with login '%s'\n", login.c_str());
    return 1;
  }
  User u = **existing;
  u.disabled = true;
  ++u.session_epoch;
  if (auto s = a.update_user(u); !s) {
    fprintf(stderr, "balancer user: %s\n", s.error().message.c_str());
    return 1;
  }
  printf("disabled user %s; its sessions are signed out\n", login.c_str());
  return 0;
}

// The verbs against LMDB in api.data_dir; `login` is empty for list.
int run_lmdb(const std::string& verb, const std::string& login, const ApiConfig& config) {
  auto accounts = LmdbAccounts::open(config.data_dir);
  if (!accounts) {
    fprintf(stderr, "balancer user: %s\n", accounts.error().message.c_str());
    return 1;
  }
  LmdbAccounts& a = **accounts;
  const int64_t now = static_cast<int64_t>(time(nullptr));
  if (verb == "list") return list_lmdb_users(a);
  if (!valid_login(login)) {
    fprintf(stderr, "balancer user: a login is 1 to 64 letters, digits or . _ - @ +\n");
    return 2;
  }
  if (verb == "add" || verb == "passwd") {
    return set_lmdb_password(
        {.accounts = a, .verb = verb, .login = login, .config = config, .now = now});
  }
  return disable_lmdb_user(a, login);
}

}  // namespace

int run_user_command(const std::vector<std::string>& args, const std::string& default_config,
                     const std::function<core::Result<ApiConfig>(
                         const std::string&, const std::vector<std::string>&)>& load) {
  std::optional<UserCommandLine> line = parse_user_command_line(args, default_config);
  if (!line) return 2;
  const std::string& config_path = line->config_path;
  const std::vector<std::string>& words = line->words;
  const std::string& verb = words[0];
  const bool needs_login = verb == "add" || verb == "disable" || verb == "passwd";
  auto config = load(config_path, line->overrides);
  if (!config) {
    fprintf(stderr, "balancer user: bad config: %s\n", config.error().message.c_str());
    return 2;
  }
  if (config->store == "postgresql")
    return run_pg(verb, needs_login ? words[1] : std::string(), *config);
  if (config->data_dir.empty()) {
    fprintf(stderr, "balancer user: %s: api.data_dir is not set, so there is no account store\n",
            config_path.c_str());
    return 2;
  }
  return run_lmdb(verb, needs_login ? words[1] : std::string(), *config);
}

}  // namespace api
