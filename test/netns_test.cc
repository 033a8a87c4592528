// Two agents in two network namespaces joined by two veth pairs: two
// heartbeat paths over real links (addresses in 198.18.0.0/15). Needs root
// and `ip netns`; skipped with the reason otherwise.
#include <unistd.h>

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "base/secure_file.h"
#include "test/config_client.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    tag_ = absl::StrCat(getpid() % 100000);
    ns_a_ = "cloudha-" + tag_ + "-a";
    ns_b_ = "cloudha-" + tag_ + "-b";
    CommandResult add = Ip({"netns", "add", ns_a_});
    if (add.exit_code != 0) GTEST_SKIP() << "ip netns add failed: " << add.err << add.out;
    created_ = true;
    ASSERT_EQ(Ip({"netns", "add", ns_b_}).exit_code, 0);
    for (int path = 1; path <= 2; ++path) {
      std::string a = Link("a", path);
      std::string b = Link("b", path);
      CommandResult r = Ip({"link", "add", a, "netns", ns_a_, "type", "veth", "peer", "name", b,
                            "netns", ns_b_});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      ASSERT_EQ(Ip({"-n", ns_a_, "addr", "add", absl::StrCat("198.18.", path, ".1/24"), "dev", a})
                    .exit_code,
                0);
      ASSERT_EQ(Ip({"-n", ns_b_, "addr", "add", absl::StrCat("198.18.", path, ".2/24"), "dev", b})
                    .exit_code,
                0);
      SetLink(path, true);
    }
    Ip({"-n", ns_a_, "link", "set", "lo", "up"});
    Ip({"-n", ns_b_, "link", "set", "lo", "up"});
    for (const char* node : {"a", "b"}) cluster_.WriteConfig(node, Config(node));
    ASSERT_NE(cluster_.Start("a", {"ip", "netns", "exec", ns_a_}), nullptr);
    ASSERT_NE(cluster_.Start("b", {"ip", "netns", "exec", ns_b_}), nullptr);
    ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
    ASSERT_TRUE(WaitRole("b", v1::SECONDARY)) << Logs(cluster_.agent("b"));
    // b follows a (and so knows epoch 1) on both paths.
    ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.primary() == "a" && s.epoch() == 1 &&
             s.peers(0).paths(0).state() == v1::PeerStatus::UP &&
             s.peers(0).paths(1).state() == v1::PeerStatus::UP;
    }));
  }

  void TearDown() override {
    for (const char* node : {"a", "b"}) cluster_.Kill(node, SIGKILL);
    if (created_) {
      Ip({"netns", "del", ns_a_});
      Ip({"netns", "del", ns_b_});
    }
  }

  CommandResult Ip(std::vector<std::string> args) {
    args.insert(args.begin(), "ip");
    return RunCommand(args, cluster_.dir());
  }

  std::string Link(const std::string& side, int path) {
    return absl::StrCat("ch", tag_, side, path);  // at most 15 characters
  }

  // Both ends of a path's veth pair down (a cut) or up.
  void SetLink(int path, bool up) {
    Ip({"-n", ns_a_, "link", "set", Link("a", path), up ? "up" : "down"});
    Ip({"-n", ns_b_, "link", "set", Link("b", path), up ? "up" : "down"});
  }

  std::string Config(const std::string& node) {
    std::string peer = node == "a" ? "b" : "a";
    std::string peer_host = node == "a" ? "2" : "1";
    return absl::StrCat(
        "cluster { name: \"demo\" group_id: 7 }\n", "node { id: \"", node, "\" priority: ",
        node == "a" ? 200 : 100, " }\n", "listen: \"0.0.0.0:7801\"\n", "peers { id: \"", peer,
        "\" addresses: \"198.18.1.", peer_host, ":7801\" addresses: \"198.18.2.", peer_host,
        ":7801\" }\n", "tls { ca_file: \"ca.crt\" cert_file: \"", node, ".crt\" key_file: \"",
        node, ".key\" }\n", "heartbeat { interval_ms: 100 lost_threshold: 5 }\n",
        "election { hello_holddown_s: 1 }\n", "admin { socket: \"", node, ".sock\" }\n",
        "state_dir: \"state-", node, "\"\n");
  }

  bool WaitRole(const std::string& node, v1::Role role,
                absl::Duration timeout = absl::Seconds(15)) {
    return cluster_.WaitFor(node, [&](const v1::StatusResponse& s) { return s.role() == role; },
                            timeout);
  }

  int Primaries() {
    int n = 0;
    for (const char* node : {"a", "b"}) {
      absl::StatusOr<v1::StatusResponse> s = cluster_.Status(node);
      if (s.ok() && s->role() == v1::PRIMARY) ++n;
    }
    return n;
  }

  std::string tag_;
  std::string ns_a_;
  std::string ns_b_;
  bool created_ = false;
  TestCluster cluster_{{"a", "b"}};
};

TEST_F(NetnsTest, OnePathDownChangesNoRole) {
  SetLink(1, false);
  ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
    return s.peers(0).paths(0).state() == v1::PeerStatus::DOWN;
  })) << Logs(cluster_.agent("b"));
  absl::SleepFor(absl::Seconds(2));  // four times the loss threshold
  absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
  EXPECT_EQ(b->role(), v1::SECONDARY);
  EXPECT_EQ(b->peers(0).state(), v1::PeerStatus::UP);
  EXPECT_EQ(b->peers(0).paths(1).state(), v1::PeerStatus::UP);
  EXPECT_EQ(cluster_.Status("a")->role(), v1::PRIMARY);
  EXPECT_TRUE(WaitForLog(cluster_.agent("b"), "event=path_down peer=a path=0"));
  SetLink(1, true);
  EXPECT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
    return s.peers(0).paths(0).state() == v1::PeerStatus::UP;
  }));
}

