#include "sync/config_pusher.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "sync/config_sync_limits.h"

namespace cloudha {

ConfigPusher::ConfigPusher(ConfigPusherOptions options, ConfigCommitter* committer,
                           ConfigOutboxRegistry* outboxes, Dialer dial,
                           PeerExclusionsFn on_peer_exclusions, Clock* clock)
    : options_(std::move(options)),
      committer_(committer),
      store_(committer->store()),
      outboxes_(outboxes),
      dial_(std::move(dial)),
      on_peer_exclusions_(std::move(on_peer_exclusions)),
      clock_(clock) {
  thread_ = std::thread([this] { Run(); });
}

ConfigPusher::~ConfigPusher() {
  {
    absl::MutexLock lock(&mu_);
    stop_.Notify();
    if (stream_ != nullptr) stream_->Cancel();
  }
  // A cancelled stream ends the reader, which wakes the loop.
  thread_.join();
  if (outbox_ != nullptr) outboxes_->Unregister(options_.peer, outbox_.get());
}

std::string ConfigPusher::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void ConfigPusher::SetState(std::string state) {
  absl::MutexLock lock(&mu_);
  state_ = std::move(state);
}

void ConfigPusher::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stop_.HasBeenNotified()) {
    absl::Status s = RunStream();
    if (outbox_ != nullptr) outboxes_->Unregister(options_.peer, outbox_.get());
    if (stop_.HasBeenNotified()) break;
    SetState(absl::StrCat("reconnecting: ", s.message()));
    if (s.ok()) {
      backoff = absl::Milliseconds(100);
    } else if (std::string(s.message()) != last_logged_) {
      // Once per distinct reason: a peer that refuses (it is primary
      // too, during a partition's end) is retried every 2 s.
      last_logged_ = std::string(s.message());
      LogEvent(LogLevel::kWarn, "config_stream_failed",
               {{"peer", options_.peer}, {"reason", s.message()}});
    }
    if (!clock_->SleepUntil(clock_->Now() + backoff, stop_)) break;
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::Status ConfigPusher::RunStream() {
  std::unique_ptr<ConfigPushStream> stream = dial_();
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return absl::OkStatus();
    stream_ = stream.get();
    state_ = "connecting";
  }
  struct Clear {
    ConfigPusher* p;
    ~Clear() {
      absl::MutexLock lock(&p->mu_);
      p->stream_ = nullptr;
    }
  } clear{this};
  v1::ConfigSyncMessage open;
  open.mutable_open()->set_epoch(options_.epoch);
  open.mutable_open()->set_revision(store_->revision());
  for (const std::string& p : options_.own.patterns()) open.mutable_open()->add_exclude(p);
  v1::ConfigSyncMessage reply;
  if (!stream->Write(open) || !stream->Read(&reply) || !reply.has_open()) {
    return stream->Finish();
  }
  absl::StatusOr<ExclusionSet> theirs =
      ExclusionSet::Create(ExclusionPatterns(reply.open().exclude()));
  if (!theirs.ok()) {
    stream->Cancel();
    stream->Finish().IgnoreError();  // the bad list is the reason to give
    return absl::InvalidArgumentError(
        absl::StrCat(options_.peer, " sent a bad exclusion list: ", theirs.status().message()));
  }
  if (on_peer_exclusions_) on_peer_exclusions_(options_.peer, theirs->patterns());
  const ExclusionSet effective = options_.own.Union(*theirs);
  outbox_ = std::make_shared<ConfigOutbox>(effective);
  outboxes_->Register(options_.peer, outbox_);
  SetState("diffing");
  // Answers from the secondary, shared with this thread under the outbox's
  // lock (so that an answer wakes the loop like a commit does).
  std::deque<v1::ConfigSyncMessage> inbox;
  bool reader_done = false;
  std::thread reader([&] {
    v1::ConfigSyncMessage in;
    while (stream->Read(&in)) {
      outbox_->Locked([&] { inbox.push_back(in); });
    }
    outbox_->Locked([&] { reader_done = true; });
  });
  absl::Status result = Loop(stream.get(), effective, &inbox, &reader_done);
  bool ended_by_peer = false;
  outbox_->Locked([&] { ended_by_peer = reader_done; });
  stream->Cancel();
  reader.join();
  absl::Status finish = stream->Finish();
  if (stop_.HasBeenNotified()) return absl::OkStatus();
  // The secondary's own reason (disk full, not following us) says more
  // than "closed".
  if ((result.ok() || ended_by_peer) && !finish.ok()) {
    result = absl::Status(finish.code(), absl::StrCat(options_.peer, ": ", finish.message()));
  }
  return result;
}

absl::Status ConfigPusher::Loop(ConfigPushStream* stream, const ExclusionSet& effective,
                                std::deque<v1::ConfigSyncMessage>* inbox, bool* reader_done) {
  StartDiff();
  while (!stop_.HasBeenNotified()) {
    std::deque<v1::ConfigSyncMessage> out;
    std::deque<v1::ConfigSyncMessage> in;
    bool done = false;
    // Woken by a commit, an answer, the stream ending or a stop; the
    // timeout is only a backstop.
    bool ok = outbox_->Take(
        &out, [&] { return !inbox->empty() || *reader_done || stop_.HasBeenNotified(); },
        absl::Seconds(2));
    if (!ok) {
      return absl::ResourceExhaustedError(
          absl::StrCat(options_.peer, " does not keep up with the commits; resyncing"));
    }
    outbox_->Locked([&] {
      in.swap(*inbox);
      done = *reader_done;
    });
    if (out.empty() && in.empty() && done) {
      return absl::UnavailableError(absl::StrCat(options_.peer, " closed the config stream"));
    }
    for (v1::ConfigSyncMessage& m : Coalesce(std::move(out))) {
      if (!stream->Write(m)) {
        return absl::UnavailableError(
            absl::StrCat("the config stream to ", options_.peer, " broke"));
      }
    }
    for (const v1::ConfigSyncMessage& m : in) {
      if (m.has_checksums()) {
        OnChecksums(m.checksums(), effective);
      } else if (m.has_ack()) {
        if (m.ack().resync()) {
          LogEvent(LogLevel::kWarn, "config_resync_requested", {{"peer", options_.peer}});
          StartDiff();
        } else if (diff_done_) {
          outbox_->Acked(m.ack().revision());
          SetState(absl::StrCat("in sync at revision ", m.ack().revision()));
        }
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(options_.peer, " sent an unexpected message on the config stream"));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<v1::ConfigSyncMessage> ConfigPusher::Coalesce(std::deque<v1::ConfigSyncMessage> in) {
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

void ConfigPusher::StartDiff() {
  outbox_->Unsynced();
  diff_done_ = false;
  outstanding_ = 1;
  requested_ = {""};
  v1::ConfigSyncMessage m;
  m.mutable_checksum_request()->add_prefixes("");
  outbox_->Push(std::move(m));
}

void ConfigPusher::OnChecksums(const v1::ConfigChecksums& theirs, const ExclusionSet& effective) {
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
