// Who may talk to this node: the checks applied to every hello stream, in
// both directions, before anything a peer says is believed.
#ifndef CLOUDHA_AGENT_PEER_VERIFIER_H_
#define CLOUDHA_AGENT_PEER_VERIFIER_H_

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.pb.h"
#include "crypto/node_identity.h"

namespace cloudha {

// Immutable after construction; thread-safe.
class PeerVerifier {
 public:
  explicit PeerVerifier(const v1::AgentConfig& config);

  // Checks the identity a verified certificate names: it must be of this
  // cluster and a configured peer. PERMISSION_DENIED otherwise.
  absl::Status CheckCertificate(const NodeIdentity& id) const;

  // Checks a hello from `id` (already through CheckCertificate): the node id
  // it claims must be the certificate's, and its cluster name and group id
  // this node's. PERMISSION_DENIED for identity, FAILED_PRECONDITION for a
  // cluster or group mismatch (a configuration to fix).
  absl::Status CheckHello(const NodeIdentity& id, const v1::Hello& hello) const;

  uint32_t group_id() const { return group_id_; }

 private:
  std::string cluster_;
  uint32_t group_id_;
  std::string self_;
  std::set<std::string> peers_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_PEER_VERIFIER_H_
