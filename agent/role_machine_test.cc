#include "agent/role_machine.h"

#include <memory>

#include "gtest/gtest.h"

namespace cloudha {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

RoleMachine::Options Opts(const std::string& id, uint32_t priority, bool override = false) {
  RoleMachine::Options o;
  o.node_id = id;
  o.priority = priority;
  o.rules.override = override;
  o.rules.uptime_margin = absl::Seconds(300);
  o.hello_holddown = absl::Seconds(5);
  o.override_wait = absl::Seconds(5);
  o.failover_hold = absl::Seconds(10);
  o.handover_timeout = absl::Seconds(5);
  return o;
}

PeerView Peer(const std::string& id, v1::Role role, uint64_t epoch = 0, uint32_t priority = 128,
              absl::Duration uptime = absl::Seconds(10)) {
  PeerView p;
  p.id = id;
  p.role = role;
  p.epoch = epoch;
  p.priority = priority;
  p.uptime = uptime;
  return p;
}

RoleInputs At(absl::Time now, std::vector<PeerView> peers, int configured = 1) {
  RoleInputs in;
  in.now = now;
  in.live_peers = std::move(peers);
  in.configured_peers = configured;
  return in;
}

TEST(RoleMachineTest, StartingWaitsHolddownThenPromotesAlone) {
  RoleMachine m(Opts("a", 128), 0, kT0);
  EXPECT_EQ(m.role(), v1::STARTING);
  EXPECT_FALSE(m.Evaluate(At(kT0 + absl::Seconds(4), {})).has_value());
  std::optional<RoleChange> c = m.Evaluate(At(kT0 + absl::Seconds(5), {}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::PRIMARY);
  EXPECT_STREQ(c->cause, "alone");
  EXPECT_EQ(c->epoch, 1u);
  EXPECT_EQ(m.selected_by(), kByOnlyCandidate);
  EXPECT_EQ(m.hello_epoch(), 1u);
}

TEST(RoleMachineTest, StartingWithAllPeersUpElectsAtOnce) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  RoleMachine b(Opts("b", 100), 0, kT0);
  std::optional<RoleChange> ca = a.Evaluate(At(kT0 + absl::Milliseconds(300),
                                               {Peer("b", v1::STARTING, 0, 100)}));
  std::optional<RoleChange> cb = b.Evaluate(At(kT0 + absl::Milliseconds(300),
                                               {Peer("a", v1::STARTING, 0, 200)}));
  ASSERT_TRUE(ca.has_value() && cb.has_value());
  EXPECT_EQ(ca->to, v1::PRIMARY);
  EXPECT_STREQ(ca->cause, "elected");
  EXPECT_EQ(a.selected_by(), kByPriority);
  EXPECT_EQ(cb->to, v1::SECONDARY);
  EXPECT_STREQ(cb->cause, "outranked");
}

TEST(RoleMachineTest, StartingNodeFollowsALivePrimary) {
  RoleMachine m(Opts("a", 255), 3, kT0);
  PeerView b = Peer("b", v1::PRIMARY, 7, 1);
  b.selected_by = "priority";
  std::optional<RoleChange> c = m.Evaluate(At(kT0 + absl::Milliseconds(100), {b}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::SECONDARY);
  EXPECT_EQ(m.primary(), "b");
  EXPECT_EQ(m.known_epoch(), 7u);
  EXPECT_EQ(m.selected_by(), "priority");
}

TEST(RoleMachineTest, RecoveredNodeDoesNotTakeBackWithoutOverride) {
  RoleMachine a(Opts("a", 255), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(1), {Peer("b", v1::PRIMARY, 2, 1)}));
  for (int s = 2; s < 120; ++s) {
    EXPECT_FALSE(a.Evaluate(At(kT0 + absl::Seconds(s), {Peer("b", v1::PRIMARY, 2, 1)}))
                     .has_value());
  }
  EXPECT_EQ(a.role(), v1::SECONDARY);
}

TEST(RoleMachineTest, OverrideTakesBackAfterOverrideWait) {
  // b is primary with override; a (higher priority) comes back.
  RoleMachine b(Opts("b", 100, true), 0, kT0);
  ASSERT_EQ(b.Evaluate(At(kT0 + absl::Seconds(5), {}))->to, v1::PRIMARY);
  absl::Time t = kT0 + absl::Seconds(60);
  PeerView a = Peer("a", v1::SECONDARY, 1, 200, absl::Seconds(1));
  EXPECT_FALSE(b.Evaluate(At(t, {a})).has_value());
  EXPECT_FALSE(b.Evaluate(At(t + absl::Seconds(4), {a})).has_value());
  std::optional<RoleChange> c = b.Evaluate(At(t + absl::Seconds(5), {a}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::SECONDARY);
  EXPECT_EQ(b.handover_to(), "a");
  EXPECT_NE(c->reason.find("override: a ranks above by priority"), std::string::npos) << c->reason;

  // a sees the handover and promotes above the epoch.
  RoleMachine ma(Opts("a", 200, true), 1, kT0);
  PeerView old = Peer("b", v1::SECONDARY, 1, 100);
  old.handover_to = "a";
  std::optional<RoleChange> p = ma.Evaluate(At(t + absl::Seconds(5), {old}));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->to, v1::PRIMARY);
  EXPECT_EQ(p->epoch, 2u);
  EXPECT_EQ(ma.selected_by(), "handover");
}

TEST(RoleMachineTest, FailoverHoldDelaysVoluntaryHandover) {
  RoleMachine b(Opts("b", 100, true), 0, kT0);
  ASSERT_EQ(b.Evaluate(At(kT0 + absl::Seconds(5), {}))->to, v1::PRIMARY);
  PeerView a = Peer("a", v1::SECONDARY, 1, 200);
  // Became primary at 5 s; hold is 10 s: not before 15 s, even though
  // override_wait (5 s) passes at 11 s.
  EXPECT_FALSE(b.Evaluate(At(kT0 + absl::Seconds(6), {a})).has_value());
  EXPECT_FALSE(b.Evaluate(At(kT0 + absl::Seconds(14), {a})).has_value());
  EXPECT_TRUE(b.Evaluate(At(kT0 + absl::Seconds(15), {a})).has_value());
}

TEST(RoleMachineTest, LostPrimaryIsReplacedAtOnceWithAHigherEpoch) {
  RoleMachine b(Opts("b", 100), 0, kT0);
  b.Evaluate(At(kT0 + absl::Seconds(1), {Peer("a", v1::PRIMARY, 4, 200)}));
  ASSERT_EQ(b.role(), v1::SECONDARY);
  std::optional<RoleChange> c = b.Evaluate(At(kT0 + absl::Seconds(2), {}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::PRIMARY);
  EXPECT_STREQ(c->cause, "peer_lost");
  EXPECT_EQ(c->epoch, 5u);
}

TEST(RoleMachineTest, TwoPrimariesLowerEpochStepsDown) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  ASSERT_EQ(a.Evaluate(At(kT0 + absl::Seconds(5), {}))->epoch, 1u);
  // The partition heals: b promoted to epoch 2 meanwhile.
  std::optional<RoleChange> c =
      a.Evaluate(At(kT0 + absl::Seconds(30), {Peer("b", v1::PRIMARY, 2, 100)}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::SECONDARY);
  EXPECT_NE(c->reason.find("higher epoch 2"), std::string::npos);
  EXPECT_EQ(a.primary(), "b");

  RoleMachine b(Opts("b", 100), 1, kT0);
  ASSERT_EQ(b.Evaluate(At(kT0 + absl::Seconds(5), {}))->epoch, 2u);
  EXPECT_FALSE(b.Evaluate(At(kT0 + absl::Seconds(30), {Peer("a", v1::PRIMARY, 1, 200)}))
                   .has_value());
  EXPECT_EQ(b.role(), v1::PRIMARY);
}

TEST(RoleMachineTest, TwoPrimariesSameEpochWorseRankStepsDown) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  RoleMachine b(Opts("b", 100), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}));
  b.Evaluate(At(kT0 + absl::Seconds(5), {}));
  EXPECT_FALSE(a.Evaluate(At(kT0 + absl::Seconds(6), {Peer("b", v1::PRIMARY, 1, 100,
                                                           absl::Seconds(6))}))
                   .has_value());
  std::optional<RoleChange> c = b.Evaluate(
      At(kT0 + absl::Seconds(6), {Peer("a", v1::PRIMARY, 1, 200, absl::Seconds(6))}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::SECONDARY);
  EXPECT_NE(c->reason.find("wins the tie by priority"), std::string::npos) << c->reason;
}

