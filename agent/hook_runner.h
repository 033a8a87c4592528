// Runs the configured hooks (failover actions) off the heartbeat path: one
// worker thread takes events in order and runs each event's hooks one after
// another, each with its timeout and retries with exponential backoff, its
// output written to the log.
#ifndef CLOUDHA_AGENT_HOOK_RUNNER_H_
#define CLOUDHA_AGENT_HOOK_RUNNER_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "base/command_runner.h"
#include "cloudha/v1/config.pb.h"

namespace cloudha {

// What a hook is told (as CLOUDHA_* environment variables).
struct HookContext {
  std::string node;
  std::string role;
  std::string prev_role;
  uint64_t epoch = 0;
  std::string peer;
  std::string reason;
  // The arbiter's fencing token of the lease this node holds (0: none, and
  // CLOUDHA_FENCE is not set).
  uint64_t fence = 0;
};

// The CLOUDHA_* environment of an event's hooks.
std::map<std::string, std::string> HookEnvironment(v1::HookConfig::Event event,
                                                   const HookContext& context);

// Thread-safe.
class HookRunner {
 public:
  using Runner = std::function<CommandOutcome(const std::vector<std::string>& argv,
                                              const std::map<std::string, std::string>& env,
                                              absl::Duration timeout,
                                              const absl::Notification* cancel)>;
  // Asked before every attempt: false drops the rest of the event's hooks
  // (a promotion that was superseded must not claim resources late).
  using StillWanted = std::function<bool()>;
  // Called on the worker thread once every hook of an event ran: `ok` when
  // all succeeded (true when there were none), `detail` says what failed.
  using Done = std::function<void(bool ok, const std::string& detail)>;
  // A hook attempt finished (for logs and events).
  struct Attempt {
    v1::HookConfig::Event event;
    std::string command;
    int attempt;
    CommandOutcome outcome;
    // How long the command ran.
    absl::Duration took;
  };

  HookRunner(std::vector<v1::HookConfig> hooks, Clock* clock, Runner runner,
             std::function<void(const Attempt&)> on_attempt);
  ~HookRunner();
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  void Start();
  // Takes no new events, lets queued ones run for up to `drain` (release
  // hooks of a planned stop), then cancels the command in progress (its
  // process group is killed) and drops the rest.
  void Stop(absl::Duration drain = absl::ZeroDuration());

  // Queues `event`'s hooks.
  void Fire(v1::HookConfig::Event event, HookContext context, Done done = nullptr,
            StillWanted still_wanted = nullptr);

  // Queues one command that is not among the configured hooks (a config
  // apply hook): run as `hook` says (timeout, retries, backoff) with `args`
  // appended to its argv and exactly `env` as its CLOUDHA_* environment, in
  // turn with the events' hooks.
  void FireCommand(v1::HookConfig hook, std::vector<std::string> args,
                   std::map<std::string, std::string> env, Done done = nullptr,
                   StillWanted still_wanted = nullptr);

  // The configured hooks now (shared, not copied: the role thread asks on
  // every tick).
  std::shared_ptr<const std::vector<v1::HookConfig>> Hooks() const;

  // Whether any hook is configured for `event`.
  bool Has(v1::HookConfig::Event event) const;

  // Replaces the configured hooks (a reload): events whose hooks have not
  // started yet run the new ones; the one running finishes as it began.
  void SetHooks(std::vector<v1::HookConfig> hooks);

 private:
  struct Job {
    v1::HookConfig::Event event;
    HookContext context;
    Done done;
    StillWanted still_wanted;
    // For FireCommand: the one command to run, its extra arguments and
    // environment.
    std::optional<v1::HookConfig> command;
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
  };
  void Run();
  bool RunHook(const v1::HookConfig& hook, const Job& job, std::string* detail);

  Clock* clock_;
  Runner runner_;
  std::function<void(const Attempt&)> on_attempt_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const std::vector<v1::HookConfig>> hooks_ ABSL_GUARDED_BY(mu_);
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  // No new events once set.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // A job is being run.
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification stop_;
  std::thread worker_;
};

// "TO_PRIMARY" -> "to_primary".
std::string HookEventName(v1::HookConfig::Event event);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_HOOK_RUNNER_H_
