#include "base/real_clock.h"

#include <time.h>

namespace cloudha {

absl::Time RealClock::Now() {
  // CLOCK_BOOTTIME: monotonic like CLOCK_MONOTONIC, but it keeps counting
  // while the VM is suspended. A primary that was suspended must not come
  // back believing its arbiter lease, or a peer's vote, is still fresh.
  timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return absl::UnixEpoch() + absl::DurationFromTimespec(ts);
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
