#include "sync/config_follower.h"

#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "sync/config_sync_limits.h"

namespace cloudha {
namespace {

absl::Status Superseded(const std::string& primary) {
  return absl::AbortedError(
      absl::StrCat("the config stream from ", primary,
                   " was superseded (this node is primary now, or follows another stream)"));
}

}  // namespace

void FillConfigSubtrees(const ConfigStore& store, const std::vector<std::string>& prefixes,
                        const ExclusionSet& excluded,
                        google::protobuf::RepeatedPtrField<v1::ConfigChecksums::Subtree>* out) {
  auto add = [&](const SubtreeChecksum& c) {
    v1::ConfigChecksums::Subtree* s = out->Add();
    s->set_prefix(c.prefix);
    s->set_checksum(c.checksum);
    s->set_entries(c.count);
    s->set_exact(c.exact);
  };
  for (const std::string& prefix : prefixes) {
    add(store.Checksum(prefix, excluded));
    for (const SubtreeChecksum& c : store.Children(prefix, excluded)) add(c);
  }
}

ConfigFollower::ConfigFollower(ConfigFollowerOptions options, ConfigCommitter* committer,
                               Clock* clock)
    : options_(std::move(options)),
      committer_(committer),
      store_(committer->store()),
      clock_(clock),
      own_(options_.own) {}

absl::StatusOr<ConfigFollower::Opened> ConfigFollower::Open(const std::string& primary,
                                                            const v1::ConfigSyncOpen& open) {
  absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create(ExclusionPatterns(open.exclude()));
  if (!theirs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("exclusion list: ", theirs.status().message()));
  }
  if (options_.on_primary_exclusions) options_.on_primary_exclusions(primary, theirs->patterns());
  ExclusionSet own;
  {
    absl::MutexLock lock(&mu_);
    own = own_;
  }
  auto stream = std::make_unique<Stream>();
  stream->primary = primary;
  stream->epoch = open.epoch();
  stream->effective = own.Union(*theirs);
  stream->opened = clock_->Now();
  Opened opened;
  v1::ConfigSyncOpen* reply = opened.reply.mutable_open();
  reply->set_revision(store_->revision());
  for (const std::string& p : own.patterns()) reply->add_exclude(p);
  reply->set_root_checksum(store_->Checksum("", stream->effective).checksum);
  LogEvent(LogLevel::kInfo, "config_follow",
           {{"primary", primary},
            {"epoch", stream->epoch},
            {"exclude", absl::StrJoin(stream->effective.patterns(), ",")}});
  absl::MutexLock lock(&mu_);
  opened.stream = next_stream_++;
  streams_[opened.stream] = std::move(stream);
  current_ = opened.stream;
  // A SetOwn since the copy above: this stream speaks the old list and may
  // not write (the primary's next stream brings the new one).
  superseded_ = !(own_ == own);
  following_ = primary;
  // In sync again once this stream's resync verified the content.
  synced_with_.clear();
  return opened;
}

void ConfigFollower::Close(uint64_t stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
  if (current_ != stream) return;
  current_ = 0;
  following_.clear();
  // Commits may be missed from now on: not in sync until a new stream's
  // resync. With the primary gone, the election still takes this node
  // (SYNCING only yields to an in-sync candidate).
  synced_with_.clear();
}

void ConfigFollower::Supersede() {
  absl::MutexLock lock(&mu_);
  superseded_ = true;
}

void ConfigFollower::SetOwn(ExclusionSet own) {
  absl::MutexLock lock(&mu_);
  own_ = std::move(own);
  superseded_ = true;
  synced_with_.clear();
}

void ConfigFollower::MarkUnsynced() {
  absl::MutexLock lock(&mu_);
  synced_with_.clear();
}

std::string ConfigFollower::synced_with() const {
  absl::MutexLock lock(&mu_);
  return synced_with_;
}

std::string ConfigFollower::following() const {
  absl::MutexLock lock(&mu_);
  return following_;
}

uint64_t ConfigFollower::primary_revision() const {
  absl::MutexLock lock(&mu_);
  return primary_revision_;
}

ConfigFollower::Stats ConfigFollower::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void ConfigFollower::Note(const std::string& message) const {
  if (options_.note) options_.note(message);
}

absl::StatusOr<std::optional<v1::ConfigSyncMessage>> ConfigFollower::OnMessage(
    uint64_t stream, const v1::ConfigSyncMessage& message) {
  Stream* s = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(stream);
    if (it != streams_.end()) s = it->second.get();
  }
  absl::StatusOr<std::optional<v1::ConfigSyncMessage>> reply =
      s == nullptr ? absl::FailedPreconditionError("no such config stream")
                   : Apply(stream, s, message);
  if (!reply.ok()) {
    LogEvent(LogLevel::kError, "config_apply_failed",
             {{"primary", s == nullptr ? "" : s->primary}, {"reason", reply.status().message()}});
    absl::MutexLock lock(&mu_);
    stats_.last_error = std::string(reply.status().message());
  }
  return reply;
}

