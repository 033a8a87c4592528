// The secondary's side of session replication: applies the primary's
// batches to the replica table in order, and knows whether the replica is
// complete (eligible for promotion).
//
// One stream feeds the replica at a time; a newer stream (Open) supersedes
// the one before, whose later batches are refused with ABORTED. Open answers
// with a resume offer: a complete replica fed by the same primary process
// in the same epoch offers its position, and the stream may continue from
// it (a first batch with resume_from) instead of a snapshot; the replica
// stays complete meanwhile. Within a
// stream, batches must come with consecutive sequence numbers: a gap is
// answered with a resync request and batches are ignored until the next
// snapshot begins. A malformed batch is refused whole (INVALID_ARGUMENT):
// nothing of it is applied. A snapshot marks what it refreshes; at its end
// the entries it did not refresh are removed and the replica is complete.
// An interrupted snapshot leaves the replica a superset of what was acked,
// and not complete.
//
// Thread-safe.
#ifndef CLOUDHA_SYNC_SESSION_REPLICA_H_
#define CLOUDHA_SYNC_SESSION_REPLICA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "cloudha/v1/peer.pb.h"
#include "sync/session_table.h"

namespace cloudha {

// The most changes one batch may announce.
inline constexpr uint32_t kMaxChangesPerBatch = 1 << 20;

class SessionReplica {
 public:
  SessionReplica(SessionTable* table, Clock* clock) : table_(table), clock_(clock) {}

  // A stream from `primary` opens. Returns a stream id for OnBatch and sets
  // `*offer` to the reply that tells the primary whether it may resume.
  uint64_t Open(const std::string& primary, const v1::SessionSyncOpen& open,
                v1::SessionResumeOffer* offer);

  // Applies one batch of stream `stream`. Returns the reply to send (an ack
  // or a resync request); ABORTED when a newer stream took over,
  // INVALID_ARGUMENT for a malformed batch. `applied`, when given, receives
  // what changed in the replica: the batch's changes as applied, and a
  // delete for each entry a finished snapshot removed (for a kernel that
  // mirrors the replica).
  absl::StatusOr<v1::SessionSyncMessage> OnBatch(uint64_t stream, const v1::SessionBatch& batch,
                                                 std::vector<SessionChange>* applied = nullptr);

  // The stream ended (either side, any reason).
  void Close(uint64_t stream);

  // This node's own table is the newest there is (it was primary, or no
  // primary ever fed it and it starts as one).
  void MarkComplete();

  bool complete() const;
  // The primary's position applied last.
  uint64_t position() const;
  std::string replica_of() const;
  // Age of the last batch when it was applied, milliseconds.
  double lag_ms() const;
  uint64_t snapshots() const;
  // Streams that continued from this replica's position.
  uint64_t resumes() const;
  uint64_t refused() const;
  // Counts a batch refused before it reached OnBatch (e.g. from a node that
  // is not the primary).
  void CountRefused();

 private:
  SessionTable* const table_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  uint64_t stream_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_stream_ ABSL_GUARDED_BY(mu_) = 1;
  std::string primary_ ABSL_GUARDED_BY(mu_);
  uint64_t expected_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // After a gap: ignore batches until a snapshot begins.
  bool awaiting_snapshot_ ABSL_GUARDED_BY(mu_) = false;
  bool in_snapshot_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t generation_ ABSL_GUARDED_BY(mu_) = 1;
  bool complete_ ABSL_GUARDED_BY(mu_) = false;
  // Offered a resume on this stream: the first batch must resume from
  // position_ or begin a snapshot.
  bool resume_offered_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t position_ ABSL_GUARDED_BY(mu_) = 0;
  // Whose positions position_ counts: the primary, its boot id and epoch
  // of the stream that applied it (empty primary: none, e.g. the table is
  // this node's own).
  std::string position_primary_ ABSL_GUARDED_BY(mu_);
  uint64_t position_boot_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t position_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t stream_boot_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t stream_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t resumes_ ABSL_GUARDED_BY(mu_) = 0;
  double lag_ms_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t snapshots_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_SESSION_REPLICA_H_
