#include "agent/config_sync.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "agent/config_sync_service.h"
#include "sync/config_sync_limits.h"

namespace cloudha {

// ---- Admin ----------------------------------------------------------------

absl::Status ConfigSync::Query(const std::string& peer, const v1::ConfigQueryRequest& request,
                               v1::ConfigQueryResponse* response) {
  if (store_ == nullptr) return absl::UnavailableError("starting");
  absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(ExclusionPatterns(request.exclude()));
  if (!theirs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("exclusion list: ", theirs.status().message()));
  }
  std::vector<std::string> prefixes;
  for (const std::string& p : request.checksum_prefixes()) prefixes.push_back(NormalizeConfigPrefix(p));
  for (const std::string& p : request.entry_prefixes()) {
    if (absl::Status s = ValidateConfigPrefix(NormalizeConfigPrefix(p)); !s.ok()) return s;
  }
  for (const std::string& p : prefixes) {
    if (absl::Status s = ValidateConfigPrefix(p); !s.ok()) return s;
  }
  ExclusionSet effective = own().Union(*theirs);
  {
    const ExclusionSet mine = own();  // a copy: own() returns a temporary
    for (const std::string& p : mine.patterns()) response->add_exclude(p);
  }
  response->set_revision(store_->revision());
  FillConfigSubtrees(*store_, prefixes, effective, response->mutable_subtrees());
  for (const std::string& p : request.entry_prefixes()) {
    for (const StoredEntry& e : store_->List(NormalizeConfigPrefix(p))) {
      if (effective.Excludes(e.path)) continue;
      v1::ConfigEntry* out = response->add_entries();
      out->set_path(e.path);
      out->set_value(e.value);
      out->set_revision(e.revision);
    }
  }
  (void)peer;
  return absl::OkStatus();
}

absl::StatusOr<v1::ConfigQueryResponse> ConfigSync::QueryPeer(
    const std::string& peer, const v1::ConfigQueryRequest& request) const {
  auto it = channels_.find(peer);
  if (it == channels_.end()) {
    return absl::NotFoundError(absl::StrCat(peer, " is not a configured peer"));
  }
  return QueryConfigPeer(peer, it->second, request, clock_);
}

absl::Status ConfigSync::Get(const v1::GetConfigRequest& request,
                             v1::GetConfigResponse* response) {
  if (absl::Status s = ValidateConfigPath(request.path()); !s.ok()) return s;
  std::optional<StoredEntry> e = store_->Get(request.path());
  if (!e.has_value()) {
    return absl::NotFoundError(absl::StrCat(request.path(), ": not set"));
  }
  response->mutable_entry()->set_path(e->path);
  response->mutable_entry()->set_value(e->value);
  response->mutable_entry()->set_revision(e->revision);
  return absl::OkStatus();
}

absl::Status ConfigSync::Put(const v1::PutConfigRequest& request,
                             v1::PutConfigResponse* response) {
  std::vector<ConfigChange> changes;
  std::set<std::string> written;
  if (!request.path().empty()) {
    changes.push_back({request.path(), request.value()});
    written.insert(request.path());
  }
  for (const v1::ConfigEntry& e : request.entries()) {
    changes.push_back({e.path(), e.value()});
    written.insert(e.path());
  }
  std::string prefix = NormalizeConfigPrefix(request.prefix());
  if (request.replace()) {
    if (request.prefix().empty()) {
      return absl::InvalidArgumentError("replace needs the prefix it replaces; \".\" replaces the whole store");
    }
    if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return s;
    for (const std::string& path : written) {
      if (!InConfigSubtree(path, prefix)) {
        return absl::InvalidArgumentError(absl::StrCat(path, " is not below the replaced prefix \"", prefix,
                                         "\""));
      }
    }
  } else if (changes.empty()) {
    return absl::InvalidArgumentError("nothing to write: no path given");
  }
  for (const ConfigChange& c : changes) {
    if (absl::Status s = ValidateConfigPath(c.path); !s.ok()) return s;
  }
  if (request.replace()) {
    // What replace deletes is of the kind the request writes: synced paths
    // on a primary (its zone-local values stay), unless the request writes
    // only zone-local paths; zone-local paths on a secondary.
    ExclusionSet local;
    bool primary = false;
    {
      absl::MutexLock lock(&mu_);
      primary = desired_.role == v1::PRIMARY;
      local = ZoneLocalLocked();
    }
    bool all_local = !written.empty() && std::all_of(written.begin(), written.end(),
                                                      [&](const std::string& p) {
                                                        return local.Excludes(p);
                                                      });
    bool delete_local = !primary || all_local;
    for (const StoredEntry& e : store_->List(prefix)) {
      if (written.count(e.path) != 0 || local.Excludes(e.path) != delete_local) continue;
      changes.push_back({e.path, std::nullopt});
    }
  }
  absl::StatusOr<ConfigCommitResult> r = committer_->WriteLocal(changes);
  if (!r.ok()) return r.status();
  response->set_revision(r->revision != 0 ? r->revision : store_->revision());
  return absl::OkStatus();
}

