#include "agent/arbiter_client.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/witness_leases.h"
#include "base/fake_clock.h"
#include "base/real_clock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

// A clock that runs at `rate` times the speed of `real` (1.0005 is 500 ppm
// fast): a node's or the arbiter's clock drifting from real time.
class ScaledClock : public Clock {
 public:
  ScaledClock(FakeClock* real, double rate) : real_(real), rate_(rate), origin_(real->Now()) {}
  absl::Time Now() override { return origin_ + (real_->Now() - origin_) * rate_; }
  absl::Time WallNow() override { return Now(); }
  bool SleepUntil(absl::Time deadline, absl::Notification& stop) override {
    if (deadline == absl::InfiniteFuture()) return real_->SleepUntil(deadline, stop);
    return real_->SleepUntil(origin_ + (deadline - origin_) / rate_, stop);
  }

 private:
  FakeClock* const real_;
  const double rate_;
  const absl::Time origin_;
};

// The back end over a witness lease table in the same process; `cut`
// makes every call fail as a lost network would.
class LocalBackend : public ArbiterBackend {
 public:
  LocalBackend(WitnessLeases* leases, std::string node, std::atomic<bool>* cut)
      : leases_(leases), node_(std::move(node)), cut_(cut) {}
  absl::StatusOr<v1::LeaseReply> Acquire(absl::Duration ttl, uint64_t epoch, bool renew,
                                         absl::Duration) override {
    if (cut_->load()) return absl::UnavailableError("cut");
    absl::StatusOr<v1::LeaseReply> r = leases_->Acquire("demo", node_, ttl, epoch, renew, fence_);
    if (r.ok() && r->granted()) fence_ = r->fence();
    return r;
  }
  absl::StatusOr<v1::LeaseReply> Release(uint64_t epoch, absl::Duration) override {
    if (cut_->load()) return absl::UnavailableError("cut");
    return leases_->Release("demo", node_, epoch, fence_);
  }
  absl::StatusOr<v1::LeaseReply> Query(absl::Duration) override {
    if (cut_->load()) return absl::UnavailableError("cut");
    return leases_->Release("demo", node_, 0, 0);
  }
  std::string kind() const override { return "local"; }
  std::string address() const override { return "in-process"; }

 private:
  WitnessLeases* const leases_;
  const std::string node_;
  std::atomic<bool>* const cut_;
  uint64_t fence_ = 0;  // the back end's own: one client thread calls it
};

class ArbiterClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cloudha-arbiter-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<WitnessLeases> Witness(Clock* clock) {
    return *WitnessLeases::Open(dir_, "w", clock);
  }

  // Waits (real time, bounded) until `done` holds.
  template <typename F>
  static bool Eventually(F done) {
    for (int i = 0; i < 2000; ++i) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return done();
  }

  std::string dir_;
  FakeClock real_;
};

TEST_F(ArbiterClientTest, HoldsRenewsAndGivesTheLeaseUpWhenNotWanted) {
  std::unique_ptr<WitnessLeases> witness = Witness(&real_);
  std::atomic<bool> cut{false};
  std::atomic<int> changes{0};
  ArbiterClient::Options options;
  ArbiterClient a(options, std::make_unique<LocalBackend>(witness.get(), "a", &cut), &real_,
                  [&] { ++changes; });
  a.Start();
  EXPECT_FALSE(a.Input(real_.Now()).lease_held);
  a.SetWanted(true, 1);
  ASSERT_TRUE(Eventually([&] { return a.Input(real_.Now()).lease_held; }));
  EXPECT_TRUE(a.Input(real_.Now()).reachable);
  EXPECT_EQ(a.fence(real_.Now()), 1u);
  EXPECT_GE(changes.load(), 1);
  // Renewed every ttl/4: held long after one ttl.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Eventually([&] { return real_.sleepers() >= 1; }));
    real_.Advance(absl::Milliseconds(250));
    ASSERT_TRUE(Eventually([&] {
      return witness->Peek("demo").remaining_ms() > 1000 && a.Input(real_.Now()).lease_held;
    })) << "round " << i;
  }
  EXPECT_EQ(a.fence(real_.Now()), 1u);
  // Not wanted any more: released at once, so another node need not wait.
  a.SetWanted(false, 1);
  ASSERT_TRUE(Eventually([&] { return witness->Peek("demo").holder().empty(); }));
  EXPECT_FALSE(a.Input(real_.Now()).lease_held);
  a.Stop();
}

TEST_F(ArbiterClientTest, ALeaseNotRenewedEndsAndWakesTheRoleBeforeTheWitnessLetsItGo) {
  std::unique_ptr<WitnessLeases> witness = Witness(&real_);
  std::atomic<bool> cut{false};
  std::atomic<int> changes{0};
  ArbiterClient a({}, std::make_unique<LocalBackend>(witness.get(), "a", &cut), &real_,
                  [&] { ++changes; });
  a.Start();
  a.SetWanted(true, 1);
  ASSERT_TRUE(Eventually([&] { return a.Input(real_.Now()).lease_held; }));
  const int before = changes.load();
  cut = true;
  absl::Time start = real_.Now();
  while (a.Input(real_.Now()).lease_held) {
    ASSERT_TRUE(Eventually([&] { return real_.sleepers() >= 1; }));
    real_.Advance(absl::Milliseconds(10));
    ASSERT_LT(real_.Now() - start, absl::Seconds(3));
  }
  // The thread noticed (lease lost, arbiter unreachable) and told the role.
  ASSERT_TRUE(Eventually([&] { return changes.load() > before; }));
  EXPECT_FALSE(a.Input(real_.Now()).reachable);
  // ... while the witness still counts a's lease.
  EXPECT_EQ(witness->Peek("demo").holder(), "a");
  a.Stop();
}

