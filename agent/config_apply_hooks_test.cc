#include "agent/config_apply_hooks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/synchronization/notification.h"
#include "base/fake_clock.h"

namespace cloudha {
namespace {

using ::testing::ElementsAre;

v1::ConfigChangeHook Hook(const std::string& prefix, const std::string& command) {
  v1::ConfigChangeHook h;
  h.set_prefix(prefix);
  h.add_command(command);
  return h;
}

ConfigCommitResult Commit(uint64_t revision, std::vector<std::string> paths) {
  ConfigCommitResult r;
  r.revision = revision;
  for (std::string& p : paths) r.applied.push_back({std::move(p), std::nullopt, "v"});
  return r;
}

struct HookRun {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  absl::Duration timeout;
};

class ConfigApplyHooksTest : public ::testing::Test {
 protected:
  // Runs the hooks with a runner that records each run and fails the
  // commands in `fail`; the first run waits for `release_first_`.
  std::unique_ptr<ConfigApplyHooks> Make(std::vector<v1::ConfigChangeHook> hooks) {
    auto runner = [this](const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env, absl::Duration timeout,
                         const absl::Notification*) {
      bool first = false;
      {
        absl::MutexLock lock(&mu_);
        first = runs_.empty();
        runs_.push_back({argv, env, timeout});
      }
      if (first && hold_first_) {
        started_first_.Notify();
        release_first_.WaitForNotification();
      }
      CommandOutcome outcome;
      outcome.exit_code = fail_ == argv[0] ? 3 : 0;
      outcome.summary = fail_ == argv[0] ? "exit 3" : "exit 0";
      {
        absl::MutexLock lock(&mu_);
        ++finished_;
      }
      return outcome;
    };
    auto hooks_ptr = std::make_unique<ConfigApplyHooks>(
        std::move(hooks), "n1", getenv("TEST_TMPDIR"), &clock_, runner,
        [this](const std::string& command, const HookRunner::Attempt& run) {
          if (run.outcome.ok()) return;
          absl::MutexLock lock(&mu_);
          failed_.push_back(command + ": " + run.outcome.summary);
        });
    hooks_ptr->Start();
    return hooks_ptr;
  }

  void AwaitFinished(int n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_ >= n; };
    mu_.Await(absl::Condition(&done));
  }

  FakeClock clock_;
  absl::Mutex mu_;
  std::vector<HookRun> runs_ ABSL_GUARDED_BY(mu_);
  int finished_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> failed_ ABSL_GUARDED_BY(mu_);
  std::string fail_;
  bool hold_first_ = false;
  absl::Notification started_first_, release_first_;
};

TEST_F(ConfigApplyHooksTest, AHookRunsWithThePathsUnderItsPrefix) {
  auto hooks = Make({Hook("fw.", "/apply-fw"), Hook("dns.", "/apply-dns")});
  hooks->OnCommit(Commit(5, {"fw.b", "fw.a", "system.x"}));
  AwaitFinished(1);
  absl::MutexLock lock(&mu_);
  ASSERT_EQ(runs_.size(), 1u);  // dns. was not touched
  EXPECT_THAT(runs_[0].argv, ElementsAre("/apply-fw", "fw.a", "fw.b"));
  EXPECT_EQ(runs_[0].timeout, absl::Seconds(30));
  const auto& env = runs_[0].env;
  EXPECT_EQ(env.at("CLOUDHA_NODE"), "n1");
  EXPECT_EQ(env.at("CLOUDHA_CONFIG_REVISION"), "5");
  EXPECT_EQ(env.at("CLOUDHA_CONFIG_PREFIX"), "fw.");
  EXPECT_EQ(env.at("CLOUDHA_CONFIG_PATHS_COUNT"), "2");
  EXPECT_EQ(env.at("CLOUDHA_CONFIG_PATHS_TRUNCATED"), "0");
  std::ifstream in(env.at("CLOUDHA_CONFIG_PATHS_FILE"));
  std::stringstream file;
  file << in.rdbuf();
  EXPECT_EQ(file.str(), "fw.a\nfw.b\n");
}

TEST_F(ConfigApplyHooksTest, PathsChangedWhileAHookRunsGoToItsNextRun) {
  hold_first_ = true;
  auto hooks = Make({Hook("", "/apply")});
  hooks->OnCommit(Commit(1, {"a"}));
  started_first_.WaitForNotification();
  hooks->OnCommit(Commit(2, {"b"}));
  hooks->OnCommit(Commit(3, {"c"}));
  release_first_.Notify();
  AwaitFinished(2);
  absl::MutexLock lock(&mu_);
  ASSERT_EQ(runs_.size(), 2u);
  EXPECT_THAT(runs_[1].argv, ElementsAre("/apply", "b", "c"));
  EXPECT_EQ(runs_[1].env.at("CLOUDHA_CONFIG_REVISION"), "3");
}

TEST_F(ConfigApplyHooksTest, AFailureIsCountedAndReported) {
  fail_ = "/apply";
  auto hooks = Make({Hook("", "/apply")});
  hooks->OnCommit(Commit(1, {"a"}));
  AwaitFinished(1);
  hooks->Stop();  // the failure is reported before the runner takes the next
  EXPECT_EQ(hooks->failures(), 1u);
  absl::MutexLock lock(&mu_);
  EXPECT_THAT(failed_, ElementsAre("/apply: exit 3"));
}

}  // namespace
}  // namespace cloudha
