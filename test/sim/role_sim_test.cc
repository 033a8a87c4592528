// Elections, failover, partitions and heals, handover and override with the
// agent's own role logic (NodeCore, Membership, RoleMachine) on a simulated
// network and simulated time: deterministic, and fast enough for a thousand
// randomized partition rounds. The real-process tests (test/failover_test,
// test/netns_test) keep proving the gRPC, TLS and kernel layers.
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/sim/cluster_sim.h"

namespace cloudha {
namespace {

// Detection bound at 100 ms x 3: a peer is lost after interval * threshold,
// and the role step that notices it comes within one more interval.
constexpr absl::Duration kDetection = absl::Milliseconds(100 * 3 + 100);
// Long enough for any start-up or heal to settle at these timers.
constexpr absl::Duration kSettle = absl::Seconds(5);

std::string Violations(const ClusterSim& sim) {
  return absl::StrCat(absl::StrJoin(sim.violations(), "\n"), "\nhistory:\n", sim.History());
}

TEST(RoleSimTest, HigherPriorityBecomesPrimary) {
  ClusterSim sim({});
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  EXPECT_EQ(sim.view(0).role, v1::PRIMARY);
  EXPECT_EQ(sim.view(0).epoch, 1u);
  EXPECT_EQ(sim.view(1).role, v1::SECONDARY);
  EXPECT_EQ(sim.view(1).primary, "n0");
  EXPECT_TRUE(sim.view(0).primary_ready);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

TEST(RoleSimTest, CrashedPrimaryIsReplacedWithinTheDetectionBound) {
  ClusterSim sim({});
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  sim.RunFor(absl::Seconds(1));
  absl::Time crashed = sim.now();
  sim.Crash(0);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.view(1).role == v1::PRIMARY; }, kSettle));
  EXPECT_LE(sim.now() - crashed, kDetection);
  EXPECT_EQ(sim.view(1).epoch, 2u);
  EXPECT_EQ(sim.stored_epoch(1), 2u);
  // Without override the restarted node stays secondary.
  sim.Restart(0);
  sim.RunFor(kSettle);
  EXPECT_EQ(sim.view(0).role, v1::SECONDARY);
  EXPECT_EQ(sim.view(1).role, v1::PRIMARY);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

TEST(RoleSimTest, WithOverrideTheRecoveredNodeTakesTheRoleBack) {
  ClusterSim::Options options;
  options.override_ = true;
  ClusterSim sim(options);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  sim.Crash(0);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.view(1).role == v1::PRIMARY; }, kSettle));
  sim.Restart(0);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled() && sim.view(0).role == v1::PRIMARY; },
                           absl::Seconds(10)));
  EXPECT_GT(sim.view(0).epoch, 2u);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

TEST(RoleSimTest, PartitionMakesTwoPrimariesAndTheHealLeavesTheHigherEpoch) {
  ClusterSim sim({});
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  sim.Partition({{0}, {1}});
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Primaries().size() == 2; }, kSettle));
  // Without an arbiter each side promotes: the secondary at a new epoch.
  EXPECT_EQ(sim.view(1).epoch, 2u);
  sim.Heal();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  EXPECT_EQ(sim.view(1).role, v1::PRIMARY);
  EXPECT_EQ(sim.view(0).role, v1::SECONDARY);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

