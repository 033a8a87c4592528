#include "agent/session_sync.h"

#include <arpa/inet.h>
#include <pthread.h>

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/grpc_status.h"
#include "agent/primary_stream_rule.h"
#include "base/log.h"
#include "base/netns.h"
#include "agent/sync_channel.h"
#include "grpcpp/create_channel.h"
#include "sync/conntrack.h"

namespace cloudha {
namespace {

SessionTableOptions TableOptions(const v1::SessionsConfig& c) {
  SessionTableOptions o;
  o.max_sessions = c.max_sessions();
  o.pickup_connectionless = c.pickup_connectionless();
  o.pickup_delay = absl::Seconds(c.pickup_delay_s());
  return o;
}

// A ListSessions filter: "198.18.0.1", "port=443", "proto=tcp", "zone=2".
absl::StatusOr<std::function<bool(const SessionRecord&)>> ParseFilter(const std::string& text) {
  auto number = [&](absl::string_view value, uint32_t max) -> absl::StatusOr<uint32_t> {
    uint32_t n = 0;
    if (!absl::SimpleAtoi(value, &n) || n > max) {
      return absl::InvalidArgumentError(
          absl::StrCat("filter \"", text, "\": ", value, " is not a number 0..", max));
    }
    return n;
  };
  if (absl::StartsWith(text, "port=")) {
    absl::StatusOr<uint32_t> port = number(text.substr(5), 65535);
    if (!port.ok()) return port.status();
    uint16_t p = static_cast<uint16_t>(*port);
    return [p](const SessionRecord& r) {
      return r.key.src_port == p || r.key.dst_port == p || r.value.reply_src_port == p ||
             r.value.reply_dst_port == p;
    };
  }
  if (absl::StartsWith(text, "zone=")) {
    absl::StatusOr<uint32_t> zone = number(text.substr(5), 65535);
    if (!zone.ok()) return zone.status();
    uint16_t z = static_cast<uint16_t>(*zone);
    return [z](const SessionRecord& r) { return r.key.zone == z; };
  }
  if (absl::StartsWith(text, "proto=")) {
    std::string name = text.substr(6);
    for (int p = 0; p < 256; ++p) {
      if (ProtocolName(static_cast<uint8_t>(p)) == name) {
        return [p](const SessionRecord& r) { return r.key.l4_protocol == p; };
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "filter \"", text, "\": unknown protocol (tcp, udp, icmp, icmpv6, sctp or a number)"));
  }
  // An address, matched against all four of the session's.
  IpAddress address{};
  uint8_t family = 0;
  if (inet_pton(AF_INET, text.c_str(), address.data()) == 1) {
    family = 2;
  } else if (inet_pton(AF_INET6, text.c_str(), address.data()) == 1) {
    family = 10;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "filter \"", text, "\" is not an address, port=N, proto=NAME or zone=N"));
  }
  return [family, address](const SessionRecord& r) {
    return r.key.family == family &&
           (r.key.src == address || r.key.dst == address || r.value.reply_src == address ||
            r.value.reply_dst == address);
  };
}

constexpr size_t kListChunk = 1000;


}  // namespace

SessionSync::SessionSync(const v1::AgentConfig& config,
                         std::shared_ptr<grpc::ChannelCredentials> credentials,
                         uint64_t boot_id, Clock* clock, NoteFn note)
    : config_(config),
      enabled_(config.sessions().pickup()),
      boot_id_(boot_id),
      clock_(clock),
      note_(std::move(note)),
      credentials_(std::move(credentials)),
      table_(TableOptions(config.sessions()), clock),
      replica_(&table_, clock),
      continuous_(config.sessions().source() == v1::SessionsConfig::CONNTRACK &&
                  config.sessions().commit() == v1::SessionsConfig::CONTINUOUS) {
  for (const auto& peer : config_.peers()) {
    channels_[peer.id()] =
        CreateSyncChannel(config_.cluster().name(), config_.cluster().group_id(), peer,
                          credentials_, "sync");
  }
}

SessionSync::~SessionSync() { Stop(); }

