#include "sync/config_push_session.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "sync/config_sync_limits.h"

namespace cloudha {

v1::ConfigSyncMessage ConfigPushSession::OpenMessage(uint64_t epoch, const ConfigStore& store,
                                                     const ExclusionSet& own) {
  v1::ConfigSyncMessage open;
  open.mutable_open()->set_epoch(epoch);
  open.mutable_open()->set_revision(store.revision());
  for (const std::string& p : own.patterns()) open.mutable_open()->add_exclude(p);
  return open;
}

absl::StatusOr<std::unique_ptr<ConfigPushSession>> ConfigPushSession::Start(
    const std::string& peer, const ExclusionSet& own, const v1::ConfigSyncMessage& reply,
    ConfigCommitter* committer, ConfigOutboxRegistry* outboxes) {
  if (!reply.has_open()) {
    return absl::InvalidArgumentError(
        absl::StrCat(peer, " did not answer the config stream's open message with its own"));
  }
  std::vector<std::string> patterns = ExclusionPatterns(reply.open().exclude());
  absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(patterns);
  if (!theirs.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(peer, " sent a bad exclusion list: ", theirs.status().message()));
  }
  std::unique_ptr<ConfigPushSession> session(new ConfigPushSession(
      peer, own.Union(*theirs), theirs->patterns(), committer, outboxes));
  session->StartDiff();
  return session;
}

ConfigPushSession::ConfigPushSession(std::string peer, ExclusionSet effective,
                                     std::vector<std::string> peer_exclusions,
                                     ConfigCommitter* committer, ConfigOutboxRegistry* outboxes)
    : peer_(std::move(peer)),
      effective_(std::move(effective)),
      peer_exclusions_(std::move(peer_exclusions)),
      committer_(committer),
      store_(committer->store()),
      outboxes_(outboxes),
      outbox_(std::make_shared<ConfigOutbox>(effective_)) {
  outboxes_->Register(peer_, outbox_);
}

ConfigPushSession::~ConfigPushSession() { outboxes_->Unregister(peer_, outbox_.get()); }

std::string ConfigPushSession::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void ConfigPushSession::SetState(std::string state) {
  absl::MutexLock lock(&mu_);
  state_ = std::move(state);
}