TEST_F(NetnsTest, PartitionThenHealLeavesExactlyOnePrimaryWithTheHigherEpoch) {
  SetLink(1, false);
  SetLink(2, false);
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("b"));
  // Two nodes cannot tell a dead peer from a partition: both are primary.
  EXPECT_EQ(cluster_.Status("a")->role(), v1::PRIMARY);
  EXPECT_EQ(cluster_.Status("a")->epoch(), 1u);
  EXPECT_EQ(cluster_.Status("b")->epoch(), 2u);

  absl::Time healed = absl::Now();
  SetLink(1, true);
  SetLink(2, true);
  absl::Time deadline = healed + absl::Seconds(10);
  while (Primaries() != 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  absl::Duration took = absl::Now() - healed;
  ASSERT_EQ(Primaries(), 1) << Logs(cluster_.agent("a"));
  printf("netns: one primary again %.0f ms after the links came back\n",
         absl::ToDoubleMilliseconds(took));
  EXPECT_EQ(cluster_.Status("b")->role(), v1::PRIMARY);
  EXPECT_EQ(cluster_.Status("a")->role(), v1::SECONDARY);
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "peer b is primary at higher epoch 2"));
}

// Config written on both sides of a partition: when it heals, the node that
// stays primary (b, the higher epoch) has its content on both, and a logs
// what it lost.
TEST_F(NetnsTest, PartitionWithConfigWritesOnBothSidesHealsToThePrimarysContent) {
  ConfigClient a(cluster_.socket("a"));
  ConfigClient b(cluster_.socket("b"));
  ASSERT_TRUE(a.Put("firewall.policy.1.action", "accept").ok());
  ASSERT_TRUE(a.Put("lb.pool.web.port", "443").ok());
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (b.Get("lb.pool.web.port").value_or("") != "443" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(b.Get("lb.pool.web.port").value_or(""), "443") << Logs(cluster_.agent("b"));

  SetLink(1, false);
  SetLink(2, false);
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("b"));
  ASSERT_TRUE(a.Put("lb.pool.web.port", "8443").ok());
  ASSERT_TRUE(a.Put("firewall.policy.2.action", "deny").ok());
  ASSERT_TRUE(b.Put("lb.pool.web.port", "9443").ok());
  ASSERT_TRUE(b.Put("firewall.policy.3.action", "accept").ok());

  SetLink(1, true);
  SetLink(2, true);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.role() == v1::SECONDARY && s.primary() == "b" && s.config().in_sync() &&
           s.sync_state() == v1::IN_SYNC;
  })) << Logs(cluster_.agent("a"));
  EXPECT_EQ(cluster_.Status("b")->role(), v1::PRIMARY);
  absl::StatusOr<std::map<std::string, std::string>> la = a.List();
  absl::StatusOr<std::map<std::string, std::string>> lb = b.List();
  ASSERT_TRUE(la.ok() && lb.ok());
  EXPECT_TRUE(*la == *lb);
  EXPECT_EQ(a.Get("lb.pool.web.port").value_or(""), "9443");
  EXPECT_EQ(a.Get("firewall.policy.3.action").value_or(""), "accept");
  EXPECT_EQ(a.Get("firewall.policy.2.action").status().code(), absl::StatusCode::kNotFound);
  // What a lost is in its events.
  CommandResult events = cluster_.Cli({"events", "--socket", cluster_.socket("a")});
  EXPECT_THAT(events.out, ::testing::HasSubstr("lb.pool.web.port = 8443 replaced by b's 9443"));
  EXPECT_THAT(events.out,
              ::testing::HasSubstr("firewall.policy.2.action = deny replaced by b's deletion"));
  // And in full, in a's state directory.
  std::string saved =
      ReadSmallFile(cluster_.dir() + "/state-a/config-replaced.jsonl").value_or("");
  std::string port_line;
  for (absl::string_view line : absl::StrSplit(saved, '\n')) {
    if (absl::StrContains(line, "\"path\":\"lb.pool.web.port\"")) port_line = std::string(line);
  }
  EXPECT_THAT(port_line, ::testing::HasSubstr("\"local\":\"8443\"")) << saved;
  EXPECT_THAT(port_line, ::testing::HasSubstr("\"primary_value\":\"9443\"")) << saved;
  EXPECT_THAT(saved, ::testing::HasSubstr("\"primary_value\":null")) << saved;
}

TEST_F(NetnsTest, FlappingPathCausesAtMostOneFailover) {
  int toggles = 0;
  absl::Time end = absl::Now() + absl::Seconds(30);
  bool up = true;
  while (absl::Now() < end && toggles < 200) {
    up = !up;
    SetLink(1, up);
    ++toggles;
    absl::SleepFor(absl::Milliseconds(300));
  }
  SetLink(1, true);
  CommandResult events = cluster_.Cli({"events", "--socket", cluster_.socket("b")});
  int failovers = 0;
  size_t at = 0;
  while ((at = events.out.find("-> PRIMARY", at)) != std::string::npos) {
    ++failovers;
    ++at;
  }
  printf("netns: %d toggles of one path, %d failovers\n", toggles, failovers);
  EXPECT_LE(failovers, 1) << events.out;
  EXPECT_EQ(Primaries(), 1);
}

}  // namespace
}  // namespace cloudha
