// The dedicated channel that the session and config replication streams
// open to a peer's sync address.
#ifndef CLOUDHA_AGENT_SYNC_CHANNEL_H_
#define CLOUDHA_AGENT_SYNC_CHANNEL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.pb.h"
#include "grpcpp/grpcpp.h"

namespace cloudha {

// The metadata key that carries the caller's cluster group id on every
// replication call (SyncSessions, SyncConfig, QueryConfig): their messages
// do not carry it, and two clusters with the same name and CA but other
// group ids must never exchange anything (a hello carries it in the
// message).
inline constexpr char kGroupIdMetadata[] = "cloudha-group-id";

// A channel of its own (a TCP connection no other stream shares) to
// `peer.sync_address()`, expecting `peer`'s certificate of `cluster`; every
// call on it carries `group_id` (kGroupIdMetadata). `purpose` ("sync",
// "config") keeps two such channels apart.
std::shared_ptr<grpc::Channel> CreateSyncChannel(
    const std::string& cluster, uint32_t group_id, const v1::PeerConfig& peer,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials, absl::string_view purpose);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_SYNC_CHANNEL_H_
