#include "agent/config_sync.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/config_sync_service.h"
#include "agent/primary_stream_rule.h"
#include "agent/sync_channel.h"
#include "base/command_runner.h"
#include "base/log.h"
#include "sync/config_sync_limits.h"

namespace cloudha {

ConfigSync::ConfigSync(const v1::AgentConfig& config,
                       std::shared_ptr<grpc::ChannelCredentials> credentials, Clock* clock,
                       NoteFn note, HookRanFn hook_ran)
    : config_(config),
      // LoadAgentConfig filled the default (<state_dir>/config.db).
      store_file_(config.config_sync().store_file()),
      clock_(clock),
      note_(std::move(note)),
      credentials_(std::move(credentials)),
      hooks_({config.config_sync().on_change().begin(), config.config_sync().on_change().end()},
             config.node().id(), config.state_dir(), clock, &RunCommand,
             [this, hook_ran = std::move(hook_ran)](const std::string& command,
                                                     const HookRunner::Attempt& run) {
               if (hook_ran) hook_ran(run);
               if (run.outcome.ok()) return;
               const std::string& summary = run.outcome.summary;
               note_(absl::StrCat("config: apply hook ", command, " failed: ", summary));
               absl::MutexLock lock(&mu_);
               hook_error_ = absl::StrCat("apply hook ", command, ": ", summary);
             }) {
  // LoadAgentConfig validated the patterns.
  absl::StatusOr<ExclusionSet> own =
      ExclusionSet::Create(ExclusionPatterns(config_.config_sync().exclude()));
  if (own.ok()) {
    absl::MutexLock lock(&own_mu_);
    own_ = *std::move(own);
  }
  for (const auto& peer : config_.peers()) {
    channels_[peer.id()] =
        CreateSyncChannel(config_.cluster().name(), config_.cluster().group_id(), peer,
                          credentials_, "config");
  }
}

ConfigSync::~ConfigSync() { Stop(); }

ExclusionSet ConfigSync::own() const {
  absl::MutexLock lock(&own_mu_);
  return own_;
}

absl::Status ConfigSync::SetExclusions(const std::vector<std::string>& patterns) {
  absl::StatusOr<ExclusionSet> fresh = ExclusionSet::Create(patterns);
  if (!fresh.ok()) return fresh.status();
  {
    // One step under mu_ (then own_mu_, then the follower's lock, the order
    // used elsewhere): no union made from the old list survives it.
    absl::MutexLock lock(&mu_);
    {
      absl::MutexLock own_lock(&own_mu_);
      if (own_ == *fresh) return absl::OkStatus();
      own_ = *fresh;
    }
    if (follower_ != nullptr) follower_->SetOwn(*fresh);
    // Unions made with the old list; each stream's open brings the peer's
    // list again.
    effective_.clear();
    peer_mismatch_since_.clear();
    if (follow_stream_ != nullptr) follow_stream_->Cancel();
    restart_pushers_ = true;
    desired_changed_ = true;
    changed_.SignalAll();
  }
  if (committer_ != nullptr) committer_->InCommitOrder([this] { RefreshHelloCache(); });
  LogEvent(LogLevel::kInfo, "config_exclusions_changed",
           {{"exclude", absl::StrJoin(fresh->patterns(), ",")}});
  note_(absl::StrCat("config: exclusion list now ",
                     fresh->empty() ? "empty" : absl::StrJoin(fresh->patterns(), ", "),
                     "; replication streams restart with it"));
  return absl::OkStatus();
}

absl::Status ConfigSync::Start() {
  ConfigStore::Options options;
  options.clock = clock_;
  absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(store_file_, options);
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("config_sync: ", store.status().message()));
  }
  store_ = *std::move(store);
  committer_ = std::make_unique<ConfigCommitter>(
      store_.get(),
      [this](const std::vector<ConfigChange>& changes) { return CheckWritable(changes); },
      [this](const ConfigCommitResult& result, bool replicated) {
        AfterCommit(result, replicated);
      });
  ConfigFollowerOptions follow;
  follow.own = own();
  follow.replaced_file = absl::StrCat(config_.state_dir(), "/config-replaced.jsonl");
  follow.still_follows = [this](const std::string& primary) { return StillFollows(primary); };
  follow.on_primary_exclusions = [this](const std::string& primary,
                                        const std::vector<std::string>& patterns) {
    LearnPeerExclusions(primary, patterns);
  };
  follow.note = note_;
  follower_ = std::make_unique<ConfigFollower>(std::move(follow), committer_.get(), clock_);
  committer_->InCommitOrder([this] { RefreshHelloCache(); });
  LogEvent(LogLevel::kInfo, "config_store_opened",
           {{"file", store_file_},
            {"entries", store_->size()},
            {"revision", store_->revision()},
            {"exclude", absl::StrJoin(own().patterns(), ",")}});
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  hooks_.Start();
  return absl::OkStatus();
}

