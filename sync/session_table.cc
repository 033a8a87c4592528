#include "sync/session_table.h"

#include <algorithm>
#include <limits>

namespace cloudha {

SessionTable::SessionTable(const SessionTableOptions& options, Clock* clock)
    : options_(options), clock_(clock), log_(options.log_max_bytes) {}

bool SessionTable::Replicable(const SessionKey& key, const SessionValue& value,
                              int64_t now_ms) const {
  if (!options_.pickup_connectionless && !IsConnectionOriented(key.l4_protocol)) return false;
  // created_ms comes from a primary's batch or a publisher: any int64. Only
  // the clock and the configured delay take part in the arithmetic.
  return value.created_ms <= now_ms - absl::ToInt64Milliseconds(options_.pickup_delay);
}

void SessionTable::UpsertLocked(const SessionRecord& record, uint32_t generation,
                                int64_t now_ms, int64_t now_us, ApplyResult* result) {
  auto it = entries_.find(record.key);
  const bool inserted = it == entries_.end();
  if (inserted) {
    if (entries_.size() >= options_.max_sessions) {
      ++result->refused;
      ++refused_;
      return;
    }
    it = entries_.try_emplace(record.key).first;
  }
  Entry& entry = it->second;
  // A session's creation does not move: sources that only see changes
  // (conntrack events) report when they saw it.
  int64_t created_ms = record.value.created_ms;
  if (entry.value.created_ms != 0 && entry.value.created_ms < created_ms) {
    created_ms = entry.value.created_ms;
  }
  entry.value = record.value;
  entry.value.created_ms = created_ms;
  entry.generation = generation;
  ++result->applied;
  if (expiry_) FileForExpiryLocked(record.key, &entry);
  if (!options_.pickup_connectionless && !IsConnectionOriented(record.key.l4_protocol)) return;
  if (Replicable(record.key, entry.value, now_ms)) {
    entry.replicated = true;
    log_.Append({SessionChange::Op::kUpsert, {record.key, entry.value}}, now_us);
  } else if (inserted) {
    // Due once the delay has passed since created_ms, which is any int64
    // (see Replicable): one near the end of time is due at the end of time.
    int64_t due_ms;
    if (__builtin_add_overflow(created_ms, absl::ToInt64Milliseconds(options_.pickup_delay),
                               &due_ms)) {
      due_ms = std::numeric_limits<int64_t>::max();
    }
    delayed_.push({due_ms, record.key});
  }
}

void SessionTable::EraseLocked(const SessionKey& key, int64_t now_us, ApplyResult* result) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    // Unknown here: nothing to undo, but counted as handled.
    ++result->applied;
    return;
  }
  bool replicated = it->second.replicated;
  entries_.erase(it);
  ++result->applied;
  if (replicated) {
    SessionChange change;
    change.op = SessionChange::Op::kDelete;
    change.record.key = key;
    log_.Append(change, now_us);
  }
}

ApplyResult SessionTable::Apply(const std::vector<SessionChange>& changes, uint32_t generation) {
  absl::Time wall = clock_->WallNow();
  int64_t now_ms = absl::ToUnixMillis(wall);
  int64_t now_us = absl::ToUnixMicros(wall);
  ApplyResult result;
  absl::MutexLock lock(&mu_);
  uint64_t before = log_.end();
  for (const SessionChange& change : changes) {
    if (change.op == SessionChange::Op::kUpsert) {
      UpsertLocked(change.record, generation, now_ms, now_us, &result);
    } else {
      EraseLocked(change.record.key, now_us, &result);
    }
  }
  if (log_.end() != before) changed_.SignalAll();
  return result;
}

