#include "stores/lmdb.h"

#include <sys/stat.h>

#include <memory>

namespace stores {

core::Error lmdb_error(const char* what, int rc) {
  return core::Error{"storage_error", std::string(what) + ": " + mdb_strerror(rc)};
}

core::Result<LmdbEnv> LmdbEnv::open(const std::string& dir, size_t map_bytes,
                                    unsigned int max_dbs) {
  mkdir(dir.c_str(), 0750);
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return lmdb_error("mdb_env_create", rc);
  LmdbEnv owner(env);
  if ((rc = mdb_env_set_mapsize(env, map_bytes)) != 0) return lmdb_error("mdb_env_set_mapsize", rc);
  if ((rc = mdb_env_set_maxdbs(env, max_dbs)) != 0) return lmdb_error("mdb_env_set_maxdbs", rc);
  // MDB_NOTLS: read transactions are not tied to threads (we use a worker).
  if ((rc = mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0640)) != 0) {
    return core::Error{"storage_error", "cannot open LMDB at " + dir + ": " + mdb_strerror(rc)};
  }
  return owner;
}

LmdbEnv& LmdbEnv::operator=(LmdbEnv&& other) noexcept {
  if (this != &other) {
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = other.env_;
    other.env_ = nullptr;
  }
  return *this;
}

LmdbEnv::~LmdbEnv() {
  if (env_ != nullptr) mdb_env_close(env_);
}

core::Result<LmdbTxn> LmdbTxn::begin(const LmdbEnv& env, bool read_only) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env.get(), nullptr, read_only ? MDB_RDONLY : 0, &txn);
  if (rc != 0) return lmdb_error("mdb_txn_begin", rc);
  return LmdbTxn(txn);
}

core::Status LmdbTxn::commit() {
  MDB_txn* txn = txn_;
  txn_ = nullptr;
  int rc = mdb_txn_commit(txn);
  if (rc != 0) return lmdb_error("mdb_txn_commit", rc);
  return {};
}

core::Status for_each_record(
    const LmdbTxn& txn, MDB_dbi dbi, std::string_view from,
    const std::function<core::Result<bool>(std::string_view key, std::string_view value)>& visit) {
  MDB_cursor* opened = nullptr;
  int rc = mdb_cursor_open(txn.get(), dbi, &opened);
  if (rc != 0) return lmdb_error("mdb_cursor_open", rc);
  const std::unique_ptr<MDB_cursor, decltype(&mdb_cursor_close)> cursor(opened, mdb_cursor_close);
  MDB_val k = mdb_val(from), v{};
  // LMDB refuses an empty key, so "from the start" is MDB_FIRST.
  for (rc = mdb_cursor_get(cursor.get(), &k, &v, from.empty() ? MDB_FIRST : MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
    core::Result<bool> go_on = visit(to_view(k), to_view(v));
    if (!go_on) return go_on.error();
    if (!*go_on) return {};
  }
  if (rc != MDB_NOTFOUND) return lmdb_error("mdb_cursor_get", rc);
  return {};
}

}  // namespace stores
