#include "agent/witness_backend.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/grpc_status.h"
#include "grpcpp/grpcpp.h"

namespace cloudha {

WitnessBackend::WitnessBackend(const v1::AgentConfig& config,
                               const std::shared_ptr<grpc::ChannelCredentials>& credentials)
    : cluster_(config.cluster().name()), node_(config.node().id()) {
  const v1::WitnessArbiterConfig& w = config.arbiter().witness();
  for (const std::string& address : w.addresses()) {
    grpc::ChannelArguments args;
    SetExpectedPeer(NodeIdentity{cluster_, w.id()}, &args);
    // Each address its own connection; a reconnect is tried soon after a
    // loss (the lease is short).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // A connection that died silently (a cut link) is noticed within a
    // lease, not after TCP's minutes.
    const int keepalive_ms = std::max<int>(100, config.arbiter().lease_ttl_ms() / 4);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_ms);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    addresses_.push_back(address);
    stubs_.push_back(v1::Witness::NewStub(
grpc::CreateCustomChannel(address, credentials, args)));
  }
}

std::string WitnessBackend::address() const {
  absl::MutexLock lock(&mu_);
  return addresses_.empty() ? "" : addresses_[current_];
}

absl::StatusOr<v1::LeaseReply> WitnessBackend::Call(bool acquire, v1::LeaseRequest request,
                                                    absl::Duration timeout) {
  request.set_cluster(cluster_);
  request.set_node(node_);
  size_t start;
  {
    absl::MutexLock lock(&mu_);
    start = current_;
  }
  std::vector<std::string> errors;
  // One deadline for all the addresses together: the caller's lease may
  // end soon after it.
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout));
  for (size_t i = 0; i < stubs_.size(); ++i) {
    const size_t at = (start + i) % stubs_.size();
    if (std::chrono::system_clock::now() >= deadline) {
      errors.push_back(absl::StrCat(addresses_[at], ": not tried, out of time"));
      continue;
    }
    grpc::ClientContext context;
    context.set_deadline(deadline);
    v1::LeaseReply reply;
    grpc::Status s = acquire ? stubs_[at]->Acquire(&context, request, &reply)
                             : stubs_[at]->Release(&context, request, &reply);
    if (!s.ok()) {
      errors.push_back(absl::StrCat(addresses_[at], ": ", FromGrpcStatus(s).ToString()));
      continue;
    }
    if (reply.cluster() != cluster_) {
      errors.push_back(absl::StrCat(addresses_[at], ": the witness answered for cluster \"",
                                    reply.cluster(), "\", not \"", cluster_, "\""));
      continue;
    }
    absl::MutexLock lock(&mu_);
    current_ = at;
    if (acquire && reply.granted()) fence_ = reply.fence();
    return reply;
  }
  return absl::UnavailableError(
      absl::StrCat("no witness answered: ", absl::StrJoin(errors, "; ")));
}

absl::StatusOr<v1::LeaseReply> WitnessBackend::Acquire(absl::Duration ttl, uint64_t epoch,
                                                       bool renew, absl::Duration timeout) {
  v1::LeaseRequest request;
  request.set_renew(renew);
  {
    absl::MutexLock lock(&mu_);
    request.set_fence(fence_);
  }
  request.set_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(ttl)));
  request.set_epoch(epoch);
  return Call(true, request, timeout);
}

absl::StatusOr<v1::LeaseReply> WitnessBackend::Release(uint64_t epoch, absl::Duration timeout) {
  v1::LeaseRequest request;
  request.set_epoch(epoch);
  {
    absl::MutexLock lock(&mu_);
    request.set_fence(fence_);
  }
  return Call(false, request, timeout);
}

absl::StatusOr<v1::LeaseReply> WitnessBackend::Query(absl::Duration timeout) {
  // A release of fence 0 ends nothing.
  return Call(false, v1::LeaseRequest(), timeout);
}

}  // namespace cloudha
