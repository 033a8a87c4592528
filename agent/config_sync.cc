#include "agent/config_sync.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/config_pusher.h"
#include "agent/config_sync_common.h"
#include "agent/primary_stream_rule.h"
#include "base/log.h"
#include "agent/sync_channel.h"
#include "base/command_runner.h"

namespace cloudha {

using namespace config_sync;  // NOLINT: this file is part of config sync

ConfigSync::ConfigSync(const v1::AgentConfig& config, const TlsMaterial& tls, Clock* clock,
                       NoteFn note)
    : config_(config),
      // LoadAgentConfig filled the default (<state_dir>/config.db).
      store_file_(config.config_sync().store_file()),
      clock_(clock),
      note_(std::move(note)),
      credentials_(PeerChannelCredentials(tls)) {
  // LoadAgentConfig validated the patterns.
  absl::StatusOr<ExclusionSet> own =
      ExclusionSet::Create(Patterns(config_.config_sync().exclude()));
  if (own.ok()) own_ = *std::move(own);
  for (const auto& peer : config_.peers()) {
    channels_[peer.id()] =
        CreateSyncChannel(config_.cluster().name(), peer, credentials_, "config");
  }
}

ConfigSync::~ConfigSync() { Stop(); }

absl::Status ConfigSync::Start() {
  ConfigStore::Options options;
  options.clock = clock_;
  absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(store_file_, options);
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("config_sync: ", store.status().message()));
  }
  store_ = *std::move(store);
  {
    absl::MutexLock lock(&commit_mu_);
    RefreshHelloCacheLocked();
  }
  LogEvent(LogLevel::kInfo, "config_store_opened",
           {{"file", store_file_},
            {"entries", store_->size()},
            {"revision", store_->revision()},
            {"exclude", absl::StrJoin(own_.patterns(), ",")}});
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  hook_thread_ = std::thread([this] { RunHooks(); });
  return absl::OkStatus();
}