void ConfigSync::Stop() {
  if (!started_) return;
  started_ = false;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  CommitBarrier();
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
    follower_->Supersede();
    if (follow_stream_ != nullptr) follow_stream_->Cancel();
    changed_.SignalAll();
  }
  stop_.Notify();
  hooks_.Stop();
  {
    absl::MutexLock lock(&watch_mu_);
    watch_cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void ConfigSync::Update(v1::Role role, uint64_t epoch, const std::string& primary,
                        const std::vector<ConfigPeerView>& live_peers) {
  absl::Time now = clock_->Now();
  // The primary's hello checksum over the pair's paths, to compare with.
  std::optional<ExclusionSet> effective = EffectiveFor(primary);
  std::string mine;
  if (effective.has_value()) mine = CachedRoot(*effective);
  const std::string following = follower_ == nullptr ? "" : follower_->following();
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
  // A peer whose list changed (a restart or a reload with another one):
  // forget the union made from the old one, and restart the stream with it,
  // whose open brings the list again (also when a hello older than the
  // stream's open erased a fresh union: the restart relearns it).
  bool relearn = false;
  for (const ConfigPeerView& p : live_peers) {
    auto it = effective_.find(p.id);
    if (it != effective_.end() && !p.exclusion_digest.empty() &&
        p.exclusion_digest != it->second.first) {
      effective_.erase(it);
      relearn = relearn || role == v1::PRIMARY || p.id == primary;
    }
  }
  if (relearn) {
    if (role == v1::PRIMARY) {
      restart_pushers_ = true;
      wake = true;
    } else if (follow_stream_ != nullptr) {
      follow_stream_->Cancel();
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
  if (follow_stream_ != nullptr &&
      (role == v1::PRIMARY || (!primary.empty() && primary != following))) {
    follow_stream_->Cancel();
  }
  if (follower_ == nullptr) return;
  // Drift: following the primary, at its revision, with another checksum.
  bool drift = false;
  const uint64_t primary_revision = follower_->primary_revision();
  if (role == v1::SECONDARY && !primary.empty() && follower_->synced_with() == primary &&
      !mine.empty()) {
    for (const ConfigPeerView& p : live_peers) {
      if (p.id != primary) continue;
      drift = !p.root_checksum.empty() && p.revision == primary_revision &&
              p.root_checksum != mine;
    }
  }
  if (!drift) {
    mismatch_since_ = absl::InfiniteFuture();
  } else if (mismatch_since_ == absl::InfiniteFuture()) {
    mismatch_since_ = now;
  } else if (now - mismatch_since_ >= kConfigDriftGrace) {
    LogEvent(LogLevel::kWarn, "config_checksum_mismatch",
             {{"primary", primary}, {"revision", primary_revision}});
    note_(absl::StrCat("config: checksum differs from ", primary, "'s at its revision ",
                       primary_revision, "; resyncing"));
    follower_->MarkUnsynced();
    mismatch_since_ = absl::InfiniteFuture();
    if (follow_stream_ != nullptr) {
      follower_->Supersede();
      follow_stream_->Cancel();
    }
  }
  if (wake) {
    // Run() may be busy reconciling: it sees the flag before it waits again.
    desired_changed_ = true;
    changed_.SignalAll();
  }
}

bool ConfigSync::in_sync() const {
  std::string synced_with = follower_ == nullptr ? "" : follower_->synced_with();
  absl::MutexLock lock(&mu_);
  if (desired_.role == v1::PRIMARY || desired_.primary.empty()) return true;
  return synced_with == desired_.primary;
}

void ConfigSync::FillHello(const std::string& peer, v1::Hello* hello) const {
  hello->set_exclusion_digest(own().digest());
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

void ConfigSync::RefreshHelloCache() {
  std::vector<ExclusionSet> sets = {own()};
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
  {
    // The union with the list in force now (SetExclusions changes both
    // under mu_).
    absl::MutexLock lock(&mu_);
    effective_[peer] = {theirs->digest(), own().Union(*theirs)};
  }
  if (committer_ == nullptr) return;
  committer_->InCommitOrder([this] { RefreshHelloCache(); });
}

std::optional<ExclusionSet> ConfigSync::EffectiveFor(const std::string& peer) const {
  absl::MutexLock lock(&mu_);
  auto it = effective_.find(peer);
  if (it == effective_.end()) return std::nullopt;
  return it->second.second;
}

void ConfigSync::Run() {
  Desired applied;
  bool first = true;
  while (true) {
    Desired desired;
    bool restart = false;
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_ && !desired_changed_) changed_.WaitWithTimeout(&mu_, absl::Seconds(1));
      desired_changed_ = false;
      if (stopping_) break;
      desired = desired_;
      restart = std::exchange(restart_pushers_, false);
    }
    bool same = !first && desired.role == applied.role && desired.epoch == applied.epoch;
    if (same) {
      std::vector<std::string> a, b;
      for (const auto& p : desired.live) a.push_back(p.id);
      for (const auto& p : applied.live) b.push_back(p.id);
      same = a == b;
    }
    if (!same || restart) Reconcile(desired, restart);
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

void ConfigSync::Reconcile(const Desired& desired, bool restart) {
  const bool primary = desired.role == v1::PRIMARY;
  std::vector<std::unique_ptr<ConfigPusher>> retired;
  std::vector<std::string> started;
  {
    absl::MutexLock lock(&pushers_mu_);
    if (!primary || desired.epoch != pusher_epoch_ || restart) {
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
        auto channel = channels_.find(peer.id);
        if (pushers_.count(peer.id) != 0 || channel == channels_.end()) continue;
        ConfigPusherOptions options;
        options.peer = peer.id;
        options.epoch = desired.epoch;
        options.own = own();
        pushers_[peer.id] = std::make_unique<ConfigPusher>(
            std::move(options), committer_.get(), &outboxes_, ConfigPushDialer(channel->second),
            [this](const std::string& id, const std::vector<std::string>& patterns) {
              LearnPeerExclusions(id, patterns);
            },
            clock_);
        started.push_back(peer.id);
      }
    }
  }
  retired.clear();  // joins their threads, outside the lock
  for (const std::string& peer : started) {
    LogEvent(LogLevel::kInfo, "config_push_started", {{"peer", peer}, {"epoch", desired.epoch}});
  }
}

absl::Status ConfigSync::Serve(const std::string& peer, ConfigFollowStream* stream) {
  if (follower_ == nullptr) return absl::UnavailableError("starting");
  v1::ConfigSyncMessage first;
  if (!stream->Read(&first)) return absl::OkStatus();
  if (!first.has_open()) {
    return absl::InvalidArgumentError("the first config sync message must be open");
  }
  if (absl::Status s = CheckSender(peer, first.open().epoch()); !s.ok()) return s;
  uint64_t epoch = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the agent is stopping");
    epoch = desired_.epoch;
  }
  absl::StatusOr<ConfigFollower::Opened> opened = follower_->Open(peer, first.open());
  if (!opened.ok()) return opened.status();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      follower_->Close(opened->stream);
      return absl::UnavailableError("the agent is stopping");
    }
    if (follow_stream_ != nullptr) follow_stream_->Cancel();
    follow_stream_ = stream;
  }
  struct Release {
    ConfigSync* s;
    ConfigFollowStream* stream;
    uint64_t id;
    ~Release() {
      s->follower_->Close(id);
      absl::MutexLock lock(&s->mu_);
      if (s->follow_stream_ == stream) s->follow_stream_ = nullptr;
    }
  } release{this, stream, opened->stream};
  opened->reply.mutable_open()->set_epoch(epoch);
  if (!stream->Write(opened->reply)) return absl::OkStatus();
  v1::ConfigSyncMessage in;
  while (stream->Read(&in)) {
    absl::StatusOr<std::optional<v1::ConfigSyncMessage>> reply =
        follower_->OnMessage(opened->stream, in);
    if (!reply.ok()) return reply.status();
    if (reply->has_value() && !stream->Write(**reply)) break;
  }
  return absl::OkStatus();
}

