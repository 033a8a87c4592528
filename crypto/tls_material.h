// A node's TLS material (the CAs it trusts, its certificate and key), checked
// as a whole before the agent uses it, and the gRPC credentials made from it.
//
// The CA file is a trust bundle: one CA certificate, or several while a CA
// is being replaced (docs/security.md, "Rotating the CA"). The node's
// certificate must be issued by one of them.
//
// Thread-safe: TlsMaterial is an immutable value once loaded.
#ifndef CLOUDHA_CRYPTO_TLS_MATERIAL_H_
#define CLOUDHA_CRYPTO_TLS_MATERIAL_H_

#include <memory>
#include <string>
#include <vector>

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

// One CA certificate of a trust bundle.
struct TrustedCa {
  // The subject's common name, e.g. "cloudha CA prod".
  std::string name;
  // "SHA256:" and the first 16 hex digits of the SHA-256 of the DER: tells
  // apart an old and a new CA of the same name.
  std::string fingerprint;
  absl::Time not_before;
  absl::Time not_after;
};

struct TlsMaterial {
  // The trust bundle, as the CA certificates it holds re-encoded (nothing
  // else of the file: comments and blank lines are dropped).
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // The node the certificate names.
  NodeIdentity identity;
  // When the certificate expires.
  absl::Time not_after;
  // "SHA256:..." of the certificate, as TrustedCa::fingerprint.
  std::string fingerprint;
  // The bundle's CAs, in the file's order, and which of them issued the
  // certificate.
  std::vector<TrustedCa> cas;
  size_t issuer = 0;
};

// Reads and checks the three files: each exists, is readable and is PEM; the
// key is not accessible to other users (PERMISSION_DENIED: mode o+rwx); the
// key belongs to the certificate; the certificate was issued by a CA of the
// bundle and is valid at `now`; the certificate names a cloudha node. Each
// failure names the file and what is wrong with it.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files, absl::Time now);

// The same checks on PEM texts (used by LoadTlsMaterial and by tests). The
// bundle `ca_pem` must hold one or more CA certificates (basicConstraints
// CA:TRUE), no certificate twice, and nothing else: a private key or any
// other PEM block in it is refused (a CA key never belongs on a node). A CA
// of the bundle that has expired is accepted (it trusts nothing any more);
// the certificate's own issuer must be valid. Errors start with "CA
// certificate: ", "certificate: " or "key: ".
absl::StatusOr<TlsMaterial> CheckTlsMaterial(std::string ca_pem, std::string cert_pem,
                                             std::string key_pem, absl::Time now);

// The CA certificates of a bundle, with the checks CheckTlsMaterial makes
// of them (INVALID_ARGUMENT naming the entry at fault).
absl::StatusOr<std::vector<TrustedCa>> CheckCaBundle(absl::string_view ca_pem);

// "SHA256:" and the first 16 hex digits of the SHA-256 of the first
// certificate of `pem`.
absl::StatusOr<std::string> CertificateFingerprint(absl::string_view pem);

// Server credentials that require a client certificate issued by a CA of
// the bundle (mutual TLS); the listener never accepts plaintext. Fixed at
// creation: the agent uses ReloadableCredentials (crypto/reloadable_credentials.h).
std::shared_ptr<grpc::ServerCredentials> PeerServerCredentials(
    const TlsMaterial& material);

// Channel credentials presenting this node's certificate and trusting only
// the bundle's CAs.
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
