// What the session and config replication streams share: the dedicated
// channel to a peer's sync address, the rule for which node may stream to
// this one, and status conversions.
#ifndef CLOUDHA_AGENT_SYNC_CHANNEL_H_
#define CLOUDHA_AGENT_SYNC_CHANNEL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.pb.h"
#include "grpcpp/grpcpp.h"

namespace cloudha {

// A channel of its own (a TCP connection no other stream shares) to
// `peer.sync_address()`, expecting `peer`'s certificate of `cluster`.
// `purpose` ("sync", "config") keeps two such channels apart.
std::shared_ptr<grpc::Channel> CreateSyncChannel(
    const std::string& cluster, const v1::PeerConfig& peer,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials, absl::string_view purpose);

// Whether `peer`, claiming to be primary at `epoch`, may open a replication
// stream of `what` ("sessions", "config") to this node, which is `role`,
// knows `known_epoch` and follows `following` ("" if none).
// FAILED_PRECONDITION with the reason otherwise.
absl::Status CheckStreamFromPrimary(v1::Role role, uint64_t known_epoch,
                                    const std::string& following, const std::string& peer,
                                    uint64_t epoch, absl::string_view what);

// Same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_SYNC_CHANNEL_H_
