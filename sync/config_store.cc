#include "sync/config_store.h"

#include <sys/stat.h>

#include <errno.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <string.h>

#include <cstdlib>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cloudha {
namespace {

// PRAGMA user_version of the layout below. A file with a newer one was
// written by a newer agent and is refused rather than misread.
constexpr int kSchemaVersion = 1;

// Values are bytes: BLOB keeps them exact (NULs, invalid UTF-8). Paths are
// ASCII. WITHOUT ROWID stores kv in one b-tree ordered by path. history.seq
// is a rowid: each insert takes max + 1 and only the oldest rows are
// trimmed, so the newest kConfigHistoryLimit rows are the seq range above
// max - limit.
constexpr const char* kCreateSchema = R"sql(
CREATE TABLE kv(
  path TEXT PRIMARY KEY,
  value BLOB NOT NULL,
  revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE history(
  seq INTEGER PRIMARY KEY,
  revision INTEGER NOT NULL,
  path TEXT NOT NULL,
  value BLOB,
  unix_ms INTEGER NOT NULL
);
CREATE TABLE meta(
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(name, value) VALUES('revision', 0);
PRAGMA user_version = 1;
)sql";

// Most exclusion sets whose root sums are kept; peers use one or a few.
constexpr size_t kMaxCachedRoots = 16;

const EVP_MD* Sha256() {
  // Fetched once: an explicit fetch spares OpenSSL 3 a provider lookup per
  // digest. Never freed, on purpose (used until exit).
  static const EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

std::array<unsigned char, 32> EntryHash(absl::string_view path, absl::string_view value) {
  struct CtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  // One context per thread, reset by each Init: no allocation per entry.
  thread_local std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  std::array<unsigned char, 32> out;
  unsigned int len = 0;
  // SHA-256 in memory fails only when OpenSSL itself is broken (no default
  // provider, out of memory); that is not recoverable.
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), Sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), path.data(), path.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), "\0", 1) != 1 ||
      EVP_DigestUpdate(ctx.get(), value.data(), value.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    abort();
  }
  return out;
}

void XorInto(const std::array<unsigned char, 32>& hash, std::array<unsigned char, 32>* sum) {
  for (size_t i = 0; i < hash.size(); ++i) (*sum)[i] ^= hash[i];
}

std::string HashBytes(const std::array<unsigned char, 32>& hash) {
  return std::string(reinterpret_cast<const char*>(hash.data()), hash.size());
}

struct StatementFree {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementFree>;

// Steps a statement that returns no rows and resets it for the next use.
// Returns the step's result code (SQLITE_DONE on success).
int Run(sqlite3_stmt* stmt) {
  int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  return rc;
}

void BindText(sqlite3_stmt* stmt, int index, absl::string_view text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

void BindBlob(sqlite3_stmt* stmt, int index, absl::string_view bytes) {
  // A non-null pointer, even for an empty value: a null one would bind NULL.
  sqlite3_bind_blob(stmt, index, bytes.empty() ? "" : bytes.data(), static_cast<int>(bytes.size()),
                    SQLITE_STATIC);
}

std::string ColumnBytes(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  int size = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || size <= 0) return std::string();
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

// SQLite's message for the connection, with the system error when there is
// one ("disk I/O error (File too large)").
std::string SqliteMessage(sqlite3* db, int rc) {
  if (db == nullptr) return sqlite3_errstr(rc);
  std::string message = sqlite3_errmsg(db);
  int system_errno = sqlite3_system_errno(db);
  if ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN) {
    if (system_errno != 0) absl::StrAppend(&message, " (", strerror(system_errno), ")");
  }
  return message;
}

bool IsDiskFull(sqlite3* db, int rc) {
  if ((rc & 0xff) == SQLITE_FULL) return true;
  if ((rc & 0xff) != SQLITE_IOERR || db == nullptr) return false;
  // SQLite reports ENOSPC on a short write as SQLITE_FULL, but a write or
  // truncate refused outright (ENOSPC, or EFBIG past RLIMIT_FSIZE or the
  // file system's largest file) as an I/O error.
  int system_errno = sqlite3_system_errno(db);
  return system_errno == ENOSPC || system_errno == EFBIG;
}

}  // namespace