TEST(RoleMachineTest, SameEpochTieUsesOnlyValuesBothSidesAgreeOn) {
  // With override and equal priorities each side might believe itself the
  // older; the tie between two primaries ignores uptime: node id decides.
  RoleMachine a(Opts("a", 100, true), 0, kT0);
  RoleMachine b(Opts("b", 100, true), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}));
  b.Evaluate(At(kT0 + absl::Seconds(5), {}));
  PeerView a_seen = Peer("a", v1::PRIMARY, 1, 100, absl::Seconds(4));
  PeerView b_seen = Peer("b", v1::PRIMARY, 1, 100, absl::Seconds(4));
  EXPECT_FALSE(a.Evaluate(At(kT0 + absl::Seconds(5), {b_seen})).has_value());
  ASSERT_TRUE(b.Evaluate(At(kT0 + absl::Seconds(5), {a_seen})).has_value());
  EXPECT_EQ(b.role(), v1::SECONDARY);
}

TEST(RoleMachineTest, PartialPartitionOfThreeKeepsOnePrimary) {
  // a (200) is primary at epoch 1; the a-c link is cut. c sees only b, which
  // still sees a: c must not start a second primary.
  RoleMachine c(Opts("c", 150), 1, kT0);
  PeerView b = Peer("b", v1::SECONDARY, 1, 100);
  b.sees_primary = "a";
  b.sees_primary_epoch = 1;
  std::optional<RoleChange> first = c.Evaluate(At(kT0 + absl::Seconds(1), {b}, 2));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->to, v1::SECONDARY);
  for (int s = 2; s < 30; ++s) {
    EXPECT_FALSE(c.Evaluate(At(kT0 + absl::Seconds(s), {b}, 2)).has_value());
  }
  EXPECT_EQ(c.primary(), "a");
  EXPECT_EQ(c.direct_primary(), "");  // never reported second-hand

  // A primary told of a newer one by a peer steps down instead of fighting.
  RoleMachine a(Opts("a", 200), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}));
  PeerView relay = Peer("b", v1::SECONDARY, 2, 100);
  relay.sees_primary = "c";
  relay.sees_primary_epoch = 2;
  std::optional<RoleChange> down = a.Evaluate(At(kT0 + absl::Seconds(6), {relay}, 2));
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(down->to, v1::SECONDARY);
  EXPECT_EQ(a.primary(), "c");
}

