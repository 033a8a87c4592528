// The gRPC side of config sync, and the only config sync code that speaks
// gRPC: the secondary's end of PeerService.SyncConfig and AdminService's
// WatchConfig as adaptors onto ConfigSync, the primary's end of a
// SyncConfig stream as a ConfigPushStream, and the QueryConfig client.
// Statuses are translated with agent/grpc_status.h.
#ifndef CLOUDHA_AGENT_CONFIG_SYNC_SERVICE_H_
#define CLOUDHA_AGENT_CONFIG_SYNC_SERVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "cloudha/v1/admin.pb.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "sync/config_pusher.h"

namespace cloudha {

class ConfigSync;

// PeerService.SyncConfig from `peer` (its certificate already checked).
grpc::Status ServeConfigSync(
    ConfigSync* sync, const std::string& peer, grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream);

// AdminService.WatchConfig.
grpc::Status WatchConfig(ConfigSync* sync, grpc::ServerContext* context,
                         const v1::WatchConfigRequest& request,
                         grpc::ServerWriter<v1::WatchConfigResponse>* writer);

// Opens SyncConfig streams to a secondary over `channel`, waiting for the
// connection rather than failing at once on a channel in backoff.
ConfigPusher::Dialer ConfigPushDialer(std::shared_ptr<grpc::Channel> channel);

// PeerService.QueryConfig on `peer` over `channel`, with a 5 s deadline;
// errors name the peer.
absl::StatusOr<v1::ConfigQueryResponse> QueryConfigPeer(
    const std::string& peer, const std::shared_ptr<grpc::Channel>& channel,
    const v1::ConfigQueryRequest& request, Clock* clock);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CONFIG_SYNC_SERVICE_H_
