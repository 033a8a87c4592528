// EtcdBackend against a real etcd (Debian's etcd-server) on 127.0.0.1,
// started per test with its data in the test's temporary folder; skipped,
// saying why, when etcd is not installed.
#include "agent/etcd_backend.h"

#include <cstdlib>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/etcd_test_server.h"
#include "base/secure_file.h"
#include "cloudha/v1/witness.grpc.pb.h"
#include "crypto/certificate_authority.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

constexpr absl::Duration kTtl = absl::Seconds(2);
constexpr absl::Duration kTimeout = absl::Seconds(2);

std::string TestDir(const std::string& name) {
  const char* tmp = getenv("TEST_TMPDIR");
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", test->name(), "-", name);
}

class EtcdBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (EtcdTestServer::Binary().empty()) {
      GTEST_SKIP() << "etcd is not installed (apt-get install etcd-server)";
    }
  }

  // Starts etcd on free ports of 127.0.0.1; TLS when `tls` names files.
  void StartEtcd(const EtcdTestServer::Options* tls = nullptr) {
    EtcdTestServer::Options options;
    if (tls != nullptr) options = *tls;
    options.dir = TestDir("etcd");
    absl::StatusOr<std::unique_ptr<EtcdTestServer>> server;
    // A port picked free can be taken by the time etcd binds it: try again.
    for (int attempt = 0; attempt < 3; ++attempt) {
      endpoint_ = absl::StrCat("127.0.0.1:", EtcdTestServer::PickUnusedPort());
      options.client_listen = options.client_advertise = endpoint_;
      options.peer = absl::StrCat("127.0.0.1:", EtcdTestServer::PickUnusedPort());
      server = EtcdTestServer::Start(options);
      if (server.ok()) break;
    }
    ASSERT_TRUE(server.ok()) << server.status();
    etcd_ = *std::move(server);
  }

  std::unique_ptr<EtcdBackend> Backend(const std::string& node,
                                       std::vector<std::string> endpoints = {}) {
    v1::EtcdArbiterConfig config;
    if (endpoints.empty()) endpoints.push_back(endpoint_);
    for (const std::string& e : endpoints) config.add_endpoints(e);
    config.set_plaintext(true);
    absl::StatusOr<std::unique_ptr<EtcdBackend>> backend =
        EtcdBackend::Create(config, "demo", node);
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? *std::move(backend) : nullptr;
  }

  std::string endpoint_;
  std::unique_ptr<EtcdTestServer> etcd_;
};

TEST_F(EtcdBackendTest, GrantsAFreeLease) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  std::unique_ptr<EtcdBackend> a = Backend("a");
  EXPECT_EQ(a->kind(), "etcd");
  EXPECT_EQ(a->key(), "/cloudha/demo/primary");
  absl::StatusOr<v1::LeaseReply> r = a->Acquire(kTtl, 1, false, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << etcd_->LogTail();
  EXPECT_TRUE(r->granted());
  EXPECT_EQ(r->cluster(), "demo");
  EXPECT_EQ(r->holder(), "a");
  EXPECT_GT(r->fence(), 0u);
  EXPECT_EQ(r->ttl_ms(), 2000u);
  EXPECT_TRUE(absl::StartsWith(r->witness(), "etcd member ")) << r->witness();
  EXPECT_EQ(a->address(), endpoint_);
}

TEST_F(EtcdBackendTest, RefusesWithTheHolderAndTheTimeLeft) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  std::unique_ptr<EtcdBackend> a = Backend("a");
  std::unique_ptr<EtcdBackend> b = Backend("b");
  absl::StatusOr<v1::LeaseReply> held = a->Acquire(kTtl, 1, false, kTimeout);
  ASSERT_TRUE(held.ok() && held->granted()) << held.status();
  absl::StatusOr<v1::LeaseReply> r = b->Acquire(kTtl, 1, false, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->granted());
  EXPECT_EQ(r->holder(), "a");
  EXPECT_EQ(r->fence(), held->fence());
  // etcd says whole seconds, rounded down.
  EXPECT_GE(r->remaining_ms(), 100u);
  EXPECT_LE(r->remaining_ms(), 2000u);
  // A secondary's ping (a release of nothing) names the holder too.
  absl::StatusOr<v1::LeaseReply> ping = b->Release(1, kTimeout);
  ASSERT_TRUE(ping.ok()) << ping.status();
  EXPECT_EQ(ping->holder(), "a");
  // The holder still holds it.
  absl::StatusOr<v1::LeaseReply> renewed = a->Acquire(kTtl, 1, true, kTimeout);
  ASSERT_TRUE(renewed.ok() && renewed->granted()) << renewed.status();
}

