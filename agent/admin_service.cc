#include "agent/admin_service.h"

#include "agent/config_sync_service.h"
#include "agent/grpc_status.h"

namespace cloudha {

grpc::Status AdminServiceImpl::GetStatus(grpc::ServerContext* /*context*/,
                                         const v1::GetStatusRequest* /*request*/,
                                         v1::StatusResponse* response) {
  *response = backend_->Status();
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::Failover(grpc::ServerContext* /*context*/,
                                        const v1::FailoverRequest* request,
                                        v1::FailoverResponse* response) {
  absl::Duration timeout =
      absl::Milliseconds(request->timeout_ms() == 0 ? 10000 : request->timeout_ms());
  absl::StatusOr<v1::FailoverResponse> result = backend_->Failover(request->to(), timeout);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *result;
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::Reload(grpc::ServerContext* /*context*/,
                                      const v1::ReloadRequest* /*request*/,
                                      v1::ReloadResponse* response) {
  absl::StatusOr<v1::ReloadResponse> result = backend_->Reload();
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *result;
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListEvents(grpc::ServerContext* context,
                                          const v1::ListEventsRequest* request,
                                          grpc::ServerWriter<v1::Event>* writer) {
  uint64_t last = 0;
  for (const v1::Event& event : backend_->Events(0, &last)) {
    if (!writer->Write(event)) return grpc::Status::OK;
  }
  while (request->follow() && !context->IsCancelled() && !backend_->Stopping()) {
    if (!backend_->WaitForEvents(last, absl::Milliseconds(250))) continue;
    for (const v1::Event& event : backend_->Events(last, &last)) {
      if (!writer->Write(event)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListSessions(grpc::ServerContext* /*context*/,
                                            const v1::ListSessionsRequest* request,
                                            grpc::ServerWriter<v1::ListSessionsResponse>* writer) {
  return sessions_->List(*request, writer);
}

grpc::Status AdminServiceImpl::PublishSessions(
    grpc::ServerContext* context, grpc::ServerReader<v1::PublishSessionsRequest>* reader,
    v1::PublishSessionsResponse* response) {
  return sessions_->Publish(context, reader, response);
}

grpc::Status AdminServiceImpl::ReceiveSessions(
    grpc::ServerContext* context, const v1::ReceiveSessionsRequest* /*request*/,
    grpc::ServerWriter<v1::ListSessionsResponse>* writer) {
  return sessions_->Receive(context, writer);
}

grpc::Status AdminServiceImpl::GetConfig(grpc::ServerContext*, const v1::GetConfigRequest* request,
                                         v1::GetConfigResponse* response) {
  return ToGrpcStatus(config_->Get(*request, response));
}

grpc::Status AdminServiceImpl::PutConfig(grpc::ServerContext*, const v1::PutConfigRequest* request,
                                         v1::PutConfigResponse* response) {
  absl::Status s = config_->Put(*request, response);
  if (!s.ok()) metrics_->ConfigWriteRefused(s.code());
  return ToGrpcStatus(s);
}

grpc::Status AdminServiceImpl::DeleteConfig(grpc::ServerContext*,
                                            const v1::DeleteConfigRequest* request,
                                            v1::DeleteConfigResponse* response) {
  absl::Status s = config_->Delete(*request, response);
  if (!s.ok()) metrics_->ConfigWriteRefused(s.code());
  return ToGrpcStatus(s);
}

grpc::Status AdminServiceImpl::ListConfig(grpc::ServerContext*,
                                          const v1::ListConfigRequest* request,
                                          v1::ListConfigResponse* response) {
  return ToGrpcStatus(config_->List(*request, response));
}

grpc::Status AdminServiceImpl::WatchConfig(grpc::ServerContext* context,
                                           const v1::WatchConfigRequest* request,
                                           grpc::ServerWriter<v1::WatchConfigResponse>* writer) {
  return cloudha::WatchConfig(config_, context, *request, writer);
}

grpc::Status AdminServiceImpl::DiffConfig(grpc::ServerContext*,
                                          const v1::DiffConfigRequest* request,
                                          v1::DiffConfigResponse* response) {
  return ToGrpcStatus(config_->Diff(*request, response));
}

grpc::Status AdminServiceImpl::ConfigChecksums(grpc::ServerContext*,
                                               const v1::ConfigChecksumsRequest* request,
                                               v1::ConfigChecksumsResponse* response) {
  return ToGrpcStatus(config_->Checksums(*request, response));
}

grpc::Status AdminServiceImpl::ConfigHistory(grpc::ServerContext*,
                                             const v1::ConfigHistoryRequest* request,
                                             v1::ConfigHistoryResponse* response) {
  return ToGrpcStatus(config_->History(*request, response));
}

}  // namespace cloudha
