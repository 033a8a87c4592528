#include "agent/node_core.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

// Records what the core asks of its environment.
class RecordingEnv : public NodeCoreEnv {
 public:
  uint32_t MonitorPenalty() override { return penalty; }
  bool AllMonitorsFailing() override { return false; }
  bool InSync() override { return true; }
  absl::Status StoreEpoch(uint64_t epoch) override {
    if (!store_ok) return absl::ResourceExhaustedError("disk full");
    stored.push_back(epoch);
    return absl::OkStatus();
  }
  void FollowRole(v1::Role role, uint64_t epoch, const std::string& /*primary*/,
                  const std::vector<Membership::LivePeer>& /*live*/) override {
    followed_role = role;
    followed_epoch = epoch;
    // Called before the state reaches LocalNode (and so any hello): a
    // primary's epoch must be durable by then.
    if (role == v1::PRIMARY) {
      announced_primary = true;
      if (stored.empty() || stored.back() < epoch) stored_before_announced = false;
    }
  }
  void OnRoleChanged(const RoleChange& change, const RoleMachine& /*role*/) override {
    changes.push_back(change);
  }
  void SetServing(bool p, bool s) override {
    primary_serving = p;
    secondary_serving = s;
  }
  void OnMembershipChange(const Membership::Change& /*change*/) override {}

  uint32_t penalty = 0;
  bool store_ok = true;
  std::vector<uint64_t> stored;
  std::vector<RoleChange> changes;
  bool announced_primary = false;
  bool stored_before_announced = true;
  v1::Role followed_role = v1::ROLE_UNSPECIFIED;
  uint64_t followed_epoch = 0;
  bool primary_serving = false;
  bool secondary_serving = false;
};

v1::AgentConfig Config() {
  v1::AgentConfig c;
  c.mutable_cluster()->set_name("unit");
  c.mutable_node()->set_id("a");
  c.mutable_node()->set_priority(200);
  v1::PeerConfig* peer = c.add_peers();
  peer->set_id("b");
  peer->add_addresses("b:7801");
  c.mutable_heartbeat()->set_interval_ms(100);
  c.mutable_heartbeat()->set_lost_threshold(3);
  c.mutable_election()->set_hello_holddown_s(1);
  return c;
}

class NodeCoreTest : public ::testing::Test {
 protected:
  NodeCoreTest()
      : config_(Config()),
        start_(absl::FromUnixSeconds(1000)),
        local_(config_, 42, start_),
        membership_(config_),
        core_(config_, /*stored_epoch=*/7, start_, &membership_, &local_, &env_) {}

  // Steps every 100 ms from where the last call stopped until `t` after the
  // start (time only moves forward).
  void StepUntil(absl::Duration t) {
    for (; stepped_ <= t; stepped_ += absl::Milliseconds(100)) core_.Step(start_ + stepped_);
  }

  v1::AgentConfig config_;
  absl::Time start_;
  RecordingEnv env_;
  LocalNode local_;
  Membership membership_;
  NodeCore core_;
  absl::Duration stepped_;
};

TEST_F(NodeCoreTest, AloneAfterTheHolddownPromotesPastTheStoredEpochAndStoresItFirst) {
  StepUntil(absl::Milliseconds(500));
  EXPECT_EQ(core_.view(start_).role, v1::STARTING);
  StepUntil(absl::Seconds(2));
  NodeCore::View v = core_.view(start_ + absl::Seconds(2));
  ASSERT_EQ(v.role, v1::PRIMARY);
  EXPECT_EQ(v.epoch, 8u);
  EXPECT_TRUE(env_.announced_primary);
  EXPECT_TRUE(env_.stored_before_announced);
  EXPECT_EQ(env_.followed_role, v1::PRIMARY);
  EXPECT_EQ(env_.followed_epoch, 8u);
  // Hellos carry it.
  EXPECT_EQ(local_.MakeHello(start_, "b").epoch(), 8u);
  EXPECT_EQ(local_.MakeHello(start_, "b").role(), v1::PRIMARY);
}

TEST_F(NodeCoreTest, PrimaryServesOnlyOnceItsHooksSucceeded) {
  StepUntil(absl::Seconds(2));
  ASSERT_TRUE(core_.IsPrimaryAt(8));
  EXPECT_FALSE(env_.primary_serving);
  EXPECT_FALSE(core_.OnPrimaryHooksDone(7, true, "", start_ + absl::Seconds(2)));  // stale
  EXPECT_FALSE(env_.primary_serving);
  EXPECT_TRUE(core_.OnPrimaryHooksDone(8, true, "", start_ + absl::Seconds(2)));
  EXPECT_TRUE(env_.primary_serving);
  EXPECT_TRUE(core_.view(start_).primary_ready);
}

TEST_F(NodeCoreTest, FailedHooksGiveTheRoleUp) {
  StepUntil(absl::Seconds(2));
  EXPECT_FALSE(core_.OnPrimaryHooksDone(8, false, "eip: access denied", start_ + absl::Seconds(2)));
  EXPECT_EQ(core_.view(start_ + absl::Seconds(2)).role, v1::FAULT);
  EXPECT_FALSE(core_.IsPrimaryAt(8));
  EXPECT_FALSE(env_.primary_serving);
}

TEST_F(NodeCoreTest, APromotionWhoseEpochCannotBeStoredBecomesFault) {
  env_.store_ok = false;
  for (absl::Duration d; d <= absl::Seconds(2); d += absl::Milliseconds(100)) {
    core_.Step(start_ + d);
    // Never primary, not for one step, and hellos never say so.
    ASSERT_NE(core_.view(start_ + d).role, v1::PRIMARY);
    ASSERT_NE(local_.MakeHello(start_ + d, "b").role(), v1::PRIMARY);
  }
  bool fault = false;
  for (const RoleChange& c : env_.changes) fault |= c.to == v1::FAULT;
  EXPECT_TRUE(fault);
  EXPECT_FALSE(env_.primary_serving);
}

TEST_F(NodeCoreTest, HandoverWithoutALivePeerIsRefused) {
  StepUntil(absl::Seconds(2));
  absl::StatusOr<std::string> to = core_.RequestHandover("", start_ + absl::Seconds(2));
  EXPECT_EQ(to.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(core_.view(start_).role, v1::PRIMARY);
}

}  // namespace
}  // namespace cloudha
