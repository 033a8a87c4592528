// A clock that moves only when a test says so.
#ifndef CLOUDHA_BASE_FAKE_CLOCK_H_
#define CLOUDHA_BASE_FAKE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"

namespace cloudha {

// Thread-safe. Now() starts at an arbitrary fixed time; Advance() moves it and
// wakes every SleepUntil() whose deadline has passed.
class FakeClock : public Clock {
 public:
  absl::Time Now() override;
  absl::Time WallNow() override;
  bool SleepUntil(absl::Time deadline, absl::Notification& stop) override;

  void Advance(absl::Duration d);
  // Number of threads blocked in SleepUntil right now.
  int sleepers();

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1'800'000'000);
  int sleepers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_BASE_FAKE_CLOCK_H_
