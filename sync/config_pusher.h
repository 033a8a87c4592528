// The primary's side of config replication to one secondary, while this node
// is primary at one epoch: dials a stream (retrying with backoff), opens it
// with the epoch and this node's exclusion list, learns the secondary's,
// registers an outbox, diffs (subtree checksums level by level, the content
// of what differs, then a "complete" marker with the root checksum), and
// streams the commits the registry queues to the outbox. A secondary's ack
// after a verified resync makes the outbox caught up.
//
// The transport is injected (ConfigPushStream): the agent's adaptor speaks
// gRPC, tests a fake. Diff content is read and queued in commit order
// (ConfigCommitter::InCommitOrder), so a secondary converges.
//
// Thread-safe. The constructor starts the pusher's thread; the destructor
// cancels the stream, joins, and removes the outbox.
#ifndef CLOUDHA_SYNC_CONFIG_PUSHER_H_
#define CLOUDHA_SYNC_CONFIG_PUSHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "cloudha/v1/peer.pb.h"
#include "sync/config_committer.h"
#include "sync/config_outbox.h"
#include "sync/config_path.h"

namespace cloudha {

// One SyncConfig stream as the primary sees it. Read and Write block;
// Cancel (from any thread) makes them return false.
class ConfigPushStream {
 public:
  virtual ~ConfigPushStream() = default;
  virtual bool Write(const v1::ConfigSyncMessage& message) = 0;
  virtual bool Read(v1::ConfigSyncMessage* message) = 0;
  virtual void Cancel() = 0;
  // Once Read returned false: the secondary's status (why it ended).
  virtual absl::Status Finish() = 0;
};

struct ConfigPusherOptions {
  std::string peer;
  // This primary's epoch, sent in the open message.
  uint64_t epoch = 0;
  // This node's own exclusion list.
  ExclusionSet own;
};

class ConfigPusher {
 public:
  // Opens a new stream to the secondary (called on the pusher's thread).
  using Dialer = std::function<std::unique_ptr<ConfigPushStream>()>;
  // The secondary's exclusion list, each time a stream opens.
  using PeerExclusionsFn =
      std::function<void(const std::string& peer, const std::vector<std::string>& patterns)>;

  // Everything passed outlives the pusher.
  ConfigPusher(ConfigPusherOptions options, ConfigCommitter* committer,
               ConfigOutboxRegistry* outboxes, Dialer dial, PeerExclusionsFn on_peer_exclusions,
               Clock* clock);
  ~ConfigPusher();
  ConfigPusher(const ConfigPusher&) = delete;
  ConfigPusher& operator=(const ConfigPusher&) = delete;

  // "diffing", "in sync at revision N", "reconnecting: why", for status.
  std::string state() const;

  // Consecutive commits queued while the stream was busy travel as one
  // (the last revision and root checksum, each path's last change): the
  // secondary applies them in one transaction, one fsync, and keeps up with
  // a primary that commits faster than it can fsync one by one. Other
  // messages keep their place.
  static std::vector<v1::ConfigSyncMessage> Coalesce(std::deque<v1::ConfigSyncMessage> in);

 private:
  void Run();
  absl::Status RunStream();
  // Writes queued messages and drives the diff until the stream ends.
  absl::Status Loop(ConfigPushStream* stream, const ExclusionSet& effective,
                    std::deque<v1::ConfigSyncMessage>* inbox, bool* reader_done);
  void StartDiff();
  // Compares one level, queues the content of what differs (in commit
  // order), and asks for the next level.
  void OnChecksums(const v1::ConfigChecksums& theirs, const ExclusionSet& effective);
  void SetState(std::string state);

  const ConfigPusherOptions options_;
  ConfigCommitter* const committer_;
  ConfigStore* const store_;
  ConfigOutboxRegistry* const outboxes_;
  const Dialer dial_;
  const PeerExclusionsFn on_peer_exclusions_;
  Clock* const clock_;

  // The pusher thread's own (no lock): the stream's outbox, the checksum
  // requests in flight (one level at a time) and their prefixes.
  std::shared_ptr<ConfigOutbox> outbox_;
  int outstanding_ = 0;
  std::string last_logged_;
  std::vector<std::string> requested_;
  bool diff_done_ = false;
  uint64_t sent_entries_ = 0;

  mutable absl::Mutex mu_;
  ConfigPushStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string state_ ABSL_GUARDED_BY(mu_) = "starting";
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_PUSHER_H_
