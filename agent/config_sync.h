// Config sync on one node, wired together: the durable config store and
// the parts of its replication (in sync/), driven by the role the agent
// decided, plus the admin calls (get, put, list, watch, diff, checksums)
// and the apply hooks.
//
// Replication (see sync/config_follower.h and sync/config_pusher.h for the
// protocol). While this node is primary it runs one ConfigPusher per live
// secondary, over PeerService.SyncConfig on the sync channel; every commit
// is queued to every pusher's outbox in commit order (ConfigCommitter,
// ConfigOutboxRegistry), so the secondaries converge. While it is not, a
// ConfigFollower applies the stream of the primary it follows. A secondary
// that holds the primary's content is in sync and eligible for promotion; a
// checksum that disagrees afterwards (commit or hello) starts a new diff.
//
// Writes. A primary takes every write; a secondary (or a node that is not
// primary) takes writes only to paths its pair with the primary does not
// sync (its own exclusions and the primary's), and refuses the others with
// FAILED_PRECONDITION naming the primary.
//
// Files: config_sync.cc (lifecycle, role, commits, status),
// config_admin.cc (admin and query calls), config_sync_service.{h,cc} (the
// gRPC adaptors: the only code here that speaks gRPC), config_apply_hooks.*
// (the apply hooks).
//
// Thread-safe.
#ifndef CLOUDHA_AGENT_CONFIG_SYNC_H_
#define CLOUDHA_AGENT_CONFIG_SYNC_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/config_apply_hooks.h"
#include "base/clock.h"
#include "cloudha/v1/admin.pb.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.pb.h"
#include "crypto/tls_material.h"
#include "grpcpp/grpcpp.h"
#include "sync/config_committer.h"
#include "sync/config_follower.h"
#include "sync/config_outbox.h"
#include "sync/config_path.h"
#include "sync/config_pusher.h"
#include "sync/config_store.h"

namespace cloudha {

// What the agent knows of a live peer from its last hello.
struct ConfigPeerView {
  std::string id;
  uint64_t revision = 0;
  std::string root_checksum;
  std::string exclusion_digest;
};

// The secondary's end of one SyncConfig stream. Read and Write block;
// Cancel (from any thread) ends the stream.
class ConfigFollowStream {
 public:
  virtual ~ConfigFollowStream() = default;
  virtual bool Read(v1::ConfigSyncMessage* message) = 0;
  virtual bool Write(const v1::ConfigSyncMessage& message) = 0;
  virtual void Cancel() = 0;
};

class ConfigSync {
 public:
  // `note(message)` records an event for `cloudha events`.
  using NoteFn = std::function<void(const std::string& message)>;
  // `hook_ran(run)` hears of every apply hook run (may be empty).
  using HookRanFn = std::function<void(const HookRunner::Attempt& run)>;
  // `credentials`: this node's mutual TLS (crypto/reloadable_credentials.h).
  ConfigSync(const v1::AgentConfig& config, std::shared_ptr<grpc::ChannelCredentials> credentials,
             Clock* clock, NoteFn note, HookRanFn hook_ran = nullptr);
  ~ConfigSync();
  ConfigSync(const ConfigSync&) = delete;
  ConfigSync& operator=(const ConfigSync&) = delete;

  // Opens the store (a clear error naming the file if it cannot) and starts
  // the config thread and the apply hooks.
  absl::Status Start();
  void Stop();

  // The role as the role machine decided it, the epoch it knows, the
  // primary it follows ("" if none) and the live peers. Cheap; never blocks
  // on the network.
  void Update(v1::Role role, uint64_t epoch, const std::string& primary,
              const std::vector<ConfigPeerView>& live_peers);

  // Whether this node holds the primary's content: primary, or no primary
  // known, or a secondary whose full sync with the current primary
  // finished.
  bool in_sync() const;

  // The config fields of a hello to `peer`.
  void FillHello(const std::string& peer, v1::Hello* hello) const;

  // PeerService calls, after the peer's certificate was checked (the gRPC
  // adaptors are in config_sync_service.h).
  absl::Status Serve(const std::string& peer, ConfigFollowStream* stream);
  absl::Status Query(const std::string& peer, const v1::ConfigQueryRequest& request,
                     v1::ConfigQueryResponse* response);

  // AdminService calls.
  absl::Status Get(const v1::GetConfigRequest& request, v1::GetConfigResponse* response);
  absl::Status Put(const v1::PutConfigRequest& request, v1::PutConfigResponse* response);
  absl::Status Delete(const v1::DeleteConfigRequest& request, v1::DeleteConfigResponse* response);
  absl::Status List(const v1::ListConfigRequest& request, v1::ListConfigResponse* response);
  // Writes the first message (no changes: the watch is in place), then one
  // per commit touching the prefix, until `write` fails, `cancelled()` or
  // the agent stops. RESOURCE_EXHAUSTED when the watcher falls
  // kMaxConfigWatchQueue commits behind.
  absl::Status Watch(const v1::WatchConfigRequest& request,
                     const std::function<bool(const v1::WatchConfigResponse&)>& write,
                     const std::function<bool()>& cancelled);
  absl::Status Diff(const v1::DiffConfigRequest& request, v1::DiffConfigResponse* response);
  absl::Status Checksums(const v1::ConfigChecksumsRequest& request,
                         v1::ConfigChecksumsResponse* response);
  absl::Status History(const v1::ConfigHistoryRequest& request,
                       v1::ConfigHistoryResponse* response);

  // Fills status.config and each peer's config.
  void FillStatus(v1::StatusResponse* status) const;

