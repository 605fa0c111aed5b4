// RAII owners for LMDB: an environment, and transactions that abort in their
// destructor unless committed. Errors come back as Result with LMDB's message.
#pragma once

#include <lmdb.h>

#include <functional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace stores {

class LmdbEnv {
 public:
  // Opens (creating) the environment directory `dir` with a map of `map_bytes`.
  static core::Result<LmdbEnv> open(const std::string& dir, size_t map_bytes,
                                    unsigned int max_dbs = 4);
  LmdbEnv(LmdbEnv&& other) noexcept : env_(other.env_) { other.env_ = nullptr; }
  LmdbEnv& operator=(LmdbEnv&& other) noexcept;
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;
  ~LmdbEnv();
  MDB_env* get() const { return env_; }

 private:
  explicit LmdbEnv(MDB_env* env) : env_(env) {}
  MDB_env* env_ = nullptr;
};

class LmdbTxn {
 public:
  static core::Result<LmdbTxn> begin(const LmdbEnv& env, bool read_only);
  LmdbTxn(LmdbTxn&& other) noexcept : txn_(other.txn_) { other.txn_ = nullptr; }
  LmdbTxn(const LmdbTxn&) = delete;
  LmdbTxn& operator=(const LmdbTxn&) = delete;
  LmdbTxn& operator=(LmdbTxn&&) = delete;
  ~LmdbTxn() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  MDB_txn* get() const { return txn_; }
  core::Status commit();

 private:
  explicit LmdbTxn(MDB_txn* txn) : txn_(txn) {}
  MDB_txn* txn_ = nullptr;
};

inline MDB_val mdb_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
inline std::string_view to_view(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}
core::Error lmdb_error(const char* what, int rc);

// Visits the records of `dbi` in key order from the first key not below `from` (from the
// first record when `from` is empty) while `visit(key, value)` answers true. The views
// live as long as the transaction. Errors: LMDB's, or the first one `visit` returns.
core::Status for_each_record(
    const LmdbTxn& txn, MDB_dbi dbi, std::string_view from,
    const std::function<core::Result<bool>(std::string_view key, std::string_view value)>& visit);

}  // namespace stores
