#include "api/lmdb_accounts.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <system_error>
#include <type_traits>
#include <variant>
#include <vector>

#include "api/token.h"
#include "core/json.h"

namespace api {

using core::Error;
using core::Result;
using core::Status;
using stores::LmdbTxn;
using stores::mdb_val;
using stores::to_view;

namespace {

constexpr size_t kMapBytes = size_t{1} << 30;  // 1 GiB of address space; the file grows as used
constexpr char kSchemaKey[] = "schema_version";
constexpr char kNextIdKey[] = "next_user_id";
constexpr char kNextPurchaseKey[] = "next_purchase_id";

std::string id_key(uint64_t id) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i) {
    k[i] = static_cast<char>(id & 0xff);
    id >>= 8;
  }
  return k;
}

// A stored record is one JSON object. Each kind lists its members once (a RecordField
// table), which both writing and reading follow.
using RecordWriter = rapidjson::Writer<rapidjson::StringBuffer>;

template <typename Record>
struct RecordField {
  const char* key;
  std::variant<uint64_t Record::*, int64_t Record::*, bool Record::*, std::string Record::*,
               std::vector<std::string> Record::*>
      field;
  // A record without a required member (or with one of another type) is unreadable; an
  // optional one keeps the field's default.
  bool required = true;
};

template <typename Value>
void write_value(RecordWriter& w, const Value& value) {
  if constexpr (std::is_same_v<Value, uint64_t>) {
    w.Uint64(value);
  } else if constexpr (std::is_same_v<Value, int64_t>) {
    w.Int64(value);
  } else if constexpr (std::is_same_v<Value, bool>) {
    w.Bool(value);
  } else if constexpr (std::is_same_v<Value, std::string>) {
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  } else {
    w.StartArray();
    for (const std::string& item : value) write_value(w, item);
    w.EndArray();
  }
}

// False when `v` is not of the field's type (`out` is then as it was, or partly read).
template <typename Value>
bool read_value(const rapidjson::Value& v, Value& out) {
  if constexpr (std::is_same_v<Value, uint64_t>) {
    if (v.IsUint64()) out = v.GetUint64();
    return v.IsUint64();
  } else if constexpr (std::is_same_v<Value, int64_t>) {
    if (v.IsInt64()) out = v.GetInt64();
    return v.IsInt64();
  } else if constexpr (std::is_same_v<Value, bool>) {
    if (v.IsBool()) out = v.GetBool();
    return v.IsBool();
  } else if constexpr (std::is_same_v<Value, std::string>) {
    if (v.IsString()) out.assign(v.GetString(), v.GetStringLength());
    return v.IsString();
  } else {
    if (!v.IsArray()) return false;
    for (const auto& item : v.GetArray()) {
      if (!read_value(item, out.emplace_back())) return false;
    }
    return true;
  }
}