TEST_F(EtcdBackendTest, ARenewalKeepsTheFenceAFreshAcquireRaisesIt) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  std::unique_ptr<EtcdBackend> a = Backend("a");
  absl::StatusOr<v1::LeaseReply> first = a->Acquire(kTtl, 1, false, kTimeout);
  ASSERT_TRUE(first.ok() && first->granted()) << first.status();
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::LeaseReply> renewed = a->Acquire(kTtl, 1, true, kTimeout);
    ASSERT_TRUE(renewed.ok()) << renewed.status();
    EXPECT_TRUE(renewed->granted());
    EXPECT_EQ(renewed->fence(), first->fence());
    EXPECT_EQ(renewed->ttl_ms(), 2000u);
  }
  // Not a renewal (this node stopped counting its lease): a new fence.
  absl::StatusOr<v1::LeaseReply> fresh = a->Acquire(kTtl, 2, false, kTimeout);
  ASSERT_TRUE(fresh.ok() && fresh->granted()) << fresh.status();
  EXPECT_GT(fresh->fence(), first->fence());
  absl::StatusOr<v1::LeaseReply> renewed = a->Acquire(kTtl, 2, true, kTimeout);
  ASSERT_TRUE(renewed.ok() && renewed->granted()) << renewed.status();
  EXPECT_EQ(renewed->fence(), fresh->fence());
}

TEST_F(EtcdBackendTest, AReleaseLetsAnotherNodeInWithAHigherFence) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  std::unique_ptr<EtcdBackend> a = Backend("a");
  std::unique_ptr<EtcdBackend> b = Backend("b");
  absl::StatusOr<v1::LeaseReply> held = a->Acquire(kTtl, 1, false, kTimeout);
  ASSERT_TRUE(held.ok() && held->granted()) << held.status();
  absl::StatusOr<v1::LeaseReply> released = a->Release(1, kTimeout);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->holder(), "");
  absl::StatusOr<v1::LeaseReply> r = b->Acquire(kTtl, 2, false, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->granted());
  EXPECT_GT(r->fence(), held->fence());
  // a's renewal of the lease it gave up is refused.
  absl::StatusOr<v1::LeaseReply> again = a->Acquire(kTtl, 1, true, kTimeout);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->granted());
  EXPECT_EQ(again->holder(), "b");
}

// The lease ends on etcd no sooner than ttl after the request that granted
// or renewed it was sent, and soon after that.
TEST_F(EtcdBackendTest, AnUnrenewedLeaseExpiresAfterItsTtl) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  std::unique_ptr<EtcdBackend> a = Backend("a");
  std::unique_ptr<EtcdBackend> b = Backend("b");
  ASSERT_TRUE(a->Acquire(kTtl, 1, false, kTimeout).ok());
  const absl::Time renew_sent = absl::Now();
  absl::StatusOr<v1::LeaseReply> held = a->Acquire(kTtl, 1, true, kTimeout);
  ASSERT_TRUE(held.ok() && held->granted()) << held.status();
  absl::Time granted_at = absl::InfiniteFuture();
  uint64_t fence = 0;
  while (absl::Now() - renew_sent < absl::Seconds(10)) {
    const absl::Time sent = absl::Now();
    absl::StatusOr<v1::LeaseReply> r = b->Acquire(kTtl, 2, false, kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->granted()) {
      granted_at = sent;
      fence = r->fence();
      break;
    }
    EXPECT_EQ(r->holder(), "a");
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_NE(granted_at, absl::InfiniteFuture()) << "a's lease never expired\n" << etcd_->LogTail();
  std::cout << "a's lease ended on etcd " << absl::FormatDuration(granted_at - renew_sent)
            << " after its last renewal was sent (ttl 2s)\n";
  EXPECT_GE(granted_at - renew_sent, kTtl);
  EXPECT_LT(granted_at - renew_sent, kTtl + absl::Milliseconds(1500));
  EXPECT_GT(fence, held->fence());
  // a renews too late: it is b's now.
  absl::StatusOr<v1::LeaseReply> late = a->Acquire(kTtl, 1, true, kTimeout);
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_FALSE(late->granted());
  EXPECT_EQ(late->holder(), "b");
}