// The prepared statements Apply and History reuse.
struct ConfigStore::Statements {
  Statement begin;
  Statement commit;
  Statement rollback;
  Statement put;
  Statement erase;
  Statement add_history;
  Statement trim_history;
  Statement set_revision;
  Statement set_sum;
  Statement read_history;
};

// A path that an Apply changes: its last change in the call, and where the
// index holds it now (end() when absent).
struct ConfigStore::Planned {
  const ConfigChange* change;
  Index::iterator current;
  Hash new_hash;  // for a put
};

ConfigStore::ConfigStore(std::string file, sqlite3* db, Options options)
    : file_(std::move(file)), db_(db), options_(std::move(options)) {}

ConfigStore::~ConfigStore() {
  // Statements first: a connection with live statements does not close.
  statements_.reset();
  sqlite3_close_v2(db_);
}

absl::StatusOr<std::unique_ptr<ConfigStore>> ConfigStore::Open(const std::string& file,
                                                               Options options) {
  if (options.clock == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("config store ", file, ": no clock given (ConfigStore::Options::clock)"));
  }
  // An existing file of 0 bytes is not a new store but a truncated one:
  // SQLite would take it for an empty database.
  struct stat st;
  if (stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
    return absl::DataLossError(absl::StrCat(
        "config store ", file, " is empty (0 bytes: truncated?); move it away: the agent then "
        "starts with an empty store, which a secondary resyncs from the primary at once (on "
        "the primary, restore a backup or `cloudha config import`)"));
  }
  sqlite3* db = nullptr;
  // NOMUTEX: every use of the connection is under mu_.
  int rc = sqlite3_open_v2(
      file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // The store owns the handle from here on, even a failed one.
  std::unique_ptr<ConfigStore> store(new ConfigStore(file, db, std::move(options)));
  if (rc != SQLITE_OK) return store->OpenError(rc, "opening");
  absl::Status status = store->Init();
  if (!status.ok()) return status;
  return store;
}

absl::Status ConfigStore::OpenError(int rc, absl::string_view what) const {
  std::string message = SqliteMessage(db_, rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::FailedPreconditionError(absl::StrCat(
          "config store ", file_, " is in use by another process (", message,
          "); stop the other agent using this state directory, or give this one another"));
    case SQLITE_NOTADB:
      return absl::DataLossError(
          absl::StrCat("config store ", file_, " is not a SQLite database (", message,
                       "); restore it from a backup, or move it away to start an empty store"));
    case SQLITE_CORRUPT:
      return absl::DataLossError(
          absl::StrCat("config store ", file_, " is corrupt (", message, " while ", what,
                       "); restore it from a backup, or move it away to start an empty store"));
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::FailedPreconditionError(absl::StrCat(
          "config store ", file_, " cannot be opened for writing: ", message,
          "; check that its directory exists and that the file and directory are writable"));
    default:
      break;
  }
  if (IsDiskFull(db_, rc)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("config store ", file_, ": disk full while ", what, ": ", message));
  }
  return absl::InternalError(
      absl::StrCat("config store ", file_, ": ", what, " failed: ", message));
}

absl::Status ConfigStore::WriteError(int rc, absl::string_view what) const {
  std::string message = SqliteMessage(db_, rc);
  if (IsDiskFull(db_, rc)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("config store ", file_, ": disk full, the write was not applied: ", message));
  }
  return absl::InternalError(absl::StrCat("config store ", file_, ": ", what,
                                          " failed, the write was not applied: ", message));
}

absl::Status ConfigStore::ExecLocked(const char* sql, absl::string_view what) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return OpenError(rc, what);
  return absl::OkStatus();
}

