#include "agent/sync_channel.h"

#include "absl/strings/str_cat.h"
#include "crypto/tls_material.h"
#include "grpcpp/create_channel.h"

namespace cloudha {

std::shared_ptr<grpc::Channel> CreateSyncChannel(
    const std::string& cluster, const v1::PeerConfig& peer,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials, absl::string_view purpose) {
  grpc::ChannelArguments args;
  SetExpectedPeer({cluster, peer.id()}, &args);
  // A connection of its own: bulk syncs never queue behind hellos, nor
  // hellos (or the other replication stream) behind them.
  args.SetString("cloudha.channel", absl::StrCat(purpose, "/", peer.id()));
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Checksum lists and commits of big stores exceed gRPC's 4 MiB default.
  args.SetMaxReceiveMessageSize(256 << 20);
  return grpc::CreateCustomChannel(peer.sync_address(), credentials, args);
}

absl::Status CheckStreamFromPrimary(v1::Role role, uint64_t known_epoch,
                                    const std::string& following, const std::string& peer,
                                    uint64_t epoch, absl::string_view what) {
  if (role == v1::PRIMARY) {
    return absl::FailedPreconditionError(
        absl::StrCat("this node is primary; it does not take ", what, " from ", peer));
  }
  if (epoch < known_epoch) {
    return absl::FailedPreconditionError(absl::StrCat(peer, " streams ", what, " at epoch ",
                                                      epoch, ", but this node knows epoch ",
                                                      known_epoch));
  }
  if (!following.empty() && following != peer && epoch <= known_epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat(peer, " is not the primary; this node follows ", following));
  }
  return absl::OkStatus();
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace cloudha