ApplyResult SessionTable::Reconcile(const std::vector<SessionRecord>& records) {
  absl::Time wall = clock_->WallNow();
  int64_t now_ms = absl::ToUnixMillis(wall);
  int64_t now_us = absl::ToUnixMicros(wall);
  ApplyResult result;
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<SessionKey, bool> present;
  present.reserve(records.size());
  for (const SessionRecord& r : records) present.emplace(r.key, true);
  std::vector<SessionKey> gone;
  for (const auto& [key, entry] : entries_) {
    if (!present.contains(key)) gone.push_back(key);
  }
  for (const SessionKey& key : gone) EraseLocked(key, now_us, &result);
  for (const SessionRecord& r : records) {
    auto it = entries_.find(r.key);
    if (it != entries_.end() && it->second.value == r.value) continue;
    UpsertLocked(r, 0, now_ms, now_us, &result);
  }
  changed_.SignalAll();
  return result;
}

namespace {

// The first whole second at which an entry last updated at `last_update_ms`
// with `timeout_s` counts as expired (see ExpireLocked), saturating.
int64_t DueSecond(int64_t last_update_ms, uint32_t timeout_s) {
  int64_t due_ms;
  if (__builtin_add_overflow(last_update_ms, int64_t{timeout_s} * 1000 + 1, &due_ms)) {
    due_ms = std::numeric_limits<int64_t>::max();
  }
  // Rounded up (division truncates towards zero: up for negatives already).
  return due_ms / 1000 + (due_ms % 1000 > 0 ? 1 : 0);
}

}  // namespace

void SessionTable::FileForExpiryLocked(const SessionKey& key, Entry* entry) {
  int64_t second = DueSecond(entry->value.last_update_ms, entry->value.timeout_s);
  // An update only files a key earlier; one that moved it later is filed
  // again when its old bucket comes due.
  if (entry->expiry_second != kNotFiled && entry->expiry_second <= second) return;
  entry->expiry_second = second;
  expiry_buckets_[second].push_back(key);
}

uint64_t SessionTable::ExpireLocked(int64_t now_ms, int64_t now_us) {
  uint64_t expired = 0;
  ApplyResult ignored;
  // Buckets whose second has begun (second * 1000 <= now_ms, without the
  // multiplication, which overflows for the last seconds of int64).
  const int64_t now_s = now_ms / 1000 - (now_ms % 1000 < 0 ? 1 : 0);
  while (!expiry_buckets_.empty() && expiry_buckets_.begin()->first <= now_s) {
    const int64_t second = expiry_buckets_.begin()->first;
    std::vector<SessionKey> keys = std::move(expiry_buckets_.begin()->second);
    expiry_buckets_.erase(expiry_buckets_.begin());
    for (const SessionKey& key : keys) {
      auto it = entries_.find(key);
      // Gone, or filed in an earlier bucket since (handled there).
      if (it == entries_.end() || it->second.expiry_second != second) continue;
      Entry& entry = it->second;
      // now_ms - timeout (both bounded) rather than last_update + timeout,
      // which overflowed for a record stamped near INT64_MAX and expired it.
      if (entry.value.last_update_ms < now_ms - int64_t{entry.value.timeout_s} * 1000) {
        EraseLocked(key, now_us, &ignored);
        ++expired;
      } else {
        entry.expiry_second = kNotFiled;  // updated since: due later
        FileForExpiryLocked(key, &entry);
      }
    }
  }
  return expired;
}

uint64_t SessionTable::Tick() {
  absl::Time wall = clock_->WallNow();
  int64_t now_ms = absl::ToUnixMillis(wall);
  int64_t now_us = absl::ToUnixMicros(wall);
  absl::MutexLock lock(&mu_);
  uint64_t before = log_.end();
  while (!delayed_.empty() && delayed_.top().first <= now_ms) {
    SessionKey key = delayed_.top().second;
    delayed_.pop();
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.replicated) continue;
    if (!Replicable(key, it->second.value, now_ms)) continue;
    it->second.replicated = true;
    log_.Append({SessionChange::Op::kUpsert, {key, it->second.value}}, now_us);
  }
  uint64_t expired = expiry_ ? ExpireLocked(now_ms, now_us) : 0;
  if (log_.end() != before) changed_.SignalAll();
  return expired;
}

