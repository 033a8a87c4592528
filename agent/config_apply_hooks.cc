#include "agent/config_apply_hooks.h"

#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "sync/config_sync_limits.h"

namespace cloudha {

ConfigApplyHooks::ConfigApplyHooks(std::vector<v1::ConfigChangeHook> hooks, std::string node,
                                   std::string state_dir, Clock* clock, HookRunner::Runner runner,
                                   RanFn on_ran)
    : hooks_(std::move(hooks)),
      node_(std::move(node)),
      state_dir_(std::move(state_dir)),
      on_ran_(std::move(on_ran)) {
  // The paths file is written on the hook's thread, just before it runs.
  auto write_then_run = [this, runner = std::move(runner)](
                            const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env, absl::Duration timeout,
                            const absl::Notification* cancel) {
    std::set<std::string> paths;
    std::string file;
    {
      absl::MutexLock lock(&mu_);
      paths = running_job_.paths;
      file = PathsFile(running_index_);
    }
    {
      std::ofstream out(file, std::ios::trunc);
      for (const std::string& p : paths) out << p << '\n';
    }
    return runner(argv, env, timeout, cancel);
  };
  auto on_attempt = [this](const HookRunner::Attempt& a) {
    std::string command;
    uint64_t paths = 0, revision = 0;
    {
      absl::MutexLock lock(&mu_);
      const v1::ConfigChangeHook& hook = hooks_[running_index_];
      command = hook.command_size() > 0 ? hook.command(0) : "";
      paths = running_job_.paths.size();
      revision = running_job_.revision;
    }
    if (on_ran_) on_ran_(command, a);
    if (a.outcome.ok()) {
      LogEvent(LogLevel::kInfo, "config_hook_ok",
               {{"command", command}, {"paths", paths}, {"revision", revision}});
      return;
    }
    LogEvent(LogLevel::kWarn, "config_hook_failed",
             {{"command", command},
              {"paths", paths},
              {"revision", revision},
              {"reason", a.outcome.summary},
              {"output", ShortenConfigValue(a.outcome.output)}});
    {
      absl::MutexLock lock(&mu_);
      ++failures_;
    }
  };
  runner_ = std::make_unique<HookRunner>(std::vector<v1::HookConfig>{}, clock,
                                         std::move(write_then_run), std::move(on_attempt));
}

ConfigApplyHooks::~ConfigApplyHooks() { Stop(); }

void ConfigApplyHooks::Start() { runner_->Start(); }

void ConfigApplyHooks::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    pending_.clear();
  }
  runner_->Stop();
}

uint64_t ConfigApplyHooks::failures() const {
  absl::MutexLock lock(&mu_);
  return failures_;
}

std::string ConfigApplyHooks::PathsFile(size_t index) const {
  return absl::StrCat(state_dir_, "/config-hook-", index, ".paths");
}

void ConfigApplyHooks::OnCommit(const ConfigCommitResult& result) {
  if (hooks_.empty()) return;
  absl::MutexLock lock(&mu_);
  if (stopped_) return;
  for (size_t i = 0; i < hooks_.size(); ++i) {
    for (const ConfigCommitResult::Applied& a : result.applied) {
      if (!absl::StartsWith(a.path, hooks_[i].prefix())) continue;
      Job& job = pending_[i];
      job.paths.insert(a.path);
      job.revision = result.revision;
    }
  }
  FireNextLocked();
}

void ConfigApplyHooks::FireNextLocked() {
  if (running_ || stopped_ || pending_.empty()) return;
  running_ = true;
  running_index_ = pending_.begin()->first;
  running_job_ = std::move(pending_.begin()->second);
  pending_.erase(pending_.begin());
  const v1::ConfigChangeHook& hook = hooks_[running_index_];
  std::vector<std::string> args;
  size_t arg_bytes = 0;
  bool truncated = false;
  for (const std::string& p : running_job_.paths) {
    arg_bytes += p.size() + 1;
    if (arg_bytes > kMaxConfigHookArgBytes) {
      truncated = true;
      break;
    }
    args.push_back(p);
  }
  std::map<std::string, std::string> env = {
      {"CLOUDHA_NODE", node_},
      {"CLOUDHA_CONFIG_REVISION", absl::StrCat(running_job_.revision)},
      {"CLOUDHA_CONFIG_PREFIX", hook.prefix()},
      {"CLOUDHA_CONFIG_PATHS_FILE", PathsFile(running_index_)},
      {"CLOUDHA_CONFIG_PATHS_COUNT", absl::StrCat(running_job_.paths.size())},
      {"CLOUDHA_CONFIG_PATHS_TRUNCATED", truncated ? "1" : "0"},
  };
  v1::HookConfig command;
  *command.mutable_command() = hook.command();
  command.set_timeout_ms(hook.has_timeout_ms() ? hook.timeout_ms() : 30000);
  command.set_retries(0);
  runner_->FireCommand(std::move(command), std::move(args), std::move(env),
                       [this](bool, const std::string&) {
                         absl::MutexLock lock(&mu_);
                         running_ = false;
                         FireNextLocked();
                       });
}

}  // namespace cloudha
