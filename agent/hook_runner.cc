#include "agent/hook_runner.h"

#include <pthread.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cloudha {

std::string HookEventName(v1::HookConfig::Event event) {
  return absl::AsciiStrToLower(v1::HookConfig::Event_Name(event));
}

HookRunner::HookRunner(std::vector<v1::HookConfig> hooks, Clock* clock, Runner runner,
                       std::function<void(const Attempt&)> on_attempt)
    : clock_(clock),
      runner_(std::move(runner)),
      on_attempt_(std::move(on_attempt)),
      hooks_(std::make_shared<const std::vector<v1::HookConfig>>(std::move(hooks))) {}

void HookRunner::SetHooks(std::vector<v1::HookConfig> hooks) {
  auto fresh = std::make_shared<const std::vector<v1::HookConfig>>(std::move(hooks));
  absl::MutexLock lock(&mu_);
  hooks_ = std::move(fresh);
}

HookRunner::~HookRunner() { Stop(); }

void HookRunner::Start() {
  worker_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "hooks");
    Run();
  });
}

void HookRunner::Stop(absl::Duration drain) {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    if (worker_.joinable()) {
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return queue_.empty() && !busy_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&idle), drain);
    }
    stopping_ = true;
  }
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (worker_.joinable()) worker_.join();
}

bool HookRunner::Has(v1::HookConfig::Event event) const {
  absl::MutexLock lock(&mu_);
  return std::any_of(hooks_->begin(), hooks_->end(),
                     [&](const v1::HookConfig& h) { return h.on() == event; });
}

void HookRunner::Fire(v1::HookConfig::Event event, HookContext context, Done done,
                      StillWanted still_wanted) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  Job job;
  job.event = event;
  job.context = std::move(context);
  job.done = std::move(done);
  job.still_wanted = std::move(still_wanted);
  queue_.push_back(std::move(job));
}

void HookRunner::FireCommand(v1::HookConfig hook, std::vector<std::string> args,
                             std::map<std::string, std::string> env, Done done,
                             StillWanted still_wanted) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  Job job;
  job.event = hook.on();
  job.done = std::move(done);
  job.still_wanted = std::move(still_wanted);
  job.command = std::move(hook);
  job.args = std::move(args);
  job.env = std::move(env);
  queue_.push_back(std::move(job));
}

std::shared_ptr<const std::vector<v1::HookConfig>> HookRunner::Hooks() const {
  absl::MutexLock lock(&mu_);
  return hooks_;
}

std::map<std::string, std::string> HookEnvironment(v1::HookConfig::Event event,
                                                   const HookContext& context) {
  std::map<std::string, std::string> env = {
      {"CLOUDHA_EVENT", HookEventName(event)},
      {"CLOUDHA_NODE", context.node},
      {"CLOUDHA_ROLE", context.role},
      {"CLOUDHA_PREV_ROLE", context.prev_role},
      {"CLOUDHA_EPOCH", absl::StrCat(context.epoch)},
      {"CLOUDHA_PEER", context.peer},
      {"CLOUDHA_REASON", context.reason},
  };
  if (context.fence != 0) env["CLOUDHA_FENCE"] = absl::StrCat(context.fence);
  return env;
}

void HookRunner::Run() {
  while (true) {
    Job job;
    std::shared_ptr<const std::vector<v1::HookConfig>> configured;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      configured = hooks_;
    }
    bool ok = true;
    std::string detail;
    std::vector<const v1::HookConfig*> hooks;
    if (job.command.has_value()) {
      hooks.push_back(&*job.command);
    } else {
      for (const v1::HookConfig& hook : *configured) {
        if (hook.on() == job.event) hooks.push_back(&hook);
      }
    }
    for (const v1::HookConfig* hook : hooks) {
      if (!RunHook(*hook, job, &detail)) {
        ok = false;
        break;
      }
      if (stop_.HasBeenNotified()) return;
    }
    if (job.done) job.done(ok, detail);
    absl::MutexLock lock(&mu_);
    busy_ = false;
  }
}

bool HookRunner::RunHook(const v1::HookConfig& hook, const Job& job, std::string* detail) {
  std::vector<std::string> argv(hook.command().begin(), hook.command().end());
  argv.insert(argv.end(), job.args.begin(), job.args.end());
  std::map<std::string, std::string> env =
      job.command.has_value() ? job.env : HookEnvironment(job.event, job.context);
  absl::Duration backoff = absl::Milliseconds(hook.backoff_ms());
  const int attempts = 1 + static_cast<int>(hook.retries());
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (job.still_wanted && !job.still_wanted()) {
      *detail = absl::StrCat(argv[0], ": not run, superseded");
      return false;
    }
    const absl::Time started = clock_->Now();
    CommandOutcome outcome = runner_(argv, env, absl::Milliseconds(hook.timeout_ms()), &stop_);
    if (on_attempt_) {
      on_attempt_({job.event, absl::StrJoin(argv, " "), attempt, outcome, clock_->Now() - started});
    }
    if (outcome.ok()) return true;
    *detail = absl::StrCat(argv[0], ": ", outcome.summary);
    if (attempt == attempts) break;
    if (!clock_->SleepUntil(clock_->Now() + backoff, stop_)) return false;
    backoff *= 2;
  }
  *detail = absl::StrCat(*detail, " (after ", attempts, " attempts)");
  return false;
}

}  // namespace cloudha