absl::Status SessionSync::Start() {
  if (!enabled_) return absl::OkStatus();
  if (config_.sessions().source() == v1::SessionsConfig::CONNTRACK) {
    ConntrackOptions options;
    for (uint32_t zone : config_.sessions().zones()) options.zones.push_back(zone);
    // Netlink sockets belong to the namespace of the thread that opens them
    // (base/netns.h): every Create() and StartEvents()/ReadEvents() opens
    // them in sessions.netns; all else stays in the agent's own.
    if (!config_.sessions().netns().empty()) {
      absl::StatusOr<std::unique_ptr<NetworkNamespace>> netns =
          NetworkNamespace::Open(config_.sessions().netns());
      if (!netns.ok()) {
        return absl::Status(netns.status().code(),
                            absl::StrCat("sessions.netns ", config_.sessions().netns(), ": ",
                                         netns.status().message()));
      }
      netns_ = *std::move(netns);
    }
    absl::StatusOr<std::unique_ptr<Conntrack>> conntrack =
        InNetworkNamespace(netns_.get(), [&] { return Conntrack::Create(options, clock_); });
    if (!conntrack.ok()) {
      return absl::Status(conntrack.status().code(),
                          absl::StrCat("sessions.source CONNTRACK: ", conntrack.status().message()));
    }
    conntrack_ = *std::move(conntrack);
    if (continuous_) {
      // Its own netlink sockets: the stream handlers write while the
      // sessions thread reads events and dumps.
      absl::StatusOr<std::unique_ptr<Conntrack>> mirror =
          InNetworkNamespace(netns_.get(), [&] { return Conntrack::Create(options, clock_); });
      if (!mirror.ok()) {
        return absl::Status(mirror.status().code(),
                            absl::StrCat("sessions.commit CONTINUOUS: ", mirror.status().message()));
      }
      absl::MutexLock lock(&kernel_mu_);
      mirror_ = *std::move(mirror);
    }
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "sessions");
    Run();
  });
  return absl::OkStatus();
}

void SessionSync::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    changed_.SignalAll();
  }
  stop_.Notify();
  table_.WakeWaiters();
  if (thread_.joinable()) thread_.join();
  std::map<std::string, std::unique_ptr<SessionSender>> senders;
  {
    absl::MutexLock lock(&senders_mu_);
    senders.swap(senders_);
  }
  senders.clear();
}

void SessionSync::Update(v1::Role role, uint64_t epoch, const std::string& primary,
                         const std::vector<std::string>& live_peers) {
  if (!enabled_) return;
  absl::MutexLock lock(&mu_);
  bool changed = desired_.role != role || desired_.epoch != epoch ||
                 desired_.primary != primary || desired_.live_peers != live_peers;
  desired_.role = role;
  desired_.epoch = epoch;
  desired_.primary = primary;
  desired_.live_peers = live_peers;
  if (changed) changed_.SignalAll();
}

bool SessionSync::in_sync() const {
  if (!enabled_) return true;
  {
    absl::MutexLock lock(&mu_);
    if (desired_.role == v1::PRIMARY) return true;
  }
  return replica_.complete();
}

uint64_t SessionSync::position() const {
  if (!enabled_) return 0;
  {
    absl::MutexLock lock(&mu_);
    if (desired_.role != v1::PRIMARY) return replica_.position();
  }
  return table_.position();
}

void SessionSync::SetError(const std::string& error) {
  absl::MutexLock lock(&mu_);
  last_error_ = error;
}

void SessionSync::Run() {
  absl::Time next_tick = clock_->Now();
  while (!stop_.HasBeenNotified()) {
    Desired desired;
    {
      absl::MutexLock lock(&mu_);
      desired = desired_;
    }
    Reconcile(desired);
    if (acting_role_ == v1::PRIMARY && conntrack_ != nullptr) {
      ReadConntrack();
    } else {
      absl::MutexLock lock(&mu_);
      if (!stopping_) changed_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
    }
    absl::Time now = clock_->Now();
    if (now >= next_tick) {
      uint64_t expired = table_.Tick();
      if (expired > 0) {
        LogEvent(LogLevel::kDebug, "sessions_expired", {{"count", expired}});
      }
      ExpireParked(false);
      next_tick = now + absl::Seconds(1);
    }
  }
}

