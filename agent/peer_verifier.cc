#include "agent/peer_verifier.h"

#include <algorithm>

#include "agent/epoch_limit.h"

#include "absl/strings/str_cat.h"

namespace cloudha {

PeerVerifier::PeerVerifier(const v1::AgentConfig& config)
    : cluster_(config.cluster().name()),
      group_id_(config.cluster().group_id()),
      self_(config.node().id()) {
  for (const auto& peer : config.peers()) peers_.insert(peer.id());
}

absl::Status PeerVerifier::CheckCertificate(const NodeIdentity& id) const {
  if (id.cluster != cluster_) {
    return absl::PermissionDeniedError(absl::StrCat(
        "certificate is for cluster \"", id.cluster, "\", this is cluster \"", cluster_, "\""));
  }
  if (id.node == self_) {
    return absl::PermissionDeniedError(
        absl::StrCat("certificate is for node \"", id.node, "\", which is this node"));
  }
  if (peers_.count(id.node) == 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("certificate is for node \"", id.node, "\", which is not a configured peer"));
  }
  return absl::OkStatus();
}

absl::Status PeerVerifier::CheckHello(const NodeIdentity& id, const v1::Hello& hello) const {
  if (hello.node_id() != id.node) {
    return absl::PermissionDeniedError(absl::StrCat("hello claims node \"", hello.node_id(),
                                                    "\" but the certificate is for node \"",
                                                    id.node, "\""));
  }
  if (hello.cluster_name() != cluster_) {
    return absl::FailedPreconditionError(absl::StrCat("hello is for cluster \"",
                                                      hello.cluster_name(),
                                                      "\", this is cluster \"", cluster_, "\""));
  }
  if (hello.group_id() != group_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "hello is for group_id ", hello.group_id(), ", this cluster's is ", group_id_));
  }
  if (hello.epoch() > kMaxEpoch || hello.primary_epoch() > kMaxEpoch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hello carries epoch ", std::max(hello.epoch(), hello.primary_epoch()),
        ", above the ceiling ", kMaxEpoch, " (corrupt or hostile; epochs never wrap)"));
  }
  return absl::OkStatus();
}

}  // namespace cloudha
