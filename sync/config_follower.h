// The secondary's side of config replication: applies what the primary
// sends on a SyncConfig stream to the config store, and knows whether this
// node verifiably holds the primary's content (in sync, eligible for
// promotion).
//
// The protocol (proto/cloudha/v1/peer.proto): the primary opens with its
// epoch and exclusion list and the follower answers with its own; both then
// leave out the union of the lists (the "effective" set). The primary asks
// for subtree checksums (answered), sends the content of the subtrees that
// differ (pull responses, each naming the prefixes it covers whole), and a
// "complete" marker with its root checksum: at the marker, what the covered
// subtrees hold here and the primary did not send is deleted, and the root
// checksums must agree, or the ack asks for a resync. Then come commits,
// each acked with this node's root checksum; a commit whose checksum
// disagrees (a gap: something was missed) also asks for a resync. Paths the
// effective set excludes are never accepted, whatever the primary sends.
//
// One stream is followed at a time: Open supersedes the stream before,
// whose later messages are refused with ABORTED; so are all messages after
// Supersede. A malformed message (bad path or prefix, unexpected kind) is
// refused with INVALID_ARGUMENT and nothing of it is applied.
//
// Values a resync replaces are logged, noted, and (with replaced_file) saved
// as JSON lines before they are lost.
//
// Thread-safe. Each stream's messages come from one thread at a time.
#ifndef CLOUDHA_SYNC_CONFIG_FOLLOWER_H_
#define CLOUDHA_SYNC_CONFIG_FOLLOWER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "cloudha/v1/peer.pb.h"
#include "sync/config_committer.h"
#include "sync/config_path.h"
#include "sync/config_store.h"

namespace cloudha {

// Appends, for each of `prefixes`, its checksum and its children's (over the
// paths `excluded` leaves in) to `out`.
void FillConfigSubtrees(const ConfigStore& store, const std::vector<std::string>& prefixes,
                        const ExclusionSet& excluded,
                        google::protobuf::RepeatedPtrField<v1::ConfigChecksums::Subtree>* out);

struct ConfigFollowerOptions {
  // This node's own exclusion list.
  ExclusionSet own;
  // JSON lines of the values a resync replaced, appended before they are
  // replaced; "" saves none.
  std::string replaced_file;
  // Asked under the commit lock before each write from `primary`: whether
  // this node still follows it (its role, the primary it knows). Not OK
  // refuses the write (ABORTED is the usual answer). Optional.
  std::function<absl::Status(const std::string& primary)> still_follows;
  // The primary's exclusion list, each time a stream opens. Optional.
  std::function<void(const std::string& primary, const std::vector<std::string>& patterns)>
      on_primary_exclusions;
  // An event for `cloudha events`. Optional.
  std::function<void(const std::string& message)> note;
};

class ConfigFollower {
 public:
  // `committer` (and its store) and `clock` outlive the follower.
  ConfigFollower(ConfigFollowerOptions options, ConfigCommitter* committer, Clock* clock);
  ConfigFollower(const ConfigFollower&) = delete;
  ConfigFollower& operator=(const ConfigFollower&) = delete;

  struct Opened {
    uint64_t stream = 0;
    // The answer (epoch left for the caller, who knows it): this node's
    // revision, exclusion list and root checksum over the effective set.
    v1::ConfigSyncMessage reply;
  };
  // A stream from `primary` opens with `open`; it supersedes the one
  // before, and this node is not in sync until its resync is verified.
  // INVALID_ARGUMENT for a bad exclusion list.
  absl::StatusOr<Opened> Open(const std::string& primary, const v1::ConfigSyncOpen& open);

  // Applies one message of stream `stream`; returns the reply to send, if
  // any. Errors are recorded (last_error) and logged.
  absl::StatusOr<std::optional<v1::ConfigSyncMessage>> OnMessage(
      uint64_t stream, const v1::ConfigSyncMessage& message);