// etcd counts in whole seconds: the lease asked for is rounded up on etcd,
// and the holder is told only what it asked for.
TEST_F(EtcdBackendTest, TheGrantedTtlIsNeverMoreThanAskedFor) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  std::unique_ptr<EtcdBackend> a = Backend("a");
  for (int64_t ms : {2500, 1000, 3000}) {
    absl::StatusOr<v1::LeaseReply> r = a->Acquire(absl::Milliseconds(ms), 1, false, kTimeout);
    ASSERT_TRUE(r.ok() && r->granted()) << r.status();
    EXPECT_EQ(r->ttl_ms(), static_cast<uint32_t>(ms));
  }
}

// A gRPC server that is not etcd (here one that serves cloudha.v1.Witness,
// as a witness's address given by mistake would).
class NotEtcd {
 public:
  NotEtcd() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~NotEtcd() {
    if (server_ != nullptr) server_->Shutdown();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  v1::Witness::Service service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(EtcdBackendTest, AGrpcServerThatIsNotEtcdGivesAClearError) {
  NotEtcd other;
  std::unique_ptr<EtcdBackend> a = Backend("a", {other.address()});
  absl::StatusOr<v1::LeaseReply> r = a->Acquire(kTtl, 1, false, kTimeout);
  ASSERT_FALSE(r.ok());
  std::cout << "what status shows: " << r.status().message() << "\n";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(r.status().message(), other.address())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "not an etcd v3 server")) << r.status();
  absl::StatusOr<v1::LeaseReply> ping = a->Release(1, kTimeout);
  ASSERT_FALSE(ping.ok());
  EXPECT_TRUE(absl::StrContains(ping.status().message(), "not an etcd v3 server")) << ping.status();
}

TEST_F(EtcdBackendTest, EndpointsAreTriedInTurn) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  NotEtcd other;
  const std::string closed = absl::StrCat("127.0.0.1:", EtcdTestServer::PickUnusedPort());
  std::unique_ptr<EtcdBackend> a = Backend("a", {other.address(), closed, endpoint_});
  absl::StatusOr<v1::LeaseReply> r = a->Acquire(kTtl, 1, false, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->granted());
  EXPECT_EQ(a->address(), endpoint_);
  // The next request starts with the endpoint that answered.
  absl::StatusOr<v1::LeaseReply> renewed = a->Acquire(kTtl, 1, true, kTimeout);
  ASSERT_TRUE(renewed.ok() && renewed->granted()) << renewed.status();
  EXPECT_EQ(renewed->fence(), r->fence());
}

TEST_F(EtcdBackendTest, AStoppedEtcdIsUnavailableAndItsRevisionsGoOnAfterARestart) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  std::unique_ptr<EtcdBackend> a = Backend("a");
  absl::StatusOr<v1::LeaseReply> held = a->Acquire(kTtl, 1, false, kTimeout);
  ASSERT_TRUE(held.ok() && held->granted()) << held.status();
  EtcdTestServer::Options options = etcd_->options();
  etcd_.reset();
  absl::StatusOr<v1::LeaseReply> r = a->Acquire(kTtl, 1, true, absl::Milliseconds(500));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  std::cout << "etcd down: " << r.status().message() << "\n";
  absl::StatusOr<std::unique_ptr<EtcdTestServer>> restarted = EtcdTestServer::Start(options);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  etcd_ = *std::move(restarted);
  // A restarted etcd extends the leases it kept; the fence never goes back.
  absl::Time end = absl::Now() + absl::Seconds(10);
  absl::StatusOr<v1::LeaseReply> fresh;
  do {
    fresh = a->Acquire(kTtl, 2, false, kTimeout);
  } while (!fresh.ok() && absl::Now() < end);
  ASSERT_TRUE(fresh.ok() && fresh->granted()) << fresh.status();
  EXPECT_GT(fresh->fence(), held->fence());
}

