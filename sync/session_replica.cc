#include "sync/session_replica.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "sync/session_codec.h"

namespace cloudha {

uint64_t SessionReplica::Open(const std::string& primary, const v1::SessionSyncOpen& open,
                              v1::SessionResumeOffer* offer) {
  absl::MutexLock lock(&mu_);
  stream_ = next_stream_++;
  primary_ = primary;
  stream_boot_id_ = open.boot_id();
  stream_epoch_ = open.epoch();
  expected_sequence_ = open.next_sequence();
  in_snapshot_ = false;
  // Positions count one primary process's changes within one epoch: only a
  // complete replica of that very process may continue from its position.
  const bool resumable = complete_ && !position_primary_.empty() &&
                         position_primary_ == primary && position_boot_id_ == open.boot_id() &&
                         position_epoch_ == open.epoch();
  offer->set_resumable(resumable);
  offer->set_position(resumable ? position_ : 0);
  resume_offered_ = resumable;
  awaiting_snapshot_ = !resumable;
  return stream_;
}

absl::StatusOr<v1::SessionSyncMessage> SessionReplica::OnBatch(
    uint64_t stream, const v1::SessionBatch& batch, std::vector<SessionChange>* applied) {
  // Decode before taking the lock: a malformed batch changes nothing.
  if (batch.change_count() > kMaxChangesPerBatch) {
    absl::MutexLock lock(&mu_);
    ++refused_;
    return absl::InvalidArgumentError(absl::StrCat("batch ", batch.sequence(), " announces ",
                                                   batch.change_count(), " changes; at most ",
                                                   kMaxChangesPerBatch, " are allowed"));
  }
  std::vector<SessionChange> changes;
  if (absl::Status s = DecodeChanges(batch.changes(), batch.change_count(), &changes); !s.ok()) {
    absl::MutexLock lock(&mu_);
    ++refused_;
    return absl::InvalidArgumentError(absl::StrCat("batch ", batch.sequence(), ": ", s.message()));
  }
  v1::SessionSyncMessage reply;
  absl::MutexLock lock(&mu_);
  if (stream != stream_) {
    ++refused_;
    return absl::AbortedError("a newer session stream took over");
  }
  if (batch.sequence() != expected_sequence_) {
    std::string reason = absl::StrCat("sequence gap: expected ", expected_sequence_, ", got ",
                                      batch.sequence());
    ++refused_;
    expected_sequence_ = batch.sequence() + 1;
    awaiting_snapshot_ = true;
    in_snapshot_ = false;
    complete_ = false;
    reply.mutable_resync()->set_reason(reason);
    return reply;
  }
  ++expected_sequence_;
  auto resync = [&](std::string reason) {
    ++refused_;
    awaiting_snapshot_ = true;
    in_snapshot_ = false;
    complete_ = false;
    reply.mutable_resync()->set_reason(std::move(reason));
    return reply;
  };
  if (resume_offered_) {
    // The primary's answer to the offer: a snapshot, or the changes after
    // the offered position.
    resume_offered_ = false;
    if (!batch.snapshot_begin()) {
      if (batch.resume_from() != position_) {
        return resync(absl::StrCat("the stream resumes from ", batch.resume_from(),
                                   " but this replica offered ", position_));
      }
      ++resumes_;
    }
  } else if (batch.resume_from() != 0 && !batch.snapshot_begin() && !awaiting_snapshot_) {
    return resync(absl::StrCat("a resume from ", batch.resume_from(), " that was not offered"));
  }
  if (awaiting_snapshot_ && !batch.snapshot_begin()) {
    // Changes against a state this replica does not have: wait for the
    // snapshot already asked for, but keep acking so the window moves.
    reply.mutable_ack()->set_sequence(batch.sequence());
    reply.mutable_ack()->set_table_size(table_->size());
    return reply;
  }
  if (batch.snapshot_begin()) {
    // A bound from the peer: Reserve caps it at max_sessions.
    if (batch.snapshot_sessions() > table_->size()) table_->Reserve(batch.snapshot_sessions());
    awaiting_snapshot_ = false;
    in_snapshot_ = true;
    complete_ = false;
    ++generation_;
  }
  table_->Apply(changes, generation_);
  if (batch.snapshot_end() && in_snapshot_) {
    std::vector<SessionKey> removed;
    table_->RemoveOlderThan(generation_, applied != nullptr ? &removed : nullptr);
    in_snapshot_ = false;
    complete_ = true;
    ++snapshots_;
    for (const SessionKey& key : removed) {
      SessionChange change;
      change.op = SessionChange::Op::kDelete;
      change.record.key = key;
      changes.push_back(change);
    }
  }
  if (applied != nullptr) *applied = std::move(changes);
  position_ = batch.position();
  position_primary_ = primary_;
  position_boot_id_ = stream_boot_id_;
  position_epoch_ = stream_epoch_;
  int64_t now_us = absl::ToUnixMicros(clock_->WallNow());
  lag_ms_ = batch.cut_time_us() > 0 ? std::max<int64_t>(0, now_us - batch.cut_time_us()) / 1000.0
                                    : 0;
  reply.mutable_ack()->set_sequence(batch.sequence());
  reply.mutable_ack()->set_table_size(table_->size());
  return reply;
}

void SessionReplica::Close(uint64_t stream) {
  absl::MutexLock lock(&mu_);
  if (stream != stream_) return;
  stream_ = 0;
  // An interrupted snapshot leaves the replica incomplete; a finished one
  // stays complete: it is the best copy there is if the primary is gone.
  in_snapshot_ = false;
}

void SessionReplica::MarkComplete() {
  absl::MutexLock lock(&mu_);
  complete_ = true;
  awaiting_snapshot_ = false;
  in_snapshot_ = false;
  resume_offered_ = false;
  // The table is this node's own now: no primary's position describes it.
  position_primary_.clear();
}

bool SessionReplica::complete() const {
  absl::MutexLock lock(&mu_);
  return complete_;
}

uint64_t SessionReplica::position() const {
  absl::MutexLock lock(&mu_);
  return position_;
}

std::string SessionReplica::replica_of() const {
  absl::MutexLock lock(&mu_);
  return stream_ != 0 ? primary_ : "";
}

double SessionReplica::lag_ms() const {
  absl::MutexLock lock(&mu_);
  return lag_ms_;
}

uint64_t SessionReplica::snapshots() const {
  absl::MutexLock lock(&mu_);
  return snapshots_;
}

uint64_t SessionReplica::resumes() const {
  absl::MutexLock lock(&mu_);
  return resumes_;
}

uint64_t SessionReplica::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

void SessionReplica::CountRefused() {
  absl::MutexLock lock(&mu_);
  ++refused_;
}

}  // namespace cloudha
