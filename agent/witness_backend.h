// The arbiter back end that asks a `cloudha witness` (cloudha.v1.Witness)
// over the cluster's mutual TLS. TLS verifies that the server is the
// witness the configuration names (its certificate from the cluster CA);
// a reply for another cluster is refused. Several addresses are tried in
// turn, starting with the one that answered last.
//
// Thread-safe.
#ifndef CLOUDHA_AGENT_WITNESS_BACKEND_H_
#define CLOUDHA_AGENT_WITNESS_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "agent/arbiter_client.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/witness.grpc.pb.h"
#include "crypto/tls_material.h"

namespace cloudha {

class WitnessBackend final : public ArbiterBackend {
 public:
  // `credentials`: this node's mutual TLS (crypto/reloadable_credentials.h).
  WitnessBackend(const v1::AgentConfig& config,
                 const std::shared_ptr<grpc::ChannelCredentials>& credentials);

  absl::StatusOr<v1::LeaseReply> Acquire(absl::Duration ttl, uint64_t epoch, bool renew,
                                         absl::Duration timeout) override;
  absl::StatusOr<v1::LeaseReply> Release(uint64_t epoch, absl::Duration timeout) override;
  absl::StatusOr<v1::LeaseReply> Query(absl::Duration timeout) override;
  std::string kind() const override { return "witness"; }
  std::string address() const override;

 private:
  absl::StatusOr<v1::LeaseReply> Call(bool acquire, v1::LeaseRequest request,
                                      absl::Duration timeout);

  const std::string cluster_;
  const std::string node_;
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<v1::Witness::Stub>> stubs_;
  mutable absl::Mutex mu_;
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
  // The fence of the lease granted last (0: none), sent with renewals and
  // the release so they act on that lease only.
  uint64_t fence_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_WITNESS_BACKEND_H_