class EtcdTlsTest : public EtcdBackendTest {
 protected:
  void SetUp() override {
    EtcdBackendTest::SetUp();
    if (IsSkipped()) return;
    dir_ = TestDir("pki");
    ASSERT_TRUE(MakeDirectories(dir_, 0700).ok());
    const Validity validity{absl::Now() - absl::Hours(1), absl::Hours(24)};
    absl::StatusOr<PemPair> ca = CreateClusterCa("demo", validity);
    ASSERT_TRUE(ca.ok()) << ca.status();
    Write("ca.crt", ca->cert_pem);
    for (const char* node : {"etcd", "a"}) {
      absl::StatusOr<PemPair> pair = IssueNodeCertificate(*ca, {"demo", node}, validity);
      ASSERT_TRUE(pair.ok()) << pair.status();
      Write(absl::StrCat(node, ".crt"), pair->cert_pem);
      Write(absl::StrCat(node, ".key"), pair->key_pem);
    }
    EtcdTestServer::Options tls;
    tls.cert_file = dir_ + "/etcd.crt";
    tls.key_file = dir_ + "/etcd.key";
    tls.client_ca_file = dir_ + "/ca.crt";
    ASSERT_NO_FATAL_FAILURE(StartEtcd(&tls));
  }

  void Write(const std::string& name, const std::string& pem) {
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/" + name, pem, 0600, Overwrite::kReplace).ok());
  }

  // Acquires as node a with `config` (endpoints filled in).
  absl::StatusOr<v1::LeaseReply> AcquireWith(v1::EtcdArbiterConfig config) {
    config.add_endpoints(endpoint_);
    absl::StatusOr<std::unique_ptr<EtcdBackend>> backend = EtcdBackend::Create(config, "demo", "a");
    if (!backend.ok()) return backend.status();
    return (*backend)->Acquire(kTtl, 1, false, kTimeout);
  }

  v1::EtcdArbiterConfig MutualTls() {
    v1::EtcdArbiterConfig config;
    config.mutable_tls()->set_ca_file(dir_ + "/ca.crt");
    config.mutable_tls()->set_cert_file(dir_ + "/a.crt");
    config.mutable_tls()->set_key_file(dir_ + "/a.key");
    config.set_server_name("etcd.demo.cloudha");
    return config;
  }

  std::string dir_;
};

// etcd with the cluster CA's certificates: a node certificate is the
// client certificate, and server_name the name etcd's certificate carries.
TEST_F(EtcdTlsTest, MutualTlsWithTheClusterCa) {
  absl::StatusOr<v1::LeaseReply> r = AcquireWith(MutualTls());
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << etcd_->LogTail();
  EXPECT_TRUE(r->granted());
}

TEST_F(EtcdTlsTest, WhatDoesNotFitTlsFailsClearly) {
  struct Case {
    const char* what;
    v1::EtcdArbiterConfig config;
  };
  v1::EtcdArbiterConfig no_client_cert = MutualTls();
  no_client_cert.mutable_tls()->clear_cert_file();
  no_client_cert.mutable_tls()->clear_key_file();
  v1::EtcdArbiterConfig wrong_name = MutualTls();
  wrong_name.clear_server_name();
  v1::EtcdArbiterConfig plaintext;
  plaintext.set_plaintext(true);
  for (const Case& c : {Case{"no client certificate", no_client_cert},
                        Case{"the address is not in etcd's certificate", wrong_name},
                        Case{"plaintext to a TLS etcd", plaintext}}) {
    absl::StatusOr<v1::LeaseReply> r = AcquireWith(c.config);
    ASSERT_FALSE(r.ok()) << c.what;
    std::cout << c.what << ": " << r.status().message() << "\n";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << c.what;
    EXPECT_TRUE(absl::StrContains(r.status().message(), endpoint_)) << r.status();
  }
}

TEST(EtcdBackendCreateTest, NamesTheTlsFileItCannotRead) {
  v1::EtcdArbiterConfig config;
  config.add_endpoints("127.0.0.1:2379");
  config.mutable_tls()->set_ca_file("/nonexistent/ca.crt");
  absl::StatusOr<std::unique_ptr<EtcdBackend>> backend = EtcdBackend::Create(config, "demo", "a");
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(backend.status().message(), "arbiter.etcd.tls.ca_file"))
      << backend.status();
  EXPECT_TRUE(absl::StrContains(backend.status().message(), "/nonexistent/ca.crt"))
      << backend.status();
}

TEST(EtcdBackendCreateTest, TakesThePrefixFromTheConfiguration) {
  v1::EtcdArbiterConfig config;
  config.add_endpoints("127.0.0.1:2379");
  config.set_plaintext(true);
  config.set_prefix("/ha/prod");
  absl::StatusOr<std::unique_ptr<EtcdBackend>> backend = EtcdBackend::Create(config, "web", "a");
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ((*backend)->key(), "/ha/prod/web/primary");
}

}  // namespace
}  // namespace cloudha