void ConfigSync::Stop() {
  if (!started_) return;
  started_ = false;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  // What was acknowledged to a writer reaches the secondaries before the
  // pushers go (bounded: a secondary that does not answer is not waited
  // for long).
  if (!WaitReplicated(absl::Seconds(1))) {
    LogEvent(LogLevel::kWarn, "config_not_replicated_on_stop",
             {{"reason", "a secondary had not applied the last commit after 1s"}});
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (follow_context_ != nullptr) follow_context_->TryCancel();
    changed_.SignalAll();
  }
  stop_.Notify();
  {
    absl::MutexLock lock(&hooks_mu_);
    hooks_stopping_ = true;
    hooks_cv_.SignalAll();
  }
  {
    absl::MutexLock lock(&watch_mu_);
    watch_cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  if (hook_thread_.joinable()) hook_thread_.join();
}

void ConfigSync::Update(v1::Role role, uint64_t epoch, const std::string& primary,
                        const std::vector<ConfigPeerView>& live_peers) {
  absl::Time now = clock_->Now();
  // The primary's hello checksum over the pair's paths, to compare with.
  std::optional<ExclusionSet> effective = EffectiveFor(primary);
  std::string mine;
  if (effective.has_value()) mine = CachedRoot(*effective);
  absl::MutexLock lock(&mu_);
  bool wake = role != desired_.role || epoch != desired_.epoch || primary != desired_.primary;
  std::vector<std::string> before, after;
  for (const auto& p : desired_.live) before.push_back(p.id);
  for (const auto& p : live_peers) after.push_back(p.id);
  wake = wake || before != after;
  desired_.role = role;
  desired_.epoch = epoch;
  desired_.primary = primary;
  desired_.live = live_peers;
  // A peer whose list changed (restarted with another config): forget the
  // union made from the old one.
  for (const ConfigPeerView& p : live_peers) {
    auto it = effective_.find(p.id);
    if (it != effective_.end() && !p.exclusion_digest.empty() &&
        p.exclusion_digest != it->second.first) {
      effective_.erase(it);
    }
  }
  for (const ConfigPeerView& p : live_peers) {
    auto it = effective_.find(p.id);
    bool differs = it != effective_.end() && !p.root_checksum.empty() &&
                   p.root_checksum != CachedRoot(it->second.second);
    if (!differs) {
      peer_mismatch_since_.erase(p.id);
    } else {
      peer_mismatch_since_.emplace(p.id, now);
    }
  }
  if (follow_context_ != nullptr &&
      (role == v1::PRIMARY || (!primary.empty() && primary != following_))) {
    follow_context_->TryCancel();
  }
  // Drift: following the primary, at its revision, with another checksum.
  bool drift = false;
  if (role == v1::SECONDARY && !primary.empty() && synced_with_ == primary && !mine.empty()) {
    for (const ConfigPeerView& p : live_peers) {
      if (p.id != primary) continue;
      drift = !p.root_checksum.empty() && p.revision == primary_revision_ &&
              p.root_checksum != mine;
    }
  }
  if (!drift) {
    mismatch_since_ = absl::InfiniteFuture();
  } else if (mismatch_since_ == absl::InfiniteFuture()) {
    mismatch_since_ = now;
  } else if (now - mismatch_since_ >= kDriftGrace) {
    LogEvent(LogLevel::kWarn, "config_checksum_mismatch",
             {{"primary", primary}, {"revision", primary_revision_}});
    note_(absl::StrCat("config: checksum differs from ", primary, "'s at its revision ",
                       primary_revision_, "; resyncing"));
    synced_with_.clear();
    mismatch_since_ = absl::InfiniteFuture();
    if (follow_context_ != nullptr) follow_context_->TryCancel();
  }
  if (wake) changed_.SignalAll();
}

bool ConfigSync::in_sync() const {
  absl::MutexLock lock(&mu_);
  if (desired_.role == v1::PRIMARY || desired_.primary.empty()) return true;
  return synced_with_ == desired_.primary;
}

void ConfigSync::FillHello(const std::string& peer, v1::Hello* hello) const {
  hello->set_exclusion_digest(own_.digest());
  std::optional<ExclusionSet> effective = EffectiveFor(peer);
  absl::MutexLock lock(&cache_mu_);
  hello->set_config_revision(cached_revision_);
  if (effective.has_value()) {
    auto it = cached_roots_.find(effective->digest());
    if (it != cached_roots_.end()) hello->set_config_root_checksum(it->second);
  }
}

std::string ConfigSync::CachedRoot(const ExclusionSet& effective) const {
  absl::MutexLock lock(&cache_mu_);
  auto it = cached_roots_.find(effective.digest());
  return it == cached_roots_.end() ? "" : it->second;
}

void ConfigSync::RefreshHelloCacheLocked() {
  std::vector<ExclusionSet> sets = {own_};
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [peer, e] : effective_) sets.push_back(e.second);
  }
  std::map<std::string, std::string> roots;
  for (const ExclusionSet& set : sets) roots[set.digest()] = store_->Checksum("", set).checksum;
  uint64_t revision = store_->revision();
  uint64_t size = store_->size();
  absl::MutexLock lock(&cache_mu_);
  cached_revision_ = revision;
  cached_size_ = size;
  cached_roots_ = std::move(roots);
}

void ConfigSync::LearnPeerExclusions(const std::string& peer,
                                     const std::vector<std::string>& patterns) {
  absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(patterns);
  if (!theirs.ok()) return;
  ExclusionSet effective = own_.Union(*theirs);
  {
    absl::MutexLock lock(&mu_);
    effective_[peer] = {theirs->digest(), std::move(effective)};
  }
  if (store_ == nullptr) return;
  absl::MutexLock lock(&commit_mu_);
  RefreshHelloCacheLocked();
}

std::optional<ExclusionSet> ConfigSync::EffectiveFor(const std::string& peer) const {
  absl::MutexLock lock(&mu_);
  auto it = effective_.find(peer);
  if (it == effective_.end()) return std::nullopt;
  return it->second.second;
}

void ConfigSync::SetError(const std::string& error) {
  absl::MutexLock lock(&mu_);
  last_error_ = error;
}

void ConfigSync::Run() {
  Desired applied;
  bool first = true;
  while (true) {
    Desired desired;
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_) changed_.WaitWithTimeout(&mu_, absl::Seconds(1));
      if (stopping_) break;
      desired = desired_;
    }
    bool same = !first && desired.role == applied.role && desired.epoch == applied.epoch;
    if (same) {
      std::vector<std::string> a, b;
      for (const auto& p : desired.live) a.push_back(p.id);
      for (const auto& p : applied.live) b.push_back(p.id);
      same = a == b;
    }
    if (!same) Reconcile(desired);
    applied = desired;
    first = false;
  }
  std::map<std::string, std::unique_ptr<ConfigPusher>> retired;
  {
    absl::MutexLock lock(&pushers_mu_);
    retired.swap(pushers_);
  }
  retired.clear();
}

