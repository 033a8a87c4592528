#include "base/real_clock.h"

#include <chrono>

namespace cloudha {

absl::Time RealClock::Now() {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

absl::Time RealClock::WallNow() { return absl::Now(); }

bool RealClock::SleepUntil(absl::Time deadline, absl::Notification& stop) {
  // Waits in steps so the wait follows the monotonic clock, not the wall
  // clock that Notification's deadline would use.
  while (true) {
    absl::Duration left = deadline - Now();
    if (left <= absl::ZeroDuration()) return !stop.HasBeenNotified();
    if (stop.WaitForNotificationWithTimeout(left)) return false;
  }
}

}  // namespace cloudha