void SessionTable::SetExpiry(bool on) {
  absl::MutexLock lock(&mu_);
  if (expiry_ == on) return;
  expiry_ = on;
  expiry_buckets_.clear();
  // Once per role change: file every entry, or forget where they were.
  for (auto& [key, entry] : entries_) {
    entry.expiry_second = kNotFiled;
    if (on) FileForExpiryLocked(key, &entry);
  }
}

SessionSnapshot SessionTable::Snapshot(size_t chunk_bytes, int* reader) {
  SessionSnapshot snapshot;
  absl::MutexLock lock(&mu_);
  std::string chunk;
  uint32_t count = 0;
  for (const auto& [key, entry] : entries_) {
    if (!entry.replicated) continue;
    if (chunk.size() >= chunk_bytes) {
      snapshot.chunks.push_back(std::move(chunk));
      snapshot.counts.push_back(count);
      chunk = std::string();
      count = 0;
    }
    if (chunk.empty()) chunk.reserve(chunk_bytes + 128);
    AppendUpsert({key, entry.value}, &chunk);
    ++count;
    ++snapshot.sessions;
  }
  if (count > 0) {
    snapshot.chunks.push_back(std::move(chunk));
    snapshot.counts.push_back(count);
  }
  log_.Seal();
  snapshot.position = log_.end();
  if (reader != nullptr) *reader = log_.AddReader(snapshot.position);
  return snapshot;
}

void SessionTable::RemoveReader(int reader) {
  absl::MutexLock lock(&mu_);
  log_.RemoveReader(reader);
}

void SessionTable::AckReader(int reader, uint64_t position) {
  absl::MutexLock lock(&mu_);
  log_.Ack(reader, position);
}

bool SessionTable::RewindReader(int reader, uint64_t position) {
  absl::MutexLock lock(&mu_);
  return log_.Rewind(reader, position);
}

ChangeLog::ReadResult SessionTable::Read(int reader, size_t max_bytes, LogBatch* out) {
  absl::MutexLock lock(&mu_);
  return log_.Read(reader, max_bytes, out);
}

void SessionTable::WaitForChanges(uint64_t position, absl::Duration max_wait) {
  absl::MutexLock lock(&mu_);
  // A bound on a blocking wait, not a clock read: a blocked thread is woken
  // by Apply, WakeWaiters or the real time passing.
  if (log_.end() > position) return;
  changed_.WaitWithTimeout(&mu_, max_wait);
}

void SessionTable::WakeWaiters() {
  absl::MutexLock lock(&mu_);
  changed_.SignalAll();
}

uint64_t SessionTable::position() const {
  absl::MutexLock lock(&mu_);
  return log_.end();
}

int64_t SessionTable::OldestUnreadUs(uint64_t position) const {
  absl::MutexLock lock(&mu_);
  return log_.OldestAfter(position);
}

uint64_t SessionTable::RemoveOlderThan(uint32_t generation, std::vector<SessionKey>* keys) {
  absl::MutexLock lock(&mu_);
  uint64_t removed = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.generation < generation) {
      if (keys != nullptr) keys->push_back(it->first);
      entries_.erase(it++);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

void SessionTable::Reserve(size_t sessions) {
  absl::MutexLock lock(&mu_);
  entries_.reserve(std::min(sessions, options_.max_sessions));
}

void SessionTable::Clear() {
  absl::MutexLock lock(&mu_);
  entries_.clear();
  delayed_ = decltype(delayed_)();
  expiry_buckets_.clear();
}

size_t SessionTable::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

uint64_t SessionTable::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

std::vector<SessionRecord> SessionTable::Records(
    const std::function<bool(const SessionRecord&)>& keep, size_t limit) const {
  std::vector<SessionRecord> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, entry] : entries_) {
    SessionRecord record{key, entry.value};
    if (keep && !keep(record)) continue;
    out.push_back(record);
    if (limit != 0 && out.size() >= limit) break;
  }
  return out;
}

}  // namespace cloudha