  // A planned handover: local writes to synced paths are refused from
  // BeginHandover to EndHandover, and WaitReplicated waits (at most
  // `timeout`) until every live secondary this primary pushes to has
  // applied the last commit (only `only`, if given). False if one had not
  // (or its stream is down).
  void BeginHandover();
  // This node's exclusion list changed (a reload of config_sync.exclude):
  // new writes are checked against it at once, and every replication stream
  // restarts with it (the pair's next diff syncs what the new union leaves
  // in; a value a resync replaces is saved as always). INVALID_ARGUMENT for
  // a bad pattern, and nothing changes.
  absl::Status SetExclusions(const std::vector<std::string>& patterns);
  void EndHandover();
  bool WaitReplicated(absl::Duration timeout, const std::string& only = "");

 private:
  struct Desired {
    v1::Role role = v1::STARTING;
    uint64_t epoch = 0;
    std::string primary;
    std::vector<ConfigPeerView> live;
  };
  struct Watcher {
    std::string prefix;
    std::deque<v1::WatchConfigResponse> queue;
    bool overflowed = false;
  };

  void Run();
  // `restart`: end every pusher's stream first (the exclusion list changed).
  void Reconcile(const Desired& desired, bool restart);
  // Returns once every local write that passed its check before now is
  // committed and queued to the outboxes.
  void CommitBarrier();

  // Under the commit lock, after every commit that changed something:
  // hello cache, secondaries' outboxes, watchers, hooks.
  void AfterCommit(const ConfigCommitResult& result, bool replicated);
  void NotifyWatchers(const ConfigCommitResult& result);

  // The zone-local paths this node may write whatever its role: its own
  // exclusions, and on a secondary also those its primary leaves out
  // (neither side syncs them, so only here can they be written).
  ExclusionSet ZoneLocalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether local writes to these paths are allowed on this node now.
  absl::Status CheckWritable(const std::vector<ConfigChange>& changes) const;
  absl::Status CheckSender(const std::string& peer, uint64_t epoch) const;
  // Whether writes from `primary`'s stream are still accepted.
  absl::Status StillFollows(const std::string& primary) const;

  // Asks `peer` over the sync channel.
  absl::StatusOr<v1::ConfigQueryResponse> QueryPeer(const std::string& peer,
                                                    const v1::ConfigQueryRequest& request) const;
  // Remembers the union with `peer`'s list.
  void LearnPeerExclusions(const std::string& peer, const std::vector<std::string>& patterns);
  std::optional<ExclusionSet> EffectiveFor(const std::string& peer) const;
  // Recomputes the cached revision and root checksums that hellos carry.
  // Call in commit order.
  void RefreshHelloCache();
  // The cached root checksum over `effective` ("" if not cached).
  std::string CachedRoot(const ExclusionSet& effective) const;

  const v1::AgentConfig config_;
  const std::string store_file_;
  Clock* const clock_;
  NoteFn note_;
  // This node's exclusion list; a reload may replace it (SetExclusions).
  ExclusionSet own() const ABSL_LOCKS_EXCLUDED(own_mu_);
  mutable absl::Mutex own_mu_;
  ExclusionSet own_ ABSL_GUARDED_BY(own_mu_);
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;

  // Set by Start, then fixed.
  std::unique_ptr<ConfigStore> store_;
  std::unique_ptr<ConfigCommitter> committer_;
  std::unique_ptr<ConfigFollower> follower_;
  ConfigOutboxRegistry outboxes_;
  ConfigApplyHooks hooks_;

  // Watchers have a lock of their own: a watch delivers while the next
  // commit is inside its fsync. Taken after the commit lock.
  absl::Mutex watch_mu_;
  std::set<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(watch_mu_);
  absl::CondVar watch_cv_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  // desired_ changed since Run() last took it (a signal while Run() was
  // reconciling would otherwise wait out the 1 s timeout).
  bool desired_changed_ ABSL_GUARDED_BY(mu_) = false;
  // The exclusion list changed: Run() restarts every pusher.
  bool restart_pushers_ ABSL_GUARDED_BY(mu_) = false;
  Desired desired_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool handing_over_ ABSL_GUARDED_BY(mu_) = false;
  // Set first when stopping: writes are refused from then on.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // The last apply hook failure.
  std::string hook_error_ ABSL_GUARDED_BY(mu_);
  // Union with each peer's list, and the digest of the peer's own list it
  // was made from.
  std::map<std::string, std::pair<std::string, ExclusionSet>> effective_ ABSL_GUARDED_BY(mu_);
  // The replica stream being served, for cancelling on drift.
  ConfigFollowStream* follow_stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time mismatch_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Per live peer: since when its hello checksum differs from ours (absent
  // while they agree). A difference younger than a second is a commit in
  // flight, not worth showing.
  std::map<std::string, absl::Time> peer_mismatch_since_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> commits_replicated_{0};

  // What hellos carry, so the heartbeat path never waits for the store
  // (which may be inside an fsync): revision and root checksum per
  // exclusion digest.
  mutable absl::Mutex cache_mu_;
  uint64_t cached_revision_ ABSL_GUARDED_BY(cache_mu_) = 0;
  uint64_t cached_size_ ABSL_GUARDED_BY(cache_mu_) = 0;
  std::map<std::string, std::string> cached_roots_ ABSL_GUARDED_BY(cache_mu_);

  // Owned by the config thread; read under pushers_mu_ for status.
  mutable absl::Mutex pushers_mu_;
  std::map<std::string, std::unique_ptr<ConfigPusher>> pushers_ ABSL_GUARDED_BY(pushers_mu_);
  uint64_t pusher_epoch_ ABSL_GUARDED_BY(pushers_mu_) = 0;

  absl::Notification stop_;
  bool started_ = false;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CONFIG_SYNC_H_