void SessionSync::Reconcile(const Desired& desired) {
  bool primary = desired.role == v1::PRIMARY;
  if (primary && acting_role_ != v1::PRIMARY) {
    acting_role_ = v1::PRIMARY;
    OnPromoted();
  } else if (!primary && acting_role_ == v1::PRIMARY) {
    acting_role_ = desired.role;
    table_.SetExpiry(false);
    if (conntrack_ != nullptr) conntrack_->StopEvents();
    // This node's table is complete as of now: it is the newest copy there
    // is until the new primary's snapshot arrives.
    replica_.MarkComplete();
    note_(absl::StrCat("sessions: no longer primary; ", table_.size(),
                       " sessions kept as the replica"));
  } else {
    acting_role_ = desired.role;
  }
  // Senders: one per live peer while primary, all at the current epoch.
  std::vector<std::unique_ptr<SessionSender>> retired;
  // Senders of peers that dropped out: their readers are parked.
  std::map<std::string, std::unique_ptr<SessionSender>> dropped;
  if (!primary || desired.epoch != sender_epoch_) ExpireParked(true);
  {
    absl::MutexLock lock(&senders_mu_);
    if (!primary || desired.epoch != sender_epoch_) {
      for (auto& [id, sender] : senders_) retired.push_back(std::move(sender));
      senders_.clear();
      sender_epoch_ = desired.epoch;
    }
    if (primary) {
      for (auto it = senders_.begin(); it != senders_.end();) {
        bool live = std::find(desired.live_peers.begin(), desired.live_peers.end(), it->first) !=
                    desired.live_peers.end();
        if (live) {
          ++it;
        } else {
          dropped[it->first] = std::move(it->second);
          it = senders_.erase(it);
        }
      }
    }
  }
  // Outside the lock: releasing a reader joins the sender's thread.
  for (auto& [peer, sender] : dropped) {
    int reader = sender->ReleaseReader();
    if (reader != 0) parked_[peer] = Parked{reader, desired.epoch, clock_->Now()};
  }
  dropped.clear();
  {
    absl::MutexLock lock(&senders_mu_);
    if (primary) {
      for (const std::string& peer : desired.live_peers) {
        if (senders_.count(peer) != 0 || channels_.count(peer) == 0) continue;
        SessionSenderOptions options;
        options.peer_id = peer;
        options.epoch = desired.epoch;
        options.boot_id = boot_id_;
        auto parked = parked_.find(peer);
        if (parked != parked_.end()) {
          if (parked->second.epoch == desired.epoch) {
            options.resume_reader = parked->second.reader;
          } else {
            table_.RemoveReader(parked->second.reader);
          }
          parked_.erase(parked);
        }
        senders_[peer] = std::make_unique<SessionSender>(
            channels_[peer], &table_, options, clock_,
            [this, peer](const std::string& kind, const std::string& detail) {
              if (kind == "snapshot_sent") {
                ++snapshots_sent_;
                LogEvent(LogLevel::kInfo, "session_snapshot_sent",
                         {{"peer", peer}, {"detail", detail}});
                note_(absl::StrCat("sessions: bulk sync to ", peer, ": ", detail));
              } else if (kind == "resumed") {
                ++resumes_sent_;
                LogEvent(LogLevel::kInfo, "session_stream_resumed",
                         {{"peer", peer}, {"detail", detail}});
                note_(absl::StrCat("sessions: stream to ", peer, " resumed ", detail,
                                   " (no bulk sync)"));
              } else {
                LogEvent(LogLevel::kWarn, absl::StrCat("session_", kind),
                         {{"peer", peer}, {"reason", detail}});
              }
            });
      }
    }
  }
  retired.clear();  // joins their threads, outside the lock
}

void SessionSync::ExpireParked(bool all) {
  absl::Time now = clock_->Now();
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (all || now - it->second.since >= kResumeWindow) {
      table_.RemoveReader(it->second.reader);
      it = parked_.erase(it);
    } else {
      ++it;
    }
  }
}

void SessionSync::OnPromoted() {
  replica_.MarkComplete();
  if (conntrack_ == nullptr) {
    // Publisher: the data plane collects the table with ReceiveSessions.
    table_.SetExpiry(true);
    note_(absl::StrCat("sessions: primary; ", table_.size(),
                       " sessions ready for the data plane (ReceiveSessions)"));
    return;
  }
  // Conntrack: the replica into the kernel, then events, then a dump (so
  // nothing between the dump and the events is lost), and the kernel's
  // table is the truth. The commit comes before the events: while a socket
  // listens, the kernel builds an event for every entry written, which
  // slows the commit several times over.
  CommitOnPromotion();
  if (absl::Status s = InNetworkNamespace(netns_.get(), [&] { return conntrack_->StartEvents(); });
      !s.ok()) {
    SetError(std::string(s.message()));
    LogEvent(LogLevel::kError, "conntrack_events_failed", {{"reason", s.message()}});
  }
  std::vector<SessionRecord> dump;
  if (absl::Status s = conntrack_->Dump(&dump); s.ok()) {
    table_.Reconcile(dump);
  } else {
    SetError(std::string(s.message()));
  }
}

