// `cloudha witness` and the arbiter section on loopback: a lone node
// promotes only with the witness's lease and its hooks get the fence; a
// witness of another CA or cluster, or one that does not serve the cluster,
// is refused with the reason in status; bad arbiter and witness
// configurations are refused with clear messages.
#include <signal.h>

#include <chrono>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/secure_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "cloudha/v1/witness.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

class WitnessTest : public ::testing::Test {
 protected:
  void SetUp() override { witness_port_ = PickUnusedPort(); }
  void TearDown() override {
    if (witness_ != nullptr) witness_->Signal(SIGKILL);
  }

  // Writes the witness's configuration (certificate `cert`) and starts it.
  void StartWitness(const std::string& cert, const std::string& extra = "",
                    const std::string& ca = "ca.crt") {
    WriteFileAtomically(cluster_.dir() + "/witness.textproto",
                        absl::StrCat("listen: \"127.0.0.1:", witness_port_, "\"\n",
                                     "tls { ca_file: \"", ca, "\" cert_file: \"", cert,
                                     ".crt\" key_file: \"", cert, ".key\" }\n",
                                     "state_dir: \"state-witness\"\n", extra),
                        0644, Overwrite::kReplace)
        .IgnoreError();
    auto p = Subprocess::Start(
        {CloudhaBinary(), "witness", "--config", cluster_.dir() + "/witness.textproto"},
        cluster_.dir() + "/witness");
    ASSERT_TRUE(p.ok());
    witness_ = *std::move(p);
    ASSERT_TRUE(WaitForLog(witness_.get(), "event=witness_started")) << Logs(witness_.get());
  }

  std::string ArbiterConfig(const std::string& extra_hooks = "") {
    TestCluster::Settings settings;
    settings.election = "hello_holddown_s: 1";
    settings.extra = absl::StrCat("arbiter { witness { addresses: \"127.0.0.1:", witness_port_,
                                  "\" } lease_ttl_ms: 1000 }\n", extra_hooks);
    return cluster_.Config("a", settings);
  }

  int witness_port_ = 0;
  TestCluster cluster_{{"a", "b"}};
  std::unique_ptr<Subprocess> witness_;
};

TEST_F(WitnessTest, ALoneNodePromotesWithTheLeaseAndItsHooksGetTheFence) {
  cluster_.WriteCertificate(cluster_.ca(), "demo", "witness", "witness");
  ASSERT_NO_FATAL_FAILURE(StartWitness("witness"));
  const std::string log = cluster_.dir() + "/hook.log";
  WriteFileAtomically(cluster_.dir() + "/hook.sh",
                      absl::StrCat("#!/bin/sh\necho \"epoch=$CLOUDHA_EPOCH fence=$CLOUDHA_FENCE\" >> ",
                                   log, "\n"),
                      0755, Overwrite::kReplace)
      .IgnoreError();
  cluster_.WriteConfig(
      "a", ArbiterConfig(absl::StrCat("hooks { on: TO_PRIMARY command: \"", cluster_.dir(),
                                      "/hook.sh\" }\n")));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.role() == v1::PRIMARY && s.primary_ready();
  })) << Logs(cluster_.agent("a"));
  absl::StatusOr<v1::StatusResponse> s = cluster_.Status("a");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->arbiter().backend(), "witness");
  EXPECT_TRUE(s->arbiter().reachable());
  EXPECT_TRUE(s->arbiter().lease_held());
  EXPECT_EQ(s->arbiter().holder(), "a");
  EXPECT_EQ(s->arbiter().fence(), 1u);
  EXPECT_EQ(ReadSmallFile(log).value_or(""), "epoch=1 fence=1\n");
  CommandResult status = cluster_.Cli({"status", "--socket", cluster_.socket("a")});
  EXPECT_THAT(status.out, HasSubstr("arbiter witness 127.0.0.1:"));
  EXPECT_THAT(status.out, HasSubstr("lease held"));
  CommandResult events = cluster_.Cli({"events", "--socket", cluster_.socket("a")});
  EXPECT_THAT(events.out, HasSubstr("arbiter lease granted, fence 1"));
  EXPECT_TRUE(WaitForLog(witness_.get(), "event=witness_lease_granted cluster=demo node=a fence=1"));
}