absl::Status ConfigStore::Init() {
  absl::MutexLock lock(&mu_);
  absl::Status status = InitLocked();
  // Leave no transaction open behind a failure (the handle is closed soon
  // anyway, but a half-open store must not hold a write transaction).
  if (!status.ok() && sqlite3_get_autocommit(db_) == 0) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

absl::Status ConfigStore::InitLocked() {
  sqlite3_extended_result_codes(db_, 1);
  // Exclusive locking before WAL: the WAL index then lives in this
  // process's memory (no -shm file), and the lock taken by the first read
  // and write below is held until close, so a second agent on the same file
  // fails at once instead of interleaving.
  absl::Status status = ExecLocked("PRAGMA locking_mode = EXCLUSIVE", "setting the locking mode");
  if (!status.ok()) return status;

  // The first statement that reads the file: "not a database" and "in use"
  // show up here.
  {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode = WAL", -1, &raw, nullptr);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return OpenError(rc, "switching to the WAL journal");
    rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) return OpenError(rc, "switching to the WAL journal");
    const unsigned char* mode = sqlite3_column_text(stmt.get(), 0);
    std::string got = mode == nullptr ? "" : reinterpret_cast<const char*>(mode);
    if (got != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("config store ", file_, ": cannot use a WAL journal (SQLite kept \"", got,
                       "\"); the store needs a local file system that supports it"));
    }
  }
  // FULL: in WAL mode every commit syncs the WAL, so an acknowledged commit
  // survives power loss (NORMAL would only survive a crash of the process).
  status = ExecLocked("PRAGMA synchronous = FULL", "setting synchronous = FULL");
  if (!status.ok()) return status;

  // Refuse a damaged file before trusting anything in it. quick_check reads
  // every page (O(size)) but skips the index-vs-table cross checks.
  {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, "PRAGMA quick_check(3)", -1, &raw, nullptr);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return OpenError(rc, "checking integrity");
    std::vector<std::string> problems;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
      std::string line = text == nullptr ? "" : reinterpret_cast<const char*>(text);
      if (line != "ok") problems.push_back(std::move(line));
    }
    if (rc != SQLITE_DONE) return OpenError(rc, "checking integrity");
    if (!problems.empty()) {
      return absl::DataLossError(absl::StrCat(
          "config store ", file_, " is corrupt (integrity check: ", absl::StrJoin(problems, "; "),
          "); restore it from a backup, or move it away to start an empty store"));
    }
  }

  // Schema: created in the same transaction that sets user_version, so a
  // file is either empty or has the whole layout.
  status = ExecLocked("BEGIN EXCLUSIVE", "locking the file");
  if (!status.ok()) return status;
  int version = 0;
  int tables = 0;
  {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_,
                                "SELECT (SELECT user_version FROM pragma_user_version), "
                                "(SELECT count(*) FROM sqlite_schema)",
                                -1, &raw, nullptr);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return OpenError(rc, "reading the schema version");
    rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) return OpenError(rc, "reading the schema version");
    version = sqlite3_column_int(stmt.get(), 0);
    tables = sqlite3_column_int(stmt.get(), 1);
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "config store ", file_, " has schema version ", version, ", newer than this agent's ",
        kSchemaVersion, " (written by a newer cloudha); upgrade this agent"));
  }
  if (version == 0) {
    if (tables != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("config store ", file_,
                       " is a SQLite database but not a config store (it has tables and no schema "
                       "version); point the agent at another file"));
    }
    status = ExecLocked(kCreateSchema, "creating the schema");
    if (!status.ok()) return status;
  }
  status = ExecLocked("COMMIT", "creating the schema");
  if (!status.ok()) return status;

  // The revision and the index.
  {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE name = 'revision'", -1, &raw,
                                nullptr);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return OpenError(rc, "reading the revision");
    rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) {
      if (rc == SQLITE_DONE) {
        return absl::DataLossError(
            absl::StrCat("config store ", file_, " is corrupt (no revision in table meta)"));
      }
      return OpenError(rc, "reading the revision");
    }
    revision_ = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 0));
  }
  {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, "SELECT path, value, revision FROM kv ORDER BY path", -1, &raw,
                                nullptr);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return OpenError(rc, "loading the entries");
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      std::string path = ColumnBytes(stmt.get(), 0);
      Indexed entry;
      entry.value = ColumnBytes(stmt.get(), 1);
      entry.revision = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 2));
      entry.hash = EntryHash(path, entry.value);
      // Rows come in path order (BINARY collation is memcmp, as for
      // std::string), so each insert goes at the end.
      XorInto(entry.hash, &all_.checksum);
      ++all_.count;
      index_.emplace_hint(index_.end(), std::move(path), std::move(entry));
    }
    if (rc != SQLITE_DONE) return OpenError(rc, "loading the entries");
  }

  auto statements = std::make_unique<Statements>();
  struct {
    Statement* slot;
    const char* sql;
  } const wanted[] = {
      {&statements->begin, "BEGIN IMMEDIATE"},
      {&statements->commit, "COMMIT"},
      {&statements->rollback, "ROLLBACK"},
      {&statements->put,
       "INSERT INTO kv(path, value, revision) VALUES(?1, ?2, ?3) "
       "ON CONFLICT(path) DO UPDATE SET value = excluded.value, revision = excluded.revision"},
      {&statements->erase, "DELETE FROM kv WHERE path = ?1"},
      {&statements->add_history,
       "INSERT INTO history(revision, path, value, unix_ms) VALUES(?1, ?2, ?3, ?4)"},
      {&statements->trim_history,
       "DELETE FROM history WHERE seq <= (SELECT max(seq) FROM history) - ?1"},
      {&statements->set_revision, "UPDATE meta SET value = ?1 WHERE name = 'revision'"},
      {&statements->set_sum,
       "INSERT INTO meta(name, value) VALUES('entries_sha256_xor', ?1), ('entries', ?2) "
       "ON CONFLICT(name) DO UPDATE SET value = excluded.value"},
      {&statements->read_history,
       "SELECT revision, path, value, unix_ms FROM history ORDER BY seq DESC LIMIT ?1"},
  };
  for (const auto& w : wanted) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_, w.sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    w.slot->reset(raw);
    if (rc != SQLITE_OK) return OpenError(rc, absl::StrCat("preparing \"", w.sql, "\""));
  }
  statements_ = std::move(statements);
  return VerifyLocked();
}