absl::Status ConfigPushSession::OnMessage(const v1::ConfigSyncMessage& in) {
  if (in.has_checksums()) {
    OnChecksums(in.checksums());
  } else if (in.has_ack()) {
    if (in.ack().resync()) {
      LogEvent(LogLevel::kWarn, "config_resync_requested", {{"peer", peer_}});
      StartDiff();
    } else if (diff_done_) {
      outbox_->Acked(in.ack().revision());
      SetState(absl::StrCat("in sync at revision ", in.ack().revision()));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(peer_, " sent an unexpected message on the config stream"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::ConfigSyncMessage>> ConfigPushSession::TakeOutgoing(
    const std::function<bool()>& wake, absl::Duration timeout) {
  std::deque<v1::ConfigSyncMessage> out;
  if (!outbox_->Take(&out, wake, timeout)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(peer_, " does not keep up with the commits; resyncing"));
  }
  return Coalesce(std::move(out));
}

std::vector<v1::ConfigSyncMessage> ConfigPushSession::Coalesce(std::deque<v1::ConfigSyncMessage> in) {
  std::vector<v1::ConfigSyncMessage> out;
  std::map<std::string, std::optional<std::string>> merged;  // path -> value, nullopt: delete
  std::vector<std::string> order;
  uint64_t revision = 0;
  std::string root;
  size_t bytes = 0;
  // A commit without paths (only what the pair does not sync) still
  // carries the revision and root checksum the secondary acks.
  bool pending = false;
  auto flush = [&] {
    if (!pending) return;
    pending = false;
    v1::ConfigSyncMessage m;
    v1::ConfigCommit* c = m.mutable_commit();
    for (const std::string& path : order) {
      const std::optional<std::string>& v = merged[path];
      if (v.has_value()) {
        v1::ConfigEntry* e = c->add_puts();
        e->set_path(path);
        e->set_value(*v);
        e->set_revision(revision);
      } else {
        c->add_deletes(path);
      }
    }
    c->set_revision(revision);
    c->set_root_checksum(root);
    out.push_back(std::move(m));
    merged.clear();
    order.clear();
    bytes = 0;
  };
  for (v1::ConfigSyncMessage& m : in) {
    if (!m.has_commit()) {
      flush();
      out.push_back(std::move(m));
      continue;
    }
    const v1::ConfigCommit& c = m.commit();
    auto note = [&](const std::string& path, std::optional<std::string> value) {
      bytes += path.size() + (value.has_value() ? value->size() : 0);
      auto [it, fresh] = merged.insert_or_assign(path, std::move(value));
      if (fresh) order.push_back(path);
    };
    for (const v1::ConfigEntry& e : c.puts()) note(e.path(), e.value());
    for (const std::string& d : c.deletes()) note(d, std::nullopt);
    revision = c.revision();
    root = c.root_checksum();
    pending = true;
    if (bytes >= kConfigChunkBytes) flush();
  }
  flush();
  return out;
}

void ConfigPushSession::StartDiff() {
  SetState("diffing");
  outbox_->Unsynced();
  diff_done_ = false;
  outstanding_ = 1;
  requested_ = {""};
  v1::ConfigSyncMessage m;
  m.mutable_checksum_request()->add_prefixes("");
  outbox_->Push(std::move(m));
}

void ConfigPushSession::OnChecksums(const v1::ConfigChecksums& theirs) {
  const ExclusionSet& effective = effective_;
  if (outstanding_ > 0) --outstanding_;
  using Key = std::pair<std::string, bool>;  // prefix, exact
  std::map<Key, const v1::ConfigChecksums::Subtree*> remote;
  for (const auto& s : theirs.subtrees()) remote[{s.prefix(), s.exact()}] = &s;
  committer_->InCommitOrder([&] {
    ConfigStore* store = store_;
    std::vector<std::string> descend;
    std::vector<std::string> whole;
    std::vector<StoredEntry> singles;
    std::vector<std::string> single_deletes;
    std::vector<std::string> requested;
    requested.swap(requested_);
    for (const std::string& prefix : requested) {
      SubtreeChecksum mine = store->Checksum(prefix, effective);
      const v1::ConfigChecksums::Subtree* r = remote[{prefix, false}];
      if (r != nullptr && r->checksum() == mine.checksum && r->entries() == mine.count) continue;
      if (mine.count == 0 || r == nullptr || r->entries() == 0 ||
          mine.count + r->entries() <= kConfigWholeSubtree) {
        whole.push_back(prefix);
        continue;
      }
      std::map<Key, SubtreeChecksum> local;
      for (SubtreeChecksum& c : store->Children(prefix, effective)) {
        local[{c.prefix, c.exact}] = std::move(c);
      }
      std::set<Key> keys;
      for (const auto& [k, c] : local) keys.insert(k);
      for (const auto& [k, c] : remote) {
        if (k.first != prefix && InConfigSubtree(k.first, prefix)) keys.insert(k);
        if (k.first == prefix && k.second) keys.insert(k);
      }
      for (const Key& k : keys) {
        auto l = local.find(k);
        auto rr = remote.find(k);
        const v1::ConfigChecksums::Subtree* rc = rr == remote.end() ? nullptr : rr->second;
        bool same = l != local.end() && rc != nullptr && rc->checksum() == l->second.checksum &&
                    rc->entries() == l->second.count;
        if (same) continue;
        if (k.second) {  // the entry at exactly the prefix
          std::optional<StoredEntry> e = store->Get(k.first);
          if (e && !effective.Excludes(k.first)) {
            singles.push_back(*e);
          } else {
            single_deletes.push_back(k.first);
          }
          continue;
        }
        uint64_t lc = l == local.end() ? 0 : l->second.count;
        uint64_t rcnt = rc == nullptr ? 0 : rc->entries();
        if (lc == 0 || rcnt == 0 || lc + rcnt <= kConfigWholeSubtree) {
          whole.push_back(k.first);
        } else {
          descend.push_back(k.first);
        }
      }
    }
    // Content, in chunks.
    v1::ConfigSyncMessage m;
    size_t bytes = 0;
    auto flush = [&] {
      if (m.has_pull_response()) {
        m.mutable_pull_response()->set_revision(store->revision());
        sent_entries_ += m.pull_response().entries_size() + m.pull_response().deletes_size();
        outbox_->Push(std::move(m));
      }
      m.Clear();
      bytes = 0;
    };
    for (const StoredEntry& e : singles) {
      v1::ConfigEntry* out = m.mutable_pull_response()->add_entries();
      out->set_path(e.path);
      out->set_value(e.value);
      out->set_revision(e.revision);
    }
    for (const std::string& d : single_deletes) m.mutable_pull_response()->add_deletes(d);
    for (const std::string& prefix : whole) {
      m.mutable_pull_response()->add_prefixes(prefix);
      for (const StoredEntry& e : store->List(prefix)) {
        if (effective.Excludes(e.path)) continue;
        v1::ConfigEntry* out = m.mutable_pull_response()->add_entries();
        out->set_path(e.path);
        out->set_value(e.value);
        out->set_revision(e.revision);
        bytes += e.path.size() + e.value.size() + 16;
        if (bytes >= kConfigChunkBytes) flush();
      }
    }
    flush();
    if (!descend.empty()) {
      v1::ConfigSyncMessage request;
      for (const std::string& d : descend) request.mutable_checksum_request()->add_prefixes(d);
      requested_ = descend;
      outbox_->Push(std::move(request));
      ++outstanding_;
    }
    if (outstanding_ == 0) {
      v1::ConfigSyncMessage done;
      done.mutable_pull_response()->set_complete(true);
      done.mutable_pull_response()->set_revision(store->revision());
      done.mutable_pull_response()->set_root_checksum(store->Checksum("", effective).checksum);
      outbox_->Push(std::move(done));
      diff_done_ = true;
      SetState(absl::StrCat("synced (", sent_entries_, " entries sent)"));
      sent_entries_ = 0;
    }
  });
}

}  // namespace cloudha
