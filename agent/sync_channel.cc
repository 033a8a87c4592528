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

}  // namespace cloudha