// The record, as text: `fields` of `record`, then what `write_more(writer)` adds.
template <typename Record, size_t N, typename WriteMore>
std::string encode_record(const Record& record, const RecordField<Record> (&fields)[N],
                          WriteMore&& write_more) {
  rapidjson::StringBuffer buf;
  RecordWriter w(buf);
  w.StartObject();
  for (const RecordField<Record>& f : fields) {
    w.Key(f.key);
    std::visit([&](auto member) { write_value(w, record.*member); }, f.field);
  }
  write_more(w);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

// The record in `text`: `fields`, then what `read_more(document, record)` reads (false when
// it cannot); nullopt when the text is not such a record or a required member is missing.
template <typename Record, size_t N, typename ReadMore>
std::optional<Record> decode_record(std::string_view text, const RecordField<Record> (&fields)[N],
                                    ReadMore&& read_more) {
  rapidjson::Document d;
  if (!core::parse_json(text, d) || !d.IsObject()) return std::nullopt;
  Record record;
  for (const RecordField<Record>& f : fields) {
    auto it = d.FindMember(f.key);
    const bool read =
        it != d.MemberEnd() &&
        std::visit([&](auto member) { return read_value(it->value, record.*member); }, f.field);
    if (!read && f.required) return std::nullopt;
  }
  if (!read_more(d, record)) return std::nullopt;
  return record;
}

// A string member of a decoded record: nullopt when absent or of another type.
std::optional<std::string_view> text_member(const rapidjson::Document& d, const char* key) {
  auto it = d.FindMember(key);
  if (it == d.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string_view(it->value.GetString(), it->value.GetStringLength());
}

const RecordField<User> kUserFields[] = {
    {"id", &User::id},
    {"login", &User::login},
    {"password", &User::password_hash},
    {"disabled", &User::disabled, false},
    {"created_at", &User::created_at, false},
    {"session_epoch", &User::session_epoch, false},
};

std::string encode_user(const User& u) {
  return encode_record(u, kUserFields, [](RecordWriter&) {});
}

std::optional<User> decode_user(std::string_view text) {
  return decode_record(text, kUserFields, [](const rapidjson::Document&, User&) { return true; });
}

uint64_t read_id_key(std::string_view k) {
  uint64_t id = 0;
  for (size_t i = 0; i < 8 && i < k.size(); ++i) id = (id << 8) | static_cast<unsigned char>(k[i]);
  return id;
}

// (And "kind", the product kind's name.)
const RecordField<Purchase> kPurchaseFields[] = {
    {"id", &Purchase::id},
    {"user_id", &Purchase::user_id},
    {"product_id", &Purchase::product_id},
    {"unlocks", &Purchase::unlocks},
    {"key", &Purchase::idempotency_key},
    {"receipt_ref", &Purchase::receipt_ref, false},
    {"created_at", &Purchase::created_at},
    {"expires_at", &Purchase::expires_at},
};

std::string encode_purchase(const Purchase& p) {
  return encode_record(p, kPurchaseFields, [&](RecordWriter& w) {
    w.Key("kind");
    w.String(to_string(p.kind));
  });
}

std::optional<Purchase> decode_purchase(std::string_view text) {
  return decode_record(text, kPurchaseFields, [](const rapidjson::Document& d, Purchase& p) {
    const auto kind = text_member(d, "kind");
    if (kind) p.kind = *kind == "service" ? ProductKind::service : ProductKind::channel;
    return kind.has_value();
  });
}

// (And "hash", the token's hash in base64url.)
const RecordField<Session> kSessionFields[] = {
    {"user_id", &Session::user_id},
    {"created_at", &Session::created_at},
    {"expires_at", &Session::expires_at},
    {"user_epoch", &Session::user_epoch, false},
};

std::string encode_session(const Session& s) {
  return encode_record(s, kSessionFields, [&](RecordWriter& w) {
    const std::string hash = base64url_encode(s.token_hash);
    w.Key("hash");
    write_value(w, hash);
  });
}

std::optional<Session> decode_session(std::string_view text) {
  return decode_record(text, kSessionFields, [](const rapidjson::Document& d, Session& s) {
    const auto hash_text = text_member(d, "hash");
    std::optional<std::string> hash = hash_text ? base64url_decode(*hash_text) : std::nullopt;
    if (hash) s.token_hash = std::move(*hash);
    return hash.has_value();
  });
}

// get → the value, nullopt when absent, or an error.
Result<std::optional<std::string_view>> get(const LmdbTxn& txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = mdb_val(key), v{};
  int rc = mdb_get(txn.get(), dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string_view>();
  if (rc != 0) return stores::lmdb_error("mdb_get", rc);
  return std::optional<std::string_view>(to_view(v));
}

Status put(const LmdbTxn& txn, MDB_dbi dbi, std::string_view key, std::string_view value,
           unsigned flags = 0) {
  MDB_val k = mdb_val(key), v = mdb_val(value);
  int rc = mdb_put(txn.get(), dbi, &k, &v, flags);
  if (rc != 0) return stores::lmdb_error("mdb_put", rc);
  return {};
}

Error corrupt(const std::string& what) {
  return Error{"storage_error", "account store: unreadable " + what};
}

// A stored record, decoded: nullopt when absent, an error when unreadable.
template <typename Record>
Result<std::optional<Record>> get_record(const LmdbTxn& txn, MDB_dbi dbi, std::string_view key,
                                         std::optional<Record> (*decode)(std::string_view),
                                         const char* what) {
  auto text = get(txn, dbi, key);
  if (!text) return text.error();
  if (!text->has_value()) return std::optional<Record>();
  std::optional<Record> record = decode(**text);
  if (!record) return corrupt(what);
  return record;
}

// The next id of a counter in `meta` (1 when it has none yet); the counter moves on.
Result<uint64_t> take_next_id(const LmdbTxn& txn, MDB_dbi meta, const char* counter) {
  auto next = get(txn, meta, counter);
  if (!next) return next.error();
  uint64_t id = 1;
  if (next->has_value()) {
    std::string_view text = **next;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size()) return corrupt(counter);
  }
  if (auto s = put(txn, meta, counter, std::to_string(id + 1)); !s) return s.error();
  return id;
}

}  // namespace

Result<std::unique_ptr<LmdbAccounts>> LmdbAccounts::open(const std::string& dir) {
  // Like the cache node's data_dir: created on first start (owner-only: it holds password hashes).
  std::error_code fs_error;
  const bool created = std::filesystem::create_directories(dir, fs_error);
  if (fs_error) {
    return Error{"storage_error", "account store at " + dir +
                                      ": cannot create the directory: " + fs_error.message()};
  }
  if (created) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, fs_error);
  }
  auto env = stores::LmdbEnv::open(dir, kMapBytes, 8);
  if (!env) return Error{"storage_error", "account store at " + dir + ": " + env.error().message};
  std::unique_ptr<LmdbAccounts> a(new LmdbAccounts(dir, std::move(env).value()));
  auto txn = LmdbTxn::begin(a->env_, false);
  if (!txn) return Error{"storage_error", "account store at " + dir + ": " + txn.error().message};
  struct Db {
    const char* name;
    MDB_dbi* dbi;
  };
  for (Db db :
       {Db{"meta", &a->meta_}, Db{"users", &a->users_}, Db{"user_ids", &a->user_ids_},
        Db{"sessions", &a->sessions_}, Db{"purchases", &a->purchases_},
        Db{"user_purchases", &a->user_purchases_}, Db{"purchase_keys", &a->purchase_keys_}}) {
    int rc = mdb_dbi_open(txn->get(), db.name, MDB_CREATE, db.dbi);
    if (rc != 0) {
      return Error{"storage_error", "account store at " + dir + ": cannot open sub-database " +
                                        db.name + ": " + mdb_strerror(rc)};
    }
  }
  auto version = get(*txn, a->meta_, kSchemaKey);
  if (!version) return version.error();
  if (!version->has_value()) {
    if (auto s = put(*txn, a->meta_, kSchemaKey, std::to_string(kSchemaVersion)); !s)
      return s.error();
  } else {
    std::string_view text = **version;
    int v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < 1) {
      return Error{"storage_error", "account store at " + dir + ": unreadable schema version '" +
                                        std::string(text) + "'"};
    }
    if (v > kSchemaVersion) {
      return Error{"storage_error",
                   "account store at " + dir + " has schema version " + std::to_string(v) +
                       ", newer than this build understands (" + std::to_string(kSchemaVersion) +
                       "): run a newer balancer or restore a backup"};
    }
    // Version 1 lacked the purchase sub-databases, created above in this transaction.
    if (v < kSchemaVersion) {
      if (auto s = put(*txn, a->meta_, kSchemaKey, std::to_string(kSchemaVersion)); !s)
        return s.error();
    }
  }
  if (auto s = txn->commit(); !s)
    return Error{"storage_error", "account store at " + dir + ": " + s.error().message};
  return a;
}

