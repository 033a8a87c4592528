#include "agent/arbiter_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace cloudha {

namespace {
// What the margin keeps besides the drift: the step-down's own time.
constexpr absl::Duration kStepDownTime = absl::Milliseconds(50);
}  // namespace

absl::Time ArbiterClient::HeldUntil(absl::Time sent, absl::Duration ttl, uint32_t drift_ppm) {
  absl::Duration margin = ttl * (2.0 * drift_ppm / 1e6) + kStepDownTime;
  return sent + ttl - margin;
}

ArbiterClient::ArbiterClient(Options options, std::unique_ptr<ArbiterBackend> backend,
                             Clock* clock, ChangeFn on_change)
    : options_(options),
      backend_(std::move(backend)),
      clock_(clock),
      on_change_(std::move(on_change)) {}

ArbiterClient::~ArbiterClient() { Stop(); }

void ArbiterClient::Note(const std::string& message) const {
  if (options_.note) options_.note(message);
}

void ArbiterClient::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ArbiterClient::Stop() {
  if (!thread_.joinable()) return;
  stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    if (wake_ != nullptr && !wake_->HasBeenNotified()) wake_->Notify();
  }
  thread_.join();
  // A lease still counted by the arbiter is given up, so a peer need not
  // wait for it to expire.
  bool release = false;
  uint64_t epoch = 0;
  {
    absl::MutexLock lock(&mu_);
    release = may_hold_;
    epoch = epoch_;
    may_hold_ = false;
    held_until_ = absl::InfinitePast();
  }
  if (release) backend_->Release(epoch, std::min(options_.ttl / 4, absl::Seconds(1))).IgnoreError();
}

void ArbiterClient::SetWanted(bool want, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  epoch_ = epoch;
  if (want == wanted_) return;
  wanted_ = want;
  if (wake_ != nullptr && !wake_->HasBeenNotified()) wake_->Notify();
}

ArbiterInput ArbiterClient::Input(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  ArbiterInput in;
  in.enabled = true;
  in.lease_held = HeldLocked(now);
  in.reachable = reachable_;
  in.keep_on_isolation = options_.keep_on_isolation;
  return in;
}

ArbiterClient::View ArbiterClient::view(absl::Time now) const {
  View v;
  v.kind = backend_->kind();
  v.address = backend_->address();
  absl::MutexLock lock(&mu_);
  v.reachable = reachable_;
  v.held = HeldLocked(now);
  v.remaining = v.held ? held_until_ - now : absl::ZeroDuration();
  v.holder = holder_;
  v.fence = fence_;
  v.last_error = last_error_;
  v.wanted = wanted_;
  return v;
}

absl::Time ArbiterClient::held_until() const {
  absl::MutexLock lock(&mu_);
  return held_until_;
}

uint64_t ArbiterClient::fence(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  return HeldLocked(now) ? fence_ : 0;
}

