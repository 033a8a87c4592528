// Failover with real agents over mutual TLS on loopback: a killed primary is
// replaced and the survivor's cloudha.v1.Primary turns SERVING; a restarted
// node does not take the role back without override and does with it;
// `cloudha failover`; monitors hand the role over; hooks see their
// environment, in order.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/secure_file.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

// Short timers so that the tests run in seconds.
constexpr char kFastElection[] = "hello_holddown_s: 1 failover_hold_s: 0 override_wait_s: 1 ";

class FailoverTest : public ::testing::Test {
 protected:
  void StartPair(const std::string& extra_a = "", const std::string& extra_b = "") {
    cluster_.WriteConfig("a", Config("a", 200, extra_a));
    cluster_.WriteConfig("b", Config("b", 100, extra_b));
    ASSERT_NE(cluster_.Start("a"), nullptr);
    ASSERT_NE(cluster_.Start("b"), nullptr);
    ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
    ASSERT_TRUE(WaitRole("b", v1::SECONDARY)) << Logs(cluster_.agent("b"));
    // b follows a with a's config (its first resync done): in sync.
    ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.primary() == "a" && s.sync_state() == v1::IN_SYNC;
    })) << Logs(cluster_.agent("b"));
  }

  std::string Config(const std::string& node, int priority, const std::string& extra,
                     const std::string& election = "") {
    TestCluster::Settings settings;
    settings.priority = priority;
    settings.election = kFastElection + election;
    settings.extra = extra;
    return cluster_.Config(node, settings);
  }

  bool WaitRole(const std::string& node, v1::Role role,
                absl::Duration timeout = absl::Seconds(15)) {
    return cluster_.WaitFor(node, [&](const v1::StatusResponse& s) { return s.role() == role; },
                            timeout);
  }

  HealthCheckResponse::ServingStatus Health(const std::string& node, const std::string& service) {
    auto stub = cluster_.HealthStub(node);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    if (!stub->Check(&context, request, &response).ok()) return HealthCheckResponse::UNKNOWN;
    return response.status();
  }

  // A hook that records its environment, one line per run, in `log`.
  std::string RecordingHook(const std::string& name, const std::string& log, int exit_code = 0) {
    std::string path = absl::StrCat(cluster_.dir(), "/", name, ".sh");
    std::string script = absl::StrCat(
        "#!/bin/sh\n"
        "echo \"$CLOUDHA_EVENT node=$CLOUDHA_NODE role=$CLOUDHA_ROLE prev=$CLOUDHA_PREV_ROLE "
        "epoch=$CLOUDHA_EPOCH peer=$CLOUDHA_PEER reason=$CLOUDHA_REASON\" >> ",
        log, "\nexit ", exit_code, "\n");
    WriteFileAtomically(path, script, 0755, Overwrite::kReplace).IgnoreError();
    return path;
  }

  std::vector<std::string> Lines(const std::string& path) {
    std::string text = ReadSmallFile(path).value_or("");
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }

  TestCluster cluster_{{"a", "b"}};
};

TEST_F(FailoverTest, HigherPriorityIsPrimaryAndHealthSaysSo) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  EXPECT_EQ(cluster_.Status("a")->selected_by(), "priority");
  EXPECT_EQ(cluster_.Status("b")->primary(), "a");
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) { return s.primary_ready(); }));
  EXPECT_EQ(Health("a", "cloudha.v1.Primary"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health("a", "cloudha.v1.Secondary"), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health("b", "cloudha.v1.Primary"), HealthCheckResponse::NOT_SERVING);
  // Published at b's next tick after its sync state turned IN_SYNC.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (Health("b", "cloudha.v1.Secondary") != HealthCheckResponse::SERVING &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Health("b", "cloudha.v1.Secondary"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health("b", ""), HealthCheckResponse::SERVING);
  CommandResult json = cluster_.Cli({"status", "--socket", cluster_.socket("a"), "--json"});
  EXPECT_THAT(json.out, HasSubstr("\"role\":\"PRIMARY\""));
  EXPECT_THAT(json.out, HasSubstr("\"selected_by\":\"priority\""));
  EXPECT_THAT(json.out, HasSubstr("\"epoch\":\"1\""));
}