Result<User> LmdbAccounts::add_user(const std::string& login, const std::string& password_hash,
                                    int64_t now) {
  auto txn = LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  auto existing = get(*txn, users_, login);
  if (!existing) return existing.error();
  if (existing->has_value())
    return Error{"conflict", "a user with login '" + login + "' already exists"};
  auto id = take_next_id(*txn, meta_, kNextIdKey);
  if (!id) return id.error();
  User u;
  u.id = *id;
  u.login = login;
  u.password_hash = password_hash;
  u.created_at = now;
  if (auto s = put(*txn, users_, login, encode_user(u)); !s) return s.error();
  if (auto s = put(*txn, user_ids_, id_key(u.id), login); !s) return s.error();
  if (auto s = txn->commit(); !s) return s.error();
  return u;
}

Result<std::optional<User>> LmdbAccounts::find_user(const std::string& login) const {
  auto txn = LmdbTxn::begin(env_, true);
  if (!txn) return txn.error();
  return get_record(*txn, users_, login, decode_user, "user record");
}

Result<std::optional<User>> LmdbAccounts::find_user_by_id(uint64_t id) const {
  auto txn = LmdbTxn::begin(env_, true);
  if (!txn) return txn.error();
  return user_by_id(*txn, id);
}

Result<std::optional<User>> LmdbAccounts::user_by_id(const LmdbTxn& txn, uint64_t id) const {
  auto login = get(txn, user_ids_, id_key(id));
  if (!login) return login.error();
  if (!login->has_value()) return std::optional<User>();
  return get_record(txn, users_, **login, decode_user, "user record");
}

