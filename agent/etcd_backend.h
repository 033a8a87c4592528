// The arbiter back end that keeps the primary lease in an etcd cluster,
// speaking etcd's v3 gRPC API (KV and Lease services) directly.
//
// The lease is the key PREFIX/CLUSTER/primary, whose value is the holder's
// node id, bound to an etcd lease the holder granted itself:
//   - a fresh acquire reads the key; when it is absent or names this node,
//     it grants a new etcd lease of ttl rounded up to whole seconds and puts
//     the key with it, in a transaction that succeeds only if the key has
//     not changed since it was read (its mod_revision). A refused
//     transaction revokes the new lease; a lease of this node's that the
//     key no longer uses is revoked too.
//   - a renewal (this node still counts its lease) is one LeaseKeepAlive of
//     that lease and a read that checks the key still names this node on
//     it; otherwise it falls back to a fresh acquire.
//   - a release revokes this node's lease, which deletes the key.
// The fence is the key's mod_revision: etcd's revision counter rises with
// every write to the cluster and never goes back, so each new holder (and
// each fresh acquire) gets a higher fence, and a renewal keeps it.
// When refused, the reply names the holder (the key's value) and the time
// left of its lease (LeaseTimeToLive).
//
// Granted ttl_ms is the ttl asked for, or etcd's lease if that is shorter;
// etcd's lease is never shorter than the whole seconds asked for, so the
// holder stops counting before etcd lets the key go (ArbiterClient's drift
// margin comes on top).
//
// Endpoints are tried in turn, starting with the one that answered last.
// A failed call drops that endpoint's connection so that the next call
// starts afresh: etcd refuses keepalive pings more often than every 5 s
// (and between calls), so a dead connection is noticed by a deadline, not
// by pings.
//
// Thread-safe: calls are serialized (one request to etcd at a time).
#ifndef CLOUDHA_AGENT_ETCD_BACKEND_H_
#define CLOUDHA_AGENT_ETCD_BACKEND_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/arbiter_client.h"
#include "cloudha/v1/config.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cloudha {

class EtcdBackend final : public ArbiterBackend {
 public:
  // The key prefix when the configuration names none.
  static constexpr char kDefaultPrefix[] = "/cloudha";

  // Reads the TLS files of `etcd` (FAILED_PRECONDITION naming the file when
  // one cannot be read) and prepares a channel per endpoint; connects
  // lazily. `cluster` and `node` are this node's.
  static absl::StatusOr<std::unique_ptr<EtcdBackend>> Create(const v1::EtcdArbiterConfig& etcd,
                                                             const std::string& cluster,
                                                             const std::string& node);
  EtcdBackend(const EtcdBackend&) = delete;
  EtcdBackend& operator=(const EtcdBackend&) = delete;

  absl::StatusOr<v1::LeaseReply> Acquire(absl::Duration ttl, uint64_t epoch, bool renew,
                                         absl::Duration timeout) override;
  absl::StatusOr<v1::LeaseReply> Release(uint64_t epoch, absl::Duration timeout) override;
  absl::StatusOr<v1::LeaseReply> Query(absl::Duration timeout) override;
  std::string kind() const override { return "etcd"; }
  std::string address() const override;

  // The key that holds the lease: PREFIX/CLUSTER/primary.
  const std::string& key() const { return key_; }

 private:
  struct Endpoint {
    std::string address;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  };
  using Deadline = std::chrono::system_clock::time_point;
  class Session;

  EtcdBackend(std::string cluster, std::string node, std::string key,
              std::vector<std::string> addresses,
              std::shared_ptr<grpc::ChannelCredentials> credentials,
              grpc::ChannelArguments args);

  // A fresh channel and stubs for addresses_[i].
  void Connect(size_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  // Tries each endpoint in turn with `timeout` each.
  absl::StatusOr<v1::LeaseReply> EachEndpoint(
      absl::Duration timeout,
      const std::function<absl::StatusOr<v1::LeaseReply>(Session&)>& attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  absl::StatusOr<v1::LeaseReply> AcquireAt(Session& s, absl::Duration ttl, bool renew)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  absl::StatusOr<v1::LeaseReply> ReleaseAt(Session& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);

  const std::string cluster_;
  const std::string node_;
  const std::string key_;
  const std::vector<std::string> addresses_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const grpc::ChannelArguments args_;

  // Held for a whole Acquire or Release.
  absl::Mutex call_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::vector<Endpoint> endpoints_ ABSL_GUARDED_BY(call_mu_);
  // The etcd lease this node granted itself and may still hold; 0 for none.
  int64_t lease_id_ ABSL_GUARDED_BY(call_mu_) = 0;
  // Whether etcd's longer lease was logged already.
  bool noted_longer_lease_ ABSL_GUARDED_BY(call_mu_) = false;

  mutable absl::Mutex mu_;
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_ETCD_BACKEND_H_
