// Session sync of the kernel's conntrack table end to end: two agents, each
// in its own network namespace (its own conntrack table) joined by a veth
// pair (198.18.1.0/24), with sessions.source CONNTRACK. Entries are made in
// a's kernel with the conntrack tool, as a data plane's packets would make
// them; the test reads b's replica over its admin socket and b's kernel
// with the conntrack tool. Needs root, `ip netns` and the conntrack tool;
// skipped with the reason otherwise.
#include <unistd.h>

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/session_client.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

constexpr int kFlows = 200;

// A kernel entry as `conntrack -L` prints it.
struct KernelFlow {
  std::string line;
  uint32_t timeout_s = 0;
};

class ConntrackSyncNetnsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    if (RunCommand({"conntrack", "--version"}, cluster_.dir()).exit_code != 0) {
      GTEST_SKIP() << "needs the conntrack tool (Debian package conntrack)";
    }
    tag_ = absl::StrCat(getpid() % 100000);
    for (const char* node : {"a", "b"}) ns_[node] = absl::StrCat("cloudha-", tag_, "-ct", node);
    CommandResult add = Ip({"netns", "add", ns_["a"]});
    if (add.exit_code != 0) GTEST_SKIP() << "ip netns add failed: " << add.err << add.out;
    created_ = true;
    ASSERT_EQ(Ip({"netns", "add", ns_["b"]}).exit_code, 0);
    std::string la = absl::StrCat("ct", tag_, "a"), lb = absl::StrCat("ct", tag_, "b");
    CommandResult r = Ip({"link", "add", la, "netns", ns_["a"], "type", "veth", "peer", "name", lb,
                          "netns", ns_["b"]});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(Ip({"-n", ns_["a"], "addr", "add", "198.18.1.1/24", "dev", la}).exit_code, 0);
    ASSERT_EQ(Ip({"-n", ns_["b"], "addr", "add", "198.18.1.2/24", "dev", lb}).exit_code, 0);
    for (const char* node : {"a", "b"}) {
      Ip({"-n", ns_[node], "link", "set", "lo", "up"});
      Ip({"-n", ns_[node], "link", "set", node[0] == 'a' ? la : lb, "up"});
      cluster_.WriteConfig(node, Config(node));
    }
    ASSERT_NE(Start("a"), nullptr);
    ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
    ASSERT_NE(Start("b"), nullptr);
    ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.role() == v1::SECONDARY && s.sync_state() == v1::IN_SYNC;
    })) << Logs(cluster_.agent("b"));
  }

  void TearDown() override {
    for (const char* node : {"a", "b"}) cluster_.Kill(node, SIGKILL);
    if (created_) {
      Ip({"netns", "del", ns_["a"]});
      Ip({"netns", "del", ns_["b"]});
    }
  }

  bool continuous() const { return GetParam() == "CONTINUOUS"; }

  std::string Config(const std::string& node) {
    std::string peer = node == "a" ? "b" : "a";
    return absl::StrCat(
        "cluster { name: \"demo\" group_id: 7 }\n", "node { id: \"", node, "\" priority: ",
        node == "a" ? 200 : 100, " }\n", "listen: \"0.0.0.0:7801\"\n", "peers { id: \"", peer,
        "\" addresses: \"198.18.1.", node == "a" ? "2" : "1", ":7801\" }\n",
        "tls { ca_file: \"ca.crt\" cert_file: \"", node, ".crt\" key_file: \"", node, ".key\" }\n",
        "heartbeat { interval_ms: 100 lost_threshold: 5 }\n",
        "election { hello_holddown_s: 1 failover_hold_s: 0 }\n", "admin { socket: \"", node,
        ".sock\" }\n", "state_dir: \"state-", node, "\"\n",
        "sessions { pickup: true source: CONNTRACK commit: ", GetParam(), " }\n");
  }

  Subprocess* Start(const std::string& node) {
    return cluster_.Start(node, {"ip", "netns", "exec", ns_[node]});
  }

  CommandResult Ip(std::vector<std::string> args) {
    args.insert(args.begin(), "ip");
    return RunCommand(args, cluster_.dir());
  }

  CommandResult Conntrack(const std::string& node, std::vector<std::string> args) {
    args.insert(args.begin(), {"ip", "netns", "exec", ns_[node], "conntrack"});
    return RunCommand(args, cluster_.dir());
  }

  // The test's flows (from 198.18.50.0/24) in `node`'s kernel.
  std::vector<KernelFlow> KernelFlows(const std::string& node) {
    std::vector<KernelFlow> out;
    CommandResult r = Conntrack(node, {"-L", "-p", "tcp"});
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      if (!absl::StrContains(line, " src=198.18.50.")) continue;
      std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
      KernelFlow flow;
      flow.line = std::string(line);
      if (words.size() > 2) (void)absl::SimpleAtoi(words[2], &flow.timeout_s);
      out.push_back(flow);
    }
    return out;
  }

  // The test's flows in `node`'s table (the replica on a secondary).
  size_t TableFlows(const std::string& node) {
    absl::StatusOr<std::vector<SessionRecord>> records = ListSessions(cluster_.socket(node));
    if (!records.ok()) return 0;
    size_t n = 0;
    for (const SessionRecord& r : *records) {
      if (r.key.src[0] == 198 && r.key.src[1] == 18 && r.key.src[2] == 50) ++n;
    }
    return n;
  }

  // Polls `done` every 50 ms for at most `timeout`.
  bool Eventually(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(15)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return done();
  }

  bool WaitRole(const std::string& node, v1::Role role) {
    return cluster_.WaitFor(node, [&](const v1::StatusResponse& s) { return s.role() == role; },
                            absl::Seconds(15));
  }

  // kFlows established TCP flows and one source-NATed flow in a's kernel.
  void MakeFlows() {
    for (int i = 0; i < kFlows; ++i) {
      CommandResult r = Conntrack(
          "a", {"-I", "-p", "tcp", "-s", "198.18.50.1", "-d", "198.18.60.1", "--sport",
                absl::StrCat(20000 + i), "--dport", "443", "--state", "ESTABLISHED", "--timeout",
                "3600", "-u", "SEEN_REPLY,ASSURED"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    CommandResult r = Conntrack("a", {"-I", "-p", "tcp", "-s", "198.18.50.2", "-d", "198.18.60.1",
                                      "--sport", "1000", "--dport", "80", "--state", "ESTABLISHED",
                                      "--timeout", "1800", "-u", "SEEN_REPLY,ASSURED",
                                      "--src-nat", "198.18.70.1:2000"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    made_at_ = absl::Now();
  }

  // The NATed flow in `node`'s kernel keeps its reply tuple and a timeout
  // aged no more than the time since it was made (plus slack).
  void ExpectNatAndTimeouts(const std::string& node) {
    std::vector<KernelFlow> flows = KernelFlows(node);
    int nat = 0;
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - made_at_);
    for (const KernelFlow& f : flows) {
      bool is_nat = absl::StrContains(f.line, "src=198.18.50.2");
      uint32_t full = is_nat ? 1800 : 3600;
      EXPECT_LE(f.timeout_s, full) << f.line;
      EXPECT_GE(f.timeout_s, full - elapsed - 10) << f.line;
      if (is_nat) {
        ++nat;
        EXPECT_THAT(f.line, ::testing::HasSubstr(
                                "src=198.18.60.1 dst=198.18.70.1 sport=80 dport=2000"));
      }
    }
    EXPECT_EQ(nat, 1) << node;
  }

  std::string tag_;
  std::map<std::string, std::string> ns_;
  bool created_ = false;
  absl::Time made_at_;
  TestCluster cluster_{{"a", "b"}};
};

TEST_P(ConntrackSyncNetnsTest, EntriesReachTheReplicaTheKernelAndSurviveTheFailover) {
  ASSERT_NO_FATAL_FAILURE(MakeFlows());
  const size_t all = kFlows + 1;
  ASSERT_TRUE(Eventually([&] { return TableFlows("b") == all; }))
      << TableFlows("b") << " of " << all << " in b's replica\n" << Logs(cluster_.agent("a"));
  if (continuous()) {
    // Before any failover, b's kernel holds them.
    ASSERT_TRUE(Eventually([&] { return KernelFlows("b").size() == all; }))
        << KernelFlows("b").size() << " of " << all << " in b's kernel\n"
        << Logs(cluster_.agent("b"));
    ExpectNatAndTimeouts("b");
  } else {
    EXPECT_EQ(KernelFlows("b").size(), 0u) << "ON_PROMOTION wrote before a promotion";
  }

  // A flow that ends in a ends in b's replica (and, CONTINUOUS, b's kernel).
  CommandResult d = Conntrack("a", {"-D", "-p", "tcp", "-s", "198.18.50.1", "--sport", "20000"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  ASSERT_TRUE(Eventually([&] { return TableFlows("b") == all - 1; })) << TableFlows("b");
  if (continuous()) {
    ASSERT_TRUE(Eventually([&] { return KernelFlows("b").size() == all - 1; }))
        << KernelFlows("b").size();
  }

  // a dies: every entry is in b's kernel, NAT and timeouts kept.
  cluster_.Kill("a", SIGKILL);
  cluster_.agent("a")->Wait(absl::Seconds(5));
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("b"));
  ASSERT_TRUE(Eventually([&] { return KernelFlows("b").size() == all - 1; }))
      << KernelFlows("b").size() << " of " << all - 1 << " in b's kernel\n"
      << Logs(cluster_.agent("b"));
  ExpectNatAndTimeouts("b");
  absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->sessions().commit(), continuous() ? "continuous" : "on_promotion");
  EXPECT_EQ(b->sessions().kernel_failed(), 0u) << b->sessions().last_error();
  if (continuous()) {
    EXPECT_GE(b->sessions().kernel_written(), all);
    EXPECT_EQ(b->sessions().promotion_committed(), 0u) << "the kernel had them all";
  } else {
    EXPECT_GE(b->sessions().promotion_committed(), all - 1);
  }

  // a returns as secondary and gets b's table back.
  ASSERT_NE(Start("a"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.role() == v1::SECONDARY && s.sync_state() == v1::IN_SYNC;
  })) << Logs(cluster_.agent("a"));
  ASSERT_TRUE(Eventually([&] { return TableFlows("a") == all - 1; }))
      << TableFlows("a") << " of " << all - 1 << " in a's replica";
}

INSTANTIATE_TEST_SUITE_P(Commit, ConntrackSyncNetnsTest,
                         ::testing::Values("CONTINUOUS", "ON_PROMOTION"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace cloudha
