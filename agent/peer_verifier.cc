#include "agent/peer_verifier.h"

#include <algorithm>

#include "agent/epoch_limit.h"

#include "absl/strings/cord.h"
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
    return WithReason(absl::PermissionDeniedError(absl::StrCat("certificate is for cluster \"",
                                                               id.cluster, "\", this is cluster \"",
                                                               cluster_, "\"")),
                      "wrong_cluster");
  }
  if (id.node == self_) {
    return WithReason(absl::PermissionDeniedError(absl::StrCat(
                          "certificate is for node \"", id.node, "\", which is this node")),
                      "wrong_node");
  }
  if (peers_.count(id.node) == 0) {
    return WithReason(absl::PermissionDeniedError(absl::StrCat("certificate is for node \"", id.node,
                                                               "\", which is not a configured peer")),
                      "wrong_node");
  }
  return absl::OkStatus();
}

absl::Status PeerVerifier::CheckHello(const NodeIdentity& id, const v1::Hello& hello) const {
  if (hello.node_id() != id.node) {
    return WithReason(absl::PermissionDeniedError(absl::StrCat(
                          "hello claims node \"", hello.node_id(),
                          "\" but the certificate is for node \"", id.node, "\"")),
                      "wrong_node");
  }
  if (hello.cluster_name() != cluster_) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat("hello is for cluster \"",
                                                                 hello.cluster_name(),
                                                                 "\", this is cluster \"",
                                                                 cluster_, "\"")),
                      "wrong_cluster");
  }
  if (hello.group_id() != group_id_) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat("hello is for group_id ",
                                                                 hello.group_id(),
                                                                 ", this cluster's is ", group_id_)),
                      "wrong_group");
  }
  if (hello.epoch() > kMaxEpoch || hello.primary_epoch() > kMaxEpoch) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          "hello carries epoch ", std::max(hello.epoch(), hello.primary_epoch()),
                          ", above the ceiling ", kMaxEpoch,
                          " (corrupt or hostile; epochs never wrap)")),
                      "bad_hello");
  }
  return absl::OkStatus();
}

namespace {
constexpr char kRefusalPayload[] = "type.googleapis.com/cloudha.RefusalReason";
}  // namespace

std::string PeerVerifier::RefusalReason(const absl::Status& refusal) {
  auto reason = refusal.GetPayload(kRefusalPayload);
  return reason.has_value() ? std::string(*reason) : "";
}

absl::Status PeerVerifier::WithReason(absl::Status status, const std::string& reason) {
  status.SetPayload(kRefusalPayload, absl::Cord(reason));
  return status;
}

}  // namespace cloudha
