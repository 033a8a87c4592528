// health.http_listen and health.tcp_primary_listen on a real pair: the
// HTTP paths and the TCP port follow the roles as grpc.health.v1 does, and a
// killed primary's survivor turns /primary 200 and opens its TCP port.
#include <signal.h>

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "agent/probe_client.h"
#include "gtest/gtest.h"
#include "test/subprocess.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

class ProbeListenersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string node : {"a", "b"}) {
      http_[node] = PickUnusedPort();
      tcp_[node] = PickUnusedPort();
      TestCluster::Settings settings;
      settings.priority = node == "a" ? 200 : 100;
      std::string config = cluster_.Config(node, settings);
      config = absl::StrReplaceAll(
          config, {{"health { listen:",
                    absl::StrCat("health { http_listen: \"127.0.0.1:", http_[node],
                                 "\" tcp_primary_listen: \"127.0.0.1:", tcp_[node],
                                 "\" listen:")}});
      ASSERT_TRUE(absl::StrContains(config, "http_listen")) << config;
      cluster_.WriteConfig(node, config);
    }
    cluster_.Start("a");
    ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
      return s.role() == v1::PRIMARY && s.primary_ready();
    }));
    cluster_.Start("b");
    ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.role() == v1::SECONDARY && s.peers_size() == 1 && s.peers(0).state() == v1::PeerStatus::UP;
    }));
  }

  // Polls `condition` every 10 ms for at most `timeout`.
  static bool Eventually(const std::function<bool()>& condition,
                         absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (condition()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return condition();
  }

  TestCluster cluster_{{"a", "b"}};
  std::map<std::string, int> http_;
  std::map<std::string, int> tcp_;
};

TEST_F(ProbeListenersTest, PathsAndPortFollowTheRoles) {
  ProbeAnswer primary = ProbeRequest(http_["a"], "GET", "/primary");
  EXPECT_EQ(primary.code, 200);
  EXPECT_TRUE(absl::StartsWith(primary.body, "primary epoch 1 node a\n")) << primary.body;
  EXPECT_EQ(ProbeRequest(http_["a"], "GET", "/healthz").code, 200);
  EXPECT_EQ(ProbeRequest(http_["a"], "GET", "/secondary").code, 503);
  EXPECT_EQ(ProbeRequest(http_["b"], "GET", "/primary").code, 503);
  EXPECT_EQ(ProbeRequest(http_["b"], "GET", "/healthz").code, 200);
  // cloudha.v1.Secondary: once b is in sync.
  ASSERT_TRUE(Eventually([&] { return ProbeRequest(http_["b"], "GET", "/secondary").code == 200; }));
  ProbeAnswer secondary = ProbeRequest(http_["b"], "GET", "/secondary");
  EXPECT_TRUE(absl::StartsWith(secondary.body, "secondary epoch ")) << secondary.body;
  EXPECT_TRUE(absl::StrContains(secondary.body, "node b primary a")) << secondary.body;
  EXPECT_TRUE(ProbeConnects(tcp_["a"]));
  EXPECT_FALSE(ProbeConnects(tcp_["b"]));

  // An operator's handover moves both at once.
  CommandResult failover = cluster_.Cli({"failover", "--socket", cluster_.socket("a")});
  ASSERT_EQ(failover.exit_code, 0) << failover.out << failover.err;
  ASSERT_TRUE(Eventually([&] { return ProbeRequest(http_["b"], "GET", "/primary").code == 200; }));
  EXPECT_TRUE(Eventually([&] { return ProbeConnects(tcp_["b"]); }));
  EXPECT_TRUE(Eventually([&] { return !ProbeConnects(tcp_["a"]); }));
  EXPECT_EQ(ProbeRequest(http_["a"], "GET", "/primary").code, 503);
}

TEST_F(ProbeListenersTest, TheSurvivorOfAKilledPrimaryAnswers) {
  absl::Time killed = absl::Now();
  cluster_.Kill("a", SIGKILL);
  ASSERT_TRUE(Eventually([&] { return ProbeRequest(http_["b"], "GET", "/primary").code == 200; }));
  absl::Duration http_after = absl::Now() - killed;
  ASSERT_TRUE(Eventually([&] { return ProbeConnects(tcp_["b"]); }));
  std::printf("kill -9 of the primary -> survivor's GET /primary 200 after %lld ms "
              "(heartbeat 100 ms x 5), its TCP port open after %lld ms\n",
              static_cast<long long>(absl::ToInt64Milliseconds(http_after)),
              static_cast<long long>(absl::ToInt64Milliseconds(absl::Now() - killed)));
}

TEST_F(ProbeListenersTest, SigtermTurnsTheProbesOffFirst) {
  cluster_.Kill("a", SIGTERM);
  // Before the agent is gone, its probes already say no (or it is gone and
  // they cannot connect): never a 200 from a stopping primary's /primary
  // once its TCP port closed.
  ASSERT_TRUE(Eventually([&] { return !ProbeConnects(tcp_["a"]); }));
  EXPECT_NE(ProbeRequest(http_["a"], "GET", "/primary").code, 200);
}

}  // namespace
}  // namespace cloudha
