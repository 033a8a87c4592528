// Reloading the configuration of a running agent (SIGHUP, `cloudha reload`)
// with real agents over mutual TLS on loopback: monitors and hooks change
// live without a hello lost; a file that changes what needs a restart, or
// that has problems, is refused whole and changes nothing.
#include <signal.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/secure_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

constexpr char kFastElection[] = "hello_holddown_s: 1 failover_hold_s: 0 override_wait_s: 1 ";

class ReloadTest : public ::testing::Test {
 protected:
  std::string Config(const std::string& node, int priority, const std::string& extra = "",
                     int interval_ms = 100) {
    TestCluster::Settings settings;
    settings.priority = priority;
    settings.election = kFastElection;
    settings.extra = extra;
    settings.interval_ms = interval_ms;
    return cluster_.Config(node, settings);
  }

  void StartPair() {
    cluster_.WriteConfig("a", Config("a", 200));
    cluster_.WriteConfig("b", Config("b", 100));
    ASSERT_NE(cluster_.Start("a"), nullptr);
    ASSERT_NE(cluster_.Start("b"), nullptr);
    ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
    ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.role() == v1::SECONDARY && s.sync_state() == v1::IN_SYNC;
    })) << Logs(cluster_.agent("b"));
  }

  bool WaitRole(const std::string& node, v1::Role role) {
    return cluster_.WaitFor(node, [&](const v1::StatusResponse& s) { return s.role() == role; });
  }

  // b's view of a: up, never restarted, and how many hellos it has had.
  uint64_t HellosFromA() {
    absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
    EXPECT_TRUE(b.ok());
    if (!b.ok() || b->peers_size() != 1) return 0;
    EXPECT_EQ(b->peers(0).state(), v1::PeerStatus::UP);
    EXPECT_EQ(b->peers(0).restarts(), 0u);
    return b->peers(0).hellos_received();
  }

  // Polls `path` until it holds `text` (10 s at most).
  static bool WaitForFile(const std::string& path, const std::string& text) {
    for (int i = 0; i < 200; ++i) {
      if (ReadSmallFile(path).value_or("").find(text) != std::string::npos) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  TestCluster cluster_{{"a", "b"}};
};

TEST_F(ReloadTest, SighupAddsAMonitorLiveAndItsFailureHandsTheRoleOver) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  uint64_t before = HellosFromA();
  cluster_.WriteConfig(
      "a", Config("a", 200,
                  "monitors { name: \"app\" exec { command: \"/bin/false\" } interval_ms: 100 "
                  "rise: 1 fall: 1 }\n"));
  cluster_.Kill("a", SIGHUP);
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("a"));
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->monitors_size(), 1);
  EXPECT_EQ(a->monitors(0).name(), "app");
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "event=config_reloaded"));
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr("applied=monitors"));
  // The same process, and its hellos went on.
  EXPECT_GT(HellosFromA(), before);
}

TEST_F(ReloadTest, ReloadCommandReplacesHooksLive) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  const std::string log = cluster_.dir() + "/to-secondary.log";
  cluster_.WriteConfig(
      "a", Config("a", 200,
                  absl::StrCat("hooks { on: TO_SECONDARY command: \"/bin/sh\" command: \"-c\" "
                               "command: \"echo $CLOUDHA_EVENT >> ",
                               log, "\" }\n")));
  CommandResult r = cluster_.Cli({"reload", "--socket", cluster_.socket("a")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("reloaded: applied hooks"));
  CommandResult again = cluster_.Cli({"reload", "--socket", cluster_.socket("a")});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("nothing new"));
  // The new hook runs on the next role change.
  CommandResult failover =
      cluster_.Cli({"failover", "--socket", cluster_.socket("a"), "--to", "b"});
  ASSERT_EQ(failover.exit_code, 0) << failover.err;
  ASSERT_TRUE(WaitForFile(log, "to_secondary")) << Logs(cluster_.agent("a"));
  HellosFromA();
}

TEST_F(ReloadTest, AChangeThatNeedsARestartIsRefusedWholeAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  // A monitor (live) together with another listen address (not live).
  std::string text =
      Config("a", 200,
             "monitors { name: \"app\" exec { command: \"/bin/false\" } interval_ms: 100 "
             "rise: 1 fall: 1 }\n");
  const std::string listen = absl::StrCat("listen: \"127.0.0.1:", cluster_.port("a"), "\"");
  size_t at = text.find(listen);
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, listen.size(), "listen: \"127.0.0.1:1\"");
  cluster_.WriteConfig("a", text);
  CommandResult r = cluster_.Cli({"reload", "--config", cluster_.config_path("a")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("refused: changing listen needs a restart"));
  EXPECT_THAT(r.err, HasSubstr("nothing was changed"));
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->monitors_size(), 0);
  EXPECT_EQ(a->listen(), absl::StrCat("127.0.0.1:", cluster_.port("a")));
  EXPECT_EQ(a->role(), v1::PRIMARY);
  // SIGHUP says the same in the log, and the agent runs on.
  cluster_.Kill("a", SIGHUP);
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "event=reload_refused"));
  EXPECT_EQ(cluster_.Status("a")->role(), v1::PRIMARY);
  HellosFromA();
}

TEST_F(ReloadTest, HeartbeatTimersChangeLiveWithoutLosingThePeer) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  uint64_t before = HellosFromA();
  // Both nodes to 250 ms x 5, one after the other, as an operator would.
  cluster_.WriteConfig("b", Config("b", 100, "", /*interval_ms=*/250));
  cluster_.Kill("b", SIGHUP);
  ASSERT_TRUE(WaitForLog(cluster_.agent("b"), "applied=heartbeat"));
  cluster_.WriteConfig("a", Config("a", 200, "", /*interval_ms=*/250));
  CommandResult r = cluster_.Cli({"reload", "--socket", cluster_.socket("a")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("applied heartbeat"));
  for (const char* node : {"a", "b"}) {
    absl::StatusOr<v1::StatusResponse> s = cluster_.Status(node);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->heartbeat_interval_ms(), 250u);
  }
  // Hellos go on at the new pace and neither side ever lost the other.
  absl::SleepFor(absl::Seconds(2));
  uint64_t after = HellosFromA();
  EXPECT_GT(after, before);
  EXPECT_EQ(cluster_.Status("a")->role(), v1::PRIMARY);
  EXPECT_THAT(Logs(cluster_.agent("b")), ::testing::Not(HasSubstr("event=peer_down")));
  EXPECT_THAT(Logs(cluster_.agent("a")), ::testing::Not(HasSubstr("event=peer_down")));
  // And the new window still detects a lost primary.
  cluster_.Kill("a", SIGKILL);
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("b"));
}

TEST_F(ReloadTest, AFileWithProblemsIsRefusedWhole) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  std::string broken =
      Config("a", 200, "monitors { name: \"app\" exec { command: \"/bin/false\" } }\n") +
      "heartbeat { interval_ms: -5 }\nthis is not a field\n";
  cluster_.WriteConfig("a", broken);
  CommandResult r = cluster_.Cli({"reload", "--socket", cluster_.socket("a")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("problem(s); nothing was changed"));
  EXPECT_EQ(cluster_.Status("a")->monitors_size(), 0);
  EXPECT_EQ(cluster_.Status("a")->role(), v1::PRIMARY);
  HellosFromA();
}

}  // namespace
}  // namespace cloudha