TEST(RoleMachineTest, PrimariesAtTheSameEpochSettleThroughTheNodeBetweenThem) {
  // a (200) and c (150) cannot see each other and both promoted to epoch 1;
  // b sees both and reports the tie's winner, a.
  RoleMachine b(Opts("b", 100), 0, kT0);
  b.Evaluate(At(kT0 + absl::Seconds(1),
                {Peer("a", v1::PRIMARY, 1, 200), Peer("c", v1::PRIMARY, 1, 150)}, 2));
  EXPECT_EQ(b.direct_primary(), "a");
  RoleMachine c(Opts("c", 150), 0, kT0);
  ASSERT_EQ(c.Evaluate(At(kT0 + absl::Seconds(5), {}, 1))->to, v1::PRIMARY);
  PeerView relay = Peer("b", v1::SECONDARY, 1, 100);
  relay.sees_primary = "a";
  relay.sees_primary_epoch = 1;
  std::optional<RoleChange> down = c.Evaluate(At(kT0 + absl::Seconds(6), {relay}, 1));
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(down->to, v1::SECONDARY);
  // a, told by b that a is the primary, stays.
  RoleMachine a(Opts("a", 200), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}, 1));
  PeerView self_report = Peer("b", v1::SECONDARY, 1, 100);
  self_report.sees_primary = "a";
  self_report.sees_primary_epoch = 1;
  EXPECT_FALSE(a.Evaluate(At(kT0 + absl::Seconds(6), {self_report}, 1)).has_value());
  // Two primaries that see each other settle first-hand, never both down.
  RoleMachine x(Opts("x", 100), 0, kT0);
  x.Evaluate(At(kT0 + absl::Seconds(5), {}, 1));
  PeerView y = Peer("y", v1::PRIMARY, 1, 50);
  y.sees_primary = "y";
  y.sees_primary_epoch = 1;
  EXPECT_FALSE(x.Evaluate(At(kT0 + absl::Seconds(6), {y}, 1)).has_value());
  EXPECT_EQ(x.role(), v1::PRIMARY);
}

