// The witness's lease table: per cluster, who holds the primary lease and
// until when (on the witness's own monotonic clock), and a fencing counter
// that rises with every new grant and never goes back.
//
// Durability: a new grant is stored (written atomically and flushed, one
// small file per cluster in the state folder) before it is answered; a
// failed write refuses the grant and changes nothing. Renewals and releases
// are not stored. After a restart each stored holder is treated as holding
// its lease for its full ttl from the restart: the witness cannot know how
// much of it was left, and must not grant it to another early.
//
// Thread-safe.
#ifndef CLOUDHA_AGENT_WITNESS_LEASES_H_
#define CLOUDHA_AGENT_WITNESS_LEASES_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "cloudha/v1/witness.pb.h"

namespace cloudha {

class WitnessLeases {
 public:
  // Loads the stored leases of `state_dir` (created if missing).
  // FAILED_PRECONDITION for an unreadable folder or a corrupt file (named).
  static absl::StatusOr<std::unique_ptr<WitnessLeases>> Open(const std::string& state_dir,
                                                             std::string witness_id, Clock* clock);

  // Grants or renews `node`'s lease of `cluster` for `ttl` (see
  // witness.proto). UNAVAILABLE when a new grant could not be stored.
  // `renew`: the caller still counts its lease with fence `fence` (else,
  // or for another fence, a new lease with a new fence).
  absl::StatusOr<v1::LeaseReply> Acquire(const std::string& cluster, const std::string& node,
                                         absl::Duration ttl, uint64_t epoch, bool renew,
                                         uint64_t fence);
  // Ends `node`'s lease of `cluster` if it holds the one with `fence` (0:
  // nothing is ended; the reply says who holds the lease).
  v1::LeaseReply Release(const std::string& cluster, const std::string& node, uint64_t epoch,
                         uint64_t fence);

  // The current lease of `cluster` (holder "" when none or expired).
  v1::LeaseReply Peek(const std::string& cluster);

 private:
  struct Lease {
    std::string holder;
    uint64_t fence = 0;
    absl::Duration ttl;
    absl::Time expires = absl::InfinitePast();
  };
  WitnessLeases(std::string state_dir, std::string witness_id, Clock* clock)
      : state_dir_(std::move(state_dir)), witness_id_(std::move(witness_id)), clock_(clock) {}
  std::string FileOf(const std::string& cluster) const;
  absl::Status Store(const std::string& cluster, const Lease& lease) const;
  v1::LeaseReply Reply(const std::string& cluster, const Lease& lease, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string state_dir_;
  const std::string witness_id_;
  Clock* const clock_;
  absl::Mutex mu_;
  std::map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_WITNESS_LEASES_H_
