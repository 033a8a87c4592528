// The admin API on the agent's Unix socket: what `cloudha status` asks.
#ifndef CLOUDHA_AGENT_ADMIN_SERVICE_H_
#define CLOUDHA_AGENT_ADMIN_SERVICE_H_

#include "cloudha/v1/admin.grpc.pb.h"

namespace cloudha {

// Whatever can describe the running node.
class StatusSource {
 public:
  virtual ~StatusSource() = default;
  virtual v1::StatusResponse Status() = 0;
};

// Thread-safe when the source is.
class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  explicit AdminServiceImpl(StatusSource* source) : source_(source) {}

  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                         v1::StatusResponse* response) override;

 private:
  StatusSource* source_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_ADMIN_SERVICE_H_
