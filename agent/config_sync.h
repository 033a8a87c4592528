// Config sync on one node: the durable config store, its replication to the
// secondaries when this node is primary (one pusher per live peer, over
// PeerService.SyncConfig on the sync channel), the replica side when it is
// not, the admin calls (get, put, list, watch, diff, checksums) and the
// apply hooks.
//
// Replication. The primary dials each live secondary and opens with its
// epoch and exclusion list; the secondary answers with its own. Each side
// then leaves out the union of both lists. The primary asks for the
// secondary's subtree checksums, level by level, and sends the content of
// the subtrees that differ (whole, once they are small), then a "complete"
// marker with its root checksum: a resync costs what differs. Every commit
// on the primary is queued to every pusher under the commit lock, so the
// stream carries content in commit order and the secondary converges. A
// secondary that holds the primary's content is in sync and eligible for
// promotion; a checksum that disagrees afterwards (commit or hello) starts a
// new diff.
//
// Writes. A primary takes every write; a secondary (or a node that is not
// primary) takes writes only to paths its pair with the primary does not
// sync (its own exclusions and the primary's), and refuses the others with
// FAILED_PRECONDITION naming the primary.
//
// Files: config_sync.cc (lifecycle, role, commits, hooks, status),
// config_pusher.{h,cc} (the primary's side of a stream), config_replica.cc
// (the secondary's side), config_admin.cc (admin and query calls).
//
// Thread-safe.
#ifndef CLOUDHA_AGENT_CONFIG_SYNC_H_
#define CLOUDHA_AGENT_CONFIG_SYNC_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "cloudha/v1/admin.grpc.pb.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "crypto/tls_material.h"
#include "grpcpp/grpcpp.h"
#include "sync/config_path.h"
#include "sync/config_store.h"

namespace cloudha {

class ConfigPusher;
struct ConfigOutbox;

// What the agent knows of a live peer from its last hello.
struct ConfigPeerView {
  std::string id;
  uint64_t revision = 0;
  std::string root_checksum;
  std::string exclusion_digest;
};

class ConfigSync {
 public:
  // `note(message)` records an event for `cloudha events`.
  using NoteFn = std::function<void(const std::string& message)>;
  ConfigSync(const v1::AgentConfig& config, const TlsMaterial& tls, Clock* clock, NoteFn note);
  ~ConfigSync();
  ConfigSync(const ConfigSync&) = delete;
  ConfigSync& operator=(const ConfigSync&) = delete;

  // Opens the store (a clear error naming the file if it cannot) and starts
  // the config thread and the hook thread.
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

  // PeerService calls, after the peer's certificate was checked.
  grpc::Status Serve(const std::string& peer, grpc::ServerContext* context,
                     grpc::ServerReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>*
                         stream);
  grpc::Status Query(const std::string& peer, const v1::ConfigQueryRequest& request,
                     v1::ConfigQueryResponse* response);

  // AdminService calls.
  grpc::Status Get(const v1::GetConfigRequest& request, v1::GetConfigResponse* response);
  grpc::Status Put(const v1::PutConfigRequest& request, v1::PutConfigResponse* response);
  grpc::Status Delete(const v1::DeleteConfigRequest& request, v1::DeleteConfigResponse* response);
  grpc::Status List(const v1::ListConfigRequest& request, v1::ListConfigResponse* response);
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchConfigRequest& request,
                     grpc::ServerWriter<v1::WatchConfigResponse>* writer);
  grpc::Status Diff(const v1::DiffConfigRequest& request, v1::DiffConfigResponse* response);
  grpc::Status Checksums(const v1::ConfigChecksumsRequest& request,
                         v1::ConfigChecksumsResponse* response);
  grpc::Status History(const v1::ConfigHistoryRequest& request,
                       v1::ConfigHistoryResponse* response);

  // Fills status.config and each peer's config.
  void FillStatus(v1::StatusResponse* status) const;

  // A planned handover: local writes to synced paths are refused from
  // BeginHandover to EndHandover, and WaitReplicated waits (at most
  // `timeout`) until every live secondary this primary pushes to has
  // applied the last commit (only `only`, if given). False if one had not
  // (or its stream is down).
  void BeginHandover();
  void EndHandover();
  bool WaitReplicated(absl::Duration timeout, const std::string& only = "");

 private:
  friend class ConfigPusher;
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
  struct HookJob {
    std::set<std::string> paths;
    uint64_t revision = 0;
  };
  // The replica side of one stream.
  struct Follow {
    std::string peer;
    grpc::ServerContext* context = nullptr;
    uint64_t epoch = 0;
    ExclusionSet effective;
    bool synced = false;
    absl::Time opened;
    uint64_t resync_entries = 0;
    uint64_t replaced = 0;
    // During a resync: subtrees the primary sent whole, and the paths it
    // wrote or deleted since the resync began.
    std::set<std::string> covered;
    std::set<std::string> received;
  };

  void Run();
  void Reconcile(const Desired& desired);
  void RunHooks();

