// The arbiter's etcd back end with real agents on loopback: a lone node
// promotes only with the lease kept in a real etcd (Debian's etcd-server),
// its hooks get the fence, and stopping gives the lease up; an endpoint that
// is not etcd shows as such in `cloudha status`. Skipped, saying why, when
// etcd is not installed.
#include <signal.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "agent/etcd_backend.h"
#include "agent/etcd_test_server.h"
#include "base/secure_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

class EtcdArbiterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (EtcdTestServer::Binary().empty()) {
      GTEST_SKIP() << "etcd is not installed (apt-get install etcd-server)";
    }
  }

  void StartEtcd() {
    EtcdTestServer::Options options;
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    options.dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", test->name(), "-etcd");
    absl::StatusOr<std::unique_ptr<EtcdTestServer>> server;
    for (int attempt = 0; attempt < 3 && !server.ok(); ++attempt) {
      endpoint_ = absl::StrCat("127.0.0.1:", PickUnusedPort());
      options.client_listen = options.client_advertise = endpoint_;
      options.peer = absl::StrCat("127.0.0.1:", PickUnusedPort());
      server = EtcdTestServer::Start(options);
    }
    ASSERT_TRUE(server.ok()) << server.status();
    etcd_ = *std::move(server);
  }

  std::string Config(const std::string& endpoint, const std::string& extra = "") {
    TestCluster::Settings settings;
    settings.election = "hello_holddown_s: 1";
    settings.extra = absl::StrCat("arbiter { etcd { endpoints: \"", endpoint,
                                  "\" plaintext: true prefix: \"/test\" } lease_ttl_ms: 2000 }\n",
                                  extra);
    return cluster_.Config("a", settings);
  }

  std::string endpoint_;
  std::unique_ptr<EtcdTestServer> etcd_;
  TestCluster cluster_{{"a", "b"}};
};

TEST_F(EtcdArbiterTest, ALoneNodePromotesWithTheEtcdLeaseAndGivesItUpWhenItStops) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd());
  const std::string log = cluster_.dir() + "/hook.log";
  ASSERT_TRUE(WriteFileAtomically(
                  cluster_.dir() + "/hook.sh",
                  absl::StrCat("#!/bin/sh\necho \"fence=$CLOUDHA_FENCE\" >> ", log, "\n"), 0755,
                  Overwrite::kReplace)
                  .ok());
  cluster_.WriteConfig("a", Config(endpoint_, absl::StrCat("hooks { on: TO_PRIMARY command: \"",
                                                           cluster_.dir(), "/hook.sh\" }\n")));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.role() == v1::PRIMARY && s.primary_ready();
  })) << Logs(cluster_.agent("a")) << etcd_->LogTail();
  absl::StatusOr<v1::StatusResponse> s = cluster_.Status("a");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->arbiter().backend(), "etcd");
  EXPECT_EQ(s->arbiter().address(), endpoint_);
  EXPECT_TRUE(s->arbiter().reachable());
  EXPECT_TRUE(s->arbiter().lease_held());
  EXPECT_EQ(s->arbiter().holder(), "a");
  EXPECT_GT(s->arbiter().fence(), 0u);
  EXPECT_EQ(ReadSmallFile(log).value_or(""), absl::StrCat("fence=", s->arbiter().fence(), "\n"));
  CommandResult status = cluster_.Cli({"status", "--socket", cluster_.socket("a")});
  EXPECT_THAT(status.out, HasSubstr(absl::StrCat("arbiter etcd ", endpoint_)));
  EXPECT_THAT(status.out, HasSubstr("lease held"));

  // Another node is refused while a holds the lease, and let in (with a
  // higher fence) as soon as a stops: a stopping agent revokes its lease.
  v1::EtcdArbiterConfig etcd;
  etcd.add_endpoints(endpoint_);
  etcd.set_plaintext(true);
  etcd.set_prefix("/test");
  absl::StatusOr<std::unique_ptr<EtcdBackend>> b = EtcdBackend::Create(etcd, "demo", "b");
  ASSERT_TRUE(b.ok()) << b.status();
  absl::StatusOr<v1::LeaseReply> refused = (*b)->Acquire(absl::Seconds(2), 1, false,
                                                         absl::Seconds(2));
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_FALSE(refused->granted());
  EXPECT_EQ(refused->holder(), "a");
  cluster_.Kill("a", SIGTERM);
  ASSERT_TRUE(cluster_.agent("a")->Wait(absl::Seconds(15)).has_value());
  absl::StatusOr<v1::LeaseReply> granted = (*b)->Acquire(absl::Seconds(2), 1, false,
                                                         absl::Seconds(2));
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_TRUE(granted->granted()) << "a's lease was not given up: " << granted->ShortDebugString();
  EXPECT_GT(granted->fence(), s->arbiter().fence());
}

// An endpoint that is a gRPC server but not etcd (here the node's own
// grpc.health.v1 listener): status says so, and the node never promotes.
TEST_F(EtcdArbiterTest, AnEndpointThatIsNotEtcdShowsInStatus) {
  const std::string health = absl::StrCat("127.0.0.1:", cluster_.health_port("a"));
  cluster_.WriteConfig("a", Config(health));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.arbiter().wanted() && !s.arbiter().last_error().empty();
  })) << Logs(cluster_.agent("a"));
  absl::SleepFor(absl::Seconds(1));
  absl::StatusOr<v1::StatusResponse> s = cluster_.Status("a");
  ASSERT_TRUE(s.ok());
  EXPECT_NE(s->role(), v1::PRIMARY);
  EXPECT_FALSE(s->arbiter().reachable());
  EXPECT_THAT(s->arbiter().last_error(), HasSubstr(absl::StrCat(health, ": not an etcd v3 server")));
  CommandResult status = cluster_.Cli({"status", "--socket", cluster_.socket("a")});
  EXPECT_THAT(status.out, HasSubstr("not an etcd v3 server"));
}

TEST_F(EtcdArbiterTest, CheckConfigRefusesALeaseEtcdCannotKeep) {
  cluster_.WriteConfig("a", absl::StrReplaceAll(Config("127.0.0.1:2379"),
                                                {{"lease_ttl_ms: 2000", "lease_ttl_ms: 1500"}}));
  CommandResult r = cluster_.Cli({"check-config", cluster_.config_path("a")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out + r.err, HasSubstr("whole seconds of at least 2000 with etcd, got 1500"));
}

}  // namespace
}  // namespace cloudha
