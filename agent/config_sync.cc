#include "agent/config_sync.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/command_runner.h"
#include "agent/log.h"
#include "agent/sync_channel.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"

namespace cloudha {
namespace {



std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

// "firewall." and "firewall" name the same subtree.
std::string NormalizePrefix(std::string prefix) {
  while (!prefix.empty() && prefix.back() == '.') prefix.pop_back();
  return prefix;
}

std::vector<std::string> Patterns(const google::protobuf::RepeatedPtrField<std::string>& p) {
  return std::vector<std::string>(p.begin(), p.end());
}

// A value in a log line or event: at most 80 characters.
std::string Shorten(const std::string& value) {
  if (value.size() <= 80) return value;
  return absl::StrCat(value.substr(0, 77), "...");
}

// Subtrees at most this big are sent whole when they differ; bigger ones
// are compared one level further down.
constexpr uint64_t kWholeSubtree = 256;
// A pull response message carries about this many bytes of entries.
constexpr size_t kChunkBytes = 1 << 20;
// A pusher's queue beyond this many messages means the secondary does not
// keep up: the stream restarts and the next diff sends what differs.
constexpr size_t kMaxOutbox = 100000;
// A watcher this far behind is ended.
constexpr size_t kMaxWatchQueue = 10000;
// Replacements logged one by one per resync; the rest are counted.
constexpr uint64_t kReplacedLogLimit = 20;
// A checksum mismatch with the primary's hello lasting this long starts a
// new diff.
constexpr absl::Duration kDriftGrace = absl::Seconds(3);
// Paths passed as arguments to an apply hook, at most this many bytes.
constexpr size_t kMaxHookArgBytes = 64 * 1024;

}  // namespace

// The messages queued for one secondary, in commit order.
struct ConfigSync::Outbox {
  explicit Outbox(ExclusionSet e) : effective(std::move(e)) {}
  const ExclusionSet effective;
  absl::Mutex mu;
  std::deque<v1::ConfigSyncMessage> queue ABSL_GUARDED_BY(mu);
  bool overflowed ABSL_GUARDED_BY(mu) = false;
  // The last revision queued, and the last the secondary applied; `synced`
  // once it verified a complete resync on this stream.
  uint64_t pushed ABSL_GUARDED_BY(mu) = 0;
  uint64_t acked ABSL_GUARDED_BY(mu) = 0;
  bool synced ABSL_GUARDED_BY(mu) = false;

  void Push(v1::ConfigSyncMessage message) {
    absl::MutexLock lock(&mu);
    if (queue.size() >= kMaxOutbox) {
      overflowed = true;
      return;
    }
    if (message.has_commit()) pushed = std::max(pushed, message.commit().revision());
    if (message.has_pull_response() && message.pull_response().complete()) {
      pushed = std::max(pushed, message.pull_response().revision());
    }
    queue.push_back(std::move(message));
  }

  bool CaughtUp() {
    absl::MutexLock lock(&mu);
    return synced && acked >= pushed && queue.empty();
  }
};

// Replicates to one secondary while this node is primary at one epoch:
// connects (retrying), diffs, then streams the commits. Its thread writes
// to the stream; a reader thread takes the secondary's answers.
class ConfigPusher {
 public:
  ConfigPusher(ConfigSync* sync, std::string peer, uint64_t epoch,
               std::shared_ptr<grpc::Channel> channel, Clock* clock)
      : sync_(sync),
        peer_(std::move(peer)),
        epoch_(epoch),
        stub_(v1::PeerService::NewStub(channel)),
        clock_(clock) {
    thread_ = std::thread([this] { Run(); });
  }

  ~ConfigPusher() {
    stop_.Notify();
    {
      absl::MutexLock lock(&mu_);
      if (context_ != nullptr) context_->TryCancel();
    }
    thread_.join();
    Unregister();
  }

  std::string state() const {
    absl::MutexLock lock(&mu_);
    return state_;
  }