absl::Status ConfigStore::VerifyLocked() {
  std::optional<std::string> stored_sum;
  std::optional<uint64_t> stored_count;
  {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(
        db_, "SELECT name, value FROM meta WHERE name IN ('entries_sha256_xor', 'entries')", -1,
        &raw, nullptr);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return OpenError(rc, "reading the stored checksum");
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      std::string name = ColumnBytes(stmt.get(), 0);
      if (name == "entries") {
        stored_count = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 1));
      } else {
        stored_sum = ColumnBytes(stmt.get(), 1);
      }
    }
    if (rc != SQLITE_DONE) return OpenError(rc, "reading the stored checksum");
  }
  const std::string sum(reinterpret_cast<const char*>(all_.checksum.data()),
                        all_.checksum.size());
  if (!stored_sum.has_value() || !stored_count.has_value()) {
    // A store from before checksums were stored: start storing them.
    Statements& s = *statements_;
    BindBlob(s.set_sum.get(), 1, sum);
    sqlite3_bind_int64(s.set_sum.get(), 2, static_cast<sqlite3_int64>(all_.count));
    int rc = Run(s.set_sum.get());
    if (rc != SQLITE_DONE) return OpenError(rc, "storing the checksum");
    return absl::OkStatus();
  }
  if (*stored_sum != sum || *stored_count != all_.count) {
    return absl::DataLossError(absl::StrCat(
        "config store ", file_, " does not match its own checksum (", all_.count,
        " entries read, ", *stored_count,
        " committed): a value was changed outside cloudha or the disk corrupted it; move the "
        "file away: the agent then starts with an empty store, which a secondary resyncs from "
        "the primary at once (on the primary, restore a backup or `cloudha config import`)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ConfigCommitResult> ConfigStore::Apply(const std::vector<ConfigChange>& changes) {
  for (size_t i = 0; i < changes.size(); ++i) {
    const ConfigChange& change = changes[i];
    absl::Status status = ValidateConfigPath(change.path);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("change ", i + 1, " of ", changes.size(), ": ",
                                                     status.message(), "; nothing was applied"));
    }
    if (change.value.has_value() && change.value->size() > kMaxConfigValueBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("change ", i + 1, " of ", changes.size(), ": the value of ", change.path,
                       " is ", change.value->size(), " bytes, more than the limit of ",
                       kMaxConfigValueBytes, "; nothing was applied"));
    }
  }
  // Later changes to a path win: only each path's last change counts.
  absl::flat_hash_map<absl::string_view, size_t> last;
  last.reserve(changes.size());
  for (size_t i = 0; i < changes.size(); ++i) last[changes[i].path] = i;

  absl::MutexLock lock(&mu_);
  std::vector<Planned> plan;
  plan.reserve(last.size());
  for (size_t i = 0; i < changes.size(); ++i) {
    const ConfigChange& change = changes[i];
    if (last[change.path] != i) continue;
    auto it = index_.find(change.path);
    if (change.value.has_value()) {
      if (it != index_.end() && it->second.value == *change.value) continue;
      plan.push_back({&change, it, EntryHash(change.path, *change.value)});
    } else {
      if (it == index_.end()) continue;
      plan.push_back({&change, it, Hash{}});
    }
  }
  ConfigCommitResult result;
  if (plan.empty()) return result;

  const uint64_t revision = revision_ + 1;
  Sum all = all_;
  for (const Planned& p : plan) {
    if (p.current != index_.end()) {
      XorInto(p.current->second.hash, &all.checksum);
      --all.count;
    }
    if (p.change->value.has_value()) {
      XorInto(p.new_hash, &all.checksum);
      ++all.count;
    }
  }
  absl::Status status =
      WriteLocked(plan, revision, absl::ToUnixMillis(options_.clock->WallNow()), all);
  if (!status.ok()) return status;
  all_ = all;

  // Committed and synced: bring the memory up to date. Root sums first,
  // while the index still holds the old hashes.
  for (auto& [digest, root] : roots_) {
    for (const Planned& p : plan) {
      if (root.excluded.Excludes(p.change->path)) continue;
      if (p.current != index_.end()) {
        XorInto(p.current->second.hash, &root.sum.checksum);
        --root.sum.count;
      }
      if (p.change->value.has_value()) {
        XorInto(p.new_hash, &root.sum.checksum);
        ++root.sum.count;
      }
    }
  }
  result.revision = revision;
  result.applied.reserve(plan.size());
  for (const Planned& p : plan) {
    ConfigCommitResult::Applied applied;
    applied.path = p.change->path;
    applied.new_value = p.change->value;
    if (p.current != index_.end()) {
      applied.old_value = std::move(p.current->second.value);
      if (p.change->value.has_value()) {
        p.current->second = Indexed{*p.change->value, revision, p.new_hash};
      } else {
        index_.erase(p.current);
      }
    } else {
      index_.emplace(p.change->path, Indexed{*p.change->value, revision, p.new_hash});
    }
    result.applied.push_back(std::move(applied));
  }
  revision_ = revision;
  if (options_.on_commit) options_.on_commit(result);
  return result;
}

