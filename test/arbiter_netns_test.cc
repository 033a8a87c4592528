// The split-brain arbiter end to end (test/arbiter_lab.h): two agents and
// the arbiter, each in a network namespace of its own, joined by links the
// tests cut. Every test runs twice: with a `cloudha witness` (lease 1000 ms)
// and with an etcd (lease 2000 ms: etcd counts in seconds). Needs root and
// `ip netns`, and etcd-server for the etcd runs; skipped with the reason
// otherwise.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/etcd_test_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/arbiter_lab.h"

namespace cloudha {
namespace {

using Backend = ArbiterLab::Backend;

class ArbiterNetnsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kEtcd && EtcdTestServer::Binary().empty()) {
      GTEST_SKIP() << "etcd is not installed (apt-get install etcd-server)";
    }
    absl::Status s = lab_.Create();
    if (absl::IsFailedPrecondition(s)) GTEST_SKIP() << s.message();
    ASSERT_TRUE(s.ok()) << s;
  }

  void StartPair(const std::string& on_isolation) {
    ArbiterLab::Options options;
    options.on_isolation = on_isolation;
    options.backend = GetParam();
    options.lease_ttl_ms = GetParam() == Backend::kEtcd ? 2000 : 1000;
    absl::Status s = lab_.StartPair(options);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  absl::StatusOr<v1::StatusResponse> Status(const std::string& node) {
    return lab_.cluster().Status(node);
  }
  std::string LogsOf(const std::string& node) { return Logs(lab_.cluster().agent(node)); }

  ArbiterLab lab_;
};

// Only the link between the nodes is cut: the primary keeps its role (it
// holds the lease), the secondary cannot get the lease, and there is never
// a second primary.
TEST_P(ArbiterNetnsTest, CutBetweenTheNodesOnlyNeverMakesASecondPrimary) {
  ASSERT_NO_FATAL_FAILURE(StartPair("STEP_DOWN"));
  for (int round = 0; round < 3; ++round) {
    lab_.SetLink(1, false);
    absl::Duration dual = lab_.DualPrimaryOver(absl::Milliseconds(3 * lab_.lease_ttl_ms()));
    std::cout << ArbiterLab::Name(GetParam()) << ": cut a-b, round " << round << ": dual primary " << absl::FormatDuration(dual)
              << "\n";
    EXPECT_EQ(dual, absl::ZeroDuration()) << "round " << round;
    EXPECT_TRUE(lab_.Sample().a_primary) << "round " << round;
    absl::StatusOr<v1::StatusResponse> b = Status("b");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->role(), v1::SECONDARY);
    EXPECT_TRUE(b->arbiter().reachable());
    EXPECT_EQ(b->arbiter().holder(), "a");
    EXPECT_TRUE(b->arbiter().wanted());
    lab_.SetLink(1, true);
    ASSERT_TRUE(lab_.Follows("b", "a")) << LogsOf("b");
  }
}