 private:
  void Run() {
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

  void Unregister() {
    absl::MutexLock lock(&sync_->commit_mu_);
    auto it = sync_->outboxes_.find(peer_);
    if (it != sync_->outboxes_.end() && it->second == outbox_) sync_->outboxes_.erase(it);
  }

  absl::Status RunStream() {
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
    outbox_ = std::make_shared<ConfigSync::Outbox>(effective);
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

  // Writes queued messages and drives the diff until the stream ends.
  absl::Status Loop(grpc::ClientReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream,
                    const ExclusionSet& effective, std::deque<v1::ConfigSyncMessage>* inbox,
                    bool* reader_done) {
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
        outbox_->mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(200));
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

  // Consecutive commits queued while the stream was busy travel as one
  // (the last revision and root checksum, each path's last change): the
  // secondary applies them in one transaction, one fsync, and keeps up with
  // a primary that commits faster than it can fsync one by one.
  static std::vector<v1::ConfigSyncMessage> Coalesce(std::deque<v1::ConfigSyncMessage> in) {
    std::vector<v1::ConfigSyncMessage> out;
    std::map<std::string, std::optional<std::string>> merged;  // path -> value, nullopt: delete
    std::vector<std::string> order;
    uint64_t revision = 0;
    std::string root;
    size_t bytes = 0;
    auto flush = [&] {
      if (order.empty()) return;
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
      if (bytes >= kChunkBytes) flush();
    }
    flush();
    return out;
  }

  void StartDiff() {
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

  // Compares one level, queues the content of what differs (under the
  // commit lock, so it sits in commit order), and asks for the next level.
  void OnChecksums(const v1::ConfigChecksums& theirs, const ExclusionSet& effective) {
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

  ConfigSync* const sync_;
  const std::string peer_;
  const uint64_t epoch_;
  std::unique_ptr<v1::PeerService::Stub> stub_;
  Clock* const clock_;
  std::shared_ptr<ConfigSync::Outbox> outbox_;
  // Checksum requests in flight (one level at a time) and their prefixes.
  int outstanding_ = 0;
  std::string last_logged_;
  std::vector<std::string> requested_;
  bool diff_done_ = false;
  uint64_t sent_entries_ = 0;

  mutable absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string state_ ABSL_GUARDED_BY(mu_) = "starting";
  absl::Notification stop_;
  std::thread thread_;
};

ConfigSync::ConfigSync(const v1::AgentConfig& config, const TlsMaterial& tls, Clock* clock,
                       NoteFn note)
    : config_(config),
      store_file_(config.config_sync().store_file().empty()
                      ? absl::StrCat(config.state_dir(), "/config.db")
                      : config.config_sync().store_file()),
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
        pushers_[peer.id] = std::make_unique<ConfigPusher>(this, peer.id, desired.epoch,
                                                           channels_[peer.id], clock_);
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

absl::Status ConfigSync::CheckWritable(const std::vector<ConfigChange>& changes) const {
  // The state under mu_, the path checks outside it: hellos need mu_, and
  // an import checks thousands of paths.
  v1::Role role;
  std::string primary;
  bool handing_over = false;
  std::optional<ExclusionSet> with_primary;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return absl::UnavailableError("the agent is stopping; nothing was written");
    role = desired_.role;
    primary = desired_.primary;
    handing_over = handing_over_;
    // Zone-local paths: this node's own list, and on a secondary also what
    // its primary leaves out (neither side syncs those, so only here can
    // they be written).
    auto eff = effective_.find(primary);
    if (role != v1::PRIMARY && eff != effective_.end()) with_primary = eff->second.second;
  }
  for (const ConfigChange& c : changes) {
    if (own_.Excludes(c.path)) continue;
    if (with_primary.has_value() && with_primary->Excludes(c.path)) continue;
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

void ConfigSync::SaveReplaced(const std::string& primary, const ConfigCommitResult& result) {
  std::string lines;
  int64_t now_ms = absl::ToUnixMillis(clock_->Now());
  for (const ConfigCommitResult::Applied& a : result.applied) {
    if (!a.old_value.has_value()) continue;
    google::protobuf::Struct line;
    auto& f = *line.mutable_fields();
    f["unix_ms"].set_number_value(static_cast<double>(now_ms));
    f["primary"].set_string_value(primary);
    f["path"].set_string_value(a.path);
    f["local"].set_string_value(*a.old_value);
    if (a.new_value.has_value()) {
      f["primary_value"].set_string_value(*a.new_value);
    } else {
      f["primary_value"].set_null_value(google::protobuf::NULL_VALUE);
    }
    std::string json;
    if (google::protobuf::util::MessageToJsonString(line, &json).ok()) {
      absl::StrAppend(&lines, json, "\n");
    }
  }
  if (lines.empty()) return;
  std::string file = absl::StrCat(config_.state_dir(), "/config-replaced.jsonl");
  std::ofstream out(file, std::ios::app);
  out << lines;
  out.flush();
  if (!out) {
    LogEvent(LogLevel::kError, "config_replaced_not_saved",
             {{"file", file}, {"reason", "write failed (disk full?)"}});
  }
}

void ConfigSync::BeginHandover() {
  absl::MutexLock lock(&mu_);
  handing_over_ = true;
}

void ConfigSync::EndHandover() {
  absl::MutexLock lock(&mu_);
  handing_over_ = false;
}

bool ConfigSync::WaitReplicated(absl::Duration timeout) {
  absl::Time deadline = clock_->Now() + timeout;
  while (true) {
    std::vector<std::shared_ptr<Outbox>> outboxes;
    {
      absl::MutexLock lock(&commit_mu_);
      for (const auto& [peer, outbox] : outboxes_) outboxes.push_back(outbox);
    }
    bool all = std::all_of(outboxes.begin(), outboxes.end(),
                           [](const std::shared_ptr<Outbox>& o) { return o->CaughtUp(); });
    if (all) return true;
    if (clock_->Now() >= deadline) return false;
    absl::Notification never;
    never.WaitForNotificationWithTimeout(absl::Milliseconds(5));
  }
}

// ---- Commits --------------------------------------------------------------

absl::StatusOr<ConfigCommitResult> ConfigSync::Commit(const std::vector<ConfigChange>& changes,
                                                      const Follow* follow) {
  absl::MutexLock lock(&commit_mu_);
  if (follow == nullptr) {
    if (absl::Status s = CheckWritable(changes); !s.ok()) return s;
  } else {
    absl::MutexLock state(&mu_);
    if (follow_context_ != follow->context || desired_.role == v1::PRIMARY || stopping_) {
      return absl::AbortedError(absl::StrCat(
          "the config stream from ", follow->peer,
          " was superseded (this node is primary now, or follows another stream)"));
    }
  }
  absl::StatusOr<ConfigCommitResult> result = store_->Apply(changes);
  if (!result.ok()) {
    LogEvent(LogLevel::kError, "config_commit_failed",
             {{"origin", follow == nullptr ? "local" : follow->peer},
              {"reason", result.status().message()}});
    return result;
  }
  if (result->revision != 0) {
    if (follow != nullptr) ++commits_replicated_;
    AfterCommitLocked(*result);
  }
  return result;
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

// ---- Replica side ---------------------------------------------------------

grpc::Status ConfigSync::Serve(
    const std::string& peer, grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream) {
  if (store_ == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting");
  v1::ConfigSyncMessage first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  if (!first.has_open()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first config sync message must be open");
  }
  if (absl::Status s = CheckSender(peer, first.open().epoch()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(Patterns(first.open().exclude()));
  if (!theirs.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("exclusion list: ", theirs.status().message()));
  }
  LearnPeerExclusions(peer, theirs->patterns());
  Follow follow;
  follow.peer = peer;
  follow.context = context;
  follow.epoch = first.open().epoch();
  follow.effective = own_.Union(*theirs);
  follow.opened = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the agent is stopping");
    if (follow_context_ != nullptr) follow_context_->TryCancel();
    follow_context_ = context;
    following_ = peer;
    // In sync again once this stream's resync verified the content.
    synced_with_.clear();
  }
  struct Release {
    ConfigSync* s;
    grpc::ServerContext* c;
    ~Release() {
      absl::MutexLock lock(&s->mu_);
      if (s->follow_context_ == c) {
        s->follow_context_ = nullptr;
        s->following_.clear();
        // Commits may be missed from now on: not in sync until a new
        // stream's resync. With the primary gone, the election still takes
        // this node (SYNCING only yields to an in-sync candidate).
        s->synced_with_.clear();
      }
    }
  } release{this, context};
  v1::ConfigSyncMessage open;
  {
    absl::MutexLock lock(&mu_);
    open.mutable_open()->set_epoch(desired_.epoch);
  }
  open.mutable_open()->set_revision(store_->revision());
  for (const std::string& p : own_.patterns()) open.mutable_open()->add_exclude(p);
  open.mutable_open()->set_root_checksum(store_->Checksum("", follow.effective).checksum);
  if (!stream->Write(open)) return grpc::Status::OK;
  LogEvent(LogLevel::kInfo, "config_follow",
           {{"primary", peer},
            {"epoch", follow.epoch},
            {"exclude", absl::StrJoin(follow.effective.patterns(), ",")}});
  v1::ConfigSyncMessage in;
  while (stream->Read(&in)) {
    absl::StatusOr<std::optional<v1::ConfigSyncMessage>> reply = ApplyFromPrimary(&follow, in);
    if (!reply.ok()) {
      SetError(std::string(reply.status().message()));
      LogEvent(LogLevel::kError, "config_apply_failed",
               {{"primary", peer}, {"reason", reply.status().message()}});
      return ToGrpcStatus(reply.status());
    }
    if (reply->has_value() && !stream->Write(**reply)) break;
  }
  return grpc::Status::OK;
}

absl::StatusOr<std::optional<v1::ConfigSyncMessage>> ConfigSync::ApplyFromPrimary(
    Follow* f, const v1::ConfigSyncMessage& message) {
  const ExclusionSet& effective = f->effective;
  if (message.has_checksum_request()) {
    v1::ConfigSyncMessage reply;
    std::vector<std::string> prefixes(message.checksum_request().prefixes().begin(),
                                      message.checksum_request().prefixes().end());
    for (const std::string& p : prefixes) {
      if (absl::Status s = ValidateConfigPrefix(p); !s.ok()) return s;
    }
    FillSubtrees(prefixes, effective, reply.mutable_checksums()->mutable_subtrees());
    if (f->synced) {
      // The primary diffs again: whatever it finds, this replica is not in
      // sync until the diff completes.
      f->synced = false;
      f->opened = clock_->Now();
      absl::MutexLock lock(&mu_);
      synced_with_.clear();
    }
    return std::optional<v1::ConfigSyncMessage>(std::move(reply));
  }
  if (message.has_commit()) {
    const v1::ConfigCommit& c = message.commit();
    std::vector<ConfigChange> changes;
    for (const v1::ConfigEntry& e : c.puts()) {
      if (effective.Excludes(e.path())) continue;  // never accepted
      changes.push_back({e.path(), e.value()});
      if (!f->synced) f->received.insert(e.path());
    }
    for (const std::string& d : c.deletes()) {
      if (effective.Excludes(d)) continue;
      changes.push_back({d, std::nullopt});
      if (!f->synced) f->received.insert(d);
    }
    absl::StatusOr<ConfigCommitResult> r = Commit(changes, f);
    if (!r.ok()) return r.status();
    std::string root = store_->Checksum("", effective).checksum;
    v1::ConfigSyncMessage ack;
    ack.mutable_ack()->set_revision(c.revision());
    ack.mutable_ack()->set_root_checksum(root);
    {
      absl::MutexLock lock(&mu_);
      primary_revision_ = c.revision();
    }
    if (f->synced && root != c.root_checksum()) {
      LogEvent(LogLevel::kWarn, "config_checksum_mismatch",
               {{"primary", f->peer}, {"revision", c.revision()}});
      f->synced = false;
      f->opened = clock_->Now();
      {
        absl::MutexLock lock(&mu_);
        synced_with_.clear();
      }
      ack.mutable_ack()->set_resync(true);
    }
    return std::optional<v1::ConfigSyncMessage>(std::move(ack));
  }
  if (message.has_pull_response()) {
    const v1::ConfigPullResponse& p = message.pull_response();
    std::vector<ConfigChange> changes;
    for (const std::string& prefix : p.prefixes()) {
      if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return s;
      f->covered.insert(prefix);
    }
    for (const v1::ConfigEntry& e : p.entries()) {
      if (effective.Excludes(e.path())) continue;
      changes.push_back({e.path(), e.value()});
      f->received.insert(e.path());
    }
    for (const std::string& d : p.deletes()) {
      if (effective.Excludes(d)) continue;
      changes.push_back({d, std::nullopt});
      f->received.insert(d);
    }
    f->resync_entries += p.entries_size() + p.deletes_size();
    if (p.complete()) {
      // What the covered subtrees hold here and the primary did not send.
      for (const std::string& prefix : f->covered) {
        for (const StoredEntry& e : store_->List(prefix)) {
          if (effective.Excludes(e.path) || f->received.count(e.path) != 0) continue;
          changes.push_back({e.path, std::nullopt});
          ++f->resync_entries;
        }
      }
    }
    absl::StatusOr<ConfigCommitResult> r = Commit(changes, f);
    if (!r.ok()) return r.status();
    SaveReplaced(f->peer, *r);
    // What this node loses to the primary's content.
    for (const ConfigCommitResult::Applied& a : r->applied) {
      if (!a.old_value.has_value()) continue;
      ++f->replaced;
      if (f->replaced > kReplacedLogLimit) continue;
      LogEvent(LogLevel::kWarn, "config_replaced",
               {{"path", a.path},
                {"local", Shorten(*a.old_value)},
                {"primary", a.new_value.has_value() ? Shorten(*a.new_value) : "<deleted>"},
                {"from", f->peer}});
      note_(absl::StrCat("config: ", a.path, " = ", Shorten(*a.old_value), " replaced by ",
                         f->peer, "'s ",
                         a.new_value.has_value() ? Shorten(*a.new_value) : "deletion"));
    }
    if (!p.complete()) return std::optional<v1::ConfigSyncMessage>();
    std::string root = store_->Checksum("", effective).checksum;
    v1::ConfigSyncMessage ack;
    ack.mutable_ack()->set_revision(p.revision());
    ack.mutable_ack()->set_root_checksum(root);
    double ms = absl::ToDoubleMilliseconds(clock_->Now() - f->opened);
    uint64_t replaced = f->replaced;
    uint64_t entries = f->resync_entries;
    f->covered.clear();
    f->received.clear();
    f->replaced = 0;
    f->resync_entries = 0;
    if (root != p.root_checksum()) {
      LogEvent(LogLevel::kWarn, "config_checksum_mismatch",
               {{"primary", f->peer}, {"revision", p.revision()}, {"after", "resync"}});
      ack.mutable_ack()->set_resync(true);
      f->opened = clock_->Now();
      return std::optional<v1::ConfigSyncMessage>(std::move(ack));
    }
    f->synced = true;
    {
      absl::MutexLock lock(&mu_);
      synced_with_ = f->peer;
      synced_epoch_ = f->epoch;
      primary_revision_ = p.revision();
      ++resyncs_;
      last_resync_ms_ = ms;
      last_resync_entries_ = entries;
      last_error_.clear();
    }
    LogEvent(LogLevel::kInfo, "config_in_sync",
             {{"primary", f->peer},
              {"revision", p.revision()},
              {"entries", entries},
              {"replaced", replaced},
              {"ms", absl::StrFormat("%.1f", ms)}});
    note_(absl::StrCat("config: in sync with ", f->peer, " (", entries, " entries in ",
                       absl::StrFormat("%.1f", ms), " ms",
                       replaced > 0 ? absl::StrCat(", ", replaced, " local values replaced") : "",
                       ")"));
    return std::optional<v1::ConfigSyncMessage>(std::move(ack));
  }
  return absl::InvalidArgumentError("unexpected message on the config stream");
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

grpc::Status ConfigSync::Query(const std::string& peer, const v1::ConfigQueryRequest& request,
                               v1::ConfigQueryResponse* response) {
  if (store_ == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting");
  absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(Patterns(request.exclude()));
  if (!theirs.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("exclusion list: ", theirs.status().message()));
  }
  std::vector<std::string> prefixes;
  for (const std::string& p : request.checksum_prefixes()) prefixes.push_back(NormalizePrefix(p));
  for (const std::string& p : request.entry_prefixes()) {
    if (absl::Status s = ValidateConfigPrefix(NormalizePrefix(p)); !s.ok()) return ToGrpcStatus(s);
  }
  for (const std::string& p : prefixes) {
    if (absl::Status s = ValidateConfigPrefix(p); !s.ok()) return ToGrpcStatus(s);
  }
  ExclusionSet effective = own_.Union(*theirs);
  for (const std::string& p : own_.patterns()) response->add_exclude(p);
  response->set_revision(store_->revision());
  FillSubtrees(prefixes, effective, response->mutable_subtrees());
  for (const std::string& p : request.entry_prefixes()) {
    for (const StoredEntry& e : store_->List(NormalizePrefix(p))) {
      if (effective.Excludes(e.path)) continue;
      v1::ConfigEntry* out = response->add_entries();
      out->set_path(e.path);
      out->set_value(e.value);
      out->set_revision(e.revision);
    }
  }
  (void)peer;
  return grpc::Status::OK;
}

absl::StatusOr<v1::ConfigQueryResponse> ConfigSync::QueryPeer(
    const std::string& peer, const v1::ConfigQueryRequest& request) const {
  auto it = channels_.find(peer);
  if (it == channels_.end()) {
    return absl::NotFoundError(absl::StrCat(peer, " is not a configured peer"));
  }
  auto stub = v1::PeerService::NewStub(it->second);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ConfigQueryResponse response;
  grpc::Status s = stub->QueryConfig(&context, request, &response);
  if (!s.ok()) {
    return absl::Status(FromGrpcStatus(s).code(), absl::StrCat(peer, ": ", s.error_message()));
  }
  return response;
}

// ---- Admin ----------------------------------------------------------------

grpc::Status ConfigSync::Get(const v1::GetConfigRequest& request,
                             v1::GetConfigResponse* response) {
  if (absl::Status s = ValidateConfigPath(request.path()); !s.ok()) return ToGrpcStatus(s);
  std::optional<StoredEntry> e = store_->Get(request.path());
  if (!e.has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat(request.path(), ": not set"));
  }
  response->mutable_entry()->set_path(e->path);
  response->mutable_entry()->set_value(e->value);
  response->mutable_entry()->set_revision(e->revision);
  return grpc::Status::OK;
}

grpc::Status ConfigSync::Put(const v1::PutConfigRequest& request,
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
  std::string prefix = NormalizePrefix(request.prefix());
  if (request.replace()) {
    if (request.prefix().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "replace needs the prefix it replaces; \".\" replaces the whole store");
    }
    if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return ToGrpcStatus(s);
    for (const std::string& path : written) {
      if (!InConfigSubtree(path, prefix)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat(path, " is not below the replaced prefix \"", prefix,
                                         "\""));
      }
    }
  } else if (changes.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "nothing to write: no path given");
  }
  for (const ConfigChange& c : changes) {
    if (absl::Status s = ValidateConfigPath(c.path); !s.ok()) return ToGrpcStatus(s);
  }
  if (request.replace()) {
    // What replace deletes is of the kind the request writes: synced paths
    // on a primary (its zone-local values stay), unless the request writes
    // only zone-local paths; zone-local paths on a secondary.
    ExclusionSet local = own_;
    bool primary = false;
    {
      absl::MutexLock lock(&mu_);
      primary = desired_.role == v1::PRIMARY;
      auto eff = effective_.find(desired_.primary);
      if (!primary && eff != effective_.end()) local = local.Union(eff->second.second);
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
  absl::StatusOr<ConfigCommitResult> r = Commit(changes, nullptr);
  if (!r.ok()) return ToGrpcStatus(r.status());
  response->set_revision(r->revision != 0 ? r->revision : store_->revision());
  return grpc::Status::OK;
}

grpc::Status ConfigSync::Delete(const v1::DeleteConfigRequest& request,
                                v1::DeleteConfigResponse* response) {
  std::vector<ConfigChange> changes;
  if (request.recursive()) {
    if (request.path().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "a recursive delete needs its prefix; \".\" deletes the whole store");
    }
    std::string prefix = NormalizePrefix(request.path());
    if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return ToGrpcStatus(s);
    for (const StoredEntry& e : store_->List(prefix)) changes.push_back({e.path, std::nullopt});
  } else {
    if (absl::Status s = ValidateConfigPath(request.path()); !s.ok()) return ToGrpcStatus(s);
    if (!store_->Get(request.path()).has_value()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat(request.path(), ": not set"));
    }
    changes.push_back({request.path(), std::nullopt});
  }
  absl::StatusOr<ConfigCommitResult> r = Commit(changes, nullptr);
  if (!r.ok()) return ToGrpcStatus(r.status());
  response->set_revision(r->revision != 0 ? r->revision : store_->revision());
  response->set_deleted(r->applied.size());
  return grpc::Status::OK;
}

grpc::Status ConfigSync::List(const v1::ListConfigRequest& request,
                              v1::ListConfigResponse* response) {
  std::string prefix = NormalizePrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return ToGrpcStatus(s);
  for (const StoredEntry& e : store_->List(prefix)) {
    v1::ConfigEntry* out = response->add_entries();
    out->set_path(e.path);
    out->set_value(e.value);
    out->set_revision(e.revision);
  }
  response->set_revision(store_->revision());
  return grpc::Status::OK;
}

grpc::Status ConfigSync::Watch(grpc::ServerContext* context,
                               const v1::WatchConfigRequest& request,
                               grpc::ServerWriter<v1::WatchConfigResponse>* writer) {
  std::string prefix = NormalizePrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return ToGrpcStatus(s);
  auto watcher = std::make_shared<Watcher>();
  watcher->prefix = prefix;
  v1::WatchConfigResponse first;
  {
    absl::MutexLock lock(&commit_mu_);  // no commit between the two
    absl::MutexLock watch_lock(&watch_mu_);
    watchers_.insert(watcher);
    first.set_revision(store_->revision());
  }
  struct Remove {
    ConfigSync* s;
    std::shared_ptr<Watcher> w;
    ~Remove() {
      absl::MutexLock lock(&s->watch_mu_);
      s->watchers_.erase(w);
    }
  } remove{this, watcher};
  // The first message, without changes, says the watch is in place.
  if (!writer->Write(first)) return grpc::Status::OK;
  while (!context->IsCancelled() && !stop_.HasBeenNotified()) {
    std::deque<v1::WatchConfigResponse> batch;
    {
      absl::MutexLock lock(&watch_mu_);
      if (watcher->queue.empty() && !watcher->overflowed) {
        watch_cv_.WaitWithTimeout(&watch_mu_, absl::Milliseconds(200));
      }
      if (watcher->overflowed) {
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            absl::StrCat("the watcher fell ", kMaxWatchQueue,
                                         " commits behind; watch again"));
      }
      batch.swap(watcher->queue);
    }
    for (const v1::WatchConfigResponse& r : batch) {
      if (!writer->Write(r)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

grpc::Status ConfigSync::Diff(const v1::DiffConfigRequest& request,
                              v1::DiffConfigResponse* response) {
  std::string prefix = NormalizePrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return ToGrpcStatus(s);
  std::vector<std::string> peers;
  if (!request.peer().empty()) {
    if (channels_.count(request.peer()) == 0) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat(request.peer(), " is not a configured peer"));
    }
    peers.push_back(request.peer());
  } else {
    for (const auto& [id, channel] : channels_) peers.push_back(id);
  }
  for (const std::string& p : own_.patterns()) response->add_exclude(p);
  for (const std::string& peer : peers) {
    v1::DiffConfigResponse::PeerDiff* out = response->add_peers();
    out->set_peer(peer);
    v1::ConfigQueryRequest query;
    for (const std::string& p : own_.patterns()) query.add_exclude(p);
    query.add_entry_prefixes(prefix);
    absl::StatusOr<v1::ConfigQueryResponse> theirs = QueryPeer(peer, query);
    if (!theirs.ok()) {
      out->set_error(std::string(theirs.status().message()));
      continue;
    }
    absl::StatusOr<ExclusionSet> their_set = ExclusionSet::Create(Patterns(theirs->exclude()));
    if (!their_set.ok()) {
      out->set_error(absl::StrCat("bad exclusion list: ", their_set.status().message()));
      continue;
    }
    LearnPeerExclusions(peer, their_set->patterns());
    ExclusionSet effective = own_.Union(*their_set);
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
  return grpc::Status::OK;
}

grpc::Status ConfigSync::Checksums(const v1::ConfigChecksumsRequest& request,
                                   v1::ConfigChecksumsResponse* response) {
  std::string prefix = NormalizePrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return ToGrpcStatus(s);
  ExclusionSet all = own_;
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
    for (const auto& [id, channel] : channels_) asked.push_back({id, ask(id, own_)});
    for (const Asked& a : asked) {
      if (!a.answer.ok()) continue;
      absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(Patterns(a.answer->exclude()));
      if (theirs.ok()) {
        LearnPeerExclusions(a.peer, theirs->patterns());
        all = all.Union(*theirs);
      }
    }
    for (Asked& a : asked) {
      if (!a.answer.ok()) continue;
      absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(Patterns(a.answer->exclude()));
      if (theirs.ok() && own_.Union(*theirs) == all) continue;
      a.answer = ask(a.peer, all);
    }
  }
  for (const std::string& p : all.patterns()) response->add_exclude(p);
  v1::ConfigChecksumsResponse::NodeChecksums* self = response->add_nodes();
  self->set_node_id(config_.node().id());
  self->set_revision(store_->revision());
  FillSubtrees({prefix}, all, self->mutable_subtrees());
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
  return grpc::Status::OK;
}

grpc::Status ConfigSync::History(const v1::ConfigHistoryRequest& request,
                                 v1::ConfigHistoryResponse* response) {
  std::string prefix = NormalizePrefix(request.prefix());
  if (absl::Status s = ValidateConfigPrefix(prefix); !s.ok()) return ToGrpcStatus(s);
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
  return grpc::Status::OK;
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
  c->set_root_checksum(Hex(CachedRoot(own_)));
  for (const std::string& p : own_.patterns()) c->add_exclude(p);
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
  {
    absl::MutexLock lock(&mu_);
    c->set_replica_of(following_);
    c->set_primary_revision(primary_revision_);
    c->set_resyncs(resyncs_);
    c->set_last_resync_ms(last_resync_ms_);
    c->set_last_resync_entries(last_resync_entries_);
    c->set_hook_failures(hook_failures_);
    c->set_last_error(last_error_);
    for (const auto& [peer, e] : effective_) effective.emplace(peer, e.second);
    live = desired_.live;
    following = following_;
    synced_with = synced_with_;
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
