#include "sync/session_sender.h"

#include "absl/strings/str_cat.h"

namespace cloudha {

SessionSender::SessionSender(std::shared_ptr<grpc::Channel> channel, SessionTable* table,
                             const SessionSenderOptions& options, Clock* clock,
                             EventCallback on_event)
    : stub_(v1::PeerService::NewStub(channel)),
      table_(table),
      options_(options),
      clock_(clock),
      on_event_(std::move(on_event)) {
  log_reader_ = options.resume_reader;
  thread_ = std::thread([this] { Run(); });
}

SessionSender::~SessionSender() {
  StopThread();
  int reader = ReleaseReader();
  if (reader != 0) table_->RemoveReader(reader);
}

void SessionSender::StopThread() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    if (context_ != nullptr) context_->TryCancel();
    acked_.SignalAll();
  }
  table_->WakeWaiters();
  if (thread_.joinable()) thread_.join();
}

int SessionSender::ReleaseReader() {
  StopThread();
  absl::MutexLock lock(&mu_);
  int reader = log_reader_;
  log_reader_ = 0;
  return reader;
}

void SessionSender::SetState(const std::string& state) {
  absl::MutexLock lock(&mu_);
  state_ = state;
}

void SessionSender::Run() {
  while (!stop_.HasBeenNotified()) {
    std::string why = RunStream();
    if (stop_.HasBeenNotified()) break;
    SetState(why);
    on_event_("stream_failed", why);
    clock_->SleepUntil(clock_->Now() + options_.retry, stop_);
  }
}

std::string SessionSender::RunStream() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return "stopped";
    context_ = &context;
    stream_broken_ = false;
    resync_requested_ = false;
    offer_received_ = false;
    in_flight_.clear();
    acked_sequence_ = next_sequence_ - 1;
    state_ = "connecting";
  }
  auto stream = stub_->SyncSessions(&context);
  v1::SessionSyncMessage open;
  open.mutable_open()->set_epoch(options_.epoch);
  open.mutable_open()->set_boot_id(options_.boot_id);
  {
    absl::MutexLock lock(&mu_);
    open.mutable_open()->set_next_sequence(next_sequence_);
  }
  std::thread reader;
  int log_reader = 0;
  {
    absl::MutexLock lock(&mu_);
    log_reader = log_reader_;
  }
  std::string why;
  if (!stream->Write(open)) {
    why = "could not open the stream";
  } else {
    reader = std::thread([&] { ReadAcks(stream.get()); });
    bool need_snapshot = !TryResume(stream.get());
    while (!stop_.HasBeenNotified()) {
      if (need_snapshot) {
        {
          absl::MutexLock lock(&mu_);
          // A broken stream keeps the reader for the next one to resume.
          if (stream_broken_) break;
        }
        if (log_reader != 0) table_->RemoveReader(log_reader);
        SetState("snapshot");
        SessionSnapshot snapshot = table_->Snapshot(options_.batch_bytes, &log_reader);
        {
          absl::MutexLock lock(&mu_);
          log_reader_ = log_reader;
        }
        int64_t cut_us = absl::ToUnixMicros(clock_->WallNow());
        size_t chunks = std::max<size_t>(1, snapshot.chunks.size());
        bool ok = true;
        for (size_t i = 0; i < chunks && ok; ++i) {
          v1::SessionSyncMessage m;
          v1::SessionBatch* b = m.mutable_batch();
          b->set_snapshot_begin(i == 0);
          if (i == 0) b->set_snapshot_sessions(snapshot.sessions);
          b->set_snapshot_end(i + 1 == chunks);
          if (i < snapshot.chunks.size()) {
            b->set_changes(std::move(snapshot.chunks[i]));
            b->set_change_count(snapshot.counts[i]);
          }
          b->set_position(snapshot.position);
          b->set_cut_time_us(cut_us);
          ok = Send(stream.get(), m, snapshot.position, cut_us);
        }
        if (!ok) break;
        {
          absl::MutexLock lock(&mu_);
          ++snapshots_;
          state_ = "streaming";
        }
        on_event_("snapshot_sent", absl::StrCat(snapshot.sessions, " sessions at position ",
                                                snapshot.position));
        need_snapshot = false;
      }
      {
        absl::MutexLock lock(&mu_);
        if (stream_broken_) break;
        if (resync_requested_) {
          resync_requested_ = false;
          need_snapshot = true;
          on_event_("resync", resync_reason_);
          continue;
        }
      }
      LogBatch batch;
      ChangeLog::ReadResult r = table_->Read(log_reader, options_.batch_bytes, &batch);
      if (r == ChangeLog::ReadResult::kGone) {
        on_event_("resync", "the peer fell behind the change log; sending a snapshot");
        need_snapshot = true;
        continue;
      }
      if (r == ChangeLog::ReadResult::kEmpty) {
        table_->WaitForChanges(batch.end_position, absl::Milliseconds(100));
        continue;
      }
      v1::SessionSyncMessage m;
      v1::SessionBatch* b = m.mutable_batch();
      b->set_changes(std::move(batch.changes));
      b->set_change_count(batch.count);
      b->set_position(batch.end_position);
      b->set_cut_time_us(batch.oldest_us);
      if (!Send(stream.get(), m, batch.end_position, batch.oldest_us)) break;
    }
  }
  // On stop, cancel; otherwise half-close and let the peer end the call, so
  // that its status (the reason it refused, say) reaches the log.
  if (stop_.HasBeenNotified()) {
    context.TryCancel();
  } else {
    stream->WritesDone();
  }
  if (reader.joinable()) reader.join();
  grpc::Status status = stream->Finish();
  // The log reader stays: the next stream may resume from it.
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  if (why.empty()) {
    why = status.ok() ? "stream ended"
                      : absl::StrCat("stream failed: ", status.error_message());
  }
  return why;
}

