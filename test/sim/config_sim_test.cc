// Config replication with the agent's own parts (sync/: store, committer,
// follower, push sessions, outboxes) on the simulated cluster: secondaries
// converge, zone-local paths stay home, a handover loses no acknowledged
// write, and a thousand randomized rounds of partitions, crashes, loss and
// handovers under a stream of writes lose none silently (a write is either
// on the final primary or saved by the resync that replaced it) and never
// show a secondary "in sync" with another checksum than its primary's.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/sim/cluster_sim.h"

namespace cloudha {
namespace {

constexpr absl::Duration kSettle = absl::Seconds(5);

std::string Violations(const ClusterSim& sim) {
  return absl::StrCat(absl::StrJoin(sim.violations(), "\n"), "\nhistory:\n", sim.History());
}

std::optional<std::string> ValueAt(const ClusterSim& sim, int node, const std::string& path) {
  std::optional<StoredEntry> e = sim.store(node)->Get(path);
  if (!e.has_value()) return std::nullopt;
  return e->value;
}

class ConfigSimTest : public ::testing::Test {
 protected:
  // Resyncs and superseded streams log warnings by the hundred.
  void SetUp() override { ConfigureLogging(LogFormat::kText, LogLevel::kError); }
  void TearDown() override { ConfigureLogging(LogFormat::kText, LogLevel::kInfo); }
};

TEST_F(ConfigSimTest, SecondariesConvergeAndZoneLocalPathsStayHome) {
  ClusterSim::Options options;
  options.nodes = 3;
  options.config = true;
  ClusterSim sim(options);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.ConfigConverged(); }, kSettle)) << Violations(sim);
  ASSERT_TRUE(sim.Write(0, "fw.rule.1", "allow").ok());
  ASSERT_TRUE(sim.Write(1, "zone.n1.ip", "198.18.0.2").ok());
  // A secondary takes no synced write.
  absl::StatusOr<uint64_t> refused = sim.Write(1, "fw.rule.2", "deny");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.ConfigConverged(); }, kSettle)) << Violations(sim);
  for (int node : {1, 2}) EXPECT_EQ(ValueAt(sim, node, "fw.rule.1"), "allow");
  EXPECT_EQ(ValueAt(sim, 0, "zone.n1.ip"), std::nullopt);
  EXPECT_EQ(ValueAt(sim, 2, "zone.n1.ip"), std::nullopt);
  EXPECT_EQ(ValueAt(sim, 1, "zone.n1.ip"), "198.18.0.2");
  EXPECT_EQ(ValueAt(sim, 1, "fw.rule.2"), std::nullopt);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

TEST_F(ConfigSimTest, ARestartedOldPrimaryIsResyncedAndWhatItLosesIsSaved) {
  ClusterSim::Options options;
  options.config = true;
  ClusterSim sim(options);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.ConfigConverged(); }, kSettle));
  // Cut off, the primary takes a write its secondary never sees; the
  // secondary takes over and writes on.
  sim.Partition({{0}, {1}});
  ASSERT_TRUE(sim.Write(0, "app.only-on-n0", "x").ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.view(1).role == v1::PRIMARY; }, kSettle));
  ASSERT_TRUE(sim.Write(1, "app.on-n1", "y").ok());
  sim.Crash(0);
  sim.Heal();
  sim.Restart(0);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.ConfigConverged(); }, kSettle)) << Violations(sim);
  EXPECT_EQ(sim.view(1).role, v1::PRIMARY);
  EXPECT_EQ(ValueAt(sim, 0, "app.on-n1"), "y");
  EXPECT_EQ(ValueAt(sim, 0, "app.only-on-n0"), std::nullopt);
  // EndRound finds the replaced write in n0's config-replaced.jsonl.
  sim.EndRound();
  EXPECT_EQ(sim.writes_saved(), 1u);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

TEST_F(ConfigSimTest, HandoverUnderAStreamOfWritesLosesNoAcknowledgedWrite) {
  ClusterSim::Options options;
  options.nodes = 3;
  options.config = true;
  ClusterSim sim(options);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.ConfigConverged(); }, kSettle));
  sim.SetWrites(300);
  for (int i = 0; i < 10; ++i) {
    sim.RunFor(absl::Milliseconds(500));
    int from = sim.Primaries()[0];
    int to = (from + 1 + i % 2) % 3;
    absl::StatusOr<std::string> target = sim.Handover(from, ClusterSim::Id(to));
    ASSERT_TRUE(target.ok()) << target.status() << "\n" << Violations(sim);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.view(to).role == v1::PRIMARY; }, kSettle));
  }
  sim.SetWrites(0);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.ConfigConverged(); }, kSettle)) << Violations(sim);
  uint64_t acked = sim.writes_acked();
  sim.EndRound();
  EXPECT_GT(acked, 500u);
  EXPECT_EQ(sim.writes_saved(), 0u);
  EXPECT_TRUE(sim.violations().empty()) << Violations(sim);
}

void RunRandomRounds(int nodes) {
  uint64_t seed = std::random_device{}();
  int rounds = 1000;
  if (const char* s = std::getenv("CLOUDHA_SIM_SEED")) seed = std::strtoull(s, nullptr, 10);
  if (const char* r = std::getenv("CLOUDHA_SIM_ROUNDS")) rounds = std::atoi(r);
  std::mt19937_64 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  ClusterSim::Options options;
  options.nodes = nodes;
  options.seed = seed;
  options.config = true;
  options.writes_per_s = 40;
  options.max_hook_time = absl::Milliseconds(300);
  options.hook_failure = 0.05;
  ClusterSim sim(options);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.ConfigConverged(); }, kSettle)) << "seed " << seed;
  int handovers = 0;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, ", round ", round));
    int steps = uniform(1, 3);
    for (int step = 0; step < steps; ++step) {
      handovers += sim.RandomTrouble(rng, /*health=*/false, /*witness=*/false);
      sim.RunFor(absl::Milliseconds(uniform(50, 1500)));
    }
    sim.Heal();
    sim.SetLoss(0);
    sim.SetWrites(0);
    for (int node = 0; node < nodes; ++node) sim.Restart(node);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.ConfigConverged(); }, absl::Seconds(10)))
        << "the config did not converge 10 s after the heal; primaries: "
        << absl::StrJoin(sim.Primaries(), ",") << "\n"
        << Violations(sim);
    sim.EndRound();
    sim.SetWrites(options.writes_per_s);
    ASSERT_TRUE(sim.violations().empty()) << Violations(sim);
  }
  EXPECT_GT(sim.writes_acked(), static_cast<uint64_t>(rounds) * 10) << "seed " << seed;
  EXPECT_GT(handovers, 0) << "seed " << seed;
  std::printf("%d nodes, %d rounds: %llu writes acknowledged, %llu replaced by a resync and "
              "saved, none lost; %d handovers (seed %llu)\n",
              nodes, rounds, static_cast<unsigned long long>(sim.writes_acked()),
              static_cast<unsigned long long>(sim.writes_saved()), handovers,
              static_cast<unsigned long long>(seed));
}

TEST_F(ConfigSimTest, RandomTroubleForAPairLosesNoAcknowledgedWrite) { RunRandomRounds(2); }

TEST_F(ConfigSimTest, RandomTroubleForThreeNodesLosesNoAcknowledgedWrite) { RunRandomRounds(3); }

}  // namespace
}  // namespace cloudha
