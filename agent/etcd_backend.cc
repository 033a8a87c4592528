#include "agent/etcd_backend.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "base/secure_file.h"

namespace cloudha {
namespace {

using ::etcdserverpb::Compare;
using ::mvccpb::KeyValue;

// When etcd says the holder's lease has no whole second left, it is about
// to end (etcd deletes an expired lease's keys on its own schedule, every
// 500 ms): ask again soon, but not at once.
constexpr int64_t kExpiringRemainingMs = 100;

absl::Status EtcdError(const char* call, const grpc::Status& s) {
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return absl::UnimplementedError(
        absl::StrCat("not an etcd v3 server (it does not serve ", call, ": UNIMPLEMENTED",
                     s.error_message().empty() ? "" : ": ", s.error_message(), ")"));
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("etcd ", call, ": ", s.error_message()));
}

}  // namespace

// One attempt at one endpoint: etcd's calls with a common deadline.
class EtcdBackend::Session {
 public:
  Session(Endpoint& endpoint, Deadline deadline) : endpoint_(endpoint), deadline_(deadline) {}

  // The key, or nullopt when it does not exist.
  absl::StatusOr<std::optional<KeyValue>> Get(const std::string& key) {
    etcdserverpb::RangeRequest request;
    request.set_key(key);
    etcdserverpb::RangeResponse response;
    grpc::ClientContext context;
    context.set_deadline(deadline_);
    grpc::Status s = endpoint_.kv->Range(&context, request, &response);
    if (!s.ok()) return EtcdError("KV.Range", s);
    member_ = response.header().member_id();
    if (response.kvs_size() == 0) return std::optional<KeyValue>();
    return std::optional<KeyValue>(response.kvs(0));
  }

  absl::StatusOr<etcdserverpb::LeaseGrantResponse> Grant(int64_t ttl_s) {
    etcdserverpb::LeaseGrantRequest request;
    request.set_ttl(ttl_s);
    etcdserverpb::LeaseGrantResponse response;
    grpc::ClientContext context;
    context.set_deadline(deadline_);
    grpc::Status s = endpoint_.lease->LeaseGrant(&context, request, &response);
    if (!s.ok()) return EtcdError("Lease.LeaseGrant", s);
    if (!response.error().empty()) {
      return absl::UnavailableError(absl::StrCat("etcd Lease.LeaseGrant: ", response.error()));
    }
    return response;
  }

  // Puts key = value on `lease` if the key's mod_revision is still
  // `seen_revision` (0: absent). Either way returns the key as it is then
  // (nullopt when absent), and whether the put happened.
  struct PutResult {
    bool put = false;
    std::optional<KeyValue> kv;
  };
  absl::StatusOr<PutResult> PutIfUnchanged(const std::string& key, const std::string& value,
                                           int64_t lease, int64_t seen_revision) {
    etcdserverpb::TxnRequest request;
    Compare* unchanged = request.add_compare();
    unchanged->set_key(key);
    unchanged->set_target(Compare::MOD);
    unchanged->set_result(Compare::EQUAL);
    unchanged->set_mod_revision(seen_revision);
    etcdserverpb::PutRequest* put = request.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    put->set_lease(lease);
    request.add_success()->mutable_request_range()->set_key(key);
    request.add_failure()->mutable_request_range()->set_key(key);
    etcdserverpb::TxnResponse response;
    grpc::ClientContext context;
    context.set_deadline(deadline_);
    grpc::Status s = endpoint_.kv->Txn(&context, request, &response);
    if (!s.ok()) return EtcdError("KV.Txn", s);
    member_ = response.header().member_id();
    PutResult result;
    result.put = response.succeeded();
    for (const etcdserverpb::ResponseOp& op : response.responses()) {
      if (op.has_response_range() && op.response_range().kvs_size() > 0) {
        result.kv = op.response_range().kvs(0);
      }
    }
    return result;
  }

  // The lease's TTL after the renewal, seconds; 0 when etcd no longer has
  // the lease.
  absl::StatusOr<int64_t> KeepAlive(int64_t lease) {
    grpc::ClientContext context;
    context.set_deadline(deadline_);
    auto stream = endpoint_.lease->LeaseKeepAlive(&context);
    etcdserverpb::LeaseKeepAliveRequest request;
    request.set_id(lease);
    etcdserverpb::LeaseKeepAliveResponse response;
    const bool answered = stream->Write(request) && stream->Read(&response);
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    if (!s.ok()) return EtcdError("Lease.LeaseKeepAlive", s);
    if (!answered) {
      return absl::UnavailableError("etcd Lease.LeaseKeepAlive: the stream ended without a reply");
    }
    member_ = response.header().member_id();
    return std::max<int64_t>(0, response.ttl());
  }

