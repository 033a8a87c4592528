// The config apply hooks (config_sync.on_change): after a commit that
// writes or deletes paths under a hook's prefix, the hook runs with those
// paths (as arguments, up to kMaxConfigHookArgBytes, and all of them in
// CLOUDHA_CONFIG_PATHS_FILE), through the shared HookRunner. Paths that
// change while a hook runs are gathered and passed to its next run: a burst
// of commits costs one run per hook, not one per commit.
//
// Thread-safe.
#ifndef CLOUDHA_AGENT_CONFIG_APPLY_HOOKS_H_
#define CLOUDHA_AGENT_CONFIG_APPLY_HOOKS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/hook_runner.h"
#include "base/clock.h"
#include "cloudha/v1/config.pb.h"
#include "sync/config_store.h"

namespace cloudha {

class ConfigApplyHooks {
 public:
  // A hook ran: its command (argv[0]) and how it went (outcome, duration).
  using RanFn = std::function<void(const std::string& command, const HookRunner::Attempt& run)>;
  // `state_dir` holds the paths files (config-hook-<index>.paths).
  ConfigApplyHooks(std::vector<v1::ConfigChangeHook> hooks, std::string node, std::string state_dir,
                   Clock* clock, HookRunner::Runner runner, RanFn on_ran);
  ~ConfigApplyHooks();
  ConfigApplyHooks(const ConfigApplyHooks&) = delete;
  ConfigApplyHooks& operator=(const ConfigApplyHooks&) = delete;

  void Start();
  // Cancels the hook running (its process group is killed) and drops the
  // pending ones.
  void Stop();

  // Queues the hooks whose prefix `result` touches. Cheap: never waits for
  // a hook (called under the commit lock).
  void OnCommit(const ConfigCommitResult& result);

  uint64_t failures() const;

 private:
  struct Job {
    std::set<std::string> paths;
    uint64_t revision = 0;
  };
  // Starts the next pending hook unless one runs.
  void FireNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string PathsFile(size_t index) const;

  const std::vector<v1::ConfigChangeHook> hooks_;
  const std::string node_;
  const std::string state_dir_;
  const RanFn on_ran_;
  std::unique_ptr<HookRunner> runner_;

  mutable absl::Mutex mu_;
  // Pending paths per hook index.
  std::map<size_t, Job> pending_ ABSL_GUARDED_BY(mu_);
  // The hook HookRunner runs now (a job is in flight), and its paths.
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  size_t running_index_ ABSL_GUARDED_BY(mu_) = 0;
  Job running_job_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CONFIG_APPLY_HOOKS_H_
