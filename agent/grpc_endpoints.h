// The agent's gRPC endpoints and every option they are opened with: the
// peer listener (mutual TLS), the admin socket, the plaintext health
// listener, and the channel of each heartbeat path. (The replication
// streams' channels are in agent/sync_channel.h.) Agent::Start calls these;
// nothing here knows the role machine.
//
// Free functions; thread-compatible.
#ifndef CLOUDHA_AGENT_GRPC_ENDPOINTS_H_
#define CLOUDHA_AGENT_GRPC_ENDPOINTS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cloudha/v1/config.pb.h"
#include "crypto/tls_material.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"

namespace cloudha {

// Largest gRPC message the peer and admin servers take: config commits and
// checksum lists of big stores exceed gRPC's 4 MiB default (values may be
// 1 MiB each), and so does a config import.
inline constexpr int kMaxMessageBytes = 256 << 20;

// How often HTTP/2 pings a quiet connection and how long it waits for the
// answer: the time a lost peer takes to detect, but at least a second.
int KeepaliveMs(const v1::AgentConfig& config);

// The longest wait between redials of a heartbeat path: two intervals,
// within 100 ms..1 s, so a healed link is back within a few hellos.
absl::Duration HelloMaxBackoff(const v1::AgentConfig& config);

// Starts the peer listener on `config.listen()` with `credentials` (mutual
// TLS: ReloadableCredentials::server_credentials()), serving `service` (and
// grpc.health.v1 when the default health service is on). UNAVAILABLE naming
// the reason (errno) when the address cannot be bound; INVALID_ARGUMENT when
// it does not parse or resolve.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartPeerServer(
    const v1::AgentConfig& config, const std::shared_ptr<grpc::ServerCredentials>& credentials,
    grpc::Service* service);

// Starts a `cloudha witness` listener on `listen` with `credentials`
// (mutual TLS, as StartPeerServer's), serving `service`. Errors as
// StartPeerServer's.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartWitnessServer(
    const std::string& listen, const std::shared_ptr<grpc::ServerCredentials>& credentials,
    grpc::Service* service);

// Makes the admin socket's folder, refuses a socket a running agent answers
// on (FAILED_PRECONDITION), and removes one left over from a crash.
absl::Status PrepareAdminSocket(const std::string& path);

// Starts the admin listener on the Unix socket `path` (mode 0600), serving
// `service`. Call PrepareAdminSocket first. UNAVAILABLE when it cannot
// listen; FAILED_PRECONDITION when the socket cannot be made private.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartAdminServer(const std::string& path,
                                                               grpc::Service* service);

// The health listener serves only grpc.health.v1; every other method is
// answered UNIMPLEMENTED by this service, which must outlive the server.
std::unique_ptr<grpc::CallbackGenericService> NewHealthOnlyFallback();

// Starts the plaintext health listener on `address`, with `fallback` from
// NewHealthOnlyFallback(). UNAVAILABLE naming the reason when it cannot
// bind; INVALID_ARGUMENT when the address does not parse or resolve.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartHealthServer(
    const std::string& address, grpc::CallbackGenericService* fallback);

// The channel of heartbeat path `index` of `peer`: a TCP connection of its
// own, expecting `peer`'s certificate, redialled within HelloMaxBackoff and
// kept alive with HTTP/2 pings every KeepaliveMs.
std::shared_ptr<grpc::Channel> CreateHelloChannel(
    const v1::AgentConfig& config, const v1::PeerConfig& peer, int index,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_GRPC_ENDPOINTS_H_