TEST_F(WitnessTest, WithoutTheWitnessALoneNodeNeverPromotes) {
  cluster_.WriteConfig("a", ArbiterConfig());  // nobody listens on the port
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.arbiter().wanted() && !s.arbiter().last_error().empty();
  })) << Logs(cluster_.agent("a"));
  absl::SleepFor(absl::Seconds(2));
  absl::StatusOr<v1::StatusResponse> s = cluster_.Status("a");
  ASSERT_TRUE(s.ok());
  EXPECT_NE(s->role(), v1::PRIMARY);
  EXPECT_FALSE(s->arbiter().reachable());
  EXPECT_THAT(s->arbiter().last_error(), HasSubstr("no witness answered"));
}

// A witness whose certificate another CA signed, one named for another
// cluster, and one that does not serve this cluster: never trusted.
TEST_F(WitnessTest, AWitnessOfAnotherCaOrClusterIsRefused) {
  struct Case {
    std::string name;
    std::function<void()> prepare;
    std::string extra;
    std::string error;
  };
  PemPair other_ca =
      CreateClusterCa("demo", {absl::Now() - absl::Hours(1), absl::Hours(24)}).value();
  const Case cases[] = {
      {"another CA",
       [&] { cluster_.WriteCertificate(other_ca, "demo", "witness", "foreign"); },
       "", "no witness answered"},
      {"another cluster",
       [&] { cluster_.WriteCertificate(cluster_.ca(), "other", "witness", "foreign"); }, "",
       "no witness answered"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    c.prepare();
    // The witness of another CA trusts only that CA.
    WriteFileAtomically(cluster_.dir() + "/other-ca.crt", other_ca.cert_pem, 0644,
                        Overwrite::kReplace)
        .IgnoreError();
    ASSERT_NO_FATAL_FAILURE(
        StartWitness("foreign", c.extra, c.name == "another CA" ? "other-ca.crt" : "ca.crt"));
    cluster_.WriteConfig("a", ArbiterConfig());
    ASSERT_NE(cluster_.Start("a"), nullptr);
    EXPECT_TRUE(cluster_.WaitFor("a", [&](const v1::StatusResponse& s) {
      return s.arbiter().last_error().find(c.error) != std::string::npos;
    })) << cluster_.Status("a")->arbiter().ShortDebugString();
    absl::SleepFor(absl::Milliseconds(1500));
    absl::StatusOr<v1::StatusResponse> s = cluster_.Status("a");
    ASSERT_TRUE(s.ok());
    EXPECT_NE(s->role(), v1::PRIMARY);
    EXPECT_FALSE(s->arbiter().lease_held());
    cluster_.Kill("a", SIGKILL);
    cluster_.agent("a")->Wait(absl::Seconds(5));
    witness_->Signal(SIGKILL);
    witness_->Wait(absl::Seconds(5));
  }
}

// A certificate the same CA made for another cluster may not touch this
// cluster's lease, even asking in its own name.
TEST_F(WitnessTest, TheWitnessServesOnlyTheClusterItsCertificateNames) {
  cluster_.WriteCertificate(cluster_.ca(), "demo", "witness", "witness");
  ASSERT_NO_FATAL_FAILURE(StartWitness("witness"));
  cluster_.WriteCertificate(cluster_.ca(), "other", "a", "other-a");
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = cluster_.ca().cert_pem;
  ssl.pem_cert_chain = ReadSmallFile(cluster_.dir() + "/other-a.crt").value_or("");
  ssl.pem_private_key = ReadSmallFile(cluster_.dir() + "/other-a.key").value_or("");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("witness.demo.cloudha");
  auto stub = v1::Witness::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", witness_port_), grpc::SslCredentials(ssl), args));
  for (const char* cluster : {"other", "demo"}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::LeaseRequest request;
    request.set_cluster(cluster);
    request.set_node("a");
    request.set_ttl_ms(1000);
    v1::LeaseReply reply;
    grpc::Status s = stub->Acquire(&context, request, &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << cluster;
    EXPECT_FALSE(reply.granted()) << cluster;
  }
}

TEST_F(WitnessTest, BadArbiterSettingsAreRefusedByCheckConfig) {
  struct Case {
    std::string arbiter;
    int lost_threshold;
    std::string error;
  };
  const Case cases[] = {
      {"arbiter { lease_ttl_ms: 1000 }", 5, "arbiter needs a back end"},
      {"arbiter { witness { } }", 5, "needs 1 to 4 addresses"},
      {"arbiter { witness { addresses: \"127.0.0.1:1\" } lease_ttl_ms: 200 }", 5,
       "lease_ttl_ms must be 300..600000"},
      {"arbiter { witness { addresses: \"127.0.0.1:1\" } lease_ttl_ms: 400 }", 5, ""},
      {"arbiter { witness { addresses: \"127.0.0.1:1\" id: \"b\" } }", 5, "is a peer's id"},
      {"arbiter { witness { addresses: \"127.0.0.1:1\" } }", 3, "at least 4 with an arbiter"},
      {"arbiter { witness { addresses: \"nowhere\" } }", 5, "has no port"},
  };
  for (const Case& c : cases) {
    TestCluster::Settings settings;
    settings.interval_ms = c.error.empty() ? 100 : 100;
    settings.lost_threshold = c.lost_threshold;
    settings.extra = c.arbiter + "\n";
    cluster_.WriteConfig("a", cluster_.Config("a", settings));
    CommandResult r = cluster_.Cli({"check-config", cluster_.config_path("a")});
    if (c.error.empty()) {
      EXPECT_EQ(r.exit_code, 0) << c.arbiter << r.out << r.err;
      continue;
    }
    EXPECT_EQ(r.exit_code, 2) << c.arbiter;
    EXPECT_THAT(r.out + r.err, HasSubstr(c.error)) << c.arbiter;
  }
  // A lease shorter than three heartbeat intervals.
  TestCluster::Settings slow;
  slow.interval_ms = 200;
  slow.extra = "arbiter { witness { addresses: \"127.0.0.1:1\" } lease_ttl_ms: 500 }\n";
  cluster_.WriteConfig("a", cluster_.Config("a", slow));
  CommandResult r = cluster_.Cli({"check-config", cluster_.config_path("a")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out + r.err, HasSubstr("at least 3 heartbeat intervals"));
}

TEST_F(WitnessTest, BadWitnessConfigurationsAndStateAreRefused) {
  auto run = [&](const std::string& text) {
    WriteFileAtomically(cluster_.dir() + "/w.textproto", text, 0644, Overwrite::kReplace)
        .IgnoreError();
    return RunCommand({CloudhaBinary(), "witness", "--config", cluster_.dir() + "/w.textproto"},
                      cluster_.dir(), absl::Seconds(10));
  };
  CommandResult r = run("tls { ca_file: \"ca.crt\" }\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("listen: \"HOST:PORT\" is required"));
  EXPECT_THAT(r.err, HasSubstr("tls { ca_file cert_file key_file } are required"));
  r = run("listen: 7810\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("not a valid textproto WitnessConfig"));
  r = run(absl::StrCat("listen: \"127.0.0.1:", witness_port_,
                       "\"\ntls { ca_file: \"ca.crt\" cert_file: \"missing.crt\" "
                       "key_file: \"missing.key\" }\n"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing.crt"));
  // A corrupt lease file: the fence must never go back, so no start.
  cluster_.WriteCertificate(cluster_.ca(), "demo", "witness", "witness");
  ASSERT_TRUE(MakeDirectories(cluster_.dir() + "/state-w", 0700).ok());
  WriteFileAtomically(cluster_.dir() + "/state-w/demo.lease", "fence nine\n", 0600,
                      Overwrite::kReplace)
      .IgnoreError();
  r = run(absl::StrCat("listen: \"127.0.0.1:", witness_port_,
                       "\"\ntls { ca_file: \"ca.crt\" cert_file: \"witness.crt\" "
                       "key_file: \"witness.key\" }\nstate_dir: \"state-w\"\n"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out + r.err, HasSubstr("demo.lease is corrupt"));
}

// The witness takes new TLS files without a restart, as the agent does, and
// SIGHUP does not stop it.
TEST_F(WitnessTest, TakesNewTlsFilesWithoutARestart) {
  cluster_.WriteCertificate(cluster_.ca(), "demo", "witness", "witness");
  ASSERT_NO_FATAL_FAILURE(StartWitness("witness"));
  cluster_.WriteCertificate(cluster_.ca(), "demo", "witness", "witness");
  EXPECT_TRUE(WaitForLog(witness_.get(), "event=tls_reloaded", absl::Seconds(15)))
      << Logs(witness_.get());
  witness_->Signal(SIGHUP);
  EXPECT_TRUE(WaitForLog(witness_.get(), "event=tls_unchanged")) << Logs(witness_.get());
  EXPECT_TRUE(witness_->Running());
  // Another node's certificate is refused; the witness keeps its own.
  cluster_.WriteCertificate(cluster_.ca(), "demo", "b", "witness");
  EXPECT_TRUE(WaitForLog(witness_.get(), "event=tls_refused", absl::Seconds(15)))
      << Logs(witness_.get());
  EXPECT_TRUE(witness_->Running());
}

}  // namespace
}  // namespace cloudha
