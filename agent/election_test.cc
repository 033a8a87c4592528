#include "agent/election.h"

#include "gtest/gtest.h"

namespace cloudha {
namespace {

Candidate Node(const std::string& id, uint32_t penalty, int uptime_s, uint32_t priority) {
  return Candidate{id, penalty, absl::Seconds(uptime_s), priority};
}

const ElectionRules kPlain{false, absl::Seconds(300)};
const ElectionRules kOverride{true, absl::Seconds(300)};

TEST(ElectionTest, HealthComesFirstInBothOrders) {
  std::vector<Candidate> c = {Node("a", 10, 9000, 255), Node("b", 0, 10, 1)};
  EXPECT_EQ(Elect(c, kPlain).winner, "b");
  EXPECT_EQ(Elect(c, kPlain).selected_by, kByHealth);
  EXPECT_EQ(Elect(c, kOverride).winner, "b");
  EXPECT_EQ(Elect(c, kOverride).selected_by, kByHealth);
}

TEST(ElectionTest, WithoutOverrideUptimeBeyondMarginBeatsPriority) {
  std::vector<Candidate> c = {Node("a", 0, 1000, 100), Node("b", 0, 100, 200)};
  EXPECT_EQ(Elect(c, kPlain).winner, "a");
  EXPECT_EQ(Elect(c, kPlain).selected_by, kByUptime);
}

TEST(ElectionTest, WithoutOverrideUptimeWithinMarginFallsToPriority) {
  std::vector<Candidate> c = {Node("a", 0, 400, 100), Node("b", 0, 100, 200)};
  EXPECT_EQ(Elect(c, kPlain).winner, "b");
  EXPECT_EQ(Elect(c, kPlain).selected_by, kByPriority);
  // Exactly the margin is still "within".
  std::vector<Candidate> edge = {Node("a", 0, 400, 100), Node("b", 0, 100, 200)};
  edge[0].uptime = absl::Seconds(100) + absl::Seconds(300);
  EXPECT_EQ(Elect(edge, kPlain).winner, "b");
}

TEST(ElectionTest, WithOverridePriorityBeatsUptime) {
  std::vector<Candidate> c = {Node("a", 0, 100000, 100), Node("b", 0, 1, 200)};
  EXPECT_EQ(Elect(c, kOverride).winner, "b");
  EXPECT_EQ(Elect(c, kOverride).selected_by, kByPriority);
}

TEST(ElectionTest, WithOverrideEqualPriorityAnyUptimeDifferenceCounts) {
  std::vector<Candidate> c = {Node("a", 0, 10, 100), Node("b", 0, 11, 100)};
  EXPECT_EQ(Elect(c, kOverride).winner, "b");
  EXPECT_EQ(Elect(c, kOverride).selected_by, kByUptime);
}

TEST(ElectionTest, NodeIdBreaksTies) {
  std::vector<Candidate> c = {Node("b", 0, 10, 100), Node("a", 0, 10, 100)};
  EXPECT_EQ(Elect(c, kPlain).winner, "a");
  EXPECT_EQ(Elect(c, kPlain).selected_by, kByNodeId);
  EXPECT_EQ(Elect(c, kOverride).winner, "a");
}

TEST(ElectionTest, SelectedByNamesTheRuleAgainstTheRunnerUp) {
  // c beats b on priority; both beat a on health.
  std::vector<Candidate> c = {Node("a", 5, 10, 250), Node("b", 0, 10, 100),
                              Node("c", 0, 10, 150)};
  ElectionResult r = Elect(c, kPlain);
  EXPECT_EQ(r.winner, "c");
  EXPECT_EQ(r.selected_by, kByPriority);
}

TEST(ElectionTest, OnlyCandidate) {
  ElectionResult r = Elect({Node("a", 0, 1, 1)}, kPlain);
  EXPECT_EQ(r.winner, "a");
  EXPECT_EQ(r.selected_by, kByOnlyCandidate);
  EXPECT_EQ(Elect({}, kPlain).winner, "");
}

TEST(ElectionTest, RankingIsAStrictOrder) {
  Candidate a = Node("a", 0, 10, 100);
  EXPECT_FALSE(RanksAbove(a, a, kPlain));
  Candidate b = Node("b", 0, 10, 100);
  EXPECT_NE(RanksAbove(a, b, kPlain), RanksAbove(b, a, kPlain));
}

}  // namespace
}  // namespace cloudha