absl::StatusOr<std::optional<v1::ConfigSyncMessage>> ConfigFollower::Apply(
    uint64_t id, Stream* s, const v1::ConfigSyncMessage& message) {
  {
    absl::MutexLock lock(&mu_);
    if (!AcceptsLocked(id)) {
      return Superseded(s->primary);
    }
  }
  if (message.has_checksum_request()) {
    absl::StatusOr<v1::ConfigSyncMessage> r = OnChecksumRequest(s, message.checksum_request());
    if (!r.ok()) return r.status();
    return std::optional<v1::ConfigSyncMessage>(*std::move(r));
  }
  if (message.has_commit()) {
    absl::StatusOr<v1::ConfigSyncMessage> r = OnCommit(id, s, message.commit());
    if (!r.ok()) return r.status();
    return std::optional<v1::ConfigSyncMessage>(*std::move(r));
  }
  if (message.has_pull_response()) return OnPullResponse(id, s, message.pull_response());
  return absl::InvalidArgumentError("unexpected message on the config stream");
}

void ConfigFollower::Unsync(uint64_t id, Stream* s) {
  s->synced = false;
  s->opened = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (current_ == id) synced_with_.clear();
}

absl::StatusOr<v1::ConfigSyncMessage> ConfigFollower::OnChecksumRequest(
    Stream* s, const v1::ConfigChecksumRequest& request) {
  std::vector<std::string> prefixes(request.prefixes().begin(), request.prefixes().end());
  for (const std::string& p : prefixes) {
    if (absl::Status st = ValidateConfigPrefix(p); !st.ok()) return st;
  }
  v1::ConfigSyncMessage reply;
  FillConfigSubtrees(*store_, prefixes, s->effective,
                     reply.mutable_checksums()->mutable_subtrees());
  if (s->synced) {
    // The primary diffs again: whatever it finds, this replica is not in
    // sync until the diff completes.
    s->synced = false;
    s->opened = clock_->Now();
    absl::MutexLock lock(&mu_);
    synced_with_.clear();
  }
  return reply;
}

absl::StatusOr<ConfigCommitResult> ConfigFollower::Commit(
    uint64_t id, const Stream& s, const std::vector<ConfigChange>& changes) {
  return committer_->WriteReplicated(changes, s.primary, [&]() -> absl::Status {
    {
      absl::MutexLock lock(&mu_);
      if (!AcceptsLocked(id)) {
        return Superseded(s.primary);
      }
    }
    return options_.still_follows ? options_.still_follows(s.primary) : absl::OkStatus();
  });
}

absl::StatusOr<v1::ConfigSyncMessage> ConfigFollower::OnCommit(uint64_t id, Stream* s,
                                                               const v1::ConfigCommit& c) {
  for (const v1::ConfigEntry& e : c.puts()) {
    if (absl::Status st = ValidateConfigPath(e.path()); !st.ok()) return st;
  }
  for (const std::string& d : c.deletes()) {
    if (absl::Status st = ValidateConfigPath(d); !st.ok()) return st;
  }
  std::vector<ConfigChange> changes;
  for (const v1::ConfigEntry& e : c.puts()) {
    if (s->effective.Excludes(e.path())) continue;  // never accepted
    changes.push_back({e.path(), e.value()});
    if (!s->synced) s->received.insert(e.path());
  }
  for (const std::string& d : c.deletes()) {
    if (s->effective.Excludes(d)) continue;
    changes.push_back({d, std::nullopt});
    if (!s->synced) s->received.insert(d);
  }
  absl::StatusOr<ConfigCommitResult> r = Commit(id, *s, changes);
  if (!r.ok()) return r.status();
  std::string root = store_->Checksum("", s->effective).checksum;
  v1::ConfigSyncMessage ack;
  ack.mutable_ack()->set_revision(c.revision());
  ack.mutable_ack()->set_root_checksum(root);
  {
    absl::MutexLock lock(&mu_);
    if (current_ == id) primary_revision_ = c.revision();
  }
  if (s->synced && root != c.root_checksum()) {
    LogEvent(LogLevel::kWarn, "config_checksum_mismatch",
             {{"primary", s->primary}, {"revision", c.revision()}});
    Unsync(id, s);
    ack.mutable_ack()->set_resync(true);
  }
  return ack;
}