TEST_F(FailoverTest, KilledPrimaryIsReplacedAndStaysReplacedWithoutOverride) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  // A Watch on b's Primary service sees it turn SERVING.
  auto stub = cluster_.HealthStub("b");
  grpc::ClientContext watch;
  watch.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  HealthCheckRequest request;
  request.set_service("cloudha.v1.Primary");
  auto reader = stub->Watch(&watch, request);
  HealthCheckResponse update;
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);

  cluster_.Kill("a", SIGKILL);
  bool serving = false;
  while (!serving && reader->Read(&update)) serving = update.status() == HealthCheckResponse::SERVING;
  watch.TryCancel();
  reader->Finish();
  ASSERT_TRUE(serving) << Logs(cluster_.agent("b"));
  absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
  EXPECT_EQ(b->role(), v1::PRIMARY);
  EXPECT_EQ(b->epoch(), 2u);

  // a comes back (same state_dir): it follows b, without override.
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(WaitRole("a", v1::SECONDARY)) << Logs(cluster_.agent("a"));
  absl::SleepFor(absl::Seconds(2));  // longer than override_wait_s: nothing may change
  EXPECT_EQ(cluster_.Status("a")->role(), v1::SECONDARY);
  EXPECT_EQ(cluster_.Status("b")->role(), v1::PRIMARY);
  EXPECT_EQ(cluster_.Status("a")->primary(), "b");
}

TEST_F(FailoverTest, WithOverrideTheRecoveredNodeTakesTheRoleBack) {
  cluster_.WriteConfig("a", Config("a", 200, "", "override: true"));
  cluster_.WriteConfig("b", Config("b", 100, "", "override: true"));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_NE(cluster_.Start("b"), nullptr);
  ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
  // b has heard of epoch 1 before a dies (else it would promote to 1 too).
  ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) { return s.primary() == "a"; }));
  cluster_.Kill("a", SIGKILL);
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("b"));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  // a restarts as secondary, then takes over after override_wait_s (1 s).
  ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
  ASSERT_TRUE(WaitRole("b", v1::SECONDARY)) << Logs(cluster_.agent("b"));
  EXPECT_TRUE(WaitForLog(cluster_.agent("b"), "override: a ranks above by priority"));
  EXPECT_EQ(cluster_.Status("a")->epoch(), 3u) << Logs(cluster_.agent("a")) << "\n---\n"
                                               << Logs(cluster_.agent("b"));
}

TEST_F(FailoverTest, OperatorFailover) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  CommandResult on_secondary = cluster_.Cli({"failover", "--socket", cluster_.socket("b")});
  EXPECT_EQ(on_secondary.exit_code, 1);
  EXPECT_THAT(on_secondary.err, HasSubstr("this node is SECONDARY; run it on the primary, a"));
  CommandResult unknown = cluster_.Cli({"failover", "--socket", cluster_.socket("a"), "--to", "z"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("z is not eligible: it is not a live peer"));
  EXPECT_EQ(cluster_.Status("a")->role(), v1::PRIMARY);

  CommandResult ok = cluster_.Cli({"failover", "--config", cluster_.config_path("a"), "--to", "b"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("b is primary at epoch 2"));
  ASSERT_TRUE(WaitRole("a", v1::SECONDARY));
  EXPECT_EQ(cluster_.Status("b")->selected_by(), "handover");
  // And back.
  CommandResult back = cluster_.Cli({"failover", "--socket", cluster_.socket("b")});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_THAT(back.out, HasSubstr("a is primary at epoch 3"));
  CommandResult events = cluster_.Cli({"events", "--socket", cluster_.socket("a")});
  EXPECT_THAT(events.out, HasSubstr("PRIMARY -> SECONDARY: handover to b requested by the operator"));
  EXPECT_THAT(events.out, HasSubstr("SECONDARY -> PRIMARY: handover from b"));
}

TEST_F(FailoverTest, FailingMonitorHandsTheRoleOver) {
  const std::string flag = cluster_.dir() + "/a-unhealthy";
  std::string monitors = absl::StrCat(
      "monitors { name: \"app\" exec { command: \"/bin/sh\" command: \"-c\" command: \"test ! -e ",
      flag, "\" } interval_ms: 100 rise: 1 fall: 1 }\n",
      "monitors { name: \"self\" tcp { address: \"127.0.0.1:", cluster_.port("a"),
      "\" } interval_ms: 500 }\n");
  ASSERT_NO_FATAL_FAILURE(StartPair(monitors));
  WriteFileAtomically(flag, "", 0644, Overwrite::kReplace).IgnoreError();
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("a"));
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  EXPECT_EQ(a->role(), v1::SECONDARY);
  EXPECT_EQ(a->health_penalty(), 10u);
  EXPECT_THAT(a->role_reason(), HasSubstr("health: penalty 10, b is healthier"));
  EXPECT_EQ(Health("a", "cloudha.v1.Secondary"), HealthCheckResponse::NOT_SERVING);
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "event=monitor_failing monitor=app"));
}

