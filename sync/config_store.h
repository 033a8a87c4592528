// The config store: path -> value, durable in SQLite (WAL journal,
// synchronous=FULL, exclusive locking), with an in-memory index for reads
// and checksums.
//
// Every Apply is one SQLite transaction and gets the next revision; an Apply
// that returns OK is on disk (fsync'd) and survives kill -9 or power loss. A
// failed Apply (full disk, I/O error) is rolled back: neither the file nor
// the in-memory index changes. The store keeps the last 1000 path changes as
// history.
//
// Checksums: every entry hashes to SHA-256(path || '\0' || value); the
// checksum of a subtree under an exclusion set is the XOR of the hashes of
// its entries that the set does not exclude (32 bytes; all zero when empty).
// XOR makes them incremental: the root checksum per exclusion set is kept
// up to date by Apply in O(changed paths).
//
// Thread-safe: one internal mutex; Apply runs under it, so commits are
// totally ordered and `on_commit` (see Options) sees them in revision order.
#ifndef CLOUDHA_SYNC_CONFIG_STORE_H_
#define CLOUDHA_SYNC_CONFIG_STORE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "sync/config_path.h"

struct sqlite3;

namespace cloudha {

inline constexpr size_t kConfigHistoryLimit = 1000;

struct StoredEntry {
  std::string path;
  std::string value;
  // Revision of the commit that last wrote it.
  uint64_t revision = 0;
};

// One change in a commit: a put, or a delete when `value` is empty
// (std::nullopt).
struct ConfigChange {
  std::string path;
  std::optional<std::string> value;
};

// What a commit did: only the changes that changed something (a put of the
// value already stored, or a delete of an absent path, is dropped), with
// the values they replaced.
struct ConfigCommitResult {
  // 0 when nothing changed (no revision is used then).
  uint64_t revision = 0;
  struct Applied {
    std::string path;
    std::optional<std::string> old_value;  // nullopt: was absent
    std::optional<std::string> new_value;  // nullopt: deleted
  };
  std::vector<Applied> applied;
};

struct ConfigHistoryRecord {
  uint64_t revision = 0;
  std::string path;
  std::optional<std::string> value;  // nullopt: deleted
  int64_t unix_ms = 0;               // wall-clock time of the commit
};

struct SubtreeChecksum {
  // The subtree's prefix ("" is the root). With `exact`, only the entry at
  // exactly this path (see Children).
  std::string prefix;
  bool exact = false;
  // 32 bytes (XOR of entry hashes), all zero when count is 0.
  std::string checksum;
  uint64_t count = 0;
};

class ConfigStore {
 public:
  struct Options {
    // Called under the store's lock after each commit that changed
    // something, in revision order. Must not call back into the store.
    std::function<void(const ConfigCommitResult&)> on_commit;
    // Wall-clock source for history timestamps (Clock::WallNow). Required;
    // outlives the store.
    Clock* clock = nullptr;
  };

  // Opens or creates the database file (its directory must exist). Errors
  // name the file: not a database, corrupt (integrity check fails), in use
  // by another process (exclusive lock), unreadable, newer schema.
  static absl::StatusOr<std::unique_ptr<ConfigStore>> Open(const std::string& file,
                                                           Options options);
  ~ConfigStore();
  ConfigStore(const ConfigStore&) = delete;
  ConfigStore& operator=(const ConfigStore&) = delete;

  // Validates every path (ValidateConfigPath) and value size
  // (kMaxConfigValueBytes) first: INVALID_ARGUMENT and nothing applied.
  // Then applies all changes in one transaction (later changes to the same
  // path win). A full disk is RESOURCE_EXHAUSTED ("config store <file>: disk
  // full, the write was not applied: ..."); other SQLite errors INTERNAL
  // with SQLite's message. On error nothing changed.
  absl::StatusOr<ConfigCommitResult> Apply(const std::vector<ConfigChange>& changes);