void ConfigSync::Reconcile(const Desired& desired) {
  const bool primary = desired.role == v1::PRIMARY;
  std::vector<std::unique_ptr<ConfigPusher>> retired;
  std::vector<std::string> started;
  {
    absl::MutexLock lock(&pushers_mu_);
    if (!primary || desired.epoch != pusher_epoch_) {
      for (auto& [id, pusher] : pushers_) retired.push_back(std::move(pusher));
      pushers_.clear();
      pusher_epoch_ = desired.epoch;
    }
    if (primary) {
      for (auto it = pushers_.begin(); it != pushers_.end();) {
        bool live = std::any_of(desired.live.begin(), desired.live.end(),
                                [&](const ConfigPeerView& p) { return p.id == it->first; });
        if (live) {
          ++it;
        } else {
          retired.push_back(std::move(it->second));
          it = pushers_.erase(it);
        }
      }
      for (const ConfigPeerView& peer : desired.live) {
        if (pushers_.count(peer.id) != 0 || channels_.count(peer.id) == 0) continue;
        pushers_[peer.id] =
            std::make_unique<ConfigPusher>(this, peer.id, desired.epoch, channels_[peer.id]);
        started.push_back(peer.id);
      }
    }
  }
  retired.clear();  // joins their threads, outside the lock
  for (const std::string& peer : started) {
    LogEvent(LogLevel::kInfo, "config_push_started", {{"peer", peer}, {"epoch", desired.epoch}});
  }
}

absl::Status ConfigSync::CheckSender(const std::string& peer, uint64_t epoch) const {
  absl::MutexLock lock(&mu_);
  return CheckStreamFromPrimary(desired_.role, desired_.epoch, desired_.primary, peer, epoch,
                                "config");
}

ExclusionSet ConfigSync::ZoneLocalLocked() const {
  auto eff = effective_.find(desired_.primary);
  if (desired_.role == v1::PRIMARY || eff == effective_.end()) return own_;
  return eff->second.second;  // the union of both lists
}

absl::Status ConfigSync::CheckWritable(const std::vector<ConfigChange>& changes) const {
  // The state under mu_, the path checks outside it: hellos need mu_, and
  // an import checks thousands of paths.
  v1::Role role;
  std::string primary;
  bool handing_over = false;
  ExclusionSet zone_local;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return absl::UnavailableError("the agent is stopping; nothing was written");
    role = desired_.role;
    primary = desired_.primary;
    handing_over = handing_over_;
    zone_local = ZoneLocalLocked();
  }
  for (const ConfigChange& c : changes) {
    if (zone_local.Excludes(c.path)) continue;
    if (role == v1::PRIMARY) {
      if (!handing_over) continue;
      return absl::UnavailableError(absl::StrCat(
          "this node is handing the primary role over; ", c.path,
          " is synced: write it on the new primary (nothing was written)"));
    }
    std::string local =
        own_.empty() ? "none"
                     : absl::StrCat("those matching ", absl::StrJoin(own_.patterns(), ", "));
    if (!primary.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "this node is ", v1::Role_Name(role), "; ", c.path, " is synced from the primary, ",
          primary, ": write it there (the paths this node excludes can be written here: ", local,
          "; nothing was written)"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "this node is ", v1::Role_Name(role), " and no primary is known yet; ", c.path,
        " is synced: write it on the primary once elected (the paths this node excludes can "
        "be written here: ", local, "; nothing was written)"));
  }
  return absl::OkStatus();
}

void ConfigSync::BeginHandover() {
  absl::MutexLock lock(&mu_);
  handing_over_ = true;
}

void ConfigSync::EndHandover() {
  absl::MutexLock lock(&mu_);
  handing_over_ = false;
}

