#include "sync/config_committer.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/log.h"

namespace cloudha {

ConfigCommitter::ConfigCommitter(ConfigStore* store, CheckFn check_local,
                                 AfterCommitFn after_commit)
    : store_(store), check_local_(std::move(check_local)), after_commit_(std::move(after_commit)) {}

absl::StatusOr<ConfigCommitResult> ConfigCommitter::WriteLocal(
    const std::vector<ConfigChange>& changes) {
  LocalWrite me{&changes};
  absl::MutexLock lock(&group_mu_);
  group_.push_back(&me);
  while (!me.done) {
    if (group_running_) {
      auto turn = [this, &me]()
                      ABSL_SHARED_LOCKS_REQUIRED(group_mu_) { return me.done || !group_running_; };
      group_mu_.Await(absl::Condition(&turn));
      continue;
    }
    // This writer commits everything waiting, its own write included.
    group_running_ = true;
    std::vector<LocalWrite*> group(group_.begin(), group_.end());
    group_.clear();
    group_mu_.Unlock();
    {
      absl::MutexLock commit(&commit_mu_);
      CommitGroupLocked(group);
    }
    group_mu_.Lock();
    for (LocalWrite* w : group) w->done = true;
    group_running_ = false;
  }
  return std::move(me.result);
}

absl::StatusOr<ConfigCommitResult> ConfigCommitter::WriteReplicated(
    const std::vector<ConfigChange>& changes, const std::string& origin,
    const std::function<absl::Status()>& still_current) {
  absl::MutexLock lock(&commit_mu_);
  if (absl::Status s = still_current(); !s.ok()) return s;
  absl::StatusOr<ConfigCommitResult> result = store_->Apply(changes);
  if (!result.ok()) {
    LogEvent(LogLevel::kError, "config_commit_failed",
             {{"origin", origin}, {"reason", result.status().message()}});
    return result;
  }
  if (result->revision != 0 && after_commit_) after_commit_(*result, /*replicated=*/true);
  return result;
}

size_t ConfigCommitter::waiting() const {
  absl::MutexLock lock(&group_mu_);
  return group_.size();
}

void ConfigCommitter::InCommitOrder(const std::function<void()>& fn) {
  absl::MutexLock lock(&commit_mu_);
  fn();
}

void ConfigCommitter::CommitGroupLocked(const std::vector<LocalWrite*>& group) {
  std::vector<ConfigChange> merged;
  std::vector<LocalWrite*> admitted;
  for (LocalWrite* w : group) {
    // Each write's own problems stay its own: checked here, not by the
    // store for the whole group.
    absl::Status s = check_local_ ? check_local_(*w->changes) : absl::OkStatus();
    for (const ConfigChange& c : *w->changes) {
      if (!s.ok()) break;
      s = ValidateConfigPath(c.path);
      if (s.ok() && c.value.has_value() && c.value->size() > kMaxConfigValueBytes) {
        s = absl::InvalidArgumentError(absl::StrCat("the value of ", c.path, " has ",
                                                    c.value->size(), " bytes; at most ",
                                                    kMaxConfigValueBytes, " are allowed"));
      }
    }
    if (!s.ok()) {
      w->result = s;
      continue;
    }
    merged.insert(merged.end(), w->changes->begin(), w->changes->end());
    admitted.push_back(w);
  }
  if (admitted.empty()) return;
  absl::StatusOr<ConfigCommitResult> result = store_->Apply(merged);
  if (!result.ok()) {
    LogEvent(
        LogLevel::kError, "config_commit_failed",
        {{"origin", "local"}, {"writes", admitted.size()}, {"reason", result.status().message()}});
    for (LocalWrite* w : admitted) w->result = result.status();
    return;
  }
  if (result->revision != 0 && after_commit_) after_commit_(*result, /*replicated=*/false);
  for (LocalWrite* w : admitted) {
    std::set<absl::string_view> mine;
    for (const ConfigChange& c : *w->changes) mine.insert(c.path);
    ConfigCommitResult own;
    own.revision = result->revision;
    for (const ConfigCommitResult::Applied& a : result->applied) {
      if (mine.count(a.path) != 0) own.applied.push_back(a);
    }
    w->result = std::move(own);
  }
}

}  // namespace cloudha
