#include "agent/admin_service.h"

namespace cloudha {

grpc::Status AdminServiceImpl::GetStatus(grpc::ServerContext* /*context*/,
                                         const v1::GetStatusRequest* /*request*/,
                                         v1::StatusResponse* response) {
  *response = source_->Status();
  return grpc::Status::OK;
}

}  // namespace cloudha
