// The server side of PeerService: answers the hello streams peers dial.
//
// Every stream is checked before anything it says is believed: the client
// certificate (already verified against the cluster CA by TLS) must name a
// configured peer of this cluster, and each hello must carry that node id,
// this cluster's name and group id. A refused stream ends with
// PERMISSION_DENIED or FAILED_PRECONDITION and a reason, which is logged.
#ifndef CLOUDHA_AGENT_PEER_SERVICE_H_
#define CLOUDHA_AGENT_PEER_SERVICE_H_

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "agent/config_sync.h"
#include "agent/local_node.h"
#include "agent/membership.h"
#include "agent/metrics.h"
#include "agent/peer_verifier.h"
#include "agent/session_sync.h"
#include "cloudha/v1/peer.grpc.pb.h"

namespace cloudha {

// Thread-safe: gRPC calls Hello on many threads; the collaborators are
// thread-safe and outlive the service.
class PeerServiceImpl final : public v1::PeerService::Service {
 public:
  // `metrics` (may be null) counts refusals.
  PeerServiceImpl(const LocalNode* local, const PeerVerifier* verifier, Membership* membership,
                  SessionSync* sessions, ConfigSync* config, Metrics* metrics, Clock* clock)
      : local_(local),
        verifier_(verifier),
        membership_(membership),
        sessions_(sessions),
        config_(config),
        metrics_(metrics),
        clock_(clock) {}

  grpc::Status Hello(grpc::ServerContext* context,
                     grpc::ServerReaderWriter<v1::Hello, v1::Hello>* stream) override;
  // Same certificate check as Hello, then the session replica takes it.
  grpc::Status SyncSessions(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream) override;
  // Same check, then the config replica takes it.
  grpc::Status SyncConfig(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream) override;
  grpc::Status QueryConfig(grpc::ServerContext* context, const v1::ConfigQueryRequest* request,
                           v1::ConfigQueryResponse* response) override;

 private:
  // Logs a refusal, but the same one from the same peer at most once per
  // kRefusalLogInterval: a misconfigured peer redials every second.
  void LogRefusal(const std::string& who, const std::string& from, const absl::Status& reason);
  static constexpr absl::Duration kRefusalLogInterval = absl::Seconds(60);

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> refusals_logged_ ABSL_GUARDED_BY(mu_);
  const LocalNode* local_;
  const PeerVerifier* verifier_;
  // The peer's verified identity, or the refusal (logged).
  absl::StatusOr<NodeIdentity> Authenticate(grpc::ServerContext* context);
  // Authenticate, and the call's group id (kGroupIdMetadata) must be this
  // cluster's: every replication call (SyncSessions, SyncConfig,
  // QueryConfig) goes through here.
  absl::StatusOr<NodeIdentity> AuthenticateReplication(grpc::ServerContext* context);

  Membership* membership_;
  SessionSync* sessions_;
  ConfigSync* config_;
  Metrics* metrics_;
  Clock* clock_;
};


}  // namespace cloudha

#endif  // CLOUDHA_AGENT_PEER_SERVICE_H_