Result<std::vector<User>> LmdbAccounts::list_users() const {
  auto txn = LmdbTxn::begin(env_, true);
  if (!txn) return txn.error();
  std::vector<User> out;
  auto walked = stores::for_each_record(
      *txn, user_ids_, {}, [&](std::string_view, std::string_view login) -> Result<bool> {
        auto user = get_record(*txn, users_, login, decode_user, "user record");
        if (!user) return user.error();
        if (*user) out.push_back(std::move(**user));
        return true;
      });
  if (!walked) return walked.error();
  return out;
}

Status LmdbAccounts::update_user(const User& user) {
  auto txn = LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  auto v = get(*txn, users_, user.login);
  if (!v) return v.error();
  if (!v->has_value()) return Error{"not_found", "no user with login '" + user.login + "'"};
  auto old = decode_user(**v);
  if (!old) return corrupt("user record");
  if (old->id != user.id) return Error{"conflict", "user '" + user.login + "' changed meanwhile"};
  if (auto s = put(*txn, users_, user.login, encode_user(user)); !s) return s;
  return txn->commit();
}

Result<bool> LmdbAccounts::replace_password_hash(uint64_t user_id, const std::string& old_hash,
                                                 const std::string& new_hash) {
  auto txn = LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  auto login = get(*txn, user_ids_, id_key(user_id));
  if (!login) return login.error();
  if (!login->has_value()) return false;
  const std::string login_key(**login);
  auto v = get(*txn, users_, login_key);
  if (!v) return v.error();
  if (!v->has_value()) return false;
  auto u = decode_user(**v);
  if (!u) return corrupt("user record");
  if (u->id != user_id || u->password_hash != old_hash) return false;
  u->password_hash = new_hash;
  if (auto s = put(*txn, users_, login_key, encode_user(*u)); !s) return s.error();
  if (auto s = txn->commit(); !s) return s.error();
  return true;
}

Status LmdbAccounts::put_session(const Session& session) {
  auto txn = LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  if (auto s = put(*txn, sessions_, session.token_hash, encode_session(session)); !s) return s;
  return txn->commit();
}

Result<std::optional<SessionInfo>> LmdbAccounts::find_session(const std::string& token_hash) const {
  auto txn = LmdbTxn::begin(env_, true);
  if (!txn) return txn.error();
  auto s = get_record(*txn, sessions_, token_hash, decode_session, "session record");
  if (!s) return s.error();
  if (!*s) return std::optional<SessionInfo>();
  // The key lookup found it; the stored hash is compared again in constant time.
  if (!hashes_equal((*s)->token_hash, token_hash)) return std::optional<SessionInfo>();
  auto u = user_by_id(*txn, (*s)->user_id);
  if (!u) return u.error();
  if (!*u) return std::optional<SessionInfo>();
  return std::optional<SessionInfo>(SessionInfo{std::move(**s), std::move(**u)});
}