absl::Time ArbiterClient::Ask(bool want, uint64_t epoch) {
  const absl::Duration renew = options_.ttl / 4;
  const absl::Time sent = clock_->Now();
  bool held;
  bool release;
  // A call never outlasts a renewal period or a second, nor the lease this
  // node counts: the thread must be free to notice that lease ending.
  absl::Duration timeout = std::min(renew, absl::Seconds(1));
  {
    absl::MutexLock lock(&mu_);
    held = HeldLocked(sent);
    if (held) {
      timeout = std::max(absl::Milliseconds(10),
                         std::min(timeout, held_until_ - sent - absl::Milliseconds(10)));
    }
    release = !want && may_hold_;
    // A lease being given up stops counting here before the release goes
    // out: the arbiter may act on it even if its answer is lost, and then
    // grant the lease to another node.
    if (!want) held_until_ = absl::InfinitePast();
  }
  absl::StatusOr<v1::LeaseReply> reply =
      want ? backend_->Acquire(options_.ttl, epoch, held, timeout)
           : (release ? backend_->Release(epoch, timeout) : backend_->Query(timeout));
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (!reply.ok()) {
    if (reachable_ || last_error_.empty()) {
      LogEvent(LogLevel::kWarn, "arbiter_unreachable",
               {{"arbiter", backend_->address()}, {"reason", reply.status().message()}});
      Note(absl::StrCat("arbiter unreachable: ", reply.status().message()));
    }
    reachable_ = false;
    last_error_ = std::string(reply.status().message());
    // The lease (if any) runs out on its own; ask again soon (a node that
    // wants nothing only checks that the arbiter answers).
    return now + (want ? std::min(renew, absl::Milliseconds(200)) : options_.ttl / 2);
  }
  if (!reachable_) {
    LogEvent(LogLevel::kInfo, "arbiter_reachable", {{"arbiter", backend_->address()}});
    Note(absl::StrCat("arbiter reachable at ", backend_->address()));
  }
  reachable_ = true;
  last_error_.clear();
  holder_ = reply->holder();
  if (!want) {
    may_hold_ = false;
    held_until_ = absl::InfinitePast();
    return now + options_.ttl / 2;
  }
  if (reply->granted()) {
    const bool gained = !HeldLocked(now);
    may_hold_ = true;
    held_until_ = HeldUntil(sent, absl::Milliseconds(reply->ttl_ms()),
                            options_.max_clock_drift_ppm);
    if (gained || reply->fence() != fence_) {
      LogEvent(LogLevel::kInfo, "arbiter_lease_granted",
               {{"fence", reply->fence()}, {"ttl_ms", reply->ttl_ms()}, {"epoch", epoch}});
      Note(absl::StrCat("arbiter lease granted, fence ", reply->fence()));
    }
    fence_ = reply->fence();
    return sent + renew;
  }
  // Refused: someone else holds it. Ask again when theirs runs out.
  if (HeldLocked(now)) {
    LogEvent(LogLevel::kWarn, "arbiter_lease_lost", {{"holder", reply->holder()}});
  }
  may_hold_ = false;
  held_until_ = absl::InfinitePast();
  return now + std::min(renew, absl::Milliseconds(reply->remaining_ms()) + absl::Milliseconds(10));
}

void ArbiterClient::Run() {
  absl::Time next = absl::InfinitePast();
  bool last_wanted = false;
  // What on_change last reported.
  bool reported_held = false;
  bool reported_reachable = false;
  while (!stop_.HasBeenNotified()) {
    bool want;
    uint64_t epoch;
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      want = wanted_;
      epoch = epoch_;
      release = !want && may_hold_;
    }
    if (want != last_wanted) next = absl::InfinitePast();
    last_wanted = want;
    // Wanted: ask for (or renew) the lease. Not wanted: give a lease up at
    // once, else check now and then that the arbiter answers (status shows
    // whether a secondary could take over) with a release that is a no-op.
    if (clock_->Now() >= next || release) next = Ask(want, epoch);
    absl::Time wake_at = next;
    bool held;
    bool reachable;
    {
      absl::MutexLock lock(&mu_);
      held = HeldLocked(clock_->Now());
      reachable = reachable_;
      // Wake when the lease stops counting, to re-decide the role then.
      if (held) wake_at = std::min(wake_at, held_until_);
    }
    if (held != reported_held || reachable != reported_reachable) {
      if (reported_held && !held) {
        LogEvent(LogLevel::kWarn, "arbiter_lease_ended", {{"wanted", want ? "yes" : "no"}});
        Note(want ? "arbiter lease ended: not renewed in time" : "arbiter lease given up");
      }
      reported_held = held;
      reported_reachable = reachable;
      if (on_change_) on_change_();
    }
    auto wake = std::make_shared<absl::Notification>();
    {
      absl::MutexLock lock(&mu_);
      // A change of want since it was read: go round at once.
      if (wanted_ != want) continue;
      wake_ = wake;
    }
    // Stop notifies stop_ before it wakes wake_: either it woke this one,
    // or stop_ is seen here.
    if (stop_.HasBeenNotified()) break;
    clock_->SleepUntil(wake_at, *wake);
  }
}

}  // namespace cloudha
