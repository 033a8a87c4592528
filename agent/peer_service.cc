#include "agent/peer_service.h"

#include "absl/strings/str_cat.h"
#include "agent/config_sync_service.h"
#include "absl/strings/numbers.h"
#include "agent/grpc_status.h"
#include "agent/sync_channel.h"
#include "base/log.h"
#include "crypto/tls_material.h"

namespace cloudha {


void PeerServiceImpl::LogRefusal(const std::string& who, const std::string& from,
                                 const absl::Status& reason) {
  if (metrics_ != nullptr) {
    std::string why = PeerVerifier::RefusalReason(reason);
    metrics_->ConnectionRefused(who, why.empty() ? "bad_certificate" : why);
  }
  absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    // Bounded: a stranger scanning the port cannot grow it without limit.
    if (refusals_logged_.size() > 1000) refusals_logged_.clear();
    auto [it, inserted] = refusals_logged_.try_emplace(absl::StrCat(who, "|", reason.message()), now);
    if (!inserted) {
      if (now - it->second < kRefusalLogInterval) return;
      it->second = now;
    }
  }
  LogEvent(LogLevel::kWarn, "peer_refused",
           {{"peer", who}, {"from", from}, {"reason", reason.message()}});
}

absl::StatusOr<NodeIdentity> PeerServiceImpl::Authenticate(grpc::ServerContext* context) {
  absl::StatusOr<NodeIdentity> id = PeerIdentityFromAuthContext(*context->auth_context());
  absl::Status accepted = id.ok() ? verifier_->CheckCertificate(*id) : id.status();
  if (!accepted.ok()) {
    LogRefusal(id.ok() ? id->node : "unknown", context->peer(), accepted);
    if (id.ok()) membership_->OnRefused(id->node, std::string(accepted.message()));
    return accepted;
  }
  return id;
}

absl::StatusOr<NodeIdentity> PeerServiceImpl::AuthenticateReplication(
    grpc::ServerContext* context) {
  absl::StatusOr<NodeIdentity> id = Authenticate(context);
  if (!id.ok()) return id;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kGroupIdMetadata);
  uint32_t group = 0;
  absl::Status refused;
  if (it == metadata.end()) {
    refused = absl::FailedPreconditionError(absl::StrCat(
        "the call carries no group id (", kGroupIdMetadata, "); this cluster's is ",
        verifier_->group_id()));
  } else if (!absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()),
                               &group) ||
             group != verifier_->group_id()) {
    refused = absl::FailedPreconditionError(
        absl::StrCat("the call is for group_id ", std::string(it->second.data(), it->second.size()),
                     ", this cluster's is ", verifier_->group_id()));
  }
  if (!refused.ok()) {
    refused = PeerVerifier::WithReason(std::move(refused), "wrong_group");
    LogRefusal(id->node, context->peer(), refused);
    membership_->OnRefused(id->node, std::string(refused.message()));
    return refused;
  }
  return id;
}

grpc::Status PeerServiceImpl::SyncSessions(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream) {
  absl::StatusOr<NodeIdentity> id = AuthenticateReplication(context);
  if (!id.ok()) return ToGrpcStatus(id.status());
  return sessions_->Serve(id->node, context, stream);
}

grpc::Status PeerServiceImpl::SyncConfig(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream) {
  absl::StatusOr<NodeIdentity> id = AuthenticateReplication(context);
  if (!id.ok()) return ToGrpcStatus(id.status());
  return ServeConfigSync(config_, id->node, context, stream);
}

grpc::Status PeerServiceImpl::QueryConfig(grpc::ServerContext* context,
                                          const v1::ConfigQueryRequest* request,
                                          v1::ConfigQueryResponse* response) {
  absl::StatusOr<NodeIdentity> id = AuthenticateReplication(context);
  if (!id.ok()) return ToGrpcStatus(id.status());
  return ToGrpcStatus(config_->Query(id->node, *request, response));
}

grpc::Status PeerServiceImpl::Hello(grpc::ServerContext* context,
                                    grpc::ServerReaderWriter<v1::Hello, v1::Hello>* stream) {
  absl::StatusOr<NodeIdentity> id = Authenticate(context);
  if (!id.ok()) return ToGrpcStatus(id.status());
  v1::Hello in;
  while (stream->Read(&in)) {
    absl::Time now = clock_->Now();
    if (absl::Status s = verifier_->CheckHello(*id, in); !s.ok()) {
      LogRefusal(id->node, context->peer(), s);
      membership_->OnRefused(id->node, std::string(s.message()));
      return ToGrpcStatus(s);
    }
    membership_->OnInboundHello(id->node, in, now);
    v1::Hello reply = local_->MakeHello(now, id->node);
    reply.set_echo_sequence(in.sequence());
    reply.set_echo_send_time_us(in.send_time_us());
    reply.set_path_index(in.path_index());
    if (!stream->Write(reply)) break;
  }
  return grpc::Status::OK;
}

}  // namespace cloudha