// A release whose answer is lost may still have reached the arbiter, which
// may then grant the lease to another node: the lease stops counting here
// when the release goes out, not when it is answered.
TEST_F(ArbiterClientTest, ALeaseGivenUpStopsCountingEvenWhenTheReleaseIsLost) {
  std::unique_ptr<WitnessLeases> witness = Witness(&real_);
  std::atomic<bool> cut{false};
  ArbiterClient a({}, std::make_unique<LocalBackend>(witness.get(), "a", &cut), &real_, [] {});
  a.Start();
  a.SetWanted(true, 1);
  ASSERT_TRUE(Eventually([&] { return a.Input(real_.Now()).lease_held; }));
  cut = true;
  a.SetWanted(false, 1);
  ASSERT_TRUE(Eventually([&] { return !a.Input(real_.Now()).lease_held; }));
  EXPECT_FALSE(a.Input(real_.Now()).reachable);
  a.Stop();
}

// On the real clock: the thread's own timing is what is tested.
TEST_F(ArbiterClientTest, ARefusedNodeAsksAgainWhenTheHoldersLeaseEnds) {
  RealClock clock;
  std::unique_ptr<WitnessLeases> witness = Witness(&clock);
  const absl::Duration ttl = absl::Milliseconds(400);
  // The witness's expiry is at least this (it granted after this moment).
  const absl::Time expires = clock.Now() + ttl;
  ASSERT_TRUE(witness->Acquire("demo", "a", ttl, 1, false, 0)->granted());
  std::atomic<bool> cut{false};
  ArbiterClient::Options options;
  options.ttl = ttl;
  ArbiterClient b(options, std::make_unique<LocalBackend>(witness.get(), "b", &cut), &clock,
                  [] {});
  b.Start();
  b.SetWanted(true, 2);
  ASSERT_TRUE(Eventually([&] { return b.view(clock.Now()).holder == "a"; }));
  EXPECT_FALSE(b.Input(clock.Now()).lease_held);
  EXPECT_TRUE(b.Input(clock.Now()).reachable);
  absl::Time granted = absl::InfiniteFuture();
  for (int i = 0; i < 3000 && granted == absl::InfiniteFuture(); ++i) {
    if (b.Input(clock.Now()).lease_held) granted = clock.Now();
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_NE(granted, absl::InfiniteFuture());
  // Never before a's lease ended on the witness, and without waiting long
  // after it (asked again when the witness said it would end).
  EXPECT_GE(granted, expires);
  EXPECT_LT(granted - expires, absl::Seconds(1));
  EXPECT_EQ(b.fence(clock.Now()), 2u);
  b.Stop();
}

// The margin: with the holder's clock slow and the witness's fast, each by
// the drift allowed, the holder still stops counting its lease before the
// witness grants it to another node. With no margin for drift it would not.
TEST_F(ArbiterClientTest, SkewedClocksWithinTheDriftAllowedNeverOverlap) {
  struct Case {
    uint32_t drift_ppm;      // configured
    double actual;           // actual drift of each clock, as a fraction
    bool expect_gap;
  };
  const Case cases[] = {
      {500, 500e-6, true},
      {100000, 0.1, true},
      {0, 0.1, false},  // drift beyond the allowed: the lease could overlap
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("drift_ppm ", c.drift_ppm, ", actual ", c.actual));
    FakeClock real;
    ScaledClock witness_clock(&real, 1 + c.actual);
    ScaledClock holder_clock(&real, 1 - c.actual);
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      std::filesystem::remove_all(entry.path());
    }
    std::unique_ptr<WitnessLeases> witness = Witness(&witness_clock);
    std::atomic<bool> cut{false};
    ArbiterClient::Options options;
    options.ttl = absl::Seconds(2);
    options.max_clock_drift_ppm = c.drift_ppm;
    ArbiterClient a(options, std::make_unique<LocalBackend>(witness.get(), "a", &cut),
                    &holder_clock, [] {});
    a.Start();
    a.SetWanted(true, 1);
    ASSERT_TRUE(Eventually([&] { return a.Input(holder_clock.Now()).lease_held; }));
    cut = true;
    absl::Time a_gone = absl::InfiniteFuture();
    absl::Time b_granted = absl::InfiniteFuture();
    const absl::Time start = real.Now();
    while ((b_granted == absl::InfiniteFuture() || a_gone == absl::InfiniteFuture()) &&
           real.Now() - start < absl::Seconds(5)) {
      real.Advance(absl::Milliseconds(1));
      if (a_gone == absl::InfiniteFuture() && !a.Input(holder_clock.Now()).lease_held) {
        a_gone = real.Now();
      }
      if (b_granted == absl::InfiniteFuture()) {
        absl::StatusOr<v1::LeaseReply> b =
            witness->Acquire("demo", "b", absl::Seconds(2), 2, false, 0);
        if (b.ok() && b->granted()) b_granted = real.Now();
      }
    }
    a.Stop();
    ASSERT_NE(b_granted, absl::InfiniteFuture());
    ASSERT_NE(a_gone, absl::InfiniteFuture());
    std::cout << "drift_ppm " << c.drift_ppm << " actual " << c.actual << ": a gave up "
              << absl::FormatDuration(a_gone - start) << " after the cut, b granted "
              << absl::FormatDuration(b_granted - start) << "\n";
    EXPECT_EQ(a_gone < b_granted, c.expect_gap);
  }
}

}  // namespace
}  // namespace cloudha
