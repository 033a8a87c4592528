#include "base/fake_clock.h"

namespace cloudha {

absl::Time FakeClock::Now() {
  absl::MutexLock lock(&mu_);
  return now_;
}

absl::Time FakeClock::WallNow() { return Now(); }

bool FakeClock::SleepUntil(absl::Time deadline, absl::Notification& stop) {
  absl::MutexLock lock(&mu_);
  ++sleepers_;
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return now_ >= deadline || stop.HasBeenNotified();
  };
  // `stop` does not signal mu_, so the condition is also re-checked on a
  // short real-time tick.
  while (!done()) mu_.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(5));
  --sleepers_;
  return !stop.HasBeenNotified();
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
}

int FakeClock::sleepers() {
  absl::MutexLock lock(&mu_);
  return sleepers_;
}

}  // namespace cloudha
