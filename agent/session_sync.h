// Session sync on one node: the session table, its source (the kernel's
// conntrack table or a local publisher), the replication streams to the
// secondaries when this node is primary, and the replica when it is not.
//
// The agent tells it the role (Update, from the role thread; never blocks),
// and its own "sessions" thread does the rest: it starts and stops the
// per-peer senders, reads conntrack events while primary (a buffer overrun
// triggers a fresh dump, reconciled against the table), writes the replica
// into the kernel on promotion, and expires and delays sessions (Tick).
//
// sessions.commit CONTINUOUS (conntrack): a secondary also writes each batch
// it applies into its kernel before it acknowledges the batch, so an
// acknowledged session is in the secondary's kernel, and promotion only
// writes what the kernel lost meanwhile (entries it timed out).
//
// A peer that drops out leaves its sender's change-log reader parked for
// kResumeWindow: back within it (and within the log's memory bound), its
// stream resumes instead of starting with a snapshot.
//
// Thread-safe.
#ifndef CLOUDHA_AGENT_SESSION_SYNC_H_
#define CLOUDHA_AGENT_SESSION_SYNC_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
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
#include "sync/session_replica.h"
#include "sync/session_sender.h"
#include "sync/session_table.h"

namespace cloudha {

class Conntrack;
class NetworkNamespace;

class SessionSync {
 public:
  // How long a peer that dropped out may come back and resume its stream.
  static constexpr absl::Duration kResumeWindow = absl::Minutes(5);

  // `note(kind, message)` records an event for `cloudha events`.
  using NoteFn = std::function<void(const std::string& message)>;
  // `credentials`: this node's mutual TLS (crypto/reloadable_credentials.h).
  SessionSync(const v1::AgentConfig& config,
              std::shared_ptr<grpc::ChannelCredentials> credentials, uint64_t boot_id,
              Clock* clock, NoteFn note);
  ~SessionSync();
  SessionSync(const SessionSync&) = delete;
  SessionSync& operator=(const SessionSync&) = delete;

  bool enabled() const { return enabled_; }

  // Opens the source (conntrack needs CAP_NET_ADMIN: a clear error if not)
  // and starts the sessions thread.
  absl::Status Start();
  void Stop();

  // The role as the role machine decided it, the epoch it knows, the
  // primary it follows ("" if none) and the live peers. Cheap; wakes the
  // sessions thread when something changed.
  void Update(v1::Role role, uint64_t epoch, const std::string& primary,
              const std::vector<std::string>& live_peers);

  // Whether this node may be promoted as far as sessions go: pickup off, or
  // primary, or a replica whose bulk sync finished.
  bool in_sync() const;
  // Hello.session_position.
  uint64_t position() const;

  // PeerService.SyncSessions, after the peer's certificate was checked.
  grpc::Status Serve(const std::string& peer, grpc::ServerContext* context,
                     grpc::ServerReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>*
                         stream);

  // AdminService calls.
  grpc::Status Publish(grpc::ServerContext* context,
                       grpc::ServerReader<v1::PublishSessionsRequest>* reader,
                       v1::PublishSessionsResponse* response);
  grpc::Status List(const v1::ListSessionsRequest& request,
                    grpc::ServerWriter<v1::ListSessionsResponse>* writer);
  grpc::Status Receive(grpc::ServerContext* context,
                       grpc::ServerWriter<v1::ListSessionsResponse>* writer);

  // Fills status.sessions and each peer's sessions. `primary_position` is
  // the session_position of the primary's last hello (secondary lag).
  void FillStatus(uint64_t primary_position, v1::StatusResponse* status) const;

  // Test access.
  SessionTable* table() { return &table_; }

 private:
  struct Desired {
    v1::Role role = v1::STARTING;
    uint64_t epoch = 0;
    std::string primary;
    std::vector<std::string> live_peers;
  };
  void Run();
  // Starts and stops senders and the source for the current role.
  void Reconcile(const Desired& desired);
  void OnPromoted();
  // Promotion with conntrack: what the kernel must get from the replica.
  void CommitOnPromotion();
  void ReadConntrack();
  // CONTINUOUS: writes what the replica applied into the kernel, in order.
  void MirrorToKernel(const std::vector<SessionChange>& changes);
  // Drops parked readers past the window (all of them with `all`).
  void ExpireParked(bool all);
  absl::Status CheckSender(const std::string& peer, uint64_t epoch) const;
  // Applies what the data plane reported; counts and logs refusals.
  ApplyResult ApplyFromSource(const std::vector<SessionChange>& changes);
  void SetError(const std::string& error);

  const v1::AgentConfig config_;
  const bool enabled_;
  const uint64_t boot_id_;
  Clock* const clock_;
  NoteFn note_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  SessionTable table_;
  SessionReplica replica_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  Desired desired_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  uint64_t overruns_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t refused_logged_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time refused_logged_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  // Owned by the sessions thread; read under senders_mu_ for status.
  mutable absl::Mutex senders_mu_;
  std::map<std::string, std::unique_ptr<SessionSender>> senders_ ABSL_GUARDED_BY(senders_mu_);
  uint64_t sender_epoch_ = 0;
  v1::Role acting_role_ = v1::STARTING;
  std::unique_ptr<Conntrack> conntrack_;
  // sessions.netns, held open; null: the agent's own namespace.
  std::unique_ptr<NetworkNamespace> netns_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  // Change-log readers of peers that dropped out, by peer (sessions thread).
  struct Parked {
    int reader = 0;
    uint64_t epoch = 0;
    absl::Time since;
  };
  std::map<std::string, Parked> parked_;

  // CONTINUOUS: the kernel writer of the stream handlers (thread-compatible,
  // so under kernel_mu_).
  const bool continuous_;
  absl::Mutex kernel_mu_;
  std::unique_ptr<Conntrack> mirror_ ABSL_GUARDED_BY(kernel_mu_);
  absl::Time kernel_error_logged_at_ ABSL_GUARDED_BY(kernel_mu_) = absl::InfinitePast();
  std::atomic<uint64_t> kernel_written_{0};
  std::atomic<uint64_t> kernel_deleted_{0};
  std::atomic<uint64_t> kernel_failed_{0};
  std::atomic<uint64_t> promotion_committed_{0};
  std::atomic<double> promotion_commit_ms_{0};

  std::atomic<uint64_t> snapshots_sent_{0};
  std::atomic<uint64_t> resumes_sent_{0};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_SESSION_SYNC_H_