TEST(RoleMachineTest, AWinnerThatNeverPromotesIsNotWaitedForForever) {
  // b thinks a should win (different settings on a): after the handover
  // timeout b promotes itself.
  RoleMachine b(Opts("b", 100), 0, kT0);
  PeerView a = Peer("a", v1::SECONDARY, 0, 200);
  EXPECT_FALSE(b.Evaluate(At(kT0 + absl::Seconds(6), {a})).has_value() &&
               b.role() == v1::PRIMARY);
  EXPECT_FALSE(b.Evaluate(At(kT0 + absl::Seconds(10), {a})).has_value());
  std::optional<RoleChange> c = b.Evaluate(At(kT0 + absl::Seconds(11), {a}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::PRIMARY);
}

TEST(RoleMachineTest, FaultAtBootStillWaitsForPeers) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  RoleInputs sick = At(kT0 + absl::Milliseconds(100), {});
  sick.all_monitors_failing = true;
  std::optional<RoleChange> fault = a.Evaluate(sick);
  ASSERT_TRUE(fault.has_value());
  EXPECT_EQ(fault->to, v1::FAULT);
  EXPECT_STREQ(fault->cause, "monitors_failing");
  ASSERT_EQ(a.Evaluate(At(kT0 + absl::Milliseconds(500), {}))->to, v1::SECONDARY);
  EXPECT_FALSE(a.Evaluate(At(kT0 + absl::Seconds(1), {})).has_value());
  EXPECT_EQ(a.Evaluate(At(kT0 + absl::Seconds(5), {}))->to, v1::PRIMARY);
}

TEST(RoleMachineTest, HandoverRefusedToALessHealthyOrLowerRankedTarget) {
  RoleMachine a(Opts("a", 200, true), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}));
  PeerView sick = Peer("b", v1::SECONDARY, 1, 100);
  sick.health_penalty = 10;
  EXPECT_NE(a.RequestHandover("b", At(kT0 + absl::Seconds(6), {sick})).status().message().find(
                "less healthy"),
            std::string::npos);
  EXPECT_NE(a.RequestHandover("b", At(kT0 + absl::Seconds(6), {Peer("b", v1::SECONDARY, 1, 100)}))
                .status()
                .message()
                .find("would take the role back"),
            std::string::npos);
}

TEST(RoleMachineTest, PrimaryReassertsAboveAnEpochItMissed) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}));
  // b promoted to 2 during a partition and has since become secondary.
  std::optional<RoleChange> c =
      a.Evaluate(At(kT0 + absl::Seconds(30), {Peer("b", v1::SECONDARY, 2, 100)}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->from, v1::PRIMARY);
  EXPECT_EQ(c->to, v1::PRIMARY);
  EXPECT_EQ(c->epoch, 3u);
}

TEST(RoleMachineTest, HealthHandsOverToAHealthierSecondary) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}));
  RoleInputs in = At(kT0 + absl::Seconds(30), {Peer("b", v1::SECONDARY, 1, 100)});
  in.health_penalty = 10;
  std::optional<RoleChange> c = a.Evaluate(in);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::SECONDARY);
  EXPECT_EQ(a.handover_to(), "b");
  // Not to an equally sick one.
  RoleMachine a2(Opts("a", 200), 0, kT0);
  a2.Evaluate(At(kT0 + absl::Seconds(5), {}));
  PeerView sick = Peer("b", v1::SECONDARY, 1, 100);
  sick.health_penalty = 10;
  RoleInputs in2 = At(kT0 + absl::Seconds(30), {sick});
  in2.health_penalty = 10;
  EXPECT_FALSE(a2.Evaluate(in2).has_value());
}

TEST(RoleMachineTest, AllMonitorsFailingIsFaultUntilTheyRecover) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}));
  RoleInputs sick = At(kT0 + absl::Seconds(6), {});
  sick.all_monitors_failing = true;
  ASSERT_EQ(a.Evaluate(sick)->to, v1::FAULT);
  EXPECT_EQ(a.primary(), "");
  EXPECT_FALSE(a.Evaluate(sick).has_value());
  std::optional<RoleChange> back = a.Evaluate(At(kT0 + absl::Seconds(7), {}));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->to, v1::SECONDARY);
  EXPECT_STREQ(back->cause, "monitors_recovered");
}