TEST_F(FailoverTest, EveryMonitorFailingIsFault) {
  const std::string flag = cluster_.dir() + "/a-unhealthy";
  ASSERT_NO_FATAL_FAILURE(StartPair(absl::StrCat("monitors { name: \"app\" exec { command: \"/bin/sh\" command: \"-c\" ",
                         "command: \"test ! -e ", flag, "\" } interval_ms: 100 rise: 1 fall: 1 }\n")));
  WriteFileAtomically(flag, "", 0644, Overwrite::kReplace).IgnoreError();
  ASSERT_TRUE(WaitRole("a", v1::FAULT)) << Logs(cluster_.agent("a"));
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("b"));
  unlink(flag.c_str());
  ASSERT_TRUE(WaitRole("a", v1::SECONDARY)) << Logs(cluster_.agent("a"));
  EXPECT_EQ(cluster_.Status("b")->role(), v1::PRIMARY);
}

TEST_F(FailoverTest, HooksSeeTheirEnvironmentInOrder) {
  const std::string log_a = cluster_.dir() + "/hooks-a.log";
  const std::string log_b = cluster_.dir() + "/hooks-b.log";
  auto hooks = [&](const std::string& node, const std::string& log) {
    std::string out;
    for (const char* event : {"TO_PRIMARY", "TO_SECONDARY", "PEER_LOST", "PEER_FOUND"}) {
      absl::StrAppend(&out, "hooks { on: ", event, " command: \"",
                      RecordingHook(absl::StrCat(node, "-", event), log), "\" }\n");
    }
    return out;
  };
  ASSERT_NO_FATAL_FAILURE(StartPair(hooks("a", log_a), hooks("b", log_b)));
  cluster_.Kill("a", SIGKILL);
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY));
  ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) { return s.primary_ready(); }));
  // Role hooks run in order, and peer hooks in order, on runners of their
  // own (a slow peer hook never delays a failover).
  std::vector<std::string> role, peer;
  for (const std::string& line : Lines(log_b)) {
    (line.rfind("peer_", 0) == 0 ? peer : role).push_back(line);
  }
  ASSERT_EQ(role.size(), 2u) << ReadSmallFile(log_b).value_or("");
  EXPECT_THAT(role[0], HasSubstr("to_secondary node=b role=SECONDARY prev=STARTING"));
  EXPECT_THAT(role[1], HasSubstr("to_primary node=b role=PRIMARY prev=SECONDARY epoch=2 peer= "
                                 "reason=no live peer"));
  ASSERT_EQ(peer.size(), 2u) << ReadSmallFile(log_b).value_or("");
  EXPECT_THAT(peer[0], HasSubstr("peer_found node=b"));
  EXPECT_THAT(peer[0], HasSubstr("peer=a reason=peer a found"));
  EXPECT_THAT(peer[1], HasSubstr("peer_lost node=b role=SECONDARY"));
  EXPECT_THAT(peer[1], HasSubstr("peer=a reason=peer a lost"));
  std::vector<std::string> a_role;
  for (const std::string& line : Lines(log_a)) {
    if (line.rfind("peer_", 0) != 0) a_role.push_back(line);
  }
  ASSERT_EQ(a_role.size(), 1u) << ReadSmallFile(log_a).value_or("");
  EXPECT_THAT(a_role[0], HasSubstr("to_primary node=a role=PRIMARY prev=STARTING epoch=1"));
}

TEST_F(FailoverTest, FailingPrimaryHookGivesTheRoleUp) {
  const std::string log = cluster_.dir() + "/hooks.log";
  std::string failing = absl::StrCat("hooks { on: TO_PRIMARY command: \"",
                                     RecordingHook("broken", log, 3),
                                     "\" retries: 1 backoff_ms: 50 }\n");
  // Only a's hook fails: a cannot hold the role, b takes it.
  cluster_.WriteConfig("a", Config("a", 200, failing));
  cluster_.WriteConfig("b", Config("b", 100, ""));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_NE(cluster_.Start("b"), nullptr);
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("a"));
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "event=to_primary_failed"));
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "exit 3 (after 2 attempts)"));
  EXPECT_EQ(Health("a", "cloudha.v1.Primary"), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Lines(log).size(), 2u);
}