void SessionSync::CommitOnPromotion() {
  const absl::Time start = clock_->Now();
  std::vector<SessionRecord> replica = table_.Records();
  std::vector<SessionRecord> dump;
  absl::Status dumped = absl::OkStatus();
  std::vector<SessionRecord> write;
  if (continuous_) {
    // The replica is in the kernel already, less what the kernel timed out
    // since (a secondary's kernel sees no packets to refresh them): write
    // only what the kernel lacks.
    dumped = conntrack_->Dump(&dump);
    absl::flat_hash_set<SessionKey> present;
    present.reserve(dump.size());
    for (const SessionRecord& r : dump) present.insert(r.key);
    for (const SessionRecord& r : replica) {
      if (!dumped.ok() || !present.contains(r.key)) write.push_back(r);
    }
  } else {
    write = std::move(replica);
  }
  uint64_t written = 0;
  if (!write.empty()) {
    absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit(write);
    if (stats.ok()) {
      written = stats->created + stats->updated;
      LogEvent(stats->failed > 0 ? LogLevel::kWarn : LogLevel::kInfo, "sessions_committed",
               {{"created", stats->created},
                {"updated", stats->updated},
                {"failed", stats->failed},
                {"first_error", stats->first_error}});
      note_(absl::StrCat("sessions: committed the replica to the kernel: ", stats->created,
                         " created, ", stats->updated, " updated, ", stats->failed, " failed"));
    } else {
      LogEvent(LogLevel::kError, "sessions_commit_failed", {{"reason", stats.status().message()}});
      SetError(std::string(stats.status().message()));
    }
  }
  promotion_committed_ = written;
  kernel_written_ += written;
  promotion_commit_ms_ = absl::ToDoubleMilliseconds(clock_->Now() - start);
}

void SessionSync::MirrorToKernel(const std::vector<SessionChange>& changes) {
  // In order: a run of upserts, then a run of deletes, and so on, so an
  // upsert and a delete of one key in a batch end as the primary's did.
  std::vector<SessionRecord> upserts;
  std::vector<SessionKey> deletes;
  absl::MutexLock lock(&kernel_mu_);
  if (mirror_ == nullptr) return;
  std::string error;
  auto flush = [&] {
    if (!upserts.empty()) {
      absl::StatusOr<Conntrack::CommitStats> stats = mirror_->Commit(upserts);
      if (stats.ok()) {
        kernel_written_ += stats->created + stats->updated;
        kernel_failed_ += stats->failed;
        if (stats->failed > 0) error = stats->first_error;
      } else {
        kernel_failed_ += upserts.size();
        error = std::string(stats.status().message());
      }
      upserts.clear();
    }
    if (!deletes.empty()) {
      absl::Status s = mirror_->Delete(deletes);
      if (s.ok()) {
        kernel_deleted_ += deletes.size();
      } else {
        ++kernel_failed_;
        error = std::string(s.message());
      }
      deletes.clear();
    }
  };
  for (const SessionChange& c : changes) {
    if (c.op == SessionChange::Op::kUpsert) {
      if (!deletes.empty()) flush();
      upserts.push_back(c.record);
    } else {
      if (!upserts.empty()) flush();
      deletes.push_back(c.record.key);
    }
  }
  flush();
  if (error.empty()) return;
  SetError(error);
  absl::Time now = clock_->Now();
  // One line per 10 s at most.
  if (now - kernel_error_logged_at_ >= absl::Seconds(10)) {
    kernel_error_logged_at_ = now;
    LogEvent(LogLevel::kWarn, "sessions_kernel_write_failed",
             {{"failed", kernel_failed_.load()}, {"reason", error}});
  }
}