bool SessionSender::TryResume(
    grpc::ClientReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream) {
  v1::SessionResumeOffer offer;
  int log_reader = 0;
  {
    absl::MutexLock lock(&mu_);
    auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return offer_received_ || stream_broken_ || stop_.HasBeenNotified();
    };
    // A bound on a blocking wait, not a clock read (as WaitForChanges).
    mu_.AwaitWithTimeout(absl::Condition(&answered), options_.offer_wait);
    if (!offer_received_ || !offer_.resumable()) return false;
    offer = offer_;
    log_reader = log_reader_;
  }
  if (log_reader == 0 || !table_->RewindReader(log_reader, offer.position())) return false;
  v1::SessionSyncMessage m;
  v1::SessionBatch* b = m.mutable_batch();
  b->set_resume_from(offer.position());
  b->set_position(offer.position());
  if (!Send(stream, m, offer.position(), 0)) return false;
  {
    absl::MutexLock lock(&mu_);
    ++resumes_;
    state_ = "streaming";
  }
  on_event_("resumed", absl::StrCat("from position ", offer.position()));
  return true;
}

bool SessionSender::Send(
    grpc::ClientReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream,
    v1::SessionSyncMessage& message, uint64_t end_position, int64_t oldest_us) {
  {
    absl::MutexLock lock(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_.HasBeenNotified() || stream_broken_ ||
             next_sequence_ - acked_sequence_ <= static_cast<uint64_t>(options_.window);
    };
    while (!room()) acked_.Wait(&mu_);
    if (stop_.HasBeenNotified() || stream_broken_) return false;
    message.mutable_batch()->set_sequence(next_sequence_);
    in_flight_.push_back({next_sequence_, end_position, oldest_us});
    ++next_sequence_;
    sent_position_ = end_position;
  }
  return stream->Write(message);
}

void SessionSender::ReadAcks(
    grpc::ClientReaderWriter<v1::SessionSyncMessage, v1::SessionSyncMessage>* stream) {
  v1::SessionSyncMessage in;
  while (stream->Read(&in)) {
    absl::MutexLock lock(&mu_);
    if (in.has_ack()) {
      uint64_t sequence = in.ack().sequence();
      if (sequence > acked_sequence_ && sequence < next_sequence_) {
        acked_sequence_ = sequence;
        while (!in_flight_.empty() && in_flight_.front().sequence <= sequence) {
          acked_position_ = in_flight_.front().end_position;
          in_flight_.pop_front();
        }
        if (log_reader_ != 0) table_->AckReader(log_reader_, acked_position_);
      }
    } else if (in.has_resume_offer()) {
      offer_received_ = true;
      offer_ = in.resume_offer();
    } else if (in.has_resync()) {
      resync_requested_ = true;
      resync_reason_ = in.resync().reason();
    }
    acked_.SignalAll();
  }
  absl::MutexLock lock(&mu_);
  stream_broken_ = true;
  acked_.SignalAll();
  table_->WakeWaiters();
}

uint64_t SessionSender::acked_position() const {
  absl::MutexLock lock(&mu_);
  return acked_position_;
}

v1::PeerSessionStatus SessionSender::Status() const {
  v1::PeerSessionStatus status;
  uint64_t position = table_->position();
  int64_t now_us = absl::ToUnixMicros(clock_->WallNow());
  absl::MutexLock lock(&mu_);
  status.set_state(state_);
  status.set_acked_position(acked_position_);
  status.set_snapshots(snapshots_);
  status.set_resumes(resumes_);
  status.set_lag_entries(position > acked_position_ ? position - acked_position_ : 0);
  int64_t oldest = 0;
  if (!in_flight_.empty()) {
    oldest = in_flight_.front().oldest_us;
  } else if (position > sent_position_) {
    oldest = table_->OldestUnreadUs(sent_position_);
  }
  status.set_lag_ms(oldest > 0 ? std::max<int64_t>(0, now_us - oldest) / 1000.0 : 0);
  return status;
}

}  // namespace cloudha