  // A lease that no longer exists counts as revoked.
  absl::Status Revoke(int64_t lease) {
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(lease);
    etcdserverpb::LeaseRevokeResponse response;
    grpc::ClientContext context;
    context.set_deadline(deadline_);
    grpc::Status s = endpoint_.lease->LeaseRevoke(&context, request, &response);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return absl::OkStatus();
    if (!s.ok()) return EtcdError("Lease.LeaseRevoke", s);
    return absl::OkStatus();
  }

  // Whole seconds left of the lease (etcd rounds down); <= 0 when it ended.
  absl::StatusOr<int64_t> TimeToLive(int64_t lease) {
    etcdserverpb::LeaseTimeToLiveRequest request;
    request.set_id(lease);
    etcdserverpb::LeaseTimeToLiveResponse response;
    grpc::ClientContext context;
    context.set_deadline(deadline_);
    grpc::Status s = endpoint_.lease->LeaseTimeToLive(&context, request, &response);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return 0;
    if (!s.ok()) return EtcdError("Lease.LeaseTimeToLive", s);
    return response.ttl();
  }

  // The etcd member that answered last ("" before any answer).
  std::string member() const {
    return member_ == 0 ? "" : absl::StrCat("etcd member ", absl::Hex(member_));
  }

 private:
  Endpoint& endpoint_;
  const Deadline deadline_;
  uint64_t member_ = 0;
};

absl::StatusOr<std::unique_ptr<EtcdBackend>> EtcdBackend::Create(
    const v1::EtcdArbiterConfig& etcd, const std::string& cluster, const std::string& node) {
  if (etcd.endpoints_size() == 0) {
    return absl::InvalidArgumentError("arbiter.etcd needs at least one endpoint");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments args;
  if (etcd.plaintext()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    const v1::TlsConfig& tls = etcd.tls();
    if (tls.ca_file().empty()) {
      return absl::InvalidArgumentError(
          "arbiter.etcd needs tls { ca_file: ... } (or plaintext: true)");
    }
    grpc::SslCredentialsOptions options;
    struct File {
      const char* field;
      const std::string& path;
      std::string* pem;
    };
    for (const File& f : {File{"ca_file", tls.ca_file(), &options.pem_root_certs},
                          File{"cert_file", tls.cert_file(), &options.pem_cert_chain},
                          File{"key_file", tls.key_file(), &options.pem_private_key}}) {
      if (f.path.empty()) continue;
      absl::StatusOr<std::string> pem = ReadSmallFile(f.path);
      if (!pem.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("arbiter.etcd.tls.", f.field, ": ", pem.status().message()));
      }
      *f.pem = *std::move(pem);
    }
    credentials = grpc::SslCredentials(options);
    if (!etcd.server_name().empty()) args.SetSslTargetNameOverride(etcd.server_name());
  }
  // Each endpoint its own connection (a fresh channel after a failure must
  // not reuse the old connection); a reconnect is tried soon after a loss.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  const std::string prefix = etcd.prefix().empty() ? kDefaultPrefix : etcd.prefix();
  return std::unique_ptr<EtcdBackend>(new EtcdBackend(
      cluster, node, absl::StrCat(prefix, "/", cluster, "/primary"),
      {etcd.endpoints().begin(), etcd.endpoints().end()}, std::move(credentials), args));
}

EtcdBackend::EtcdBackend(std::string cluster, std::string node, std::string key,
                         std::vector<std::string> addresses,
                         std::shared_ptr<grpc::ChannelCredentials> credentials,
                         grpc::ChannelArguments args)
    : cluster_(std::move(cluster)),
      node_(std::move(node)),
      key_(std::move(key)),
      addresses_(std::move(addresses)),
      credentials_(std::move(credentials)),
      args_(std::move(args)) {
  absl::MutexLock lock(&call_mu_);
  endpoints_.resize(addresses_.size());
  for (size_t i = 0; i < addresses_.size(); ++i) Connect(i);
}

void EtcdBackend::Connect(size_t i) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(addresses_[i], credentials_, args_);
  endpoints_[i].address = addresses_[i];
  endpoints_[i].kv = etcdserverpb::KV::NewStub(channel);
  endpoints_[i].lease = etcdserverpb::Lease::NewStub(channel);
}