TEST_F(FailoverTest, RecheckedPrimaryHooksRunAgainAndAFailureKeepsTheRole) {
  // a's TO_PRIMARY hook runs at the promotion, then every 5 s while a
  // serves; from its third run on it fails: logged, the role stays.
  const std::string log = cluster_.dir() + "/recheck.log";
  std::string path = absl::StrCat(cluster_.dir(), "/recheck.sh");
  std::string script = absl::StrCat(
      "#!/bin/sh\necho \"$CLOUDHA_EVENT epoch=$CLOUDHA_EPOCH reason=$CLOUDHA_REASON\" >> ", log,
      "\n[ $(wc -l < ", log, ") -le 2 ]\n");
  ASSERT_TRUE(WriteFileAtomically(path, script, 0755, Overwrite::kReplace).ok());
  ASSERT_NO_FATAL_FAILURE(StartPair(absl::StrCat("hooks { on: TO_PRIMARY command: \"", path,
                                                 "\" recheck_s: 5 retries: 0 }\n")));
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) { return s.primary_ready(); }));
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "event=hook_recheck_failed", absl::Seconds(20)))
      << ReadSmallFile(log).value_or("");
  std::vector<std::string> runs = Lines(log);
  ASSERT_GE(runs.size(), 3u);
  EXPECT_THAT(runs[0], HasSubstr("to_primary epoch=1 reason="));
  EXPECT_THAT(runs[0], ::testing::Not(HasSubstr("re-check")));
  EXPECT_EQ(runs[1], "to_primary epoch=1 reason=periodic re-check");
  EXPECT_EQ(runs[2], "to_primary epoch=1 reason=periodic re-check");
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->role(), v1::PRIMARY);
  EXPECT_EQ(Health("a", "cloudha.v1.Primary"), HealthCheckResponse::SERVING);
  // b never re-runs its hooks: it is not primary.
  EXPECT_EQ(cluster_.Status("b")->role(), v1::SECONDARY);
}

TEST_F(FailoverTest, SlowHooksNeverDelayHellos) {
  // a's TO_PRIMARY hook takes 3 s, six times the loss threshold (0.5 s): b
  // must keep hearing a all along.
  const std::string slow = cluster_.dir() + "/slow.sh";
  WriteFileAtomically(slow, "#!/bin/sh\nsleep 3\n", 0755, Overwrite::kReplace).IgnoreError();
  ASSERT_NO_FATAL_FAILURE(StartPair(absl::StrCat("hooks { on: TO_PRIMARY command: \"", slow, "\" }\n")));
  EXPECT_FALSE(cluster_.Status("a")->primary_ready());
  EXPECT_EQ(Health("a", "cloudha.v1.Primary"), HealthCheckResponse::NOT_SERVING);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) { return s.primary_ready(); }))
      << Logs(cluster_.agent("a"));
  EXPECT_EQ(Health("a", "cloudha.v1.Primary"), HealthCheckResponse::SERVING);
  // Meanwhile the admin API was busy too (the polling above).
  EXPECT_THAT(Logs(cluster_.agent("b")), ::testing::Not(HasSubstr("event=peer_down")));
  EXPECT_EQ(cluster_.Status("b")->role(), v1::SECONDARY);
}

TEST_F(FailoverTest, EventsFollowShowsChangesAsTheyHappen) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  auto follower = Subprocess::Start(
      {CloudhaBinary(), "events", "--follow", "--socket", cluster_.socket("b")},
      cluster_.dir() + "/follow");
  ASSERT_TRUE(follower.ok());
  ASSERT_TRUE(WaitForLog(follower->get(), "", absl::Seconds(1)));
  cluster_.Kill("a", SIGKILL);
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY));
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((*follower)->Stdout().find("SECONDARY -> PRIMARY") == std::string::npos &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_THAT((*follower)->Stdout(), HasSubstr("peer  a down"));
  EXPECT_THAT((*follower)->Stdout(), HasSubstr("SECONDARY -> PRIMARY: no live peer"));
  EXPECT_TRUE((*follower)->Running());
}

TEST_F(FailoverTest, StoppingPrimaryHandsOverFirst) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  cluster_.Kill("a", SIGTERM);
  ASSERT_EQ(cluster_.agent("a")->Wait(absl::Seconds(10)), std::optional<int>(0))
      << Logs(cluster_.agent("a"));
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr("event=handed_over_on_stop new_primary=b"));
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY));
  EXPECT_THAT(cluster_.Status("b")->role_reason(), HasSubstr("handover from a"));
}

TEST_F(FailoverTest, EpochSurvivesRestart) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  cluster_.Kill("b", SIGKILL);
  cluster_.Kill("a", SIGKILL);
  cluster_.agent("a")->Wait(absl::Seconds(5));
  EXPECT_EQ(ReadSmallFile(cluster_.dir() + "/state-a/epoch").value_or(""), "epoch 1\n");
  // Alone, a promotes again: never epoch 1 again.
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
  EXPECT_EQ(cluster_.Status("a")->epoch(), 2u);
}

}  // namespace
}  // namespace cloudha