  // The stream ended (either side, any reason). If it was the one followed,
  // this node is not in sync from now on (commits may be missed).
  void Close(uint64_t stream);
  // The stream followed may write no more (this node became primary,
  // follows another, stops, or drifted).
  void Supersede();
  // This node's content no longer verifiably matches the primary's (a hello
  // checksum disagreed): not in sync until a new resync.
  void MarkUnsynced();
  // This node's exclusion list changed (a reload): streams opened from now
  // on use `own`; the one followed is not in sync any more and may write no
  // more (the primary's next stream diffs with the new list).
  void SetOwn(ExclusionSet own);

  // The primary whose content this node verifiably holds; "" when none.
  std::string synced_with() const;
  // The primary of the stream followed; "" when none.
  std::string following() const;
  // The primary's revision applied last.
  uint64_t primary_revision() const;
  struct Stats {
    uint64_t resyncs = 0;
    double last_resync_ms = 0;
    uint64_t last_resync_entries = 0;
    // The last apply error, cleared by a verified resync.
    std::string last_error;
  };
  Stats stats() const;

 private:
  // One stream's state, touched only by that stream's thread.
  struct Stream {
    std::string primary;
    uint64_t epoch = 0;
    ExclusionSet effective;
    bool synced = false;
    absl::Time opened;
    uint64_t resync_entries = 0;
    uint64_t replaced = 0;
    // During a resync: subtrees the primary sent whole, and the paths it
    // wrote or deleted since the resync began.
    std::set<std::string> covered;
    std::set<std::string> received;
  };

  absl::StatusOr<std::optional<v1::ConfigSyncMessage>> Apply(uint64_t id, Stream* s,
                                                             const v1::ConfigSyncMessage& message);
  absl::StatusOr<v1::ConfigSyncMessage> OnChecksumRequest(Stream* s,
                                                          const v1::ConfigChecksumRequest& request);
  absl::StatusOr<v1::ConfigSyncMessage> OnCommit(uint64_t id, Stream* s,
                                                 const v1::ConfigCommit& commit);
  absl::StatusOr<std::optional<v1::ConfigSyncMessage>> OnPullResponse(
      uint64_t id, Stream* s, const v1::ConfigPullResponse& pull);
  // Verifies a resync's end; the ack (asking a resync on a mismatch).
  absl::StatusOr<v1::ConfigSyncMessage> FinishResync(uint64_t id, Stream* s,
                                                     const v1::ConfigPullResponse& pull);
  // Commits `changes` if stream `id` is still the one followed.
  absl::StatusOr<ConfigCommitResult> Commit(uint64_t id, const Stream& s,
                                            const std::vector<ConfigChange>& changes);
  // Logs and notes the local values a resync replaced.
  void ReportReplaced(Stream* s, const ConfigCommitResult& result);
  void SaveReplaced(const std::string& primary, const std::vector<ConfigChange>& changes);
  // Not in sync (with `id`'s primary) until the next verified resync.
  void Unsync(uint64_t id, Stream* s);
  void Note(const std::string& message) const;
  // Whether stream `id` may still write.
  bool AcceptsLocked(uint64_t id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return current_ == id && !superseded_;
  }

  const ConfigFollowerOptions options_;
  ConfigCommitter* const committer_;
  ConfigStore* const store_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  std::map<uint64_t, std::unique_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  uint64_t next_stream_ ABSL_GUARDED_BY(mu_) = 1;
  // The stream followed (opened last); 0 when none. Superseded: it may
  // write no more.
  uint64_t current_ ABSL_GUARDED_BY(mu_) = 0;
  // This node's own exclusion list (options_.own until SetOwn).
  ExclusionSet own_ ABSL_GUARDED_BY(mu_);
  bool superseded_ ABSL_GUARDED_BY(mu_) = false;
  std::string following_ ABSL_GUARDED_BY(mu_);
  std::string synced_with_ ABSL_GUARDED_BY(mu_);
  uint64_t primary_revision_ ABSL_GUARDED_BY(mu_) = 0;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_FOLLOWER_H_
