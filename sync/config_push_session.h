// The primary's logic for one SyncConfig stream to one secondary, without
// I/O or threads: what to answer, what to queue, when the secondary is
// caught up. ConfigPusher drives it over a real stream (dialing, retrying,
// a reader thread); the in-process cluster simulation (test/sim) drives it
// message by message on simulated time.
//
// A session starts once the secondary answered the open message (its
// exclusion list): it registers an outbox for the secondary (every commit
// reaches it from then on, see ConfigOutboxRegistry) and queues the first
// checksum request of a diff. The secondary's checksums make it queue the
// content of the subtrees that differ (read in commit order,
// ConfigCommitter::InCommitOrder) and ask for the next level, until a
// "complete" marker with the root checksum ends the diff. An ack after that
// marks the outbox caught up; an ack asking for a resync starts a new diff.
//
// Not thread-safe, except state(): one thread at a time calls the rest.
// The destructor removes the outbox.
#ifndef CLOUDHA_SYNC_CONFIG_PUSH_SESSION_H_
#define CLOUDHA_SYNC_CONFIG_PUSH_SESSION_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cloudha/v1/peer.pb.h"
#include "sync/config_committer.h"
#include "sync/config_outbox.h"
#include "sync/config_path.h"

namespace cloudha {

class ConfigPushSession {
 public:
  // The first message of a stream: this primary's epoch, revision and
  // exclusion list.
  static v1::ConfigSyncMessage OpenMessage(uint64_t epoch, const ConfigStore& store,
                                           const ExclusionSet& own);

  // The secondary `peer` answered `reply`. INVALID_ARGUMENT when the answer
  // is not an open message or its exclusion list is bad (nothing is
  // registered then). `committer` and `outboxes` outlive the session.
  static absl::StatusOr<std::unique_ptr<ConfigPushSession>> Start(
      const std::string& peer, const ExclusionSet& own, const v1::ConfigSyncMessage& reply,
      ConfigCommitter* committer, ConfigOutboxRegistry* outboxes);
  ~ConfigPushSession();
  ConfigPushSession(const ConfigPushSession&) = delete;
  ConfigPushSession& operator=(const ConfigPushSession&) = delete;

  // The secondary's own exclusion list, and the union with this node's.
  const std::vector<std::string>& peer_exclusions() const { return peer_exclusions_; }
  const ExclusionSet& effective() const { return effective_; }
  ConfigOutbox* outbox() const { return outbox_.get(); }

  // One message from the secondary: checksums (the diff goes on) or an ack.
  // INVALID_ARGUMENT for anything else (the stream should end).
  absl::Status OnMessage(const v1::ConfigSyncMessage& in);

  // What to write next, in order (commits queued together coalesced, see
  // Coalesce): waits at most `timeout` for something to be queued or for
  // `wake()` (checked under the outbox's lock). RESOURCE_EXHAUSTED when the
  // outbox overflowed (the secondary fell too far behind; a new stream
  // resyncs it).
  absl::StatusOr<std::vector<v1::ConfigSyncMessage>> TakeOutgoing(
      const std::function<bool()>& wake, absl::Duration timeout);

  // "diffing", "synced (N entries sent)", "in sync at revision N".
  std::string state() const;

  // Consecutive commits queued while the stream was busy travel as one
  // (the last revision and root checksum, each path's last change): the
  // secondary applies them in one transaction, one fsync, and keeps up with
  // a primary that commits faster than it can fsync one by one. Other
  // messages keep their place.
  static std::vector<v1::ConfigSyncMessage> Coalesce(std::deque<v1::ConfigSyncMessage> in);

 private:
  ConfigPushSession(std::string peer, ExclusionSet effective,
                    std::vector<std::string> peer_exclusions, ConfigCommitter* committer,
                    ConfigOutboxRegistry* outboxes);
  void StartDiff();
  // Compares one level, queues the content of what differs (in commit
  // order), and asks for the next level.
  void OnChecksums(const v1::ConfigChecksums& theirs);
  void SetState(std::string state);

  const std::string peer_;
  const ExclusionSet effective_;
  const std::vector<std::string> peer_exclusions_;
  ConfigCommitter* const committer_;
  ConfigStore* const store_;
  ConfigOutboxRegistry* const outboxes_;
  const std::shared_ptr<ConfigOutbox> outbox_;

  // The checksum requests in flight (one level at a time) and their
  // prefixes; whether the diff's "complete" marker is queued.
  int outstanding_ = 0;
  std::vector<std::string> requested_;
  bool diff_done_ = false;
  uint64_t sent_entries_ = 0;

  mutable absl::Mutex mu_;
  std::string state_ ABSL_GUARDED_BY(mu_) = "diffing";
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_PUSH_SESSION_H_