absl::Status ConfigStore::WriteLocked(const std::vector<Planned>& plan, uint64_t revision,
                                      int64_t unix_ms, const Sum& all) {
  Statements& s = *statements_;
  // A transaction left open by a rollback that itself failed would make
  // every later BEGIN fail: end it first.
  if (sqlite3_get_autocommit(db_) == 0) Run(s.rollback.get());

  int rc = Run(s.begin.get());
  if (rc != SQLITE_DONE) return WriteError(rc, "starting a transaction");
  // Builds the error from SQLite's message, then rolls back (which resets
  // the message). SQLite may have rolled back already (a full disk or an
  // I/O error during COMMIT can end the transaction).
  auto fail = [&](int code, absl::string_view what) {
    absl::Status error = WriteError(code, what);
    if (sqlite3_get_autocommit(db_) == 0) Run(s.rollback.get());
    return error;
  };

  for (const Planned& p : plan) {
    const ConfigChange& change = *p.change;
    if (change.value.has_value()) {
      BindText(s.put.get(), 1, change.path);
      BindBlob(s.put.get(), 2, *change.value);
      sqlite3_bind_int64(s.put.get(), 3, static_cast<sqlite3_int64>(revision));
      rc = Run(s.put.get());
    } else {
      BindText(s.erase.get(), 1, change.path);
      rc = Run(s.erase.get());
    }
    if (rc != SQLITE_DONE) return fail(rc, absl::StrCat("writing ", change.path));
  }
  // Only the newest kConfigHistoryLimit changes can survive the trim below.
  size_t first = plan.size() > kConfigHistoryLimit ? plan.size() - kConfigHistoryLimit : 0;
  for (size_t i = first; i < plan.size(); ++i) {
    const ConfigChange& change = *plan[i].change;
    sqlite3_stmt* add = s.add_history.get();
    sqlite3_bind_int64(add, 1, static_cast<sqlite3_int64>(revision));
    BindText(add, 2, change.path);
    if (change.value.has_value()) {
      BindBlob(add, 3, *change.value);
    } else {
      sqlite3_bind_null(add, 3);
    }
    sqlite3_bind_int64(add, 4, unix_ms);
    rc = Run(add);
    if (rc != SQLITE_DONE) return fail(rc, "recording history");
  }
  sqlite3_bind_int64(s.trim_history.get(), 1, static_cast<sqlite3_int64>(kConfigHistoryLimit));
  rc = Run(s.trim_history.get());
  if (rc != SQLITE_DONE) return fail(rc, "trimming history");
  sqlite3_bind_int64(s.set_revision.get(), 1, static_cast<sqlite3_int64>(revision));
  rc = Run(s.set_revision.get());
  if (rc != SQLITE_DONE) return fail(rc, "storing the revision");
  BindBlob(s.set_sum.get(), 1,
           absl::string_view(reinterpret_cast<const char*>(all.checksum.data()),
                             all.checksum.size()));
  sqlite3_bind_int64(s.set_sum.get(), 2, static_cast<sqlite3_int64>(all.count));
  rc = Run(s.set_sum.get());
  if (rc != SQLITE_DONE) return fail(rc, "storing the checksum");
  rc = Run(s.commit.get());
  if (rc != SQLITE_DONE) return fail(rc, "committing");
  return absl::OkStatus();
}