TEST(RoleMachineTest, FailedPromotionIsFaultForTheHoldThenSecondary) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  uint64_t epoch = a.Evaluate(At(kT0 + absl::Seconds(5), {}))->epoch;
  EXPECT_FALSE(a.OnPromotionFailed(epoch + 1, "stale", kT0 + absl::Seconds(6)).has_value());
  std::optional<RoleChange> f = a.OnPromotionFailed(epoch, "hook exited 1", kT0 + absl::Seconds(6));
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->to, v1::FAULT);
  // While FAULT the peer takes over; a stays out for the hold.
  EXPECT_FALSE(a.Evaluate(At(kT0 + absl::Seconds(15), {})).has_value());
  EXPECT_EQ(a.Evaluate(At(kT0 + absl::Seconds(16), {}))->to, v1::SECONDARY);
}

TEST(RoleMachineTest, AFailedPromotionIsRememberedAsPenalty) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  uint64_t epoch = a.Evaluate(At(kT0 + absl::Seconds(5), {}))->epoch;
  EXPECT_EQ(a.PromotionFailurePenalty(kT0 + absl::Seconds(5)), 0u);
  a.OnPromotionFailed(epoch, "hook exited 1", kT0 + absl::Seconds(6));
  EXPECT_EQ(a.PromotionFailurePenalty(kT0 + absl::Seconds(7)),
            RoleMachine::kPromotionFailurePenalty);
  EXPECT_EQ(a.PromotionFailurePenalty(kT0 + absl::Seconds(67)), 0u);
}

TEST(RoleMachineTest, SecondaryIgnoresFaultPeersInElection) {
  RoleMachine b(Opts("b", 100), 0, kT0);
  b.Evaluate(At(kT0 + absl::Seconds(1), {Peer("a", v1::PRIMARY, 1, 200)}));
  std::optional<RoleChange> c =
      b.Evaluate(At(kT0 + absl::Seconds(2), {Peer("a", v1::FAULT, 1, 200)}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::PRIMARY);
}

TEST(RoleMachineTest, OperatorHandover) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  RoleInputs in = At(kT0 + absl::Seconds(1), {Peer("b", v1::SECONDARY, 0, 100)});
  // Not primary yet.
  EXPECT_EQ(a.RequestHandover("b", in).status().code(), absl::StatusCode::kFailedPrecondition);
  a.Evaluate(At(kT0 + absl::Seconds(5), {}));
  RoleInputs now = At(kT0 + absl::Seconds(6), {Peer("b", v1::SECONDARY, 1, 100)});
  EXPECT_NE(a.RequestHandover("c", now).status().message().find("not a live peer"),
            std::string::npos);
  PeerView syncing = Peer("b", v1::SECONDARY, 1, 100);
  syncing.in_sync = false;
  EXPECT_NE(a.RequestHandover("b", At(now.now, {syncing})).status().message().find("bulk sync"),
            std::string::npos);
  EXPECT_NE(a.RequestHandover("b", At(now.now, {Peer("b", v1::FAULT, 1)}))
                .status()
                .message()
                .find("it is FAULT"),
            std::string::npos);
  absl::StatusOr<RoleChange> ok = a.RequestHandover("", now);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->to, v1::SECONDARY);
  EXPECT_STREQ(ok->cause, "operator");
  EXPECT_EQ(a.handover_to(), "b");
  // The old primary stays out of elections while the handover runs...
  EXPECT_FALSE(a.Evaluate(At(kT0 + absl::Seconds(7), {Peer("b", v1::SECONDARY, 1, 100)}))
                   .has_value());
  // ...and follows b once it promoted.
  EXPECT_FALSE(a.Evaluate(At(kT0 + absl::Seconds(8), {Peer("b", v1::PRIMARY, 2, 100)}))
                   .has_value());
  EXPECT_EQ(a.handover_to(), "");
  EXPECT_EQ(a.primary(), "b");
}