std::string EtcdBackend::address() const {
  absl::MutexLock lock(&mu_);
  return addresses_[current_];
}

absl::StatusOr<v1::LeaseReply> EtcdBackend::EachEndpoint(
    absl::Duration timeout,
    const std::function<absl::StatusOr<v1::LeaseReply>(Session&)>& attempt) {
  size_t start;
  {
    absl::MutexLock lock(&mu_);
    start = current_;
  }
  std::vector<std::string> errors;
  // One deadline for all the endpoints together: the caller's lease may end
  // soon after it.
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout));
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    const size_t at = (start + i) % endpoints_.size();
    if (std::chrono::system_clock::now() >= deadline) {
      errors.push_back(absl::StrCat(addresses_[at], ": not tried, out of time"));
      continue;
    }
    Session session(endpoints_[at], deadline);
    absl::StatusOr<v1::LeaseReply> reply = attempt(session);
    if (!reply.ok()) {
      errors.push_back(absl::StrCat(addresses_[at], ": ", reply.status().message()));
      Connect(at);
      continue;
    }
    reply->set_cluster(cluster_);
    reply->set_witness(session.member());
    absl::MutexLock lock(&mu_);
    current_ = at;
    return reply;
  }
  return absl::UnavailableError(
      absl::StrCat("no etcd endpoint answered: ", absl::StrJoin(errors, "; ")));
}

absl::StatusOr<v1::LeaseReply> EtcdBackend::Acquire(absl::Duration ttl, uint64_t epoch,
                                                    bool renew, absl::Duration timeout) {
  absl::MutexLock lock(&call_mu_);
  absl::StatusOr<v1::LeaseReply> reply = EachEndpoint(timeout, [&](Session& s) {
    call_mu_.AssertHeld();
    return AcquireAt(s, ttl, renew);
  });
  if (reply.ok() && reply->granted() && !renew) {
    LogEvent(LogLevel::kDebug, "etcd_lease_put",
             {{"key", key_}, {"lease", absl::Hex(lease_id_)}, {"fence", reply->fence()},
              {"epoch", epoch}});
  }
  return reply;
}

absl::StatusOr<v1::LeaseReply> EtcdBackend::AcquireAt(Session& s, absl::Duration ttl,
                                                      bool renew) {
  const int64_t ttl_ms = absl::ToInt64Milliseconds(ttl);
  // etcd counts leases in whole seconds: round up, so that etcd never lets
  // the key go before this node stops counting it.
  const int64_t ttl_s = std::max<int64_t>(1, (ttl_ms + 999) / 1000);
  auto granted = [&](const KeyValue& kv, int64_t etcd_ttl_s) {
    v1::LeaseReply r;
    r.set_granted(true);
    r.set_holder(node_);
    r.set_fence(static_cast<uint64_t>(kv.mod_revision()));
    r.set_ttl_ms(static_cast<uint32_t>(std::min(ttl_ms, etcd_ttl_s * 1000)));
    return r;
  };
  auto refused = [&](const std::optional<KeyValue>& kv) -> absl::StatusOr<v1::LeaseReply> {
    v1::LeaseReply r;
    r.set_granted(false);
    if (!kv.has_value()) return r;  // gone meanwhile: ask again at once
    r.set_holder(kv->value());
    r.set_fence(static_cast<uint64_t>(kv->mod_revision()));
    if (kv->lease() == 0) {
      // A key without a lease (written by hand) stays until it is deleted.
      r.set_remaining_ms(static_cast<uint32_t>(ttl_ms));
      return r;
    }
    absl::StatusOr<int64_t> left = s.TimeToLive(kv->lease());
    if (!left.ok()) return left.status();
    r.set_remaining_ms(static_cast<uint32_t>(*left > 0 ? *left * 1000 : kExpiringRemainingMs));
    return r;
  };
  // Revokes a lease of this node's that holds nothing (any more); one that
  // cannot be revoked now ends on its own.
  auto drop = [&](int64_t lease) {
    if (lease == 0) return;
    if (absl::Status st = s.Revoke(lease); !st.ok()) {
      LogEvent(LogLevel::kWarn, "etcd_lease_not_revoked",
               {{"lease", absl::Hex(lease)}, {"reason", st.message()}});
    }
  };

  if (renew && lease_id_ != 0) {
    absl::StatusOr<int64_t> etcd_ttl_s = s.KeepAlive(lease_id_);
    if (!etcd_ttl_s.ok()) return etcd_ttl_s.status();
    if (*etcd_ttl_s > 0) {
      absl::StatusOr<std::optional<KeyValue>> kv = s.Get(key_);
      if (!kv.ok()) return kv.status();
      if (kv->has_value() && (*kv)->value() == node_ && (*kv)->lease() == lease_id_) {
        return granted(**kv, *etcd_ttl_s);
      }
    }
    // The lease ended on etcd, or the key left it (deleted by hand): a
    // fresh acquire, with a new fence.
  }
  absl::StatusOr<std::optional<KeyValue>> kv = s.Get(key_);
  if (!kv.ok()) return kv.status();
  if (kv->has_value() && (*kv)->value() != node_) {
    drop(lease_id_);
    lease_id_ = 0;
    return refused(*kv);
  }
  // The key is absent, or names this node on a lease this node no longer
  // counts (or never knew: a put whose reply was lost).
  const int64_t seen_revision = kv->has_value() ? (*kv)->mod_revision() : 0;
  const int64_t stale_lease = kv->has_value() ? (*kv)->lease() : 0;
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> grant = s.Grant(ttl_s);
  if (!grant.ok()) return grant.status();
  if (grant->ttl() > ttl_s && !noted_longer_lease_) {
    noted_longer_lease_ = true;
    LogEvent(LogLevel::kWarn, "etcd_lease_longer",
             {{"asked_s", ttl_s},
              {"granted_s", grant->ttl()},
              {"why", "etcd's minimum lease is 1.5 election timeouts; failover waits for it"}});
  }
  absl::StatusOr<Session::PutResult> put = s.PutIfUnchanged(key_, node_, grant->id(), seen_revision);
  if (!put.ok()) {
    drop(grant->id());
    return put.status();
  }
  if (!put->put || !put->kv.has_value()) {
    drop(grant->id());
    drop(lease_id_);
    lease_id_ = 0;
    return refused(put->kv);
  }
  // The key is on the new lease now; older leases of this node hold nothing.
  if (lease_id_ != grant->id()) drop(lease_id_);
  if (stale_lease != lease_id_ && stale_lease != grant->id()) drop(stale_lease);
  lease_id_ = grant->id();
  return granted(*put->kv, grant->ttl());
}

