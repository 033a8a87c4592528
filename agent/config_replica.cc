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
#include "agent/grpc_status.h"
#include "base/log.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cloudha {

using namespace config_sync;  // NOLINT: this file is part of config sync

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
      if (absl::Status s = ValidateConfigPath(e.path()); !s.ok()) return s;
    }
    for (const std::string& d : c.deletes()) {
      if (absl::Status s = ValidateConfigPath(d); !s.ok()) return s;
    }
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
      if (follow_context_ == f->context) primary_revision_ = c.revision();
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
    // What this node is about to lose, saved before it is lost.
    SaveReplaced(f->peer, changes);
    absl::StatusOr<ConfigCommitResult> r = Commit(changes, f);
    if (!r.ok()) return r.status();
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
      // Only while this is still the stream followed: a superseded one
      // must not vouch for content the new one has not verified.
      if (follow_context_ != f->context) {
        return absl::AbortedError(
            absl::StrCat("the config stream from ", f->peer, " was superseded"));
      }
      synced_with_ = f->peer;
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


void ConfigSync::SaveReplaced(const std::string& primary,
                              const std::vector<ConfigChange>& changes) {
  std::string lines;
  int64_t now_ms = absl::ToUnixMillis(clock_->WallNow());
  for (const ConfigChange& c : changes) {
    std::optional<StoredEntry> old = store_->Get(c.path);
    if (!old.has_value() || (c.value.has_value() && *c.value == old->value)) continue;
    google::protobuf::Struct line;
    auto& f = *line.mutable_fields();
    f["unix_ms"].set_number_value(static_cast<double>(now_ms));
    f["primary"].set_string_value(primary);
    f["path"].set_string_value(c.path);
    f["local"].set_string_value(old->value);
    if (c.value.has_value()) {
      f["primary_value"].set_string_value(*c.value);
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

}  // namespace cloudha
