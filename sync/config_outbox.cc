#include "sync/config_outbox.h"

#include <algorithm>
#include <utility>

#include "sync/config_sync_limits.h"

namespace cloudha {

void ConfigOutbox::Push(v1::ConfigSyncMessage message) {
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= kMaxConfigOutbox) {
    overflowed_ = true;
    return;
  }
  if (message.has_commit()) pushed_ = std::max(pushed_, message.commit().revision());
  if (message.has_pull_response() && message.pull_response().complete()) {
    pushed_ = std::max(pushed_, message.pull_response().revision());
  }
  queue_.push_back(std::move(message));
}

bool ConfigOutbox::CaughtUp() const {
  absl::MutexLock lock(&mu_);
  return synced_ && acked_ >= pushed_ && queue_.empty();
}

bool ConfigOutbox::Take(std::deque<v1::ConfigSyncMessage>* out, const std::function<bool()>& wake,
                        absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || overflowed_ || wake();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (overflowed_) return false;
  out->swap(queue_);
  queue_.clear();
  return true;
}

void ConfigOutbox::Acked(uint64_t revision) {
  absl::MutexLock lock(&mu_);
  acked_ = std::max(acked_, revision);
  synced_ = true;
}

void ConfigOutbox::Unsynced() {
  absl::MutexLock lock(&mu_);
  synced_ = false;
}

void ConfigOutbox::Locked(const std::function<void()>& fn) {
  absl::MutexLock lock(&mu_);
  fn();
}

void ConfigOutboxRegistry::Register(const std::string& peer, std::shared_ptr<ConfigOutbox> outbox) {
  absl::MutexLock lock(&mu_);
  outboxes_[peer] = std::move(outbox);
}

void ConfigOutboxRegistry::Unregister(const std::string& peer, const ConfigOutbox* outbox) {
  absl::MutexLock lock(&mu_);
  auto it = outboxes_.find(peer);
  if (it != outboxes_.end() && it->second.get() == outbox) outboxes_.erase(it);
}

size_t ConfigOutboxRegistry::Publish(const ConfigCommitResult& result, const ConfigStore& store) {
  absl::MutexLock lock(&mu_);
  for (auto& [peer, outbox] : outboxes_) {
    v1::ConfigSyncMessage m;
    v1::ConfigCommit* c = m.mutable_commit();
    for (const ConfigCommitResult::Applied& a : result.applied) {
      if (outbox->effective().Excludes(a.path)) continue;
      if (a.new_value.has_value()) {
        v1::ConfigEntry* e = c->add_puts();
        e->set_path(a.path);
        e->set_value(*a.new_value);
        e->set_revision(result.revision);
      } else {
        c->add_deletes(a.path);
      }
    }
    // Even with nothing to send (only paths the pair excludes): the
    // revision and root checksum keep the secondary's comparison current.
    c->set_revision(result.revision);
    c->set_root_checksum(store.Checksum("", outbox->effective()).checksum);
    outbox->Push(std::move(m));
  }
  return outboxes_.size();
}

bool ConfigOutboxRegistry::CaughtUp(const std::string& peer) const {
  absl::MutexLock lock(&mu_);
  auto it = outboxes_.find(peer);
  return it != outboxes_.end() && it->second->CaughtUp();
}

size_t ConfigOutboxRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return outboxes_.size();
}

}  // namespace cloudha
