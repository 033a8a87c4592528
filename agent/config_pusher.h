// The primary's side of config replication to one secondary: its outbox
// (commits and resync content in commit order) and the pusher that dials
// the secondary, diffs, and streams. Internal to ConfigSync.
#ifndef CLOUDHA_AGENT_CONFIG_PUSHER_H_
#define CLOUDHA_AGENT_CONFIG_PUSHER_H_

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/config_sync_common.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "sync/config_path.h"

namespace cloudha {

class ConfigSync;

// The messages queued for one secondary, in commit order: commits and
// resync content enter under ConfigSync's commit lock, the pusher drains
// them. Thread-safe.
struct ConfigOutbox {
  explicit ConfigOutbox(ExclusionSet e) : effective(std::move(e)) {}
  const ExclusionSet effective;
  absl::Mutex mu;
  std::deque<v1::ConfigSyncMessage> queue ABSL_GUARDED_BY(mu);
  bool overflowed ABSL_GUARDED_BY(mu) = false;
  // The last revision queued, and the last the secondary applied; `synced`
  // once it verified a complete resync on this stream.
  uint64_t pushed ABSL_GUARDED_BY(mu) = 0;
  uint64_t acked ABSL_GUARDED_BY(mu) = 0;
  bool synced ABSL_GUARDED_BY(mu) = false;

  void Push(v1::ConfigSyncMessage message) {
    absl::MutexLock lock(&mu);
    if (queue.size() >= config_sync::kMaxOutbox) {
      overflowed = true;
      return;
    }
    if (message.has_commit()) pushed = std::max(pushed, message.commit().revision());
    if (message.has_pull_response() && message.pull_response().complete()) {
      pushed = std::max(pushed, message.pull_response().revision());
    }
    queue.push_back(std::move(message));
  }

  bool CaughtUp() {
    absl::MutexLock lock(&mu);
    return synced && acked >= pushed && queue.empty();
  }
};

// Replicates to one secondary while this node is primary at one epoch:
// connects (retrying), diffs, then streams the commits. Its thread writes
// to the stream; a reader thread takes the secondary's answers.
class ConfigPusher {
 public:
  // Starts its thread at once; `sync` outlives it.
  ConfigPusher(ConfigSync* sync, std::string peer, uint64_t epoch,
               std::shared_ptr<grpc::Channel> channel);
  // Cancels the stream and joins the thread.
  ~ConfigPusher();
  ConfigPusher(const ConfigPusher&) = delete;
  ConfigPusher& operator=(const ConfigPusher&) = delete;

  // "diffing", "in sync at revision N", "reconnecting: why", for status.
  std::string state() const;

 private:
  void Run();
  void Unregister();
  absl::Status RunStream();
  // Writes queued messages and drives the diff until the stream ends.
  absl::Status Loop(
      grpc::ClientReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream,
      const ExclusionSet& effective, std::deque<v1::ConfigSyncMessage>* inbox, bool* reader_done);
  // Consecutive commits queued while the stream was busy travel as one
  // (the last revision and root checksum, each path's last change): the
  // secondary applies them in one transaction, one fsync, and keeps up with
  // a primary that commits faster than it can fsync one by one.
  static std::vector<v1::ConfigSyncMessage> Coalesce(std::deque<v1::ConfigSyncMessage> in);
  void StartDiff();
  // Compares one level, queues the content of what differs (under the
  // commit lock, so it sits in commit order), and asks for the next level.
  void OnChecksums(const v1::ConfigChecksums& theirs, const ExclusionSet& effective);

  ConfigSync* const sync_;
  const std::string peer_;
  const uint64_t epoch_;
  std::unique_ptr<v1::PeerService::Stub> stub_;
  std::shared_ptr<ConfigOutbox> outbox_;
  // Checksum requests in flight (one level at a time) and their prefixes.
  int outstanding_ = 0;
  std::string last_logged_;
  std::vector<std::string> requested_;
  bool diff_done_ = false;
  uint64_t sent_entries_ = 0;

  mutable absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string state_ ABSL_GUARDED_BY(mu_) = "starting";
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CONFIG_PUSHER_H_