TEST(RoleSimTest, OperatorHandoverMovesTheRoleToTheNamedNode) {
  ClusterSim::Options options;
  options.nodes = 3;
  ClusterSim sim(options);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  absl::StatusOr<std::string> target = sim.Handover(0, "n2");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(*target, "n2");
  EXPECT_EQ(sim.view(0).role, v1::SECONDARY);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled() && sim.view(2).role == v1::PRIMARY; },
                           absl::Seconds(2)));
  EXPECT_EQ(sim.view(2).epoch, 2u);
  // A secondary cannot hand over.
  EXPECT_EQ(sim.Handover(1, "").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

TEST(RoleSimTest, PartialPartitionKeepsOnePrimaryWithoutAnEpochWar) {
  ClusterSim::Options options;
  options.nodes = 3;
  ClusterSim sim(options);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  // n1 loses n0 but still sees n2, which sees n0: n1 follows through n2.
  sim.Partition({{0, 2}, {1}});
  sim.RunFor(absl::Seconds(1));
  sim.Heal();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  sim.RunFor(absl::Seconds(3));
  EXPECT_TRUE(sim.Settled());
  EXPECT_LE(sim.view(0).epoch, 3u);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

TEST(RoleSimTest, LossyLinkBelowTheThresholdChangesNoRole) {
  ClusterSim sim({});
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle));
  sim.SetLoss(0.1);
  sim.RunFor(absl::Seconds(20));
  EXPECT_EQ(sim.view(0).role, v1::PRIMARY);
  EXPECT_EQ(sim.view(0).epoch, 1u);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

// A thousand rounds of random trouble: partitions, crashes and restarts,
// loss, handovers, each for a random time; then the network heals, every
// node comes back, and the cluster must settle on one primary.
// The invariants (ClusterSim::violations) are checked after every step.
// CLOUDHA_SIM_SEED and CLOUDHA_SIM_ROUNDS override the seed and the count;
// a failure prints the seed and the history to replay and explain it.
//
// Without an arbiter, "one primary per epoch, ever" does not hold: two
// partitions can each promote to the same next epoch (an operator's
// handover to a node that is cut off a moment later, or with three nodes a
// handover on one side while the other side's lone node promotes). The test
// prints how often that happened; the arbiter is what closes it
// (docs/architecture.md, "Known limits").
//
// With an arbiter (the witness's own lease table on simulated time, nodes
// losing and regaining it at random too), two primaries cut off from each
// other are a violation (split brain), and no epoch is held by two.
void RunRandomRounds(int nodes, bool arbiter) {
  uint64_t seed = 20261202;
  int rounds = 1000;
  if (const char* s = std::getenv("CLOUDHA_SIM_SEED")) seed = std::strtoull(s, nullptr, 10);
  if (const char* r = std::getenv("CLOUDHA_SIM_ROUNDS")) rounds = std::atoi(r);
  std::mt19937_64 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  ClusterSim::Options options;
  options.nodes = nodes;
  options.seed = seed;
  options.max_hook_time = absl::Milliseconds(300);
  options.hook_failure = 0.05;
  options.arbiter = arbiter;
  if (arbiter) options.lost_threshold = 5;
  ClusterSim sim(options);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, kSettle)) << "seed " << seed;
  int promotions = 0;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, ", round ", round));
    int steps = uniform(1, 3);
    for (int step = 0; step < steps; ++step) {
      sim.RandomTrouble(rng, /*health=*/true, /*witness=*/arbiter);
      sim.RunFor(absl::Milliseconds(uniform(50, 1500)));
    }
    sim.Heal();
    sim.SetLoss(0);
    for (int node = 0; node < options.nodes; ++node) {
      sim.Restart(node);
      sim.SetHealth(node, 0, true);
      sim.SetWitnessReachable(node, true);
    }
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Settled(); }, absl::Seconds(10)))
        << "no single primary 10 s after the heal; primaries: "
        << absl::StrJoin(sim.Primaries(), ",");
    ASSERT_TRUE(sim.violations().empty()) << Violations(sim);
    promotions = static_cast<int>(sim.view(sim.Primaries()[0]).epoch);
  }
  // The rounds did cause failovers (the test tested something).
  EXPECT_GT(promotions, rounds / 4) << "seed " << seed;
  std::printf("%d nodes%s, %d rounds, %d promotions, %d epochs held by two primaries in "
              "different partitions (seed %llu)\n",
              nodes, arbiter ? " with an arbiter" : "", rounds, promotions,
              sim.same_epoch_across_partitions(), static_cast<unsigned long long>(seed));
  if (arbiter) {
    EXPECT_EQ(sim.same_epoch_across_partitions(), 0) << "seed " << seed;
  }
}

TEST(RoleSimTest, RandomTroubleForAPairKeepsTheInvariants) { RunRandomRounds(2, false); }

TEST(RoleSimTest, RandomTroubleForThreeNodesKeepsTheInvariants) { RunRandomRounds(3, false); }

TEST(RoleSimTest, RandomTroubleForAPairWithAnArbiterNeverSplitsTheBrain) {
  RunRandomRounds(2, true);
}

TEST(RoleSimTest, RandomTroubleForThreeNodesWithAnArbiterNeverSplitsTheBrain) {
  RunRandomRounds(3, true);
}

}  // namespace
}  // namespace cloudha

namespace cloudha {
namespace {

TEST(RoleSimTest, RandomTroubleForFourNodesWithAnArbiterNeverSplitsTheBrain) {
  RunRandomRounds(4, true);
}

}  // namespace
}  // namespace cloudha
