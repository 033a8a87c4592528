// The source of time for everything in the agent. Library code never reads
// the system clock or sleeps on its own: it asks a Clock, so that tests can
// drive time (base/fake_clock.h) and main() wires the real one.
#ifndef CLOUDHA_BASE_CLOCK_H_
#define CLOUDHA_BASE_CLOCK_H_

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cloudha {

// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  // Monotonic time: never jumps with wall-clock changes, and counts the time
  // a suspended machine slept (CLOCK_BOOTTIME). Its origin is arbitrary;
  // only differences mean anything.
  virtual absl::Time Now() = 0;

  // Wall-clock time, for timestamps shown to people and certificate checks.
  virtual absl::Time WallNow() = 0;

  // Blocks until Now() >= deadline or `stop` is notified, whichever is
  // first. Returns false when it returned because of `stop`.
  virtual bool SleepUntil(absl::Time deadline, absl::Notification& stop) = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_BASE_CLOCK_H_