ApplyResult SessionSync::ApplyFromSource(const std::vector<SessionChange>& changes) {
  ApplyResult result = table_.Apply(changes);
  if (result.refused == 0) return result;
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  refused_logged_ += result.refused;
  // One line per 10 s at most, with the count since the last.
  if (now - refused_logged_at_ >= absl::Seconds(10)) {
    LogEvent(LogLevel::kWarn, "sessions_refused",
             {{"count", refused_logged_},
              {"max_sessions", config_.sessions().max_sessions()},
              {"hint", "raise sessions.max_sessions or check the data plane"}});
    refused_logged_ = 0;
    refused_logged_at_ = now;
  }
  return result;
}

void SessionSync::ReadConntrack() {
  std::vector<SessionChange> changes;
  absl::StatusOr<Conntrack::ReadResult> r = InNetworkNamespace(netns_.get(), [&] {
    return conntrack_->ReadEvents(absl::Milliseconds(50), 50000, &changes);
  });
  if (!r.ok()) {
    SetError(std::string(r.status().message()));
    LogEvent(LogLevel::kError, "conntrack_events_failed", {{"reason", r.status().message()}});
    clock_->SleepUntil(clock_->Now() + absl::Seconds(1), stop_);
    return;
  }
  if (!changes.empty()) ApplyFromSource(changes);
  if (*r == Conntrack::ReadResult::kOverrun) {
    {
      absl::MutexLock lock(&mu_);
      ++overruns_;
    }
    std::vector<SessionRecord> dump;
    absl::Status s = conntrack_->Dump(&dump);
    ApplyResult diff;
    if (s.ok()) diff = table_.Reconcile(dump);
    LogEvent(LogLevel::kWarn, "conntrack_overrun",
             {{"detail", "the kernel dropped events (ENOBUFS); dumped the table again"},
              {"changes", diff.applied},
              {"dump", s.ok() ? "ok" : std::string(s.message())}});
  }
}

absl::Status SessionSync::CheckSender(const std::string& peer, uint64_t epoch) const {
  absl::MutexLock lock(&mu_);
  return CheckStreamFromPrimary(desired_.role, desired_.epoch, desired_.primary, peer, epoch,
                                "sessions");
}

grpc::Status SessionSync::Serve(
    const std::string& peer, grpc::ServerContext* /*context*/,
    grpc::ServerReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream) {
  if (!enabled_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "sessions.pickup is off on this node");
  }
  v1::SessionSyncMessage in;
  if (!stream->Read(&in)) return grpc::Status::OK;
  if (!in.has_open()) {
    replica_.CountRefused();
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a session stream must start with open");
  }
  const uint64_t epoch = in.open().epoch();
  if (absl::Status s = CheckSender(peer, epoch); !s.ok()) {
    replica_.CountRefused();
    LogEvent(LogLevel::kWarn, "session_stream_refused", {{"peer", peer}, {"reason", s.message()}});
    return ToGrpcStatus(s);
  }
  v1::SessionSyncMessage offer;
  uint64_t id = replica_.Open(peer, in.open(), offer.mutable_resume_offer());
  LogEvent(LogLevel::kInfo, "session_stream_opened",
           {{"peer", peer},
            {"epoch", epoch},
            {"resume_offered", offer.resume_offer().resumable()},
            {"position", offer.resume_offer().position()}});
  grpc::Status result = grpc::Status::OK;
  std::vector<SessionChange> applied;
  if (!stream->Write(offer)) {
    replica_.Close(id);
    return grpc::Status::OK;
  }
  while (stream->Read(&in)) {
    if (!in.has_batch()) {
      result = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "a session stream carries batches after open");
      break;
    }
    if (absl::Status s = CheckSender(peer, epoch); !s.ok()) {
      replica_.CountRefused();
      result = ToGrpcStatus(s);
      break;
    }
    applied.clear();
    absl::StatusOr<v1::SessionSyncMessage> reply =
        replica_.OnBatch(id, in.batch(), continuous_ ? &applied : nullptr);
    if (!reply.ok()) {
      result = ToGrpcStatus(reply.status());
      break;
    }
    // Into the kernel before the ack: what the primary sees acknowledged is
    // in this node's kernel.
    if (!applied.empty()) MirrorToKernel(applied);
    if (reply->has_resync()) {
      LogEvent(LogLevel::kWarn, "session_resync_requested",
               {{"peer", peer}, {"reason", reply->resync().reason()}});
    } else if (in.batch().snapshot_end()) {
      LogEvent(LogLevel::kInfo, "session_bulk_sync_done",
               {{"peer", peer}, {"sessions", table_.size()}});
      note_(absl::StrCat("sessions: bulk sync from ", peer, " done, ", table_.size(),
                         " sessions"));
    } else if (in.batch().resume_from() != 0 && !in.batch().snapshot_begin()) {
      LogEvent(LogLevel::kInfo, "session_stream_resumed",
               {{"peer", peer}, {"position", in.batch().resume_from()}});
      note_(absl::StrCat("sessions: stream from ", peer, " resumed at position ",
                         in.batch().resume_from(), " (no bulk sync)"));
    }
    if (!stream->Write(*reply)) break;
  }
  replica_.Close(id);
  if (!result.ok()) {
    LogEvent(LogLevel::kWarn, "session_stream_ended",
             {{"peer", peer}, {"reason", result.error_message()}});
  }
  return result;
}

