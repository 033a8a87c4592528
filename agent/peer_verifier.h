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

  // Why a stream was refused, in a word from a fixed list (a metric label):
  // "wrong_cluster", "wrong_group", "wrong_node" (a certificate or hello for
  // a node that is not a configured peer, this node, or not the one dialed),
  // "bad_hello" (a hello no sane peer sends), "bad_certificate" (no
  // cloudha identity in the certificate); "" for a status without one (a
  // refusal that came from the other side).
  static std::string RefusalReason(const absl::Status& refusal);
  // `status` with `reason` (one of the above) attached.
  static absl::Status WithReason(absl::Status status, const std::string& reason);

 private:
  std::string cluster_;
  uint32_t group_id_;
  std::string self_;
  std::set<std::string> peers_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_PEER_VERIFIER_H_
