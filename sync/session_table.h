// The session table: every session of the data plane (on a primary) or the
// replica of the primary's (on a secondary), built for millions of entries.
//
// On a primary the table also decides what crosses to the secondaries and
// records it, in order, in a ChangeLog that replication streams read:
// - pickup_connectionless off: only TCP and SCTP sessions are replicated;
// - pickup_delay: a session is replicated only once it is that old (checked
//   on each change and by Tick), so short-lived ones never cross;
// - a delete is logged only for a session that was replicated.
// A snapshot (bulk sync) is taken under the same lock as the log position,
// so snapshot + the log from that position is exactly the replicated state.
//
// On a secondary, Apply with a generation number marks what a snapshot
// refreshed; entries an interrupted or finished snapshot did not refresh go
// only at EndSnapshot, so an interrupted bulk sync never loses what the
// replica already held.
//
// max_sessions: an upsert of a new key beyond it is refused and counted,
// never a crash. Expiry (on when this node is the source of a data plane
// that does not report every end): an entry whose last_update + timeout has
// passed is removed by Tick. Entries wait in buckets by the second they are
// due, so Tick visits only what is due (and what an update since moved
// later, which it files again), not the whole table.
//
// Thread-safe.
#ifndef CLOUDHA_SYNC_SESSION_TABLE_H_
#define CLOUDHA_SYNC_SESSION_TABLE_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <queue>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "sync/change_log.h"
#include "sync/session_codec.h"

namespace cloudha {

struct SessionTableOptions {
  size_t max_sessions = 4000000;
  bool pickup_connectionless = false;
  absl::Duration pickup_delay = absl::ZeroDuration();
  // Bytes of unread changes the log may hold for slow streams.
  size_t log_max_bytes = 64 << 20;
};

struct ApplyResult {
  uint64_t applied = 0;
  uint64_t refused = 0;  // upserts of new keys beyond max_sessions
};

// A consistent copy of the replicated state, encoded as upserts.
struct SessionSnapshot {
  std::vector<std::string> chunks;  // each a run of whole codec records
  std::vector<uint32_t> counts;     // records per chunk
  uint64_t sessions = 0;
  uint64_t position = 0;  // log position the snapshot corresponds to
};

class SessionTable {
 public:
  SessionTable(const SessionTableOptions& options, Clock* clock);
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // Applies changes in order and logs what is replicated. `generation`
  // marks the entries touched (secondary snapshots); 0 elsewhere.
  ApplyResult Apply(const std::vector<SessionChange>& changes, uint32_t generation = 0);

  // Replaces the whole content with `records` (a fresh kernel dump), logging
  // the differences as changes. Returns what changed.
  ApplyResult Reconcile(const std::vector<SessionRecord>& records);

  // Periodic work: replicates sessions whose pickup delay has passed and,
  // with expiry on, removes expired entries. Returns how many expired.
  uint64_t Tick();

  // Expire entries by timeout (see the header comment).
  void SetExpiry(bool on);

  // Snapshot of what is replicated, in chunks of about `chunk_bytes`; a
  // stream reader registered at the same position follows it (see
  // AddReader).
  SessionSnapshot Snapshot(size_t chunk_bytes, int* reader);

  // The log, for replication streams (see ChangeLog: Ack keeps what the
  // peer has not applied, Rewind reads it again after a broken stream).
  void RemoveReader(int reader);
  void AckReader(int reader, uint64_t position);
  bool RewindReader(int reader, uint64_t position);
  ChangeLog::ReadResult Read(int reader, size_t max_bytes, LogBatch* out);
  // Blocks until the log holds changes past `position`, WakeWaiters is
  // called or `max_wait` passes.
  void WaitForChanges(uint64_t position, absl::Duration max_wait);
  // Wakes every WaitForChanges (shutdown, role change).
  void WakeWaiters();
  uint64_t position() const;
  int64_t OldestUnreadUs(uint64_t position) const;

  // Secondary snapshot framing: entries with a generation below `generation`
  // (not refreshed by the snapshot) are removed, their keys appended to
  // `removed` when given. Returns how many.
  uint64_t RemoveOlderThan(uint32_t generation, std::vector<SessionKey>* removed = nullptr);

  // Makes room for `sessions` entries in all (capped at max_sessions), so
  // that filling the table up to that size does not rehash.
  void Reserve(size_t sessions);

  void Clear();
  size_t size() const;
  uint64_t refused() const;

  // Copies of the entries, for display, commit and comparison. `keep`
  // filters; at most `limit` (0 = all).
  std::vector<SessionRecord> Records(const std::function<bool(const SessionRecord&)>& keep = {},
                                     size_t limit = 0) const;

 private:
  static constexpr int64_t kNotFiled = std::numeric_limits<int64_t>::min();
  struct Entry {
    SessionValue value;
    uint32_t generation = 0;
    bool replicated = false;
    // With expiry on: the second of the bucket that holds this key, never
    // after the entry is due; kNotFiled otherwise.
    int64_t expiry_second = kNotFiled;
  };
  bool Replicable(const SessionKey& key, const SessionValue& value, int64_t now_ms) const;
  void UpsertLocked(const SessionRecord& record, uint32_t generation, int64_t now_ms,
                    int64_t now_us, ApplyResult* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(const SessionKey& key, int64_t now_us, ApplyResult* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Files `key` in the bucket of the second it is due, unless it sits in an
  // earlier one already.
  void FileForExpiryLocked(const SessionKey& key, Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t ExpireLocked(int64_t now_ms, int64_t now_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SessionTableOptions options_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  absl::flat_hash_map<SessionKey, Entry> entries_ ABSL_GUARDED_BY(mu_);
  ChangeLog log_ ABSL_GUARDED_BY(mu_);
  // Sessions waiting for their pickup delay: (due wall ms, key), soonest
  // first.
  using Due = std::pair<int64_t, SessionKey>;
  struct Later {
    bool operator()(const Due& a, const Due& b) const { return a.first > b.first; }
  };
  std::priority_queue<Due, std::vector<Due>, Later> delayed_ ABSL_GUARDED_BY(mu_);
  bool expiry_ ABSL_GUARDED_BY(mu_) = false;
  // With expiry on: keys by the second they are due (or were, before an
  // update moved them later), earliest first.
  std::map<int64_t, std::vector<SessionKey>> expiry_buckets_ ABSL_GUARDED_BY(mu_);
  uint64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_SESSION_TABLE_H_
