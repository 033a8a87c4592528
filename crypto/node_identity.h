// Who a certificate speaks for: a node of a cluster.
//
// Every node certificate carries two subjectAltNames:
//   URI  cloudha://CLUSTER/NODE   the identity, checked on every stream;
//   DNS  NODE.CLUSTER.cloudha     the name TLS verifies when dialing NODE.
//
// Thread-safe: the functions keep no state.
#ifndef CLOUDHA_CRYPTO_NODE_IDENTITY_H_
#define CLOUDHA_CRYPTO_NODE_IDENTITY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloudha {

struct NodeIdentity {
  std::string cluster;
  std::string node;

  bool operator==(const NodeIdentity& other) const {
    return cluster == other.cluster && node == other.node;
  }
  bool operator!=(const NodeIdentity& other) const { return !(*this == other); }
};

// Checks that `name` can name a cluster or node: 1-63 characters of a-z, 0-9
// and '-', neither starting nor ending with '-' (a DNS label). `what` names
// the field in the error, e.g. "cluster.name".
absl::Status ValidateName(absl::string_view what, absl::string_view name);

// "cloudha://CLUSTER/NODE".
std::string NodeUri(const NodeIdentity& id);

// "NODE.CLUSTER.cloudha": the DNS name TLS verifies when dialing the node.
std::string NodeDnsName(const NodeIdentity& id);

// Parses "cloudha://CLUSTER/NODE".
absl::StatusOr<NodeIdentity> ParseNodeUri(absl::string_view uri);

// The identity named by the URI subjectAltName of a PEM certificate.
// INVALID_ARGUMENT when the PEM is not a certificate or names no (or more
// than one) cloudha node.
absl::StatusOr<NodeIdentity> IdentityFromCertificatePem(absl::string_view pem);

}  // namespace cloudha

#endif  // CLOUDHA_CRYPTO_NODE_IDENTITY_H_