absl::StatusOr<v1::LeaseReply> EtcdBackend::Release(uint64_t epoch, absl::Duration timeout) {
  absl::MutexLock lock(&call_mu_);
  const int64_t had = lease_id_;
  absl::StatusOr<v1::LeaseReply> reply = EachEndpoint(timeout, [&](Session& s) {
    call_mu_.AssertHeld();
    return ReleaseAt(s);
  });
  if (reply.ok() && had != 0) {
    LogEvent(LogLevel::kDebug, "etcd_lease_revoked",
             {{"key", key_}, {"lease", absl::Hex(had)}, {"epoch", epoch}});
  }
  return reply;
}

absl::StatusOr<v1::LeaseReply> EtcdBackend::Query(absl::Duration timeout) {
  absl::MutexLock lock(&call_mu_);
  return EachEndpoint(timeout, [&](Session& s) -> absl::StatusOr<v1::LeaseReply> {
    call_mu_.AssertHeld();
    absl::StatusOr<std::optional<KeyValue>> kv = s.Get(key_);
    if (!kv.ok()) return kv.status();
    v1::LeaseReply r;
    if (!kv->has_value()) return r;
    r.set_fence(static_cast<uint64_t>((*kv)->mod_revision()));
    r.set_holder((*kv)->value());
    return r;
  });
}

absl::StatusOr<v1::LeaseReply> EtcdBackend::ReleaseAt(Session& s) {
  if (lease_id_ != 0) {
    if (absl::Status st = s.Revoke(lease_id_); !st.ok()) return st;
    lease_id_ = 0;
  }
  absl::StatusOr<std::optional<KeyValue>> kv = s.Get(key_);
  if (!kv.ok()) return kv.status();
  v1::LeaseReply r;
  if (!kv->has_value()) return r;
  r.set_fence(static_cast<uint64_t>((*kv)->mod_revision()));
  if ((*kv)->value() == node_ && (*kv)->lease() != 0) {
    // A lease of this node's it lost track of (a put whose reply was lost):
    // given up too.
    if (absl::Status st = s.Revoke((*kv)->lease()); !st.ok()) return st;
    return r;
  }
  r.set_holder((*kv)->value());
  return r;
}

}  // namespace cloudha
