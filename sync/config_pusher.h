// The primary's side of config replication to one secondary, while this node
// is primary at one epoch: dials a stream (retrying with backoff), opens it
// with the epoch and this node's exclusion list, and runs a
// ConfigPushSession on it (sync/config_push_session.h: the diff, the
// outbox, the acks): writes what the session queues, hands it what the
// secondary answers, until the stream ends or the pusher stops.
//
// The transport is injected (ConfigPushStream): the agent's adaptor speaks
// gRPC, tests a fake.
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
#include "sync/config_push_session.h"

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

 private:
  void Run();
  absl::Status RunStream();
  // Writes what `session` queues and hands it the answers until the stream
  // ends.
  absl::Status Loop(ConfigPushStream* stream, ConfigPushSession* session,
                    std::deque<v1::ConfigSyncMessage>* inbox, bool* reader_done);
  void SetState(std::string state);

  const ConfigPusherOptions options_;
  ConfigCommitter* const committer_;
  ConfigStore* const store_;
  ConfigOutboxRegistry* const outboxes_;
  const Dialer dial_;
  const PeerExclusionsFn on_peer_exclusions_;
  Clock* const clock_;

  // The pusher thread's own: the last reconnect reason logged.
  std::string last_logged_;

  mutable absl::Mutex mu_;
  ConfigPushStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The session of the stream that is up, for state().
  ConfigPushSession* session_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string state_ ABSL_GUARDED_BY(mu_) = "starting";
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_PUSHER_H_