std::optional<StoredEntry> ConfigStore::Get(absl::string_view path) const {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(path);
  if (it == index_.end()) return std::nullopt;
  return StoredEntry{it->first, it->second.value, it->second.revision};
}

std::pair<ConfigStore::Index::const_iterator, ConfigStore::Index::const_iterator>
ConfigStore::BelowLocked(absl::string_view prefix) const {
  if (prefix.empty()) return {index_.begin(), index_.end()};
  // Keys below "a.b" are those starting with "a.b.", which sort together,
  // just before the first key starting with "a.b/" ('/' follows '.').
  std::string low = absl::StrCat(prefix, ".");
  std::string high = absl::StrCat(prefix, "/");
  return {index_.lower_bound(low), index_.lower_bound(high)};
}

std::vector<StoredEntry> ConfigStore::List(absl::string_view prefix) const {
  std::vector<StoredEntry> out;
  absl::MutexLock lock(&mu_);
  if (!prefix.empty()) {
    auto it = index_.find(prefix);
    // "a" sorts before every key below it, so the order stays sorted.
    if (it != index_.end()) out.push_back({it->first, it->second.value, it->second.revision});
  }
  auto [first, last] = BelowLocked(prefix);
  for (auto it = first; it != last; ++it) {
    out.push_back({it->first, it->second.value, it->second.revision});
  }
  return out;
}

size_t ConfigStore::size() const {
  absl::MutexLock lock(&mu_);
  return index_.size();
}

uint64_t ConfigStore::revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

