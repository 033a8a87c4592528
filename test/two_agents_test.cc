// Two real agents over mutual TLS on loopback: they find each other, report
// it through `cloudha status`, answer health probes, notice a dead or
// restarted peer, and stop cleanly.
#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "cloudha/v1/admin.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

class TwoAgentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(cluster_.Start("a"), nullptr);
    ASSERT_NE(cluster_.Start("b"), nullptr);
    ASSERT_TRUE(cluster_.WaitForPeerState("a", "b", v1::PeerStatus::UP))
        << Logs(cluster_.agent("a"));
    ASSERT_TRUE(cluster_.WaitForPeerState("b", "a", v1::PeerStatus::UP))
        << Logs(cluster_.agent("b"));
  }

  std::string HealthAddr(const std::string& node) {
    return absl::StrCat("127.0.0.1:", cluster_.health_port(node));
  }
  std::string PeerAddr(const std::string& node) {
    return absl::StrCat("127.0.0.1:", cluster_.port(node));
  }

  TestCluster cluster_{{"a", "b"}};
};

TEST_F(TwoAgentsTest, StatusJsonNamesBothPeersUp) {
  // A peer can be UP from its own hellos before a reply measured the RTT.
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.peers(0).rtt_ms() > 0;
  }));
  CommandResult r = cluster_.Cli({"status", "--config", cluster_.config_path("a"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &json).ok()) << r.out;
  const auto& f = json.fields();
  EXPECT_EQ(f.at("node_id").string_value(), "a");
  EXPECT_EQ(f.at("cluster").string_value(), "demo");
  const auto& peers = f.at("peers").list_value().values();
  ASSERT_EQ(peers.size(), 1);
  const auto& peer = peers[0].struct_value().fields();
  EXPECT_EQ(peer.at("id").string_value(), "b");
  EXPECT_EQ(peer.at("state").string_value(), "UP");
  EXPECT_GT(peer.at("rtt_ms").number_value(), 0.0);
  EXPECT_LT(peer.at("rtt_ms").number_value(), 1000.0);
  // Each node's version, and the peer's from its hellos.
  const std::string version = f.at("version").string_value();
  EXPECT_THAT(version, ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+ \\(commit .+\\)"));
  EXPECT_EQ(peer.at("version").string_value(), version);
}

TEST_F(TwoAgentsTest, StatusTextShowsPeerAndPath) {
  CommandResult r = cluster_.Cli({"status", "--socket", cluster_.socket("b")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("node b  cluster demo (group 7)"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\nversion [0-9]+\\.[0-9]+\\.[0-9]+ \\(commit "));
  // Both run the same binary: no "runs version" line for the peer.
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("runs version")));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\na +UP "));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("path 0 ", PeerAddr("a"))));
}

TEST_F(TwoAgentsTest, ProbeHealthListenerWithGrpcHealthProbeFlags) {
  CommandResult serving = cluster_.Cli({"probe", absl::StrCat("-addr=", HealthAddr("a"))});
  EXPECT_EQ(serving.exit_code, 0) << serving.err;
  EXPECT_THAT(serving.out, HasSubstr("SERVING"));
  CommandResult unknown = cluster_.Cli({"probe", "--addr", HealthAddr("a"), "--service", "nope"});
  EXPECT_EQ(unknown.exit_code, 3) << unknown.err;
  CommandResult closed =
      cluster_.Cli({"probe", "--addr", absl::StrCat("127.0.0.1:", PickUnusedPort()),
                    "--connect-timeout", "300ms"});
  EXPECT_EQ(closed.exit_code, 2) << closed.err;
  CommandResult bad = cluster_.Cli({"probe", "--addr", HealthAddr("a"), "--rpc-timeout", "soon"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  CommandResult no_addr = cluster_.Cli({"probe"});
  EXPECT_EQ(no_addr.exit_code, 1) << no_addr.err;
}

TEST_F(TwoAgentsTest, ProbePeerPortNeedsMutualTls) {
  const std::string dir = cluster_.dir();
  CommandResult tls = cluster_.Cli({"probe", "--addr", PeerAddr("a"), "--tls", "--tls-ca-cert",
                                    dir + "/ca.crt", "--tls-client-cert", dir + "/b.crt",
                                    "--tls-client-key", dir + "/b.key", "--tls-server-name",
                                    "a.demo.cloudha"});
  EXPECT_EQ(tls.exit_code, 0) << tls.err;
  // The peer port never speaks plaintext, and wants a client certificate.
  CommandResult plain =
      cluster_.Cli({"probe", "--addr", PeerAddr("a"), "--connect-timeout", "500ms"});
  EXPECT_EQ(plain.exit_code, 2) << plain.out << plain.err;
  CommandResult no_client_cert =
      cluster_.Cli({"probe", "--addr", PeerAddr("a"), "--tls", "--tls-ca-cert", dir + "/ca.crt",
                    "--tls-server-name", "a.demo.cloudha", "--connect-timeout", "500ms"});
  EXPECT_NE(no_client_cert.exit_code, 0);
}

TEST_F(TwoAgentsTest, HealthListenerServesNothingButHealth) {
  auto stub = v1::AdminService::NewStub(
      grpc::CreateChannel(HealthAddr("a"), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::StatusResponse response;
  grpc::Status s = stub->GetStatus(&context, v1::GetStatusRequest(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
}

TEST_F(TwoAgentsTest, DeadPeerIsLostAndRestartIsNoticed) {
  uint64_t first_boot = cluster_.Status("a")->peers(0).boot_id();
  cluster_.Kill("b", SIGKILL);
  ASSERT_TRUE(cluster_.WaitForPeerState("a", "b", v1::PeerStatus::DOWN))
      << Logs(cluster_.agent("a"));
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "event=peer_down peer=b"));
  ASSERT_NE(cluster_.Start("b"), nullptr);
  ASSERT_TRUE(cluster_.WaitForPeerState("a", "b", v1::PeerStatus::UP))
      << Logs(cluster_.agent("a"));
  ASSERT_TRUE(cluster_.WaitFor("a", [&](const v1::StatusResponse& s) {
    return s.peers(0).restarts() == 1 && s.peers(0).boot_id() != first_boot;
  })) << Logs(cluster_.agent("a"));
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "event=peer_restarted peer=b"));
}

TEST_F(TwoAgentsTest, SigtermStopsCleanly) {
  cluster_.Kill("a", SIGTERM);
  std::optional<int> code = cluster_.agent("a")->Wait(absl::Seconds(10));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << Logs(cluster_.agent("a"));
  EXPECT_NE(access(cluster_.socket("a").c_str(), F_OK), 0) << "admin socket left behind";
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr("event=agent_stopped node=a"));
  ASSERT_TRUE(cluster_.WaitForPeerState("b", "a", v1::PeerStatus::DOWN));
}

}  // namespace
}  // namespace cloudha