  // Commits `changes` under commit_mu_: store, pushers' outboxes, watchers,
  // hooks. `follow` is null for local writes (each path must be writable
  // here, checked under the lock so a demotion cannot slip in between), the
  // stream from the primary otherwise (which must still be the one this
  // node follows).
  absl::StatusOr<ConfigCommitResult> Commit(const std::vector<ConfigChange>& changes,
                                            const Follow* follow)
      ABSL_LOCKS_EXCLUDED(commit_mu_);
  // A local write joins the writes waiting for the commit lock: one of them
  // (the first to find no commit in progress) commits them all in one
  // transaction, one fsync (group commit). Each write is checked on its
  // own; a refused one does not hold the others back. Writes committed
  // together share a revision.
  struct LocalWrite {
    const std::vector<ConfigChange>* changes;
    absl::StatusOr<ConfigCommitResult> result = absl::UnknownError("not committed");
    bool done = false;
  };
  void CommitGroupLocked(const std::vector<LocalWrite*>& group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // The values `changes` from a resync will replace or delete, in full,
  // appended to <state_dir>/config-replaced.jsonl before they are applied.
  void SaveReplaced(const std::string& primary, const std::vector<ConfigChange>& changes);
  void AfterCommitLocked(const ConfigCommitResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);

  // The zone-local paths this node may write whatever its role: its own
  // exclusions, and on a secondary also those its primary leaves out
  // (neither side syncs them, so only here can they be written).
  ExclusionSet ZoneLocalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether local writes to these paths are allowed on this node now.
  absl::Status CheckWritable(const std::vector<ConfigChange>& changes) const;
  absl::Status CheckSender(const std::string& peer, uint64_t epoch) const;

  // Replica side: applies one message from the primary; returns the reply
  // to send, if any.
  absl::StatusOr<std::optional<v1::ConfigSyncMessage>> ApplyFromPrimary(
      Follow* follow, const v1::ConfigSyncMessage& message);
  void FillSubtrees(const std::vector<std::string>& prefixes, const ExclusionSet& excluded,
                    google::protobuf::RepeatedPtrField<v1::ConfigChecksums::Subtree>* out) const;
  // Asks `peer` over the sync channel.
  absl::StatusOr<v1::ConfigQueryResponse> QueryPeer(const std::string& peer,
                                                    const v1::ConfigQueryRequest& request) const;
  // Remembers the union with `peer`'s list.
  void LearnPeerExclusions(const std::string& peer, const std::vector<std::string>& patterns);
  std::optional<ExclusionSet> EffectiveFor(const std::string& peer) const;
  void SetError(const std::string& error);
  // Recomputes the cached revision and root checksums that hellos carry.
  void RefreshHelloCacheLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // The cached root checksum over `effective` ("" if not cached).
  std::string CachedRoot(const ExclusionSet& effective) const;

  const v1::AgentConfig config_;
  const std::string store_file_;
  Clock* const clock_;
  NoteFn note_;
  ExclusionSet own_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  std::unique_ptr<ConfigStore> store_;

  // Local writes waiting for a group commit, and whether one is running.
  absl::Mutex group_mu_ ABSL_ACQUIRED_BEFORE(commit_mu_);
  std::deque<LocalWrite*> group_ ABSL_GUARDED_BY(group_mu_);
  bool group_running_ ABSL_GUARDED_BY(group_mu_) = false;

  // Serializes commits with what they feed (outboxes, watchers, hooks).
  mutable absl::Mutex commit_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::map<std::string, std::shared_ptr<ConfigOutbox>> outboxes_ ABSL_GUARDED_BY(commit_mu_);
  // Watchers have a lock of their own: a watch delivers while the next
  // commit is inside its fsync. Taken after commit_mu_.
  absl::Mutex watch_mu_ ABSL_ACQUIRED_AFTER(commit_mu_);
  std::set<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(watch_mu_);
  absl::CondVar watch_cv_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  Desired desired_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool handing_over_ ABSL_GUARDED_BY(mu_) = false;
  // Set first when stopping: writes are refused from then on.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  // Union with each peer's list, and the digest of the peer's own list it
  // was made from.
  std::map<std::string, std::pair<std::string, ExclusionSet>> effective_ ABSL_GUARDED_BY(mu_);
  // The primary whose content this node verifiably holds; "" when none.
  std::string synced_with_ ABSL_GUARDED_BY(mu_);
  // The replica stream being served, for cancelling on drift.
  grpc::ServerContext* follow_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string following_ ABSL_GUARDED_BY(mu_);
  uint64_t primary_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::string primary_root_ ABSL_GUARDED_BY(mu_);
  absl::Time mismatch_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Per live peer: since when its hello checksum differs from ours (absent
  // while they agree). A difference younger than a second is a commit in
  // flight, not worth showing.
  std::map<std::string, absl::Time> peer_mismatch_since_ ABSL_GUARDED_BY(mu_);
  uint64_t resyncs_ ABSL_GUARDED_BY(mu_) = 0;
  double last_resync_ms_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_resync_entries_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hook_failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> commits_replicated_{0};

  // What hellos carry, so the heartbeat path never waits for the store
  // (which may be inside an fsync): revision and root checksum per
  // exclusion digest.
  mutable absl::Mutex cache_mu_;
  uint64_t cached_revision_ ABSL_GUARDED_BY(cache_mu_) = 0;
  uint64_t cached_size_ ABSL_GUARDED_BY(cache_mu_) = 0;
  std::map<std::string, std::string> cached_roots_ ABSL_GUARDED_BY(cache_mu_);

  // Hooks: pending paths per hook index, run by the hook thread.
  absl::Mutex hooks_mu_;
  absl::CondVar hooks_cv_;
  std::map<size_t, HookJob> hook_jobs_ ABSL_GUARDED_BY(hooks_mu_);
  bool hooks_stopping_ ABSL_GUARDED_BY(hooks_mu_) = false;

  // Owned by the config thread; read under pushers_mu_ for status.
  mutable absl::Mutex pushers_mu_;
  std::map<std::string, std::unique_ptr<ConfigPusher>> pushers_ ABSL_GUARDED_BY(pushers_mu_);
  uint64_t pusher_epoch_ = 0;

  absl::Notification stop_;
  bool started_ = false;
  std::thread thread_;
  std::thread hook_thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CONFIG_SYNC_H_
