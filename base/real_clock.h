// The system's clocks: CLOCK_MONOTONIC for Now(), CLOCK_REALTIME for
// WallNow().
#ifndef CLOUDHA_BASE_REAL_CLOCK_H_
#define CLOUDHA_BASE_REAL_CLOCK_H_

#include "base/clock.h"

namespace cloudha {

// Thread-safe and stateless.
class RealClock : public Clock {
 public:
  absl::Time Now() override;
  absl::Time WallNow() override;
  bool SleepUntil(absl::Time deadline, absl::Notification& stop) override;
};

}  // namespace cloudha

#endif  // CLOUDHA_BASE_REAL_CLOCK_H_