TEST(RoleMachineTest, AStaleHandoverIsIgnored) {
  // b took the role from a at epoch 2; a's hello still names b from epoch 1.
  RoleMachine b(Opts("b", 100), 1, kT0);
  PeerView a = Peer("a", v1::SECONDARY, 1, 200);
  a.handover_to = "b";
  ASSERT_EQ(b.Evaluate(At(kT0 + absl::Seconds(1), {a}))->epoch, 2u);
  ASSERT_TRUE(b.RequestHandover("a", At(kT0 + absl::Seconds(1), {a})).ok());
  // The stale hello must not pull the role back to b.
  EXPECT_FALSE(b.Evaluate(At(kT0 + absl::Seconds(1), {a})).has_value());
  EXPECT_EQ(b.role(), v1::SECONDARY);

  // a, on learning epoch 2, forgets its own handover.
  RoleMachine ma(Opts("a", 200), 0, kT0);
  ma.Evaluate(At(kT0 + absl::Seconds(5), {}));
  ASSERT_TRUE(ma.RequestHandover("b", At(kT0 + absl::Seconds(6), {Peer("b", v1::SECONDARY, 1)})).ok());
  EXPECT_EQ(ma.handover_to(), "b");
  PeerView back = Peer("b", v1::SECONDARY, 2, 100);
  back.handover_to = "a";
  std::optional<RoleChange> c = ma.Evaluate(At(kT0 + absl::Seconds(6), {back}));
  EXPECT_EQ(ma.handover_to(), "");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::PRIMARY);
  EXPECT_EQ(c->epoch, 3u);
}

TEST(RoleMachineTest, ThirdNodeWaitsForAHandoverToAnother) {
  RoleMachine c(Opts("c", 255), 1, kT0);
  c.Evaluate(At(kT0 + absl::Seconds(1), {Peer("a", v1::PRIMARY, 1), Peer("b", v1::SECONDARY, 1)},
                2));
  PeerView a = Peer("a", v1::SECONDARY, 1);
  a.handover_to = "b";
  std::vector<PeerView> peers = {a, Peer("b", v1::SECONDARY, 1)};
  EXPECT_FALSE(c.Evaluate(At(kT0 + absl::Seconds(2), peers, 2)).has_value());
  EXPECT_FALSE(c.Evaluate(At(kT0 + absl::Seconds(6), peers, 2)).has_value());
  // b never promoted: after the handover timeout c elects (and wins).
  EXPECT_EQ(c.Evaluate(At(kT0 + absl::Seconds(7), peers, 2))->to, v1::PRIMARY);
}

TEST(RoleMachineTest, StoredEpochIsNeverReused) {
  RoleMachine a(Opts("a", 200), 41, kT0);
  EXPECT_EQ(a.Evaluate(At(kT0 + absl::Seconds(5), {}))->epoch, 42u);
}

}  // namespace
}  // namespace cloudha

namespace cloudha {
namespace {

TEST(RoleMachineTest, ANodeStillSyncingDefersToOneThatHoldsACompleteReplica) {
  // b ranks above a by priority, but its bulk sync has not finished.
  RoleMachine b(Opts("b", 200), 0, kT0);
  PeerView a = Peer("a", v1::SECONDARY, 1, 100);
  RoleInputs in = At(kT0 + absl::Seconds(6), {a});
  in.in_sync = false;
  std::optional<RoleChange> held = b.Evaluate(in);
  EXPECT_TRUE(!held.has_value() || held->to != v1::PRIMARY);
  // a, in sync, sees b syncing and promotes although b ranks above it.
  RoleMachine a_machine(Opts("a", 100), 1, kT0);
  PeerView b_view = Peer("b", v1::SECONDARY, 1, 200);
  b_view.in_sync = false;
  std::optional<RoleChange> change = a_machine.Evaluate(At(kT0 + absl::Seconds(6), {b_view}));
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->to, v1::PRIMARY);
  // With nobody in sync (both just started), the usual ranking decides.
  RoleMachine b2(Opts("b", 200), 0, kT0);
  PeerView a_syncing = Peer("a", v1::SECONDARY, 1, 100);
  a_syncing.in_sync = false;
  RoleInputs both = At(kT0 + absl::Seconds(6), {a_syncing});
  both.in_sync = false;
  change = b2.Evaluate(both);
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->to, v1::PRIMARY);
}

}  // namespace
}  // namespace cloudha