  std::optional<StoredEntry> Get(absl::string_view path) const;
  // Entries in the subtree `prefix` ("" = all), sorted by path.
  std::vector<StoredEntry> List(absl::string_view prefix) const;
  // Number of entries.
  size_t size() const;
  // Revision of the last commit (0 for a new store).
  uint64_t revision() const;
  // The newest history records, newest first, at most `limit`.
  std::vector<ConfigHistoryRecord> History(size_t limit) const;

  // Checksum and count of the subtree `prefix` over entries `excluded` does
  // not exclude. Root ("") under a given set is O(1) after the first call
  // for that set (kept incrementally); other prefixes scan the subtree.
  SubtreeChecksum Checksum(absl::string_view prefix, const ExclusionSet& excluded) const;
  // The children of `prefix` one segment down: for every distinct next
  // segment s with a non-excluded entry at or below prefix.s, the checksum
  // of subtree prefix.s; and, if a non-excluded entry exists at exactly
  // `prefix` (not for the root), one item with exact = true for it. Sorted
  // by prefix, the exact item first.
  std::vector<SubtreeChecksum> Children(absl::string_view prefix,
                                        const ExclusionSet& excluded) const;

  const std::string& file() const { return file_; }

 private:
  // SHA-256(path || '\0' || value).
  using Hash = std::array<unsigned char, 32>;
  struct Indexed {
    std::string value;
    uint64_t revision = 0;
    Hash hash{};
  };
  using Index = std::map<std::string, Indexed, std::less<>>;
  // XOR of entry hashes, and how many entries it covers.
  struct Sum {
    Hash checksum{};
    uint64_t count = 0;
  };
  // The root checksum under one exclusion set, kept up to date by Apply.
  struct CachedRoot {
    ExclusionSet excluded;
    Sum sum;
    uint64_t last_used = 0;  // for evicting the least recently used
  };
  // One path that Apply changes (see Apply in the .cc).
  struct Planned;
  // The cached prepared statements (defined in the .cc).
  struct Statements;

  ConfigStore(std::string file, sqlite3* db, Options options);
  // Pragmas, integrity check, schema, loading the index, statements.
  absl::Status Init();
  absl::Status InitLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The status for SQLite result code `rc` while opening / writing; reads
  // SQLite's message, so call it before anything else touches the
  // connection.
  absl::Status OpenError(int rc, absl::string_view what) const;
  absl::Status WriteError(int rc, absl::string_view what) const;
  // Runs SQL without results (pragmas, schema) while opening.
  absl::Status ExecLocked(const char* sql, absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `plan` as revision `revision` in one transaction; on error rolls
  // back.
  // `all` is the sum over every entry after the write, stored with it.
  absl::Status WriteLocked(const std::vector<Planned>& plan, uint64_t revision, int64_t unix_ms,
                           const Sum& all) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Compares the sum over the rows just loaded with the one the last commit
  // stored (stores it when the file has none yet).
  absl::Status VerifyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Entries strictly below `prefix` (all entries for the root): a range of
  // the index, since keys with a common prefix sort together.
  std::pair<Index::const_iterator, Index::const_iterator> BelowLocked(
      absl::string_view prefix) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Sum SubtreeSumLocked(absl::string_view prefix, const ExclusionSet& excluded) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Sum RootSumLocked(const ExclusionSet& excluded) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string file_;
  sqlite3* const db_;  // owned; closed by the destructor
  const Options options_;
  mutable absl::Mutex mu_;
  std::unique_ptr<Statements> statements_ ABSL_GUARDED_BY(mu_);
  Index index_ ABSL_GUARDED_BY(mu_);
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  // The sum over every entry (no exclusions): stored in the file with each
  // commit and checked against the rows when the store opens.
  Sum all_ ABSL_GUARDED_BY(mu_);
  // Root sums by ExclusionSet::digest(), at most a few sets (LRU).
  mutable std::map<std::string, CachedRoot> roots_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t root_uses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_STORE_H_
