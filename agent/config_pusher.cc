#include "agent/config_pusher.h"

#include "absl/strings/str_cat.h"
#include "agent/config_sync.h"
#include "agent/grpc_status.h"
#include "base/log.h"

namespace cloudha {

using namespace config_sync;  // NOLINT: this file is part of config sync

ConfigPusher::ConfigPusher(ConfigSync* sync, std::string peer, uint64_t epoch,
                           std::shared_ptr<grpc::Channel> channel)
    : sync_(sync),
      peer_(std::move(peer)),
      epoch_(epoch),
      stub_(v1::PeerService::NewStub(channel)) {
  thread_ = std::thread([this] { Run(); });
}

ConfigPusher::~ConfigPusher() {
  stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  thread_.join();
  Unregister();
}

std::string ConfigPusher::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void ConfigPusher::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stop_.HasBeenNotified()) {
    absl::Status s = RunStream();
    Unregister();
    if (stop_.HasBeenNotified()) break;
    {
      absl::MutexLock lock(&mu_);
      state_ = absl::StrCat("reconnecting: ", s.message());
    }
    if (s.ok()) {
      backoff = absl::Milliseconds(100);
    } else if (std::string(s.message()) != last_logged_) {
      // Once per distinct reason: a peer that refuses (it is primary
      // too, during a partition's end) is retried every 2 s.
      last_logged_ = std::string(s.message());
      LogEvent(LogLevel::kWarn, "config_stream_failed",
               {{"peer", peer_}, {"reason", s.message()}});
    }
    if (stop_.WaitForNotificationWithTimeout(backoff)) break;
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void ConfigPusher::Unregister() {
  absl::MutexLock lock(&sync_->commit_mu_);
  auto it = sync_->outboxes_.find(peer_);
  if (it != sync_->outboxes_.end() && it->second == outbox_) sync_->outboxes_.erase(it);
}

absl::Status ConfigPusher::RunStream() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return absl::OkStatus();
    context_ = &context;
    state_ = "connecting";
  }
  struct Clear {
    ConfigPusher* p;
    ~Clear() {
      absl::MutexLock lock(&p->mu_);
      p->context_ = nullptr;
    }
  } clear{this};
  // Waits for the connection rather than failing at once on a channel
  // still in backoff from when the peer was down.
  context.set_wait_for_ready(true);
  auto stream = stub_->SyncConfig(&context);
  v1::ConfigSyncMessage open;
  open.mutable_open()->set_epoch(epoch_);
  open.mutable_open()->set_revision(sync_->store_->revision());
  for (const std::string& p : sync_->own_.patterns()) open.mutable_open()->add_exclude(p);
  v1::ConfigSyncMessage reply;
  if (!stream->Write(open) || !stream->Read(&reply) || !reply.has_open()) {
    return FromGrpcStatus(stream->Finish());
  }
  absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(Patterns(reply.open().exclude()));
  if (!theirs.ok()) {
    context.TryCancel();
    stream->Finish();
    return absl::InvalidArgumentError(
        absl::StrCat(peer_, " sent a bad exclusion list: ", theirs.status().message()));
  }
  sync_->LearnPeerExclusions(peer_, theirs->patterns());
  const ExclusionSet effective = sync_->own_.Union(*theirs);
  outbox_ = std::make_shared<ConfigOutbox>(effective);
  {
    absl::MutexLock lock(&sync_->commit_mu_);
    sync_->outboxes_[peer_] = outbox_;
  }
  {
    absl::MutexLock lock(&mu_);
    state_ = "diffing";
  }
  // Answers from the secondary.
  std::deque<v1::ConfigSyncMessage> inbox;
  bool reader_done = false;
  std::thread reader([&] {
    v1::ConfigSyncMessage in;
    while (stream->Read(&in)) {
      absl::MutexLock lock(&outbox_->mu);
      inbox.push_back(in);
    }
    absl::MutexLock lock(&outbox_->mu);
    reader_done = true;
  });
  absl::Status result = Loop(stream.get(), effective, &inbox, &reader_done);
  bool ended_by_peer = false;
  {
    absl::MutexLock lock(&outbox_->mu);
    ended_by_peer = reader_done;
  }
  context.TryCancel();
  reader.join();
  grpc::Status finish = stream->Finish();
  if (stop_.HasBeenNotified()) return absl::OkStatus();
  // The secondary's own reason (disk full, not following us) says more
  // than "closed".
  if ((result.ok() || ended_by_peer) && !finish.ok()) {
    result = absl::Status(FromGrpcStatus(finish).code(),
                          absl::StrCat(peer_, ": ", finish.error_message()));
  }
  return result;
}

absl::Status ConfigPusher::Loop(
    grpc::ClientReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream,
    const ExclusionSet& effective, std::deque<v1::ConfigSyncMessage>* inbox, bool* reader_done) {
  StartDiff();
  while (!stop_.HasBeenNotified()) {
    std::deque<v1::ConfigSyncMessage> out;
    std::deque<v1::ConfigSyncMessage> in;
    {
      absl::MutexLock lock(&outbox_->mu);
      auto ready = [&] {
        return !outbox_->queue.empty() || !inbox->empty() || *reader_done ||
               outbox_->overflowed;
      };
      // Woken by the condition (a commit, an answer, the stream ending); the
      // timeout only bounds how long a stop waits.
      outbox_->mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(2));
      if (outbox_->overflowed) {
        return absl::ResourceExhaustedError(
            absl::StrCat(peer_, " does not keep up with the commits; resyncing"));
      }
      out.swap(outbox_->queue);
      in.swap(*inbox);
      if (out.empty() && in.empty() && *reader_done) {
        return absl::UnavailableError(absl::StrCat(peer_, " closed the config stream"));
      }
    }
    for (v1::ConfigSyncMessage& m : Coalesce(std::move(out))) {
      if (!stream->Write(m)) {
        return absl::UnavailableError(absl::StrCat("the config stream to ", peer_, " broke"));
      }
    }
    for (const v1::ConfigSyncMessage& m : in) {
      if (m.has_checksums()) {
        OnChecksums(m.checksums(), effective);
      } else if (m.has_ack()) {
        if (m.ack().resync()) {
          LogEvent(LogLevel::kWarn, "config_resync_requested", {{"peer", peer_}});
          StartDiff();
        } else if (diff_done_) {
          {
            absl::MutexLock lock(&outbox_->mu);
            outbox_->acked = std::max(outbox_->acked, m.ack().revision());
            outbox_->synced = true;
          }
          absl::MutexLock lock(&mu_);
          state_ = absl::StrCat("in sync at revision ", m.ack().revision());
        }
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(peer_, " sent an unexpected message on the config stream"));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<v1::ConfigSyncMessage> ConfigPusher::Coalesce(
    std::deque<v1::ConfigSyncMessage> in) {
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
    if (bytes >= kChunkBytes) flush();
  }
  flush();
  return out;
}

void ConfigPusher::StartDiff() {
  {
    absl::MutexLock lock(&outbox_->mu);
    outbox_->synced = false;
  }
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
  std::vector<std::string> descend;
  absl::MutexLock commit(&sync_->commit_mu_);
  ConfigStore* store = sync_->store_.get();
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
        mine.count + r->entries() <= kWholeSubtree) {
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
      if (lc == 0 || rcnt == 0 || lc + rcnt <= kWholeSubtree) {
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
      if (bytes >= kChunkBytes) flush();
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
    absl::MutexLock lock(&mu_);
    state_ = absl::StrCat("synced (", sent_entries_, " entries sent)");
    sent_entries_ = 0;
  }
}

}  // namespace cloudha