absl::StatusOr<std::optional<v1::ConfigSyncMessage>> ConfigFollower::OnPullResponse(
    uint64_t id, Stream* s, const v1::ConfigPullResponse& p) {
  for (const std::string& prefix : p.prefixes()) {
    if (absl::Status st = ValidateConfigPrefix(prefix); !st.ok()) return st;
  }
  for (const v1::ConfigEntry& e : p.entries()) {
    if (absl::Status st = ValidateConfigPath(e.path()); !st.ok()) return st;
  }
  for (const std::string& d : p.deletes()) {
    if (absl::Status st = ValidateConfigPath(d); !st.ok()) return st;
  }
  std::vector<ConfigChange> changes;
  for (const std::string& prefix : p.prefixes()) s->covered.insert(prefix);
  for (const v1::ConfigEntry& e : p.entries()) {
    if (s->effective.Excludes(e.path())) continue;
    changes.push_back({e.path(), e.value()});
    s->received.insert(e.path());
  }
  for (const std::string& d : p.deletes()) {
    if (s->effective.Excludes(d)) continue;
    changes.push_back({d, std::nullopt});
    s->received.insert(d);
  }
  s->resync_entries += p.entries_size() + p.deletes_size();
  if (p.complete()) {
    // What the covered subtrees hold here and the primary did not send.
    for (const std::string& prefix : s->covered) {
      for (const StoredEntry& e : store_->List(prefix)) {
        if (s->effective.Excludes(e.path) || s->received.count(e.path) != 0) continue;
        changes.push_back({e.path, std::nullopt});
        ++s->resync_entries;
      }
    }
  }
  // What this node is about to lose, saved before it is lost.
  SaveReplaced(s->primary, changes);
  absl::StatusOr<ConfigCommitResult> r = Commit(id, *s, changes);
  if (!r.ok()) return r.status();
  ReportReplaced(s, *r);
  if (!p.complete()) return std::optional<v1::ConfigSyncMessage>();
  absl::StatusOr<v1::ConfigSyncMessage> ack = FinishResync(id, s, p);
  if (!ack.ok()) return ack.status();
  return std::optional<v1::ConfigSyncMessage>(*std::move(ack));
}

absl::StatusOr<v1::ConfigSyncMessage> ConfigFollower::FinishResync(
    uint64_t id, Stream* s, const v1::ConfigPullResponse& p) {
  std::string root = store_->Checksum("", s->effective).checksum;
  v1::ConfigSyncMessage ack;
  ack.mutable_ack()->set_revision(p.revision());
  ack.mutable_ack()->set_root_checksum(root);
  double ms = absl::ToDoubleMilliseconds(clock_->Now() - s->opened);
  uint64_t replaced = s->replaced;
  uint64_t entries = s->resync_entries;
  s->covered.clear();
  s->received.clear();
  s->replaced = 0;
  s->resync_entries = 0;
  if (root != p.root_checksum()) {
    LogEvent(LogLevel::kWarn, "config_checksum_mismatch",
             {{"primary", s->primary}, {"revision", p.revision()}, {"after", "resync"}});
    ack.mutable_ack()->set_resync(true);
    s->opened = clock_->Now();
    return ack;
  }
  s->synced = true;
  {
    absl::MutexLock lock(&mu_);
    // Only while this is still the stream followed: a superseded one must
    // not vouch for content the new one has not verified.
    if (!AcceptsLocked(id)) {
      return Superseded(s->primary);
    }
    synced_with_ = s->primary;
    primary_revision_ = p.revision();
    ++stats_.resyncs;
    stats_.last_resync_ms = ms;
    stats_.last_resync_entries = entries;
    stats_.last_error.clear();
  }
  LogEvent(LogLevel::kInfo, "config_in_sync",
           {{"primary", s->primary},
            {"revision", p.revision()},
            {"entries", entries},
            {"replaced", replaced},
            {"ms", absl::StrFormat("%.1f", ms)}});
  Note(absl::StrCat("config: in sync with ", s->primary, " (", entries, " entries in ",
                    absl::StrFormat("%.1f", ms), " ms",
                    replaced > 0 ? absl::StrCat(", ", replaced, " local values replaced") : "",
                    ")"));
  return ack;
}

void ConfigFollower::ReportReplaced(Stream* s, const ConfigCommitResult& result) {
  for (const ConfigCommitResult::Applied& a : result.applied) {
    if (!a.old_value.has_value()) continue;
    ++s->replaced;
    if (s->replaced > kConfigReplacedLogLimit) continue;
    std::string theirs =
        a.new_value.has_value() ? ShortenConfigValue(*a.new_value) : std::string("<deleted>");
    LogEvent(LogLevel::kWarn, "config_replaced",
             {{"path", a.path},
              {"local", ShortenConfigValue(*a.old_value)},
              {"primary", theirs},
              {"from", s->primary}});
    Note(absl::StrCat("config: ", a.path, " = ", ShortenConfigValue(*a.old_value), " replaced by ",
                      s->primary, "'s ",
                      a.new_value.has_value() ? ShortenConfigValue(*a.new_value) : "deletion"));
  }
}

void ConfigFollower::SaveReplaced(const std::string& primary,
                                  const std::vector<ConfigChange>& changes) {
  if (options_.replaced_file.empty()) return;
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
  std::ofstream out(options_.replaced_file, std::ios::app);
  out << lines;
  out.flush();
  if (!out) {
    LogEvent(LogLevel::kError, "config_replaced_not_saved",
             {{"file", options_.replaced_file}, {"reason", "write failed (disk full?)"}});
  }
}

}  // namespace cloudha
