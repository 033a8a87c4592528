#include "sync/session_replica.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "sync/session_codec.h"

namespace cloudha {

uint64_t SessionReplica::Open(const std::string& primary, const v1::SessionSyncOpen& open) {
  absl::MutexLock lock(&mu_);
  stream_ = next_stream_++;
  primary_ = primary;
  expected_sequence_ = open.next_sequence();
  awaiting_snapshot_ = true;  // every stream starts with a snapshot
  in_snapshot_ = false;
  return stream_;
}

absl::StatusOr<v1::SessionSyncMessage> SessionReplica::OnBatch(uint64_t stream,
                                                               const v1::SessionBatch& batch) {
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
  if (awaiting_snapshot_ && !batch.snapshot_begin()) {
    // Changes against a state this replica does not have: wait for the
    // snapshot already asked for, but keep acking so the window moves.
    reply.mutable_ack()->set_sequence(batch.sequence());
    reply.mutable_ack()->set_table_size(table_->size());
    return reply;
  }
  if (batch.snapshot_begin()) {
    awaiting_snapshot_ = false;
    in_snapshot_ = true;
    complete_ = false;
    ++generation_;
  }
  table_->Apply(changes, generation_);
  if (batch.snapshot_end() && in_snapshot_) {
    table_->RemoveOlderThan(generation_);
    in_snapshot_ = false;
    complete_ = true;
    ++snapshots_;
  }
  position_ = batch.position();
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

uint64_t SessionReplica::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

void SessionReplica::CountRefused() {
  absl::MutexLock lock(&mu_);
  ++refused_;
}

}  // namespace cloudha