std::vector<ConfigHistoryRecord> ConfigStore::History(size_t limit) const {
  std::vector<ConfigHistoryRecord> out;
  if (limit == 0) return out;
  absl::MutexLock lock(&mu_);
  sqlite3_stmt* read = statements_->read_history.get();
  sqlite3_int64 bound = limit > static_cast<size_t>(std::numeric_limits<sqlite3_int64>::max())
                            ? std::numeric_limits<sqlite3_int64>::max()
                            : static_cast<sqlite3_int64>(limit);
  sqlite3_bind_int64(read, 1, bound);
  // A read error (I/O) ends the list early: history is informational.
  while (sqlite3_step(read) == SQLITE_ROW) {
    ConfigHistoryRecord record;
    record.revision = static_cast<uint64_t>(sqlite3_column_int64(read, 0));
    record.path = ColumnBytes(read, 1);
    if (sqlite3_column_type(read, 2) != SQLITE_NULL) record.value = ColumnBytes(read, 2);
    record.unix_ms = sqlite3_column_int64(read, 3);
    out.push_back(std::move(record));
  }
  sqlite3_reset(read);
  return out;
}

ConfigStore::Sum ConfigStore::SubtreeSumLocked(absl::string_view prefix,
                                               const ExclusionSet& excluded) const {
  Sum sum;
  auto add = [&](Index::const_iterator it) {
    if (excluded.Excludes(it->first)) return;
    XorInto(it->second.hash, &sum.checksum);
    ++sum.count;
  };
  if (!prefix.empty()) {
    auto it = index_.find(prefix);
    if (it != index_.end()) add(it);
  }
  auto [first, last] = BelowLocked(prefix);
  for (auto it = first; it != last; ++it) add(it);
  return sum;
}

ConfigStore::Sum ConfigStore::RootSumLocked(const ExclusionSet& excluded) const {
  auto it = roots_.find(excluded.digest());
  if (it == roots_.end()) {
    if (roots_.size() >= kMaxCachedRoots) {
      auto oldest = roots_.begin();
      for (auto r = roots_.begin(); r != roots_.end(); ++r) {
        if (r->second.last_used < oldest->second.last_used) oldest = r;
      }
      roots_.erase(oldest);
    }
    it = roots_.emplace(excluded.digest(), CachedRoot{excluded, SubtreeSumLocked("", excluded), 0})
             .first;
  }
  it->second.last_used = ++root_uses_;
  return it->second.sum;
}

SubtreeChecksum ConfigStore::Checksum(absl::string_view prefix,
                                      const ExclusionSet& excluded) const {
  absl::MutexLock lock(&mu_);
  Sum sum = prefix.empty() ? RootSumLocked(excluded) : SubtreeSumLocked(prefix, excluded);
  SubtreeChecksum out;
  out.prefix = std::string(prefix);
  out.checksum = HashBytes(sum.checksum);
  out.count = sum.count;
  return out;
}

std::vector<SubtreeChecksum> ConfigStore::Children(absl::string_view prefix,
                                                   const ExclusionSet& excluded) const {
  std::vector<SubtreeChecksum> out;
  absl::MutexLock lock(&mu_);
  if (!prefix.empty()) {
    auto it = index_.find(prefix);
    if (it != index_.end() && !excluded.Excludes(it->first)) {
      out.push_back({std::string(prefix), /*exact=*/true, HashBytes(it->second.hash), 1});
    }
  }
  // Children by their own prefix. Keys of one child need not be adjacent in
  // the index ("a.b", "a.b-c", "a.b.x" sort in that order), hence the map.
  std::map<absl::string_view, Sum> children;
  const size_t skip = prefix.empty() ? 0 : prefix.size() + 1;
  auto [first, last] = BelowLocked(prefix);
  for (auto it = first; it != last; ++it) {
    if (excluded.Excludes(it->first)) continue;
    absl::string_view key = it->first;
    absl::string_view child = key.substr(0, key.find('.', skip));
    Sum& sum = children[child];
    XorInto(it->second.hash, &sum.checksum);
    ++sum.count;
  }
  for (const auto& [child, sum] : children) {
    out.push_back({std::string(child), /*exact=*/false, HashBytes(sum.checksum), sum.count});
  }
  return out;
}

}  // namespace cloudha