bool ConfigSync::WaitReplicated(absl::Duration timeout, const std::string& only) {
  // Counted in rounds, not read off the clock: the injected clock may be a
  // test's, which does not move by itself.
  const int64_t rounds = std::max<int64_t>(1, timeout / absl::Milliseconds(5));
  for (int64_t round = 0;; ++round) {
    std::vector<std::string> peers;
    {
      absl::MutexLock lock(&pushers_mu_);
      for (const auto& [peer, pusher] : pushers_) {
        if (only.empty() || peer == only) peers.push_back(peer);
      }
    }
    bool all = true;
    {
      absl::MutexLock lock(&commit_mu_);
      // A pusher between streams (reconnecting, or resyncing a secondary
      // that fell behind) has no outbox: not caught up.
      for (const std::string& peer : peers) {
        auto it = outboxes_.find(peer);
        if (it == outboxes_.end() || !it->second->CaughtUp()) all = false;
      }
    }
    if (all) return true;
    if (round >= rounds) return false;
    absl::Notification never;
    never.WaitForNotificationWithTimeout(absl::Milliseconds(5));
  }
}


void ConfigSync::FillSubtrees(
    const std::vector<std::string>& prefixes, const ExclusionSet& excluded,
    google::protobuf::RepeatedPtrField<v1::ConfigChecksums::Subtree>* out) const {
  auto add = [&](const SubtreeChecksum& c) {
    v1::ConfigChecksums::Subtree* s = out->Add();
    s->set_prefix(c.prefix);
    s->set_checksum(c.checksum);
    s->set_entries(c.count);
    s->set_exact(c.exact);
  };
  for (const std::string& prefix : prefixes) {
    add(store_->Checksum(prefix, excluded));
    for (const SubtreeChecksum& c : store_->Children(prefix, excluded)) add(c);
  }
}

// ---- Commits --------------------------------------------------------------