grpc::Status SessionSync::Publish(grpc::ServerContext* /*context*/,
                                  grpc::ServerReader<v1::PublishSessionsRequest>* reader,
                                  v1::PublishSessionsResponse* response) {
  if (!enabled_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "sessions.pickup is off in this node's configuration");
  }
  if (config_.sessions().source() != v1::SessionsConfig::PUBLISHER) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "sessions.source is CONNTRACK; this node takes no publisher");
  }
  v1::PublishSessionsRequest request;
  std::vector<SessionChange> changes;
  uint64_t message = 0;
  bool ended = false;
  while (reader->Read(&request)) {
    ++message;
    if (ended) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("message ", message, " follows the message marked end (",
                                       message - 1, "); nothing of it applied"));
    }
    ended = request.end();
    {
      absl::MutexLock lock(&mu_);
      if (desired_.role != v1::PRIMARY) {
        return grpc::Status(
            grpc::StatusCode::FAILED_PRECONDITION,
            absl::StrCat("this node is ", v1::Role_Name(desired_.role),
                         "; publish to the primary",
                         desired_.primary.empty() ? "" : absl::StrCat(" (", desired_.primary, ")")));
      }
    }
    changes.clear();
    for (int i = 0; i < request.upserts_size(); ++i) {
      absl::StatusOr<SessionRecord> r = RecordFromProto(request.upserts(i));
      if (!r.ok()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("message ", message, " upserts[", i,
                                         "]: ", r.status().message(), "; nothing of it applied"));
      }
      changes.push_back({SessionChange::Op::kUpsert, *r});
    }
    for (int i = 0; i < request.deletes_size(); ++i) {
      absl::StatusOr<SessionKey> k = KeyFromProto(request.deletes(i));
      if (!k.ok()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("message ", message, " deletes[", i,
                                         "]: ", k.status().message(), "; nothing of it applied"));
      }
      SessionChange c;
      c.op = SessionChange::Op::kDelete;
      c.record.key = *k;
      changes.push_back(c);
    }
    if (request.change_count() > kMaxChangesPerBatch) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("message ", message, " announces ",
                                       request.change_count(), " changes; at most ",
                                       kMaxChangesPerBatch));
    }
    if (absl::Status s = DecodeChanges(request.changes(), request.change_count(), &changes);
        !s.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("message ", message, ": ", s.message(),
                                       "; nothing of it applied"));
    }
    ApplyResult result = ApplyFromSource(changes);
    response->set_accepted(response->accepted() + result.applied);
    response->set_refused(response->refused() + result.refused);
  }
  if (!ended) {
    // gRPC ends the read loop the same way for a message it could not
    // parse as for the end of the stream: only the end marker tells them
    // apart.
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("the stream ended without a message marked end: message ", message + 1,
                     " could not be parsed, or the publisher stopped early; the ", message,
                     " message(s) before it were applied (", response->accepted(),
                     " changes accepted, ", response->refused(), " refused)"));
  }
  return grpc::Status::OK;
}

