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
}

std::string ConfigPusher::state() const {
  absl::MutexLock lock(&mu_);
  return session_ != nullptr ? session_->state() : state_;
}

void ConfigPusher::SetState(std::string state) {
  absl::MutexLock lock(&mu_);
  state_ = std::move(state);
}

void ConfigPusher::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stop_.HasBeenNotified()) {
    absl::Status s = RunStream();
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
  v1::ConfigSyncMessage reply;
  if (!stream->Write(ConfigPushSession::OpenMessage(options_.epoch, *store_, options_.own)) ||
      !stream->Read(&reply)) {
    return stream->Finish();
  }
  absl::StatusOr<std::unique_ptr<ConfigPushSession>> started =
      ConfigPushSession::Start(options_.peer, options_.own, reply, committer_, outboxes_);
  if (!started.ok()) {
    stream->Cancel();
    stream->Finish().IgnoreError();  // the bad answer is the reason to give
    return started.status();
  }
  std::unique_ptr<ConfigPushSession> session = *std::move(started);
  if (on_peer_exclusions_) on_peer_exclusions_(options_.peer, session->peer_exclusions());
  {
    absl::MutexLock lock(&mu_);
    session_ = session.get();
  }
  struct Forget {
    ConfigPusher* p;
    ~Forget() {
      absl::MutexLock lock(&p->mu_);
      p->session_ = nullptr;
    }
  } forget{this};
  ConfigOutbox* outbox = session->outbox();
  // Answers from the secondary, shared with this thread under the outbox's
  // lock (so that an answer wakes the loop like a commit does).
  std::deque<v1::ConfigSyncMessage> inbox;
  bool reader_done = false;
  std::thread reader([&] {
    v1::ConfigSyncMessage in;
    while (stream->Read(&in)) {
      outbox->Locked([&] { inbox.push_back(in); });
    }
    outbox->Locked([&] { reader_done = true; });
  });
  absl::Status result = Loop(stream.get(), session.get(), &inbox, &reader_done);
  bool ended_by_peer = false;
  outbox->Locked([&] { ended_by_peer = reader_done; });
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

absl::Status ConfigPusher::Loop(ConfigPushStream* stream, ConfigPushSession* session,
                                std::deque<v1::ConfigSyncMessage>* inbox, bool* reader_done) {
  ConfigOutbox* outbox = session->outbox();
  while (!stop_.HasBeenNotified()) {
    // Woken by a commit, an answer, the stream ending or a stop; the
    // timeout is only a backstop.
    absl::StatusOr<std::vector<v1::ConfigSyncMessage>> out = session->TakeOutgoing(
        [&] { return !inbox->empty() || *reader_done || stop_.HasBeenNotified(); },
        absl::Seconds(2));
    if (!out.ok()) return out.status();
    std::deque<v1::ConfigSyncMessage> in;
    bool done = false;
    outbox->Locked([&] {
      in.swap(*inbox);
      done = *reader_done;
    });
    if (out->empty() && in.empty() && done) {
      return absl::UnavailableError(absl::StrCat(options_.peer, " closed the config stream"));
    }
    for (const v1::ConfigSyncMessage& m : *out) {
      if (!stream->Write(m)) {
        return absl::UnavailableError(
            absl::StrCat("the config stream to ", options_.peer, " broke"));
      }
    }
    for (const v1::ConfigSyncMessage& m : in) {
      if (absl::Status s = session->OnMessage(m); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace cloudha
