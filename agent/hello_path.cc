#include "agent/hello_path.h"

#include <pthread.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/grpc_status.h"
#include "base/log.h"
#include "crypto/tls_material.h"

namespace cloudha {

HelloPath::HelloPath(HelloPathOptions options, std::shared_ptr<grpc::Channel> channel,
                     const LocalNode* local, const PeerVerifier* verifier,
                     Membership* membership, Clock* clock)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::PeerService::NewStub(channel_)),
      local_(local),
      verifier_(verifier),
      membership_(membership),
      clock_(clock) {
  absl::MutexLock lock(&mu_);
  interval_ = options_.interval;
  lost_after_ = options_.lost_after;
}

HelloPath::~HelloPath() { Stop(); }

void HelloPath::SetTimers(absl::Duration interval, absl::Duration lost_after) {
  absl::MutexLock lock(&mu_);
  interval_ = interval;
  lost_after_ = lost_after;
}

std::pair<absl::Duration, absl::Duration> HelloPath::Timers() {
  absl::MutexLock lock(&mu_);
  return {interval_, lost_after_};
}

void HelloPath::Start() {
  thread_ = std::thread([this] {
    // Shows in top -H and /proc: "hello b/0".
    pthread_setname_np(pthread_self(),
                       absl::StrCat("hello ", options_.peer, "/", options_.index).substr(0, 15).c_str());
    Run();
  });
}

void HelloPath::RequestStop() {
  absl::MutexLock lock(&mu_);
  if (!stop_.HasBeenNotified()) stop_.Notify();
  // Unblocks a Read or Write in progress.
  if (active_ != nullptr) active_->TryCancel();
}

void HelloPath::Stop() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

void HelloPath::Run() {
  absl::Duration backoff = options_.min_backoff;
  std::string last_logged;
  while (!stop_.HasBeenNotified()) {
    bool had_reply = false;
    absl::Status ended = RunStream(&had_reply);
    if (stop_.HasBeenNotified()) break;
    if (had_reply) {
      backoff = options_.min_backoff;
      last_logged.clear();
    }
    std::string reason(ended.message());
    bool refused = ended.code() == absl::StatusCode::kPermissionDenied ||
                   ended.code() == absl::StatusCode::kFailedPrecondition ||
                   ended.code() == absl::StatusCode::kUnauthenticated;
    if (refused) {
      membership_->OnRefused(options_.peer, reason);
      if (options_.metrics != nullptr) {
        std::string why = PeerVerifier::RefusalReason(ended);
        options_.metrics->ConnectionRefused(options_.peer, why.empty() ? "refused_by_peer" : why);
      }
    } else {
      membership_->OnPathError(options_.peer, options_.index, reason);
    }
    // One line per distinct failure, not one per redial.
    if (reason != last_logged) {
      LogEvent(refused ? LogLevel::kError : LogLevel::kWarn,
               "path_failed",
               {{"peer", options_.peer},
                {"path", options_.index},
                {"address", options_.address},
                {"code", absl::StatusCodeToString(ended.code())},
                {"reason", reason}});
      last_logged = reason;
    }
    clock_->SleepUntil(clock_->Now() + backoff, stop_);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status HelloPath::RunStream(bool* had_reply) {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return absl::OkStatus();
    active_ = &context;
  }
  std::unique_ptr<grpc::ClientReaderWriter<v1::Hello, v1::Hello>> stream =
      stub_->Hello(&context);

  absl::Mutex mu;
  absl::Status refused;                  // guarded by mu
  absl::Time last_reply = clock_->Now();  // guarded by mu
  bool reader_done = false;              // guarded by mu

  std::thread reader([&] {
    pthread_setname_np(pthread_self(), "hello-reader");
    v1::Hello reply;
    // The certificate is the same for the whole stream: checked once.
    std::optional<NodeIdentity> verified;
    while (stream->Read(&reply)) {
      absl::Time now = clock_->Now();
      absl::Status s;
      if (!verified.has_value()) {
        absl::StatusOr<NodeIdentity> id = PeerIdentityFromAuthContext(*context.auth_context());
        s = id.ok() ? verifier_->CheckCertificate(*id)
                    : PeerVerifier::WithReason(id.status(), "bad_certificate");
        if (s.ok() && id->node != options_.peer) {
          s = PeerVerifier::WithReason(
              absl::PermissionDeniedError(absl::StrCat("dialed peer \"", options_.peer,
                                                       "\" but its certificate is for node \"",
                                                       id->node, "\"")),
              "wrong_node");
        }
        if (s.ok()) verified = *id;
      }
      if (s.ok()) s = verifier_->CheckHello(*verified, reply);
      if (!s.ok()) {
        absl::MutexLock lock(&mu);
        refused = s;
        context.TryCancel();
        break;
      }
      absl::Duration rtt = reply.echo_send_time_us() != 0
                               ? now - absl::FromUnixMicros(reply.echo_send_time_us())
                               : absl::ZeroDuration();
      membership_->OnReply(options_.peer, options_.index, reply, rtt, now);
      if (options_.metrics != nullptr && rtt > absl::ZeroDuration()) {
        options_.metrics->HelloRoundTrip(options_.peer, options_.index, rtt);
      }
      absl::MutexLock lock(&mu);
      last_reply = now;
      *had_reply = true;
    }
    absl::MutexLock lock(&mu);
    reader_done = true;
  });

  absl::Status silence;
  bool cancel = true;
  uint64_t sequence = 0;
  absl::Time next = clock_->Now();
  while (!stop_.HasBeenNotified()) {
    absl::Time now = clock_->Now();
    const auto [interval, lost_after] = Timers();
    {
      absl::MutexLock lock(&mu);
      if (reader_done) {
        cancel = false;
        break;
      }
      // One interval of slack: a reply due right at the threshold is not
      // silence yet.
      if (now - last_reply >= lost_after + interval) {
        silence = absl::DeadlineExceededError(
            absl::StrCat("no reply for ", absl::FormatDuration(now - last_reply)));
        break;
      }
    }
    v1::Hello hello = local_->MakeHello(now, options_.peer);
    hello.set_sequence(++sequence);
    hello.set_send_time_us(absl::ToUnixMicros(now));
    hello.set_path_index(options_.index);
    // Recorded before the write: on loopback the reply can be read before
    // Write() returns, and must find its hello.
    membership_->OnHelloSent(options_.peer, options_.index, sequence, now);
    if (!stream->Write(hello)) {
      // The call is over; Finish() below says why.
      cancel = false;
      break;
    }
    next += interval;
    if (next <= now) next = now + interval;
    clock_->SleepUntil(next, stop_);
  }
  if (cancel) context.TryCancel();
  reader.join();
  grpc::Status finished = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    active_ = nullptr;
  }
  if (stop_.HasBeenNotified()) return absl::OkStatus();
  absl::MutexLock lock(&mu);
  if (!refused.ok()) return refused;
  if (!silence.ok()) return silence;
  if (finished.ok()) return absl::UnavailableError("the peer ended the stream");
  return FromGrpcStatus(finished);
}

}  // namespace cloudha
