#include "agent/hook_runner.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "base/fake_clock.h"

namespace cloudha {
namespace {

v1::HookConfig Hook(v1::HookConfig::Event on, const std::string& path, uint32_t retries = 0) {
  v1::HookConfig h;
  h.set_on(on);
  h.add_command(path);
  h.set_timeout_ms(1000);
  h.set_retries(retries);
  h.set_backoff_ms(500);
  return h;
}

struct Recorder {
  absl::Mutex mu;
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> calls;
  std::map<std::string, int> failures_left;

  size_t Calls() {
    absl::MutexLock lock(&mu);
    return calls.size();
  }

  HookRunner::Runner Runner() {
    return [this](const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env, absl::Duration,
                  const absl::Notification*) {
      absl::MutexLock lock(&mu);
      calls.emplace_back(argv[0], env);
      CommandOutcome outcome;
      if (failures_left[argv[0]] > 0) {
        --failures_left[argv[0]];
        outcome.exit_code = 1;
        outcome.summary = "exit 1";
      } else {
        outcome.exit_code = 0;
        outcome.summary = "exit 0";
      }
      return outcome;
    };
  }
};

TEST(HookRunnerTest, RunsAnEventsHooksInOrderWithTheEnvironment) {
  FakeClock clock;
  Recorder rec;
  HookRunner runner({Hook(v1::HookConfig::TO_PRIMARY, "/eip"),
                     Hook(v1::HookConfig::TO_SECONDARY, "/other"),
                     Hook(v1::HookConfig::TO_PRIMARY, "/route")},
                    &clock, rec.Runner(), nullptr);
  runner.Start();
  absl::Notification done;
  bool ok = false;
  runner.Fire(v1::HookConfig::TO_PRIMARY, {"a", "PRIMARY", "SECONDARY", 7, "b", "peer b lost"},
              [&](bool result, const std::string&) {
                ok = result;
                done.Notify();
              });
  done.WaitForNotification();
  EXPECT_TRUE(ok);
  absl::MutexLock lock(&rec.mu);
  ASSERT_EQ(rec.calls.size(), 2u);
  EXPECT_EQ(rec.calls[0].first, "/eip");
  EXPECT_EQ(rec.calls[1].first, "/route");
  const auto& env = rec.calls[0].second;
  EXPECT_EQ(env.at("CLOUDHA_NODE"), "a");
  EXPECT_EQ(env.at("CLOUDHA_ROLE"), "PRIMARY");
  EXPECT_EQ(env.at("CLOUDHA_PREV_ROLE"), "SECONDARY");
  EXPECT_EQ(env.at("CLOUDHA_EPOCH"), "7");
  EXPECT_EQ(env.at("CLOUDHA_PEER"), "b");
  EXPECT_EQ(env.at("CLOUDHA_REASON"), "peer b lost");
  EXPECT_EQ(env.at("CLOUDHA_EVENT"), "to_primary");
}

TEST(HookRunnerTest, FireCommandRunsThatCommandWithItsArgumentsAndEnvironmentOnly) {
  FakeClock clock;
  Recorder rec;
  std::vector<std::string> argv;
  HookRunner runner({Hook(v1::HookConfig::TO_PRIMARY, "/eip")}, &clock,
                    [&](const std::vector<std::string>& a,
                        const std::map<std::string, std::string>& env, absl::Duration timeout,
                        const absl::Notification* cancel) {
                      argv = a;
                      EXPECT_EQ(timeout, absl::Milliseconds(1000));
                      return rec.Runner()(a, env, timeout, cancel);
                    },
                    nullptr);
  runner.Start();
  absl::Notification done;
  bool ok = false;
  runner.FireCommand(Hook(v1::HookConfig::EVENT_UNSPECIFIED, "/apply"), {"fw.a", "fw.b"},
                     {{"CLOUDHA_CONFIG_REVISION", "9"}}, [&](bool result, const std::string&) {
                       ok = result;
                       done.Notify();
                     });
  done.WaitForNotification();
  EXPECT_TRUE(ok);
  EXPECT_EQ(argv, (std::vector<std::string>{"/apply", "fw.a", "fw.b"}));
  absl::MutexLock lock(&rec.mu);
  ASSERT_EQ(rec.calls.size(), 1u);  // not the configured /eip
  EXPECT_EQ(rec.calls[0].second,
            (std::map<std::string, std::string>{{"CLOUDHA_CONFIG_REVISION", "9"}}));
}

TEST(HookRunnerTest, RetriesWithDoublingBackoffThenSucceeds) {
  FakeClock clock;
  Recorder rec;
  rec.failures_left["/eip"] = 2;
  std::vector<int> attempts;
  HookRunner runner({Hook(v1::HookConfig::TO_PRIMARY, "/eip", 3)}, &clock, rec.Runner(),
                    [&](const HookRunner::Attempt& a) { attempts.push_back(a.attempt); });
  runner.Start();
  absl::Notification done;
  bool ok = false;
  runner.Fire(v1::HookConfig::TO_PRIMARY, {}, [&](bool result, const std::string&) {
    ok = result;
    done.Notify();
  });
  // First retry after 500 ms, second after 1 s more.
  while (clock.sleepers() == 0) absl::SleepFor(absl::Milliseconds(1));
  clock.Advance(absl::Milliseconds(499));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(rec.Calls(), 1u);
  clock.Advance(absl::Milliseconds(1));
  while (rec.Calls() < 2) absl::SleepFor(absl::Milliseconds(1));
  while (clock.sleepers() == 0) absl::SleepFor(absl::Milliseconds(1));
  clock.Advance(absl::Seconds(1));
  done.WaitForNotification();
  EXPECT_TRUE(ok);
  EXPECT_EQ(attempts, (std::vector<int>{1, 2, 3}));
}

TEST(HookRunnerTest, GivesUpAfterRetriesAndSkipsLaterHooks) {
  FakeClock clock;
  Recorder rec;
  rec.failures_left["/eip"] = 100;
  HookRunner runner({Hook(v1::HookConfig::TO_PRIMARY, "/eip", 1),
                     Hook(v1::HookConfig::TO_PRIMARY, "/route")},
                    &clock, rec.Runner(), nullptr);
  runner.Start();
  absl::Notification done;
  bool ok = true;
  std::string detail;
  runner.Fire(v1::HookConfig::TO_PRIMARY, {}, [&](bool result, const std::string& d) {
    ok = result;
    detail = d;
    done.Notify();
  });
  while (clock.sleepers() == 0) absl::SleepFor(absl::Milliseconds(1));
  clock.Advance(absl::Seconds(1));
  done.WaitForNotification();
  EXPECT_FALSE(ok);
  EXPECT_EQ(detail, "/eip: exit 1 (after 2 attempts)");
  absl::MutexLock lock(&rec.mu);
  EXPECT_EQ(rec.calls.size(), 2u);
}

TEST(HookRunnerTest, ASupersededJobStopsRetrying) {
  FakeClock clock;
  Recorder rec;
  rec.failures_left["/eip"] = 100;
  HookRunner runner({Hook(v1::HookConfig::TO_PRIMARY, "/eip", 5)}, &clock, rec.Runner(), nullptr);
  runner.Start();
  std::atomic<bool> wanted{true};
  absl::Notification done;
  std::string detail;
  runner.Fire(
      v1::HookConfig::TO_PRIMARY, {},
      [&](bool, const std::string& d) {
        detail = d;
        done.Notify();
      },
      [&] { return wanted.load(); });
  while (clock.sleepers() == 0) absl::SleepFor(absl::Milliseconds(1));
  wanted = false;  // the node stepped down meanwhile
  clock.Advance(absl::Seconds(1));
  done.WaitForNotification();
  EXPECT_EQ(detail, "/eip: not run, superseded");
  EXPECT_EQ(rec.Calls(), 1u);
}

TEST(HookRunnerTest, StopDrainsQueuedReleaseHooks) {
  FakeClock clock;
  Recorder rec;
  HookRunner runner({Hook(v1::HookConfig::TO_SECONDARY, "/release")}, &clock, rec.Runner(),
                    nullptr);
  runner.Start();
  runner.Fire(v1::HookConfig::TO_SECONDARY, {});
  runner.Stop(absl::Seconds(10));
  EXPECT_EQ(rec.Calls(), 1u);
  runner.Fire(v1::HookConfig::TO_SECONDARY, {});  // after Stop: ignored
  EXPECT_EQ(rec.Calls(), 1u);
}

TEST(HookRunnerTest, NoHooksIsSuccess) {
  FakeClock clock;
  Recorder rec;
  HookRunner runner({}, &clock, rec.Runner(), nullptr);
  runner.Start();
  absl::Notification done;
  runner.Fire(v1::HookConfig::TO_PRIMARY, {}, [&](bool ok, const std::string&) {
    EXPECT_TRUE(ok);
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_FALSE(runner.Has(v1::HookConfig::TO_PRIMARY));
}

}  // namespace
}  // namespace cloudha
