#include "agent/arbiter_rules.h"

#include <string>

#include "gtest/gtest.h"

namespace cloudha {
namespace {

// One row: (peers configured, peers whose vote counts, arbiter lease held, arbiter
// reachable, on_isolation KEEP) -> may promote, may stay primary.
struct Row {
  int configured;
  int seen;
  bool lease;
  bool reachable;
  bool keep;
  bool may_promote;
  bool may_stay;
  const char* what;
};

TEST(ArbiterRulesTest, EveryRowOfTheTable) {
  const Row rows[] = {
      // A pair (3 voters, 2 needed).
      {1, 1, true, true, false, true, true, "all seen"},
      {1, 1, false, false, false, true, true, "arbiter lost alone: no change"},
      {1, 1, false, true, false, true, true, "lease held by the peer, peer seen"},
      {1, 0, true, true, false, true, true, "peer lost, lease held: promote / stay"},
      {1, 0, false, true, false, false, false, "peer lost, lease refused: wait / step down"},
      {1, 0, false, false, false, false, false, "isolated, STEP_DOWN"},
      {1, 0, false, false, true, false, true, "isolated, KEEP: stays, never promotes"},
      {1, 0, false, true, true, false, false, "KEEP, but the arbiter answered: step down"},
      {1, 0, true, false, true, true, true, "lease still held by own clock"},
      // Three nodes (4 voters, 3 needed).
      {2, 2, false, false, false, true, true, "three see each other"},
      {2, 1, true, true, false, true, true, "two of three with the lease"},
      {2, 1, false, false, false, false, false,
       "two of three without the lease: a peer's vote is not exclusive"},
      {2, 1, false, true, false, false, false, "two of three without the lease"},
      {2, 0, true, true, false, false, false, "alone with the lease is not a majority"},
      {2, 0, false, false, true, false, true, "alone, KEEP"},
      // Four nodes (5 voters, 3 needed): two candidates cut from each other
      // but both seen by the other two would each count 3 without the lease.
      {3, 2, false, true, false, false, false, "two of four peers, no lease"},
      {3, 2, true, true, false, true, true, "two of four peers and the lease"},
      {3, 3, false, false, false, true, true, "every peer"},
  };
  for (const Row& r : rows) {
    ArbiterInput in{true, r.lease, r.reachable, r.keep, r.seen};
    std::string why;
    EXPECT_EQ(MayBecomePrimary(r.configured, in), r.may_promote) << r.what;
    EXPECT_EQ(MayStayPrimary(r.configured, in, &why), r.may_stay) << r.what;
    if (!r.may_stay) EXPECT_NE(why.find("lost the majority"), std::string::npos) << why;
  }
}

TEST(ArbiterRulesTest, WithoutAnArbiterEverythingIsAllowed) {
  ArbiterInput off;
  EXPECT_TRUE(MayBecomePrimary(1, off));
  EXPECT_TRUE(MayStayPrimary(1, off, nullptr));
  EXPECT_TRUE(MayBecomePrimary(7, off));
}

TEST(ArbiterRulesTest, MajorityCountsTheArbiter) {
  EXPECT_EQ(ArbiterMajority(1), 2);  // 2 nodes + arbiter
  EXPECT_EQ(ArbiterMajority(2), 3);  // 3 nodes + arbiter
  EXPECT_EQ(ArbiterMajority(3), 3);  // 4 nodes + arbiter
  EXPECT_EQ(ArbiterVotes(ArbiterInput{true, true, true, false, 1}), 3);
}

}  // namespace
}  // namespace cloudha
