// The one way into the config store once replication runs: every commit,
// local or from the primary, goes through here under one commit lock, so
// that what a commit feeds (the secondaries' outboxes, watchers, hooks, the
// hello checksums) sees commits in revision order.
//
// Local writes are group-committed: a write joins those waiting for the
// commit lock, and one of them (the first to find no commit in progress)
// commits them all in one transaction, one fsync. Each write is checked on
// its own (the injected check, then path and value size); a refused one does
// not hold the others back. Writes committed together share a revision, and
// each gets back only what it applied.
//
// Thread-safe. `after_commit` runs under the commit lock, on the committing
// thread, for every commit that changed something; it must not call back into
// the committer.
#ifndef CLOUDHA_SYNC_CONFIG_COMMITTER_H_
#define CLOUDHA_SYNC_CONFIG_COMMITTER_H_

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "sync/config_store.h"

namespace cloudha {

class ConfigCommitter {
 public:
  // Whether local writes to these paths are allowed now (role, handover,
  // exclusions); called outside the store's transaction, once per write.
  using CheckFn = std::function<absl::Status(const std::vector<ConfigChange>& changes)>;
  // `replicated`: the commit came from the primary.
  using AfterCommitFn = std::function<void(const ConfigCommitResult& result, bool replicated)>;

  // `store` outlives the committer.
  ConfigCommitter(ConfigStore* store, CheckFn check_local, AfterCommitFn after_commit);
  ConfigCommitter(const ConfigCommitter&) = delete;
  ConfigCommitter& operator=(const ConfigCommitter&) = delete;

  // A local write (admin API), group-committed.
  absl::StatusOr<ConfigCommitResult> WriteLocal(const std::vector<ConfigChange>& changes)
      ABSL_LOCKS_EXCLUDED(group_mu_, commit_mu_);

  // A write from the primary `origin`: `still_current` is asked under the
  // commit lock, and nothing is written unless it returns OK (a superseded
  // stream).
  absl::StatusOr<ConfigCommitResult> WriteReplicated(
      const std::vector<ConfigChange>& changes, const std::string& origin,
      const std::function<absl::Status()>& still_current) ABSL_LOCKS_EXCLUDED(commit_mu_);

  // Runs `fn` under the commit lock: what it reads of the store and queues
  // sits between two commits (a resync's content, a watch's start).
  void InCommitOrder(const std::function<void()>& fn) ABSL_LOCKS_EXCLUDED(commit_mu_);

  ConfigStore* store() const { return store_; }
  // Local writes queued behind the group commit in progress.
  size_t waiting() const ABSL_LOCKS_EXCLUDED(group_mu_);

 private:
  struct LocalWrite {
    const std::vector<ConfigChange>* changes;
    absl::StatusOr<ConfigCommitResult> result = absl::UnknownError("not committed");
    bool done = false;
  };
  void CommitGroupLocked(const std::vector<LocalWrite*>& group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);

  ConfigStore* const store_;
  const CheckFn check_local_;
  const AfterCommitFn after_commit_;

  // Local writes waiting for a group commit, and whether one is running.
  mutable absl::Mutex group_mu_ ABSL_ACQUIRED_BEFORE(commit_mu_);
  std::deque<LocalWrite*> group_ ABSL_GUARDED_BY(group_mu_);
  bool group_running_ ABSL_GUARDED_BY(group_mu_) = false;

  // Serializes commits with what they feed. Guards no field here: the store
  // has its own lock; this one orders commits and InCommitOrder callers.
  absl::Mutex commit_mu_;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_COMMITTER_H_