absl::StatusOr<ConfigCommitResult> ConfigSync::Commit(const std::vector<ConfigChange>& changes,
                                                      const Follow* follow) {
  if (follow == nullptr) {
    LocalWrite me{&changes};
    absl::MutexLock lock(&group_mu_);
    group_.push_back(&me);
    while (!me.done) {
      if (group_running_) {
        auto turn = [this, &me]() ABSL_SHARED_LOCKS_REQUIRED(group_mu_) {
          return me.done || !group_running_;
        };
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
  absl::MutexLock lock(&commit_mu_);
  {
    absl::MutexLock state(&mu_);
    if (follow_context_ != follow->context || follow->context->IsCancelled() ||
        desired_.role == v1::PRIMARY || stopping_ ||
        (!desired_.primary.empty() && desired_.primary != follow->peer)) {
      return absl::AbortedError(absl::StrCat(
          "the config stream from ", follow->peer,
          " was superseded (this node is primary now, or follows another stream)"));
    }
  }
  absl::StatusOr<ConfigCommitResult> result = store_->Apply(changes);
  if (!result.ok()) {
    LogEvent(LogLevel::kError, "config_commit_failed",
             {{"origin", follow->peer}, {"reason", result.status().message()}});
    return result;
  }
  if (result->revision != 0) {
    ++commits_replicated_;
    AfterCommitLocked(*result);
  }
  return result;
}

void ConfigSync::CommitGroupLocked(const std::vector<LocalWrite*>& group) {
  std::vector<ConfigChange> merged;
  std::vector<LocalWrite*> admitted;
  for (LocalWrite* w : group) {
    // Each write's own problems stay its own: checked here, not by the
    // store for the whole group.
    absl::Status s = CheckWritable(*w->changes);
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
    LogEvent(LogLevel::kError, "config_commit_failed",
             {{"origin", "local"}, {"writes", admitted.size()},
              {"reason", result.status().message()}});
    for (LocalWrite* w : admitted) w->result = result.status();
    return;
  }
  if (result->revision != 0) AfterCommitLocked(*result);
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

void ConfigSync::AfterCommitLocked(const ConfigCommitResult& result) {
  RefreshHelloCacheLocked();
  // The secondaries, each with the paths its pair syncs.
  for (auto& [peer, outbox] : outboxes_) {
    v1::ConfigSyncMessage m;
    v1::ConfigCommit* c = m.mutable_commit();
    for (const ConfigCommitResult::Applied& a : result.applied) {
      if (outbox->effective.Excludes(a.path)) continue;
      if (a.new_value.has_value()) {
        v1::ConfigEntry* e = c->add_puts();
        e->set_path(a.path);
        e->set_value(*a.new_value);
        e->set_revision(result.revision);
      } else {
        c->add_deletes(a.path);
      }
    }
    // Even with nothing to send (only paths the pair excludes): the
    // revision and root checksum keep the secondary's comparison current.
    c->set_revision(result.revision);
    c->set_root_checksum(store_->Checksum("", outbox->effective).checksum);
    outbox->Push(std::move(m));
    ++commits_replicated_;
  }
  // Watchers.
  absl::MutexLock watch_lock(&watch_mu_);
  for (const std::shared_ptr<Watcher>& w : watchers_) {
    v1::WatchConfigResponse r;
    r.set_revision(result.revision);
    for (const ConfigCommitResult::Applied& a : result.applied) {
      if (!InConfigSubtree(a.path, w->prefix)) continue;
      if (a.new_value.has_value()) {
        v1::ConfigEntry* e = r.add_puts();
        e->set_path(a.path);
        e->set_value(*a.new_value);
        e->set_revision(result.revision);
      } else {
        r.add_deletes(a.path);
      }
    }
    if (r.puts_size() == 0 && r.deletes_size() == 0) continue;
    if (w->queue.size() >= kMaxWatchQueue) {
      w->overflowed = true;
    } else {
      w->queue.push_back(std::move(r));
    }
  }
  if (!watchers_.empty()) watch_cv_.SignalAll();
  // Apply hooks, off this thread.
  const auto& hooks = config_.config_sync().on_change();
  if (hooks.empty()) return;
  absl::MutexLock lock(&hooks_mu_);
  for (int i = 0; i < hooks.size(); ++i) {
    for (const ConfigCommitResult::Applied& a : result.applied) {
      if (!absl::StartsWith(a.path, hooks[i].prefix())) continue;
      HookJob& job = hook_jobs_[i];
      job.paths.insert(a.path);
      job.revision = result.revision;
    }
  }
  hooks_cv_.SignalAll();
}

void ConfigSync::RunHooks() {
  const auto& hooks = config_.config_sync().on_change();
  while (true) {
    size_t index = 0;
    HookJob job;
    {
      absl::MutexLock lock(&hooks_mu_);
      while (hook_jobs_.empty() && !hooks_stopping_) hooks_cv_.Wait(&hooks_mu_);
      if (hooks_stopping_) return;
      index = hook_jobs_.begin()->first;
      job = std::move(hook_jobs_.begin()->second);
      hook_jobs_.erase(hook_jobs_.begin());
    }
    const v1::ConfigChangeHook& hook = hooks[static_cast<int>(index)];
    std::vector<std::string> argv(hook.command().begin(), hook.command().end());
    std::string file = absl::StrCat(config_.state_dir(), "/config-hook-", index, ".paths");
    {
      std::ofstream out(file, std::ios::trunc);
      for (const std::string& p : job.paths) out << p << '\n';
    }
    size_t arg_bytes = 0;
    bool truncated = false;
    for (const std::string& p : job.paths) {
      arg_bytes += p.size() + 1;
      if (arg_bytes > kMaxHookArgBytes) {
        truncated = true;
        break;
      }
      argv.push_back(p);
    }
    std::map<std::string, std::string> env = {
        {"CLOUDHA_NODE", config_.node().id()},
        {"CLOUDHA_CONFIG_REVISION", absl::StrCat(job.revision)},
        {"CLOUDHA_CONFIG_PREFIX", hook.prefix()},
        {"CLOUDHA_CONFIG_PATHS_FILE", file},
        {"CLOUDHA_CONFIG_PATHS_COUNT", absl::StrCat(job.paths.size())},
        {"CLOUDHA_CONFIG_PATHS_TRUNCATED", truncated ? "1" : "0"},
    };
    absl::Duration timeout = absl::Milliseconds(hook.has_timeout_ms() ? hook.timeout_ms() : 30000);
    CommandOutcome outcome = RunCommand(argv, env, timeout, &stop_);
    std::string command = hook.command_size() > 0 ? hook.command(0) : "";
    if (outcome.ok()) {
      LogEvent(LogLevel::kInfo, "config_hook_ok",
               {{"command", command}, {"paths", job.paths.size()}, {"revision", job.revision}});
    } else {
      LogEvent(LogLevel::kWarn, "config_hook_failed",
               {{"command", command},
                {"paths", job.paths.size()},
                {"revision", job.revision},
                {"reason", outcome.summary},
                {"output", Shorten(outcome.output)}});
      note_(absl::StrCat("config: apply hook ", command, " failed: ", outcome.summary));
      absl::MutexLock lock(&mu_);
      ++hook_failures_;
      last_error_ = absl::StrCat("apply hook ", command, ": ", outcome.summary);
    }
  }
}

}  // namespace cloudha
