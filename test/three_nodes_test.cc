// Three real agents where a and c cannot reach each other (neither names the
// other as a peer) and b reaches both: a partial partition. There must be
// exactly one primary, and no epoch war between the two ends.
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

class ThreeNodesTest : public ::testing::Test {
 protected:
  void Start(const std::string& node, int priority, std::vector<std::string> peers) {
    TestCluster::Settings s;
    s.priority = priority;
    s.peers = std::move(peers);
    s.election = "hello_holddown_s: 1 failover_hold_s: 0";
    cluster_.WriteConfig(node, cluster_.Config(node, s));
    ASSERT_NE(cluster_.Start(node), nullptr);
  }

  // The primaries and the highest epoch, as the three report them.
  std::vector<std::string> Primaries(uint64_t* epoch) {
    std::vector<std::string> out;
    *epoch = 0;
    for (const char* node : {"a", "b", "c"}) {
      absl::StatusOr<v1::StatusResponse> s = cluster_.Status(node);
      if (!s.ok()) continue;
      if (s->role() == v1::PRIMARY) out.push_back(node);
      *epoch = std::max<uint64_t>(*epoch, s->epoch());
    }
    return out;
  }

  TestCluster cluster_{{"a", "b", "c"}};
};

TEST_F(ThreeNodesTest, PartialPartitionKeepsOnePrimaryWithoutAnEpochWar) {
  Start("a", 200, {"b"});
  Start("b", 100, {"a", "c"});
  Start("c", 150, {"b"});
  // At the start a and c may both promote (neither sees the other, and b
  // has not reported yet); they must settle: one primary for a whole second.
  uint64_t epoch = 0;
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  absl::Time stable_since = absl::Now();
  std::vector<std::string> last;
  while (absl::Now() < deadline) {
    std::vector<std::string> now = Primaries(&epoch);
    if (now.size() != 1 || now != last) stable_since = absl::Now();
    last = now;
    if (absl::Now() - stable_since >= absl::Seconds(1)) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(last.size(), 1u) << Logs(cluster_.agent("a")) << Logs(cluster_.agent("c"));
  uint64_t settled = epoch;
  // Three more seconds (30 hello intervals): still that one, same epoch.
  absl::Time until = absl::Now() + absl::Seconds(3);
  while (absl::Now() < until) {
    std::vector<std::string> primaries = Primaries(&epoch);
    ASSERT_EQ(primaries, last) << absl::StrJoin(primaries, ",");
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::vector<std::string> primaries = Primaries(&epoch);
  ASSERT_EQ(primaries.size(), 1u);
  EXPECT_EQ(epoch, settled) << "the epoch kept climbing: an epoch war";
  // The two ends agree on who it is.
  EXPECT_EQ(cluster_.Status("a")->primary(), primaries[0]);
  EXPECT_EQ(cluster_.Status("c")->primary(), primaries[0]);
}

}  // namespace
}  // namespace cloudha