Result<bool> LmdbAccounts::delete_session(const std::string& token_hash) {
  auto txn = LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  MDB_val k = mdb_val(token_hash);
  int rc = mdb_del(txn->get(), sessions_, &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return stores::lmdb_error("mdb_del", rc);
  if (auto s = txn->commit(); !s) return s.error();
  return true;
}

Result<bool> LmdbAccounts::extend_session(const std::string& token_hash, int64_t expires_at) {
  auto txn = LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  auto s = get_record(*txn, sessions_, token_hash, decode_session, "session record");
  if (!s) return s.error();
  if (!*s) return false;
  if ((*s)->expires_at >= expires_at) return true;
  (*s)->expires_at = expires_at;
  if (auto st = put(*txn, sessions_, token_hash, encode_session(**s)); !st) return st.error();
  if (auto st = txn->commit(); !st) return st.error();
  return true;
}

Result<PurchaseOutcome> LmdbAccounts::add_purchase(Purchase purchase) {
  auto txn = LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  const std::string key_key = id_key(purchase.user_id) + purchase.idempotency_key;
  auto earlier = get(*txn, purchase_keys_, key_key);
  if (!earlier) return earlier.error();
  if (earlier->has_value()) {
    auto p = get_record(*txn, purchases_, **earlier, decode_purchase, "purchase record");
    if (!p) return p.error();
    if (!*p) return corrupt("purchase key");
    return PurchaseOutcome{std::move(**p), false};
  }
  auto id = take_next_id(*txn, meta_, kNextPurchaseKey);
  if (!id) return id.error();
  purchase.id = *id;
  const std::string purchase_key = id_key(purchase.id);
  if (auto s = put(*txn, purchases_, purchase_key, encode_purchase(purchase)); !s) return s.error();
  if (auto s = put(*txn, user_purchases_, id_key(purchase.user_id) + purchase_key, ""); !s)
    return s.error();
  if (auto s = put(*txn, purchase_keys_, key_key, purchase_key); !s) return s.error();
  if (auto s = txn->commit(); !s) return s.error();
  return PurchaseOutcome{std::move(purchase), true};
}

Result<std::optional<Purchase>> LmdbAccounts::find_purchase(uint64_t id) const {
  auto txn = LmdbTxn::begin(env_, true);
  if (!txn) return txn.error();
  return get_record(*txn, purchases_, id_key(id), decode_purchase, "purchase record");
}

Result<std::optional<Purchase>> LmdbAccounts::find_purchase_by_key(uint64_t user_id,
                                                                   const std::string& key) const {
  std::optional<uint64_t> id;
  {
    auto txn = LmdbTxn::begin(env_, true);
    if (!txn) return txn.error();
    auto v = get(*txn, purchase_keys_, id_key(user_id) + key);
    if (!v) return v.error();
    if (!v->has_value()) return std::optional<Purchase>();
    id = read_id_key(**v);
  }
  return find_purchase(*id);
}

Result<std::vector<Purchase>> LmdbAccounts::list_purchases(uint64_t user_id) const {
  auto txn = LmdbTxn::begin(env_, true);
  if (!txn) return txn.error();
  const std::string prefix = id_key(user_id);
  std::vector<Purchase> out;
  auto walked = stores::for_each_record(
      *txn, user_purchases_, prefix, [&](std::string_view key, std::string_view) -> Result<bool> {
        if (key.size() != 16 || key.substr(0, 8) != prefix) return false;
        auto p = get_record(*txn, purchases_, key.substr(8), decode_purchase, "purchase record");
        if (!p) return p.error();
        if (*p) out.push_back(std::move(**p));
        return true;
      });
  if (!walked) return walked.error();
  std::reverse(out.begin(), out.end());  // ids grow with time: newest first
  return out;
}

Result<size_t> LmdbAccounts::purge_expired(int64_t now, size_t max) {
  auto txn = LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  if (max == 0) return size_t{0};
  std::vector<std::string> expired;
  auto walked = stores::for_each_record(
      *txn, sessions_, {}, [&](std::string_view key, std::string_view value) -> Result<bool> {
        auto s = decode_session(value);
        if (!s || s->expires_at < now) expired.emplace_back(key);
        return expired.size() < max;
      });
  if (!walked) return walked.error();
  if (expired.empty()) return size_t{0};
  for (const std::string& key : expired) {
    MDB_val k = mdb_val(key);
    if (int rc = mdb_del(txn->get(), sessions_, &k, nullptr); rc != 0) {
      return stores::lmdb_error("mdb_del", rc);
    }
  }
  if (auto s = txn->commit(); !s) return s.error();
  return expired.size();
}

}  // namespace api