absl::Status ConfigSync::Delete(const v1::DeleteConfigRequest& request,
                                v1::DeleteConfigResponse* response) {
  std::vector<ConfigChange> changes;
  if (request.recursive()) {
    if (request.path().empty()) {
      return absl::InvalidArgumentError("a recursive delete needs its prefix; \".\" deletes the whole store");
    }
    std::string prefix = NormalizeConfigPrefix(request.path());
    if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return s;
    for (const StoredEntry& e : store_->List(prefix)) changes.push_back({e.path, std::nullopt});
  } else {
    if (absl::Status s = ValidateConfigPath(request.path()); !s.ok()) return s;
    if (!store_->Get(request.path()).has_value()) {
      return absl::NotFoundError(absl::StrCat(request.path(), ": not set"));
    }
    changes.push_back({request.path(), std::nullopt});
  }
  absl::StatusOr<ConfigCommitResult> r = committer_->WriteLocal(changes);
  if (!r.ok()) return r.status();
  response->set_revision(r->revision != 0 ? r->revision : store_->revision());
  response->set_deleted(r->applied.size());
  return absl::OkStatus();
}

absl::Status ConfigSync::List(const v1::ListConfigRequest& request,
                              v1::ListConfigResponse* response) {
  std::string prefix = NormalizeConfigPrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return s;
  for (const StoredEntry& e : store_->List(prefix)) {
    v1::ConfigEntry* out = response->add_entries();
    out->set_path(e.path);
    out->set_value(e.value);
    out->set_revision(e.revision);
  }
  response->set_revision(store_->revision());
  return absl::OkStatus();
}

