// The primary's side of session replication to one secondary: a thread that
// keeps a SyncSessions stream open on the peer's sync channel, sends a
// snapshot and then the live tail of the table's change log, and counts the
// peer's cumulative acks.
//
// Backpressure: at most `window` batches go unacknowledged; the sender then
// waits, and the change log holds what the peer has not acknowledged, up to
// its memory bound. A peer that falls further behind gets a fresh snapshot.
// The table's writers never wait for a peer, and the sender shares nothing
// with the heartbeat paths (its own channel and thread).
//
// Resume: the sender keeps its change-log reader across streams. When a new
// stream opens, the peer offers its position (SessionResumeOffer); if the
// log still holds the changes after it, only those are sent (a first batch
// with resume_from), else a snapshot. A reader can outlive the sender
// (ReleaseReader) so that a peer back within the window resumes too.
//
// Thread-safe. The destructor cancels the stream and joins the thread.
#ifndef CLOUDHA_SYNC_SESSION_SENDER_H_
#define CLOUDHA_SYNC_SESSION_SENDER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "cloudha/v1/admin.pb.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "sync/session_table.h"

namespace cloudha {

struct SessionSenderOptions {
  std::string peer_id;
  // This primary's epoch and incarnation, sent in SessionSyncOpen.
  uint64_t epoch = 0;
  uint64_t boot_id = 0;
  // Bytes of changes per batch.
  size_t batch_bytes = 256 << 10;
  // Unacknowledged batches in flight.
  int window = 16;
  // A change-log reader a previous sender to this peer, at this epoch,
  // released (0: none); this sender owns it from now on.
  int resume_reader = 0;
  // How long to wait for the peer's resume offer before sending a snapshot
  // (a peer that never offers one).
  absl::Duration offer_wait = absl::Seconds(5);
  // Wait before redialing a failed stream.
  absl::Duration retry = absl::Milliseconds(200);
};

class SessionSender {
 public:
  // Starts the thread. `on_event(kind, detail)` is called (on the sender's
  // thread) for what deserves a log line: "snapshot_sent", "resumed",
  // "stream_failed", "resync".
  using EventCallback = std::function<void(const std::string& kind, const std::string& detail)>;
  SessionSender(std::shared_ptr<grpc::Channel> channel, SessionTable* table,
                const SessionSenderOptions& options, Clock* clock, EventCallback on_event);
  ~SessionSender();
  SessionSender(const SessionSender&) = delete;
  SessionSender& operator=(const SessionSender&) = delete;

  v1::PeerSessionStatus Status() const;
  // The last position the peer acknowledged.
  uint64_t acked_position() const;
  // Stops the stream and the thread and hands over the change-log reader
  // (0 if none), which the caller then owns (SessionTable::RemoveReader, or
  // SessionSenderOptions::resume_reader of a later sender).
  int ReleaseReader();

 private:
  struct InFlight {
    uint64_t sequence;
    uint64_t end_position;
    int64_t oldest_us;
  };
  void Run();
  void StopThread();
  // One stream, from open to failure. Returns why it ended.
  std::string RunStream();
  // Waits for the peer's offer and, when the log still holds what follows
  // it, sends the batch that resumes there. False: send a snapshot.
  bool TryResume(
      grpc::ClientReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream);
  void ReadAcks(grpc::ClientReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream);
  // Sends one batch, after waiting for room in the window. False when the
  // stream broke or the sender stops.
  bool Send(grpc::ClientReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream,
            v1::SessionSyncMessage& message, uint64_t end_position, int64_t oldest_us);
  void SetState(const std::string& state);

  std::unique_ptr<v1::PeerService::Stub> stub_;
  SessionTable* const table_;
  const SessionSenderOptions options_;
  Clock* const clock_;
  EventCallback on_event_;
  absl::Notification stop_;

  mutable absl::Mutex mu_;
  absl::CondVar acked_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string state_ ABSL_GUARDED_BY(mu_) = "connecting";
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t acked_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_position_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  bool resync_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::string resync_reason_ ABSL_GUARDED_BY(mu_);
  uint64_t snapshots_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t resumes_ ABSL_GUARDED_BY(mu_) = 0;
  // The change-log reader, kept across streams (0: none yet).
  int log_reader_ ABSL_GUARDED_BY(mu_) = 0;
  bool offer_received_ ABSL_GUARDED_BY(mu_) = false;
  v1::SessionResumeOffer offer_ ABSL_GUARDED_BY(mu_);
  uint64_t sent_position_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_SESSION_SENDER_H_