grpc::Status SessionSync::List(const v1::ListSessionsRequest& request,
                               grpc::ServerWriter<v1::ListSessionsResponse>* writer) {
  std::vector<std::function<bool(const SessionRecord&)>> filters;
  for (const std::string& text : request.filters()) {
    auto filter = ParseFilter(text);
    if (!filter.ok()) return ToGrpcStatus(filter.status());
    filters.push_back(*std::move(filter));
  }
  v1::ListSessionsResponse first;
  first.set_total(table_.size());
  {
    absl::MutexLock lock(&mu_);
    bool secondary = desired_.role != v1::PRIMARY;
    if (secondary) first.set_lag_ms(replica_.lag_ms());
  }
  if (request.count_only()) {
    if (!filters.empty()) {
      auto keep = [&](const SessionRecord& r) {
        return std::all_of(filters.begin(), filters.end(), [&](const auto& f) { return f(r); });
      };
      first.set_total(table_.Records(keep).size());
    }
    writer->Write(first);
    return grpc::Status::OK;
  }
  auto keep = [&](const SessionRecord& r) {
    return std::all_of(filters.begin(), filters.end(), [&](const auto& f) { return f(r); });
  };
  std::vector<SessionRecord> records = table_.Records(keep, request.limit());
  v1::ListSessionsResponse chunk = first;
  for (size_t i = 0; i < records.size(); ++i) {
    RecordToProto(records[i], chunk.add_sessions());
    if (chunk.sessions_size() >= static_cast<int>(kListChunk)) {
      if (!writer->Write(chunk)) return grpc::Status::OK;
      chunk = v1::ListSessionsResponse();
    }
  }
  writer->Write(chunk);
  return grpc::Status::OK;
}

grpc::Status SessionSync::Receive(grpc::ServerContext* context,
                                  grpc::ServerWriter<v1::ListSessionsResponse>* writer) {
  if (!enabled_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "sessions.pickup is off in this node's configuration");
  }
  // Waits for this node to be primary (the data plane takes over then).
  while (true) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the agent is stopping");
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    if (desired_.role == v1::PRIMARY) break;
    changed_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
  }
  std::vector<SessionRecord> records = table_.Records();
  v1::ListSessionsResponse chunk;
  chunk.set_total(records.size());
  for (const SessionRecord& r : records) {
    RecordToProto(r, chunk.add_sessions());
    if (chunk.sessions_size() >= static_cast<int>(kListChunk)) {
      if (!writer->Write(chunk)) return grpc::Status::OK;
      chunk = v1::ListSessionsResponse();
    }
  }
  chunk.set_complete(true);
  writer->Write(chunk);
  LogEvent(LogLevel::kInfo, "sessions_handed_to_data_plane", {{"sessions", records.size()}});
  return grpc::Status::OK;
}

void SessionSync::FillStatus(uint64_t primary_position, v1::StatusResponse* status) const {
  if (!enabled_) return;
  v1::SessionSyncStatus* s = status->mutable_sessions();
  s->set_source(config_.sessions().source() == v1::SessionsConfig::CONNTRACK ? "conntrack"
                                                                             : "publisher");
  s->set_table_size(table_.size());
  s->set_position(position());
  s->set_refused_max_sessions(table_.refused());
  s->set_batches_refused(replica_.refused());
  if (config_.sessions().source() == v1::SessionsConfig::CONNTRACK) {
    s->set_commit(continuous_ ? "continuous" : "on_promotion");
    s->set_kernel_written(kernel_written_);
    s->set_kernel_deleted(kernel_deleted_);
    s->set_kernel_failed(kernel_failed_);
    s->set_promotion_committed(promotion_committed_);
    s->set_promotion_commit_ms(promotion_commit_ms_);
  }
  s->set_snapshots_sent(snapshots_sent_);
  s->set_snapshots_received(replica_.snapshots());
  s->set_resumes_sent(resumes_sent_);
  s->set_resumes_received(replica_.resumes());
  bool primary;
  {
    absl::MutexLock lock(&mu_);
    primary = desired_.role == v1::PRIMARY;
    s->set_overruns(overruns_);
    s->set_last_error(last_error_);
  }
  if (primary) {
    s->set_snapshots(snapshots_sent_);
    s->set_resumes(resumes_sent_);
    absl::MutexLock lock(&senders_mu_);
    for (v1::PeerStatus& peer : *status->mutable_peers()) {
      auto it = senders_.find(peer.id());
      if (it != senders_.end()) *peer.mutable_sessions() = it->second->Status();
    }
  } else {
    s->set_snapshots(replica_.snapshots());
    s->set_resumes(replica_.resumes());
    s->set_replica_of(replica_.replica_of());
    s->set_lag_ms(replica_.lag_ms());
    uint64_t applied = replica_.position();
    s->set_lag_entries(primary_position > applied ? primary_position - applied : 0);
  }
}

}  // namespace cloudha