absl::Status ConfigSync::Watch(const v1::WatchConfigRequest& request,
                               const std::function<bool(const v1::WatchConfigResponse&)>& write,
                               const std::function<bool()>& cancelled) {
  std::string prefix = NormalizeConfigPrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return s;
  auto watcher = std::make_shared<Watcher>();
  watcher->prefix = prefix;
  v1::WatchConfigResponse first;
  committer_->InCommitOrder([&] {  // no commit between the two
    absl::MutexLock watch_lock(&watch_mu_);
    watchers_.insert(watcher);
    first.set_revision(store_->revision());
  });
  struct Remove {
    ConfigSync* s;
    std::shared_ptr<Watcher> w;
    ~Remove() {
      absl::MutexLock lock(&s->watch_mu_);
      s->watchers_.erase(w);
    }
  } remove{this, watcher};
  // The first message, without changes, says the watch is in place.
  if (!write(first)) return absl::OkStatus();
  while (!cancelled() && !stop_.HasBeenNotified()) {
    std::deque<v1::WatchConfigResponse> batch;
    {
      absl::MutexLock lock(&watch_mu_);
      if (watcher->queue.empty() && !watcher->overflowed) {
        watch_cv_.WaitWithTimeout(&watch_mu_, absl::Milliseconds(200));
      }
      if (watcher->overflowed) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the watcher fell ", kMaxConfigWatchQueue, " commits behind; watch again"));
      }
      batch.swap(watcher->queue);
    }
    for (const v1::WatchConfigResponse& r : batch) {
      if (!write(r)) return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status ConfigSync::Diff(const v1::DiffConfigRequest& request,
                              v1::DiffConfigResponse* response) {
  std::string prefix = NormalizeConfigPrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return s;
  std::vector<std::string> peers;
  if (!request.peer().empty()) {
    if (channels_.count(request.peer()) == 0) {
      return absl::NotFoundError(absl::StrCat(request.peer(), " is not a configured peer"));
    }
    peers.push_back(request.peer());
  } else {
    for (const auto& [id, channel] : channels_) peers.push_back(id);
  }
  {
    const ExclusionSet mine = own();  // a copy: own() returns a temporary
    for (const std::string& p : mine.patterns()) response->add_exclude(p);
  }
  for (const std::string& peer : peers) {
    v1::DiffConfigResponse::PeerDiff* out = response->add_peers();
    out->set_peer(peer);
    v1::ConfigQueryRequest query;
    {
      const ExclusionSet mine = own();  // a copy: own() returns a temporary
      for (const std::string& p : mine.patterns()) query.add_exclude(p);
    }
    query.add_entry_prefixes(prefix);
    absl::StatusOr<v1::ConfigQueryResponse> theirs = QueryPeer(peer, query);
    if (!theirs.ok()) {
      out->set_error(std::string(theirs.status().message()));
      continue;
    }
    absl::StatusOr<ExclusionSet> their_set = ExclusionSet::Create(ExclusionPatterns(theirs->exclude()));
    if (!their_set.ok()) {
      out->set_error(absl::StrCat("bad exclusion list: ", their_set.status().message()));
      continue;
    }
    LearnPeerExclusions(peer, their_set->patterns());
    ExclusionSet effective = own().Union(*their_set);
    for (const std::string& p : effective.patterns()) out->add_exclude(p);
    std::map<std::string, std::string> local, remote;
    for (const StoredEntry& e : store_->List(prefix)) {
      if (!effective.Excludes(e.path)) local[e.path] = e.value;
    }
    for (const v1::ConfigEntry& e : theirs->entries()) {
      if (!effective.Excludes(e.path())) remote[e.path()] = e.value();
    }
    auto l = local.begin();
    auto r = remote.begin();
    while (l != local.end() || r != remote.end()) {
      v1::DiffConfigResponse::Difference d;
      if (r == remote.end() || (l != local.end() && l->first < r->first)) {
        d.set_path(l->first);
        d.set_local_value(l->second);
        ++l;
      } else if (l == local.end() || r->first < l->first) {
        d.set_path(r->first);
        d.set_peer_value(r->second);
        ++r;
      } else {
        bool same = l->second == r->second;
        if (!same) {
          d.set_path(l->first);
          d.set_local_value(l->second);
          d.set_peer_value(r->second);
        }
        ++l;
        ++r;
        if (same) continue;
      }
      *out->add_differences() = std::move(d);
    }
  }
  return absl::OkStatus();
}

absl::Status ConfigSync::Checksums(const v1::ConfigChecksumsRequest& request,
                                   v1::ConfigChecksumsResponse* response) {
  std::string prefix = NormalizeConfigPrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return s;
  ExclusionSet all = own();
  struct Asked {
    std::string peer;
    absl::StatusOr<v1::ConfigQueryResponse> answer;
  };
  std::vector<Asked> asked;
  if (request.cluster()) {
    // First round: every node's list; the union is what all columns leave
    // out. A second round asks again those that answered over less.
    auto ask = [&](const std::string& peer, const ExclusionSet& with) {
      v1::ConfigQueryRequest q;
      for (const std::string& p : with.patterns()) q.add_exclude(p);
      q.add_checksum_prefixes(prefix);
      return QueryPeer(peer, q);
    };
    for (const auto& [id, channel] : channels_) asked.push_back({id, ask(id, own())});
    for (const Asked& a : asked) {
      if (!a.answer.ok()) continue;
      absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(ExclusionPatterns(a.answer->exclude()));
      if (theirs.ok()) {
        LearnPeerExclusions(a.peer, theirs->patterns());
        all = all.Union(*theirs);
      }
    }
    for (Asked& a : asked) {
      if (!a.answer.ok()) continue;
      absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(ExclusionPatterns(a.answer->exclude()));
      if (theirs.ok() && own().Union(*theirs) == all) continue;
      a.answer = ask(a.peer, all);
    }
  }
  for (const std::string& p : all.patterns()) response->add_exclude(p);
  v1::ConfigChecksumsResponse::NodeChecksums* self = response->add_nodes();
  self->set_node_id(config_.node().id());
  self->set_revision(store_->revision());
  FillConfigSubtrees(*store_, {prefix}, all, self->mutable_subtrees());
  for (Asked& a : asked) {
    v1::ConfigChecksumsResponse::NodeChecksums* node = response->add_nodes();
    node->set_node_id(a.peer);
    if (!a.answer.ok()) {
      node->set_error(std::string(a.answer.status().message()));
      continue;
    }
    node->set_revision(a.answer->revision());
    *node->mutable_subtrees() = a.answer->subtrees();
  }
  return absl::OkStatus();
}

absl::Status ConfigSync::History(const v1::ConfigHistoryRequest& request,
                                 v1::ConfigHistoryResponse* response) {
  std::string prefix = NormalizeConfigPrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return s;
  uint32_t limit = request.limit() == 0 ? kConfigHistoryLimit : request.limit();
  for (const ConfigHistoryRecord& r : store_->History(kConfigHistoryLimit)) {
    if (static_cast<uint32_t>(response->changes_size()) >= limit) break;
    if (!InConfigSubtree(r.path, prefix)) continue;
    v1::ConfigHistoryResponse::Change* c = response->add_changes();
    c->set_revision(r.revision);
    c->set_path(r.path);
    if (r.value.has_value()) c->set_value(*r.value);
    c->set_unix_ms(r.unix_ms);
  }
  return absl::OkStatus();
}

void ConfigSync::FillStatus(v1::StatusResponse* status) const {
  if (store_ == nullptr) return;
  // From the caches only: status never waits for a commit's fsync.
  v1::ConfigSyncStatus* c = status->mutable_config();
  {
    absl::MutexLock lock(&cache_mu_);
    c->set_revision(cached_revision_);
    c->set_entries(cached_size_);
  }
  c->set_root_checksum(absl::BytesToHexString(CachedRoot(own())));
  {
    const ExclusionSet mine = own();  // a copy: own() returns a temporary
    for (const std::string& p : mine.patterns()) c->add_exclude(p);
  }
  c->set_in_sync(in_sync());
  c->set_store_file(store_file_);
  c->set_commits_replicated(commits_replicated_.load());
  std::map<std::string, std::string> pushing;
  {
    absl::MutexLock lock(&pushers_mu_);
    for (const auto& [id, pusher] : pushers_) pushing[id] = pusher->state();
  }
  // Copies under mu_, checksums from the cache: status never holds mu_
  // while the store is busy (hellos need mu_).
  std::map<std::string, ExclusionSet> effective;
  std::vector<ConfigPeerView> live;
  std::string following, synced_with;
  std::map<std::string, absl::Time> mismatch_since;
  absl::Time now = clock_->Now();
  const ConfigFollower::Stats follow = follower_->stats();
  following = follower_->following();
  synced_with = follower_->synced_with();
  c->set_replica_of(following);
  c->set_primary_revision(follower_->primary_revision());
  c->set_resyncs(follow.resyncs);
  c->set_last_resync_ms(follow.last_resync_ms);
  c->set_last_resync_entries(follow.last_resync_entries);
  c->set_hook_failures(hooks_.failures());
  {
    absl::MutexLock lock(&mu_);
    // The replication error first (cleared by a verified resync), else the
    // last apply hook failure.
    c->set_last_error(!follow.last_error.empty() ? follow.last_error : hook_error_);
    for (const auto& [peer, e] : effective_) effective.emplace(peer, e.second);
    live = desired_.live;
    mismatch_since = peer_mismatch_since_;
  }
  for (v1::PeerStatus& peer : *status->mutable_peers()) {
    v1::PeerConfigStatus* pc = peer.mutable_config();
    auto eff = effective.find(peer.id());
    for (const ConfigPeerView& view : live) {
      if (view.id != peer.id()) continue;
      pc->set_revision(view.revision);
      if (eff != effective.end() && !view.root_checksum.empty()) {
        bool match = view.root_checksum == CachedRoot(eff->second);
        auto since = mismatch_since.find(peer.id());
        bool settled =
            match || (since != mismatch_since.end() && now - since->second >= absl::Seconds(1));
        pc->set_compared(settled);
        pc->set_checksum_match(match);
      }
    }
    if (eff != effective.end()) {
      for (const std::string& p : eff->second.patterns()) pc->add_effective_exclude(p);
    }
    if (pushing.count(peer.id()) != 0) {
      pc->set_stream(absl::StrCat("pushing: ", pushing[peer.id()]));
    } else if (following == peer.id()) {
      pc->set_stream(synced_with == peer.id() ? "following: in sync" : "following: syncing");
    }
  }
}

}  // namespace cloudha
