// The admin API on the agent's Unix socket: what `cloudha status`,
// `cloudha failover` and `cloudha events` ask.
#ifndef CLOUDHA_AGENT_ADMIN_SERVICE_H_
#define CLOUDHA_AGENT_ADMIN_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/config_sync.h"
#include "agent/metrics.h"
#include "agent/session_sync.h"
#include "cloudha/v1/admin.grpc.pb.h"

namespace cloudha {

// What the admin API asks of the running agent. Implementations are
// thread-safe.
class AdminBackend {
 public:
  virtual ~AdminBackend() = default;
  virtual v1::StatusResponse Status() = 0;
  // Hands the primary role to `to` (or the best eligible peer) and waits up
  // to `timeout` for it to promote.
  virtual absl::StatusOr<v1::FailoverResponse> Failover(const std::string& to,
                                                        absl::Duration timeout) = 0;
  // Events above sequence `after`; `*last` gets the newest sequence.
  virtual std::vector<v1::Event> Events(uint64_t after, uint64_t* last) = 0;
  // Waits up to `timeout` for an event above `after`; false when the agent
  // is stopping or none came.
  virtual bool WaitForEvents(uint64_t after, absl::Duration timeout) = 0;
  // The agent is shutting down: streams end.
  virtual bool Stopping() = 0;
  // Rereads the configuration file (see AdminService.Reload).
  virtual absl::StatusOr<v1::ReloadResponse> Reload() = 0;
};

// Thread-safe when the backend is.
class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  // `metrics` counts refused config writes.
  AdminServiceImpl(AdminBackend* backend, SessionSync* sessions, ConfigSync* config,
                   Metrics* metrics)
      : backend_(backend), sessions_(sessions), config_(config), metrics_(metrics) {}

  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                         v1::StatusResponse* response) override;
  grpc::Status Failover(grpc::ServerContext* context, const v1::FailoverRequest* request,
                        v1::FailoverResponse* response) override;
  grpc::Status ListEvents(grpc::ServerContext* context, const v1::ListEventsRequest* request,
                          grpc::ServerWriter<v1::Event>* writer) override;
  grpc::Status Reload(grpc::ServerContext* context, const v1::ReloadRequest* request,
                      v1::ReloadResponse* response) override;
  grpc::Status ListSessions(grpc::ServerContext* context, const v1::ListSessionsRequest* request,
                            grpc::ServerWriter<v1::ListSessionsResponse>* writer) override;
  grpc::Status PublishSessions(grpc::ServerContext* context,
                               grpc::ServerReader<v1::PublishSessionsRequest>* reader,
                               v1::PublishSessionsResponse* response) override;
  grpc::Status ReceiveSessions(grpc::ServerContext* context,
                               const v1::ReceiveSessionsRequest* request,
                               grpc::ServerWriter<v1::ListSessionsResponse>* writer) override;
  grpc::Status GetConfig(grpc::ServerContext* context, const v1::GetConfigRequest* request,
                         v1::GetConfigResponse* response) override;
  grpc::Status PutConfig(grpc::ServerContext* context, const v1::PutConfigRequest* request,
                         v1::PutConfigResponse* response) override;
  grpc::Status DeleteConfig(grpc::ServerContext* context, const v1::DeleteConfigRequest* request,
                            v1::DeleteConfigResponse* response) override;
  grpc::Status ListConfig(grpc::ServerContext* context, const v1::ListConfigRequest* request,
                          v1::ListConfigResponse* response) override;
  grpc::Status WatchConfig(grpc::ServerContext* context, const v1::WatchConfigRequest* request,
                           grpc::ServerWriter<v1::WatchConfigResponse>* writer) override;
  grpc::Status DiffConfig(grpc::ServerContext* context, const v1::DiffConfigRequest* request,
                          v1::DiffConfigResponse* response) override;
  grpc::Status ConfigChecksums(grpc::ServerContext* context,
                               const v1::ConfigChecksumsRequest* request,
                               v1::ConfigChecksumsResponse* response) override;
  grpc::Status ConfigHistory(grpc::ServerContext* context, const v1::ConfigHistoryRequest* request,
                             v1::ConfigHistoryResponse* response) override;

 private:
  AdminBackend* backend_;
  SessionSync* sessions_;
  ConfigSync* config_;
  Metrics* metrics_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_ADMIN_SERVICE_H_