// The primary is cut off from everything: it steps down when its lease
// runs out, before the arbiter lets the secondary take it.
TEST_P(ArbiterNetnsTest, AnIsolatedPrimaryStepsDownBeforeTheSecondaryTakesOver) {
  ASSERT_NO_FATAL_FAILURE(StartPair("STEP_DOWN"));
  uint64_t last_fence = 0;
  for (int round = 0; round < 3; ++round) {
    const bool a_is_primary = lab_.Sample().a_primary;
    const std::string old_primary = a_is_primary ? "a" : "b";
    const std::string next = a_is_primary ? "b" : "a";
    const absl::Time cut = absl::Now();
    lab_.Isolate(old_primary, true);
    absl::Time old_gone = absl::InfiniteFuture();
    absl::Time new_primary = absl::InfiniteFuture();
    int dual = 0;
    while (absl::Now() - cut < absl::Seconds(10) && new_primary == absl::InfiniteFuture()) {
      ArbiterLab::Roles s = lab_.Sample();
      bool old_is = a_is_primary ? s.a_primary : s.b_primary;
      bool next_is = a_is_primary ? s.b_primary : s.a_primary;
      if (old_is && next_is) ++dual;
      if (!old_is && old_gone == absl::InfiniteFuture()) old_gone = absl::Now();
      if (next_is) new_primary = absl::Now();
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_NE(new_primary, absl::InfiniteFuture()) << "round " << round << "\n" << LogsOf(next);
    std::cout << ArbiterLab::Name(GetParam()) << ": isolate " << old_primary << ", round " << round << ": stepped down after "
              << absl::FormatDuration(old_gone - cut) << ", " << next << " primary after "
              << absl::FormatDuration(new_primary - cut) << " (gap "
              << absl::FormatDuration(new_primary - old_gone) << "), dual primary samples "
              << dual << "\n";
    EXPECT_EQ(dual, 0) << "round " << round;
    EXPECT_LE(old_gone, new_primary) << "round " << round;
    // Within the lease and the detection, with room for a loaded machine.
    EXPECT_LT(new_primary - cut, absl::Milliseconds(lab_.lease_ttl_ms()) + absl::Seconds(3));
    absl::StatusOr<v1::StatusResponse> s = Status(next);
    ASSERT_TRUE(s.ok());
    EXPECT_GT(s->arbiter().fence(), last_fence) << "the fence rises with every new holder";
    last_fence = s->arbiter().fence();
    absl::StatusOr<v1::StatusResponse> old = Status(old_primary);
    ASSERT_TRUE(old.ok());
    EXPECT_THAT(old->role_reason(), ::testing::HasSubstr("lost the majority"));
    lab_.Isolate(old_primary, false);
    ASSERT_TRUE(lab_.Follows(old_primary, next)) << LogsOf(old_primary);
  }
}

// The arbiter dies: nothing changes while the nodes see each other. Then
// the nodes lose each other too: with STEP_DOWN nobody is primary (the
// price of never having two). The arbiter comes back: the cluster has one
// primary again, and the fence has not gone back.
TEST_P(ArbiterNetnsTest, ArbiterLossChangesNoRoleAndIsolationStepsDown) {
  ASSERT_NO_FATAL_FAILURE(StartPair("STEP_DOWN"));
  const uint64_t fence = Status("a")->arbiter().fence();
  lab_.KillArbiter();
  ASSERT_TRUE(lab_.cluster().WaitFor(
      "a", [](const v1::StatusResponse& s) { return !s.arbiter().reachable(); }));
  absl::SleepFor(absl::Milliseconds(3 * lab_.lease_ttl_ms()));
  EXPECT_TRUE(lab_.Sample().a_primary);
  EXPECT_EQ(Status("b")->role(), v1::SECONDARY);
  EXPECT_EQ(Status("a")->epoch(), 1u);
  EXPECT_EQ(Status("a")->health_penalty(), 0u);

  lab_.SetLink(1, false);
  ASSERT_TRUE(lab_.cluster().WaitFor(
      "a", [](const v1::StatusResponse& s) { return s.role() == v1::SECONDARY; },
      absl::Seconds(5)))
      << LogsOf("a");
  EXPECT_EQ(lab_.DualPrimaryOver(absl::Seconds(2)), absl::ZeroDuration());
  EXPECT_FALSE(lab_.Sample().b_primary);

  ASSERT_TRUE(lab_.StartArbiter().ok());
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  ArbiterLab::Roles r;
  while (absl::Now() < deadline && !(r = lab_.Sample()).a_primary && !r.b_primary) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(r.a_primary != r.b_primary) << LogsOf("a") << LogsOf("b");
  absl::StatusOr<v1::StatusResponse> primary = Status(r.a_primary ? "a" : "b");
  ASSERT_TRUE(primary.ok());
  EXPECT_GT(primary->arbiter().fence(), fence) << "the fence never goes back";
  lab_.SetLink(1, true);
}

// on_isolation KEEP: a primary that sees neither its peer nor the arbiter
// keeps its role (and the secondary cannot promote without the arbiter).
TEST_P(ArbiterNetnsTest, KeepOnIsolationKeepsThePrimary) {
  ASSERT_NO_FATAL_FAILURE(StartPair("KEEP"));
  lab_.KillArbiter();
  lab_.SetLink(1, false);
  EXPECT_EQ(lab_.DualPrimaryOver(absl::Milliseconds(3 * lab_.lease_ttl_ms())),
            absl::ZeroDuration());
  EXPECT_TRUE(lab_.Sample().a_primary);
  EXPECT_FALSE(lab_.Sample().b_primary);
  lab_.SetLink(1, true);
}

INSTANTIATE_TEST_SUITE_P(Backends, ArbiterNetnsTest,
                         ::testing::Values(Backend::kWitness, Backend::kEtcd),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(ArbiterLab::Name(info.param));
                         });

}  // namespace
}  // namespace cloudha