namespace cloudha {
namespace {

RoleInputs WithArbiter(RoleInputs in, bool lease, bool reachable, int peer_votes,
                       bool keep = false) {
  in.arbiter = ArbiterInput{true, lease, reachable, keep, peer_votes};
  return in;
}

// With an arbiter: a node that would promote alone waits for the lease
// (and says it wants it); with the lease it promotes.
TEST(RoleMachineArbiterTest, PromotionAloneWaitsForTheLease) {
  RoleMachine m(Opts("a", 128), 0, kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  EXPECT_FALSE(m.Evaluate(WithArbiter(At(t, {}), false, true, 0)).has_value());
  EXPECT_TRUE(m.wants_lease());
  EXPECT_NE(m.role(), v1::PRIMARY);
  std::optional<RoleChange> c = m.Evaluate(WithArbiter(At(t, {}), true, true, 0));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::PRIMARY);
  EXPECT_TRUE(m.wants_lease());  // a primary keeps renewing it
}

// Peers that see each other elect as without an arbiter: the peer's vote
// makes the majority.
TEST(RoleMachineArbiterTest, PeersThatSeeEachOtherElectWithoutTheLease) {
  RoleMachine a(Opts("a", 200), 0, kT0);
  std::optional<RoleChange> c = a.Evaluate(WithArbiter(
      At(kT0 + absl::Milliseconds(300), {Peer("b", v1::STARTING, 0, 100)}), false, false, 1));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::PRIMARY);
  // The same, but b does not (yet) see a: no majority.
  RoleMachine a2(Opts("a", 200), 0, kT0);
  EXPECT_FALSE(a2.Evaluate(WithArbiter(At(kT0 + absl::Milliseconds(300),
                                          {Peer("b", v1::STARTING, 0, 100)}),
                                       false, true, 0))
                   .has_value());
  EXPECT_TRUE(a2.wants_lease());
}

// A primary that loses both the peer's vote and the lease steps down; one
// that keeps either stays. KEEP keeps it when nothing at all answers.
TEST(RoleMachineArbiterTest, APrimaryWithoutAMajorityStepsDown) {
  auto primary = [](bool keep) {
    auto m = std::make_unique<RoleMachine>(Opts("a", 128), 0, kT0);
    m->Evaluate(WithArbiter(At(kT0 + absl::Seconds(5), {}), true, true, 0, keep));
    return m;
  };
  const absl::Time t = kT0 + absl::Seconds(6);
  std::unique_ptr<RoleMachine> m = primary(false);
  ASSERT_EQ(m->role(), v1::PRIMARY);
  EXPECT_FALSE(m->Evaluate(WithArbiter(At(t, {}), false, false, 1)).has_value());
  EXPECT_FALSE(m->Evaluate(WithArbiter(At(t, {}), true, false, 0)).has_value());
  std::optional<RoleChange> c = m->Evaluate(WithArbiter(At(t, {}), false, true, 0));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to, v1::SECONDARY);
  EXPECT_NE(m->reason().find("lost the majority"), std::string::npos) << m->reason();
  // And it does not promote again without a majority.
  EXPECT_FALSE(m->Evaluate(WithArbiter(At(t + absl::Seconds(30), {}), false, true, 0))
                   .has_value());

  std::unique_ptr<RoleMachine> kept = primary(true);
  EXPECT_FALSE(kept->Evaluate(WithArbiter(At(t, {}), false, false, 0, true)).has_value());
  EXPECT_EQ(kept->role(), v1::PRIMARY);
  c = kept->Evaluate(WithArbiter(At(t, {}), false, true, 0, true));
  ASSERT_TRUE(c.has_value()) << "KEEP applies only when the arbiter does not answer";
  EXPECT_EQ(c->to, v1::SECONDARY);
}

}  // namespace
}  // namespace cloudha

namespace cloudha {
namespace {

// At the epoch ceiling a node does not promote (and never wraps to 0).
TEST(RoleMachineTest, AtTheEpochCeilingANodeDoesNotPromote) {
  RoleMachine m(Opts("a", 128), kMaxEpoch, kT0);
  EXPECT_FALSE(m.Evaluate(At(kT0 + absl::Seconds(10), {})).has_value());
  EXPECT_NE(m.role(), v1::PRIMARY);
  EXPECT_NE(m.reason().find("epoch ceiling"), std::string::npos) << m.reason();
  RoleMachine below(Opts("a", 128), kMaxEpoch - 1, kT0);
  std::optional<RoleChange> c = below.Evaluate(At(kT0 + absl::Seconds(10), {}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->epoch, kMaxEpoch);
}

}  // namespace
}  // namespace cloudha
