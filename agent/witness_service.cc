#include "agent/witness_service.h"

#include "absl/strings/str_cat.h"
#include "agent/grpc_status.h"
#include "base/log.h"
#include "crypto/tls_material.h"

namespace cloudha {

absl::Status WitnessServiceImpl::Check(grpc::ServerContext* context,
                                       const v1::LeaseRequest& request) const {
  absl::StatusOr<NodeIdentity> id = PeerIdentityFromAuthContext(*context->auth_context());
  absl::Status refused;
  if (!id.ok()) {
    refused = id.status();
  } else if (request.cluster() != id->cluster || request.node() != id->node) {
    refused = absl::PermissionDeniedError(absl::StrCat(
        "the request names ", request.node(), " of cluster ", request.cluster(),
        ", the certificate ", id->node, " of cluster ", id->cluster));
  } else if (id->cluster != cluster_) {
    refused = absl::PermissionDeniedError(absl::StrCat(
        "this witness serves cluster ", cluster_, ", not ", id->cluster));
  } else if (request.ttl_ms() < 100 || request.ttl_ms() > 600000) {
    refused = absl::InvalidArgumentError(
        absl::StrCat("ttl_ms must be 100..600000, got ", request.ttl_ms()));
  }
  if (!refused.ok()) {
    LogEvent(LogLevel::kWarn, "witness_refused",
             {{"from", context->peer()}, {"reason", refused.message()}});
  }
  return refused;
}

grpc::Status WitnessServiceImpl::Acquire(grpc::ServerContext* context,
                                         const v1::LeaseRequest* request, v1::LeaseReply* reply) {
  if (absl::Status s = Check(context, *request); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<v1::LeaseReply> r = leases_->Acquire(
      request->cluster(), request->node(), absl::Milliseconds(request->ttl_ms()), request->epoch(),
      request->renew(), request->fence());
  if (!r.ok()) return ToGrpcStatus(r.status());
  *reply = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status WitnessServiceImpl::Release(grpc::ServerContext* context,
                                         const v1::LeaseRequest* request, v1::LeaseReply* reply) {
  v1::LeaseRequest checked = *request;
  if (checked.ttl_ms() == 0) checked.set_ttl_ms(100);  // a release needs none
  if (absl::Status s = Check(context, checked); !s.ok()) return ToGrpcStatus(s);
  *reply = leases_->Release(request->cluster(), request->node(), request->epoch(),
                            request->fence());
  return grpc::Status::OK;
}

}  // namespace cloudha
