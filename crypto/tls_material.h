// A node's TLS material (cluster CA, its certificate and key), checked as a
// whole before the agent uses it, and the gRPC credentials made from it.
//
// Thread-safe: TlsMaterial is an immutable value once loaded.
#ifndef CLOUDHA_CRYPTO_TLS_MATERIAL_H_
#define CLOUDHA_CRYPTO_TLS_MATERIAL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/node_identity.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace cloudha {

struct TlsFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // The node the certificate names.
  NodeIdentity identity;
  // When the certificate expires.
  absl::Time not_after;
};

// Reads and checks the three files: each exists, is readable and is PEM; the
// key is not accessible to other users (PERMISSION_DENIED: mode o+rwx); the
// key belongs to the certificate; the certificate was issued by the CA and is
// valid at `now`; the certificate names a cloudha node. Each failure names
// the file and what is wrong with it.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files, absl::Time now);

// The same checks on PEM texts (used by LoadTlsMaterial and by tests).
absl::StatusOr<TlsMaterial> CheckTlsMaterial(std::string ca_pem, std::string cert_pem,
                                             std::string key_pem, absl::Time now);

// Server credentials that require a client certificate issued by the cluster
// CA (mutual TLS); the listener never accepts plaintext.
std::shared_ptr<grpc::ServerCredentials> PeerServerCredentials(
    const TlsMaterial& material);

// Channel credentials presenting this node's certificate and trusting only
// the cluster CA.
std::shared_ptr<grpc::ChannelCredentials> PeerChannelCredentials(
    const TlsMaterial& material);

// Makes TLS verify that the server is `peer` (its certificate carries
// NodeDnsName(peer)), whatever address is dialed.
void SetExpectedPeer(const NodeIdentity& peer, grpc::ChannelArguments* args);

// The identity of the other end of a call, from its verified certificate.
// PERMISSION_DENIED when the call carries no certificate naming a node.
absl::StatusOr<NodeIdentity> PeerIdentityFromAuthContext(
    const grpc::AuthContext& auth);

}  // namespace cloudha

#endif  // CLOUDHA_CRYPTO_TLS_MATERIAL_H_
