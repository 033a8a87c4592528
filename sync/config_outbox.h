// What the primary queues for its secondaries: one outbox per secondary
// (commits and resync content, in commit order), and the registry of the
// outboxes of the streams that are up.
//
// A commit enters every registered outbox, each with the paths its pair
// syncs; a pusher registers its outbox when its stream opens and removes it
// when the stream ends. WaitReplicated-style questions ("has every secondary
// applied the last commit?") are answered here.
//
// Thread-safe: each outbox has its own lock (taken after the registry's).
#ifndef CLOUDHA_SYNC_CONFIG_OUTBOX_H_
#define CLOUDHA_SYNC_CONFIG_OUTBOX_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cloudha/v1/peer.pb.h"
#include "sync/config_path.h"
#include "sync/config_store.h"

namespace cloudha {

// The messages queued for one secondary, drained by its pusher.
class ConfigOutbox {
 public:
  // `effective`: the union of both sides' exclusion lists.
  explicit ConfigOutbox(ExclusionSet effective) : effective_(std::move(effective)) {}
  ConfigOutbox(const ConfigOutbox&) = delete;
  ConfigOutbox& operator=(const ConfigOutbox&) = delete;

  const ExclusionSet& effective() const { return effective_; }

  // Queues `message`; beyond kMaxConfigOutbox the outbox overflows instead
  // (the stream restarts, and the next diff sends what differs).
  void Push(v1::ConfigSyncMessage message);
  // Whether the secondary verified a resync on this stream and applied the
  // last revision queued, with nothing left in the queue.
  bool CaughtUp() const;

  // The pusher's side: waits (at most `timeout`) until a message is queued,
  // `wake()` is true (checked under the outbox's lock) or the outbox
  // overflowed; then takes the queue. False if it overflowed.
  bool Take(std::deque<v1::ConfigSyncMessage>* out, const std::function<bool()>& wake,
            absl::Duration timeout);
  // Records the secondary's ack of `revision` after a verified resync.
  void Acked(uint64_t revision);
  // A new diff starts: not caught up until it is verified.
  void Unsynced();
  // Runs `fn` under the outbox's lock: state the pusher's reader shares,
  // so that a change to it wakes Take like a message does.
  void Locked(const std::function<void()>& fn);

 private:
  const ExclusionSet effective_;
  mutable absl::Mutex mu_;
  std::deque<v1::ConfigSyncMessage> queue_ ABSL_GUARDED_BY(mu_);
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  // The last revision queued, and the last the secondary applied; `synced`
  // once it verified a complete resync on this stream.
  uint64_t pushed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
};

// The outboxes of the streams that are up, by secondary.
class ConfigOutboxRegistry {
 public:
  ConfigOutboxRegistry() = default;
  ConfigOutboxRegistry(const ConfigOutboxRegistry&) = delete;
  ConfigOutboxRegistry& operator=(const ConfigOutboxRegistry&) = delete;

  // Replaces `peer`'s outbox.
  void Register(const std::string& peer, std::shared_ptr<ConfigOutbox> outbox);
  // Removes `peer`'s outbox if it is still `outbox`.
  void Unregister(const std::string& peer, const ConfigOutbox* outbox);

  // Queues `result` (committed as revision result.revision) to every
  // outbox, each without the paths its pair excludes and with the root
  // checksum over the paths it syncs. Call in commit order (under the
  // commit lock). Returns how many outboxes it reached.
  size_t Publish(const ConfigCommitResult& result, const ConfigStore& store);

  // Whether `peer` has an outbox and is caught up (a pusher between streams
  // has none: not caught up).
  bool CaughtUp(const std::string& peer) const;
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<ConfigOutbox>> outboxes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_OUTBOX_H_
