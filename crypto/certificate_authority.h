// A cluster's certificate authority and the node certificates it issues,
// made with the OpenSSL 3 API (ECDSA P-256, SHA-256).
//
// Thread-safe: the functions keep no state.
#ifndef CLOUDHA_CRYPTO_CERTIFICATE_AUTHORITY_H_
#define CLOUDHA_CRYPTO_CERTIFICATE_AUTHORITY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/node_identity.h"

namespace cloudha {

// A certificate and its private key, both PEM.
struct PemPair {
  std::string cert_pem;
  std::string key_pem;
};

// Validity window of a new certificate.
struct Validity {
  absl::Time not_before;
  absl::Duration lifetime;
};

// A self-signed CA for `cluster` (CN "cloudha CA CLUSTER"), allowed to sign
// node certificates only (pathlen 0).
absl::StatusOr<PemPair> CreateClusterCa(absl::string_view cluster,
                                        const Validity& validity);

// A certificate for `node`, signed by `ca`, usable as TLS server and client,
// with the subjectAltNames NodeUri(node) and NodeDnsName(node). It never
// outlives the CA: its notAfter is capped at the CA's. (The CA may sign for
// any cluster; `cloudha certs init` keeps one CA to one cluster.)
absl::StatusOr<PemPair> IssueNodeCertificate(const PemPair& ca,
                                             const NodeIdentity& node,
                                             const Validity& validity);

// The cluster a CA certificate made by CreateClusterCa belongs to.
absl::StatusOr<std::string> ClusterOfCa(absl::string_view ca_cert_pem);

// Whether the key of CA certificate `ca_cert_pem` signed certificate
// `cert_pem` (the signature only: not validity, not names). INVALID_ARGUMENT
// when either is not a PEM certificate.
absl::StatusOr<bool> SignedBy(absl::string_view cert_pem, absl::string_view ca_cert_pem);

}  // namespace cloudha

#endif  // CLOUDHA_CRYPTO_CERTIFICATE_AUTHORITY_H_