absl::Status ConfigSync::CheckSender(const std::string& peer, uint64_t epoch) const {
  absl::MutexLock lock(&mu_);
  return CheckStreamFromPrimary(desired_.role, desired_.epoch, desired_.primary, peer, epoch,
                                "config");
}

absl::Status ConfigSync::StillFollows(const std::string& primary) const {
  absl::MutexLock lock(&mu_);
  if (desired_.role == v1::PRIMARY || stopping_ ||
      (!desired_.primary.empty() && desired_.primary != primary)) {
    return absl::AbortedError(absl::StrCat(
        "the config stream from ", primary,
        " was superseded (this node is primary now, or follows another stream)"));
  }
  return absl::OkStatus();
}

ExclusionSet ConfigSync::ZoneLocalLocked() const {
  auto eff = effective_.find(desired_.primary);
  if (desired_.role == v1::PRIMARY || eff == effective_.end()) return own();
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
        own().empty() ? "none"
                     : absl::StrCat("those matching ", absl::StrJoin(own().patterns(), ", "));
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
  {
    absl::MutexLock lock(&mu_);
    handing_over_ = true;
  }
  CommitBarrier();
}

void ConfigSync::CommitBarrier() {
  // A local write is checked under the commit lock and queued to the
  // outboxes before that lock is released. Taking it once here means a write
  // that passed its check before the flag above is in the outboxes now (so
  // WaitReplicated waits for it), and every later one sees the flag.
  if (committer_ != nullptr) committer_->InCommitOrder([] {});
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
    // A named live secondary whose pusher has not started yet has applied
    // nothing of ours: not caught up (not vacuously so). A name that is no
    // live peer is the role machine's to refuse.
    if (!only.empty() && peers.empty()) {
      absl::MutexLock lock(&mu_);
      for (const ConfigPeerView& p : desired_.live) {
        if (p.id == only) peers.push_back(only);
      }
    }
    // A pusher between streams (reconnecting, or resyncing a secondary that
    // fell behind) has no outbox: not caught up.
    bool all = std::all_of(peers.begin(), peers.end(),
                           [&](const std::string& peer) { return outboxes_.CaughtUp(peer); });
    if (all) return true;
    if (round >= rounds) return false;
    absl::Notification never;
    never.WaitForNotificationWithTimeout(absl::Milliseconds(5));
  }
}

void ConfigSync::AfterCommit(const ConfigCommitResult& result, bool replicated) {
  if (replicated) ++commits_replicated_;
  RefreshHelloCache();
  // The secondaries, each with the paths its pair syncs.
  commits_replicated_ += outboxes_.Publish(result, *store_);
  NotifyWatchers(result);
  // Apply hooks, off this thread.
  hooks_.OnCommit(result);
}

void ConfigSync::NotifyWatchers(const ConfigCommitResult& result) {
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
    if (w->queue.size() >= kMaxConfigWatchQueue) {
      w->overflowed = true;
    } else {
      w->queue.push_back(std::move(r));
    }
  }
  if (!watchers_.empty()) watch_cv_.SignalAll();
}

}  // namespace cloudha
