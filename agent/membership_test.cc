#include "agent/membership.h"

#include <limits>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using Kind = Membership::Change::Kind;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

const absl::Time kStart = absl::FromUnixSeconds(1000);
const absl::Duration kInterval = absl::Milliseconds(200);

v1::AgentConfig Config() {
  v1::AgentConfig c;
  google::protobuf::TextFormat::ParseFromString(R"(
    node { id: "a" }
    peers { id: "b" addresses: "10.0.0.2:7801" addresses: "10.1.0.2:7801" }
    heartbeat { interval_ms: 200 lost_threshold: 6 })",
                                                &c);
  return c;
}

v1::Hello FromB(uint64_t boot) {
  v1::Hello h;
  h.set_node_id("b");
  h.set_boot_id(boot);
  h.set_uptime_ms(5000);
  return h;
}

auto IsChange(Kind kind, int path = -1) {
  return ::testing::AllOf(Field(&Membership::Change::kind, kind),
                          Field(&Membership::Change::path, path));
}

TEST(MembershipTest, PeerStartsDownAndComesUpOnReply) {
  Membership m(Config());
  EXPECT_THAT(m.Evaluate(kStart), IsEmpty());
  EXPECT_FALSE(m.IsUp("b"));
  m.OnHelloSent("b", 0, 1, kStart);
  m.OnReply("b", 0, FromB(1), absl::Milliseconds(2), kStart);
  EXPECT_THAT(m.Evaluate(kStart), ElementsAre(IsChange(Kind::kPathUp, 0), IsChange(Kind::kPeerUp)));
  EXPECT_TRUE(m.IsUp("b"));
  std::vector<v1::PeerStatus> status = m.Status(kStart + absl::Milliseconds(50));
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].state(), v1::PeerStatus::UP);
  EXPECT_EQ(status[0].last_hello_age_ms(), 50);
  EXPECT_DOUBLE_EQ(status[0].rtt_ms(), 2.0);
  EXPECT_EQ(status[0].hellos_sent(), 1u);
  EXPECT_EQ(status[0].paths(0).state(), v1::PeerStatus::UP);
  EXPECT_EQ(status[0].paths(1).state(), v1::PeerStatus::DOWN);
}

TEST(MembershipTest, LostExactlyAfterIntervalTimesThreshold) {
  Membership m(Config());
  m.OnReply("b", 0, FromB(1), absl::Milliseconds(1), kStart);
  m.Evaluate(kStart);
  EXPECT_THAT(m.Evaluate(kStart + kInterval * 6 - absl::Milliseconds(1)), IsEmpty());
  EXPECT_THAT(m.Evaluate(kStart + kInterval * 6),
              ElementsAre(IsChange(Kind::kPathDown, 0), IsChange(Kind::kPeerDown)));
  EXPECT_FALSE(m.IsUp("b"));
}

TEST(MembershipTest, NextExpiryIsWhenTheFreshestUpThingWouldBeLost) {
  Membership m(Config());
  EXPECT_FALSE(m.NextExpiry().has_value());
  m.OnReply("b", 0, FromB(1), absl::Milliseconds(1), kStart);
  m.Evaluate(kStart);
  EXPECT_EQ(*m.NextExpiry(), kStart + kInterval * 6);
  m.OnInboundHello("b", FromB(1), kStart + kInterval);
  // The path's reply is older than the peer's last hello: it expires first.
  EXPECT_EQ(*m.NextExpiry(), kStart + kInterval * 6);
}

TEST(MembershipTest, OnePathDownKeepsThePeerUp) {
  Membership m(Config());
  m.OnReply("b", 0, FromB(1), absl::Milliseconds(1), kStart);
  m.OnReply("b", 1, FromB(1), absl::Milliseconds(1), kStart);
  m.Evaluate(kStart);
  // Path 1 keeps answering, path 0 falls silent.
  absl::Time t = kStart;
  std::vector<Membership::Change> changes;
  for (int i = 0; i < 10; ++i) {
    t += kInterval;
    m.OnReply("b", 1, FromB(1), absl::Milliseconds(1), t);
    for (const auto& c : m.Evaluate(t)) changes.push_back(c);
  }
  EXPECT_THAT(changes, ElementsAre(IsChange(Kind::kPathDown, 0)));
  EXPECT_TRUE(m.IsUp("b"));
}

TEST(MembershipTest, InboundHellosKeepThePeerUp) {
  Membership m(Config());
  m.OnInboundHello("b", FromB(1), kStart);
  EXPECT_THAT(m.Evaluate(kStart), ElementsAre(IsChange(Kind::kPeerUp)));
  m.OnInboundHello("b", FromB(1), kStart + absl::Seconds(1));
  EXPECT_THAT(m.Evaluate(kStart + absl::Seconds(2)), IsEmpty());
}

TEST(MembershipTest, RestartSeenThroughBootIdWithoutMissedHello) {
  Membership m(Config());
  m.OnReply("b", 0, FromB(1), absl::Milliseconds(1), kStart);
  m.Evaluate(kStart);
  m.OnReply("b", 0, FromB(2), absl::Milliseconds(1), kStart + kInterval);
  EXPECT_THAT(m.Evaluate(kStart + kInterval), ElementsAre(IsChange(Kind::kPeerRestarted)));
  EXPECT_EQ(m.Status(kStart + kInterval)[0].restarts(), 1u);
}

TEST(MembershipTest, LossCountsUnansweredHellosOutOfFlight) {
  Membership m(Config());
  absl::Time t = kStart;
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    m.OnHelloSent("b", 0, seq, t);
    if (seq % 4 != 0) {
      v1::Hello reply = FromB(1);
      reply.set_echo_sequence(seq);
      m.OnReply("b", 0, reply, absl::Milliseconds(1), t);
    }
    t += kInterval;
  }
  // The last 6 hellos (within interval * threshold) are still in flight.
  v1::PathStatus path = m.Status(t - kInterval)[0].paths(0);
  EXPECT_DOUBLE_EQ(path.loss_pct(), 100.0 * 3 / 14);
  EXPECT_EQ(m.Status(t)[0].paths(1).loss_pct(), 0.0);
}

TEST(MembershipTest, LiveListsUpPeersWithAgedUptime) {
  Membership m(Config());
  EXPECT_TRUE(m.Live(kStart).empty());
  m.OnInboundHello("b", FromB(1), kStart);
  std::vector<Membership::LivePeer> live = m.Live(kStart + absl::Milliseconds(300));
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].hello.uptime_ms(), 5300);
  EXPECT_TRUE(m.Live(kStart + kInterval * 6).empty());
}

TEST(MembershipTest, AnUptimeAtTheEndOfInt64SaturatesAsItAges) {
  // Found by test/fuzz/hello_fuzzer: a peer's uptime_ms is its word, and
  // aging it overflowed.
  Membership m(Config());
  v1::Hello h = FromB(1);
  h.set_uptime_ms(std::numeric_limits<int64_t>::max());
  m.OnInboundHello("b", h, kStart);
  std::vector<Membership::LivePeer> live = m.Live(kStart + absl::Milliseconds(300));
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].hello.uptime_ms(), std::numeric_limits<int64_t>::max());
}

TEST(MembershipTest, AnOlderStateVersionDoesNotRollBack) {
  Membership m(Config());
  v1::Hello newer = FromB(1);
  newer.set_state_version(5);
  newer.set_role(v1::PRIMARY);
  v1::Hello older = FromB(1);
  older.set_state_version(4);
  older.set_role(v1::SECONDARY);
  m.OnReply("b", 0, newer, absl::Milliseconds(1), kStart);
  m.OnReply("b", 1, older, absl::Milliseconds(1), kStart + kInterval);
  EXPECT_EQ(m.Live(kStart + kInterval)[0].hello.role(), v1::PRIMARY);
  // A new incarnation starts its versions again.
  v1::Hello restarted = FromB(2);
  restarted.set_state_version(1);
  m.OnReply("b", 0, restarted, absl::Milliseconds(1), kStart + kInterval * 2);
  EXPECT_EQ(m.Live(kStart + kInterval * 2)[0].hello.boot_id(), 2u);
}

TEST(MembershipTest, NewsIsANewStateOrIncarnationOnly) {
  Membership m(Config());
  int news = 0;
  m.SetNewsCallback([&] { ++news; });
  v1::Hello h = FromB(1);
  h.set_state_version(1);
  m.OnInboundHello("b", h, kStart);
  EXPECT_EQ(news, 1);  // first hello
  m.OnInboundHello("b", h, kStart + kInterval);
  m.OnReply("b", 0, h, absl::Milliseconds(1), kStart + kInterval);
  EXPECT_EQ(news, 1);  // same state
  h.set_state_version(2);
  m.OnReply("b", 0, h, absl::Milliseconds(1), kStart + kInterval * 2);
  EXPECT_EQ(news, 2);
  m.OnInboundHello("b", FromB(7), kStart + kInterval * 3);
  EXPECT_EQ(news, 3);  // restarted
}

TEST(MembershipTest, RttIsSmoothed) {
  Membership m(Config());
  m.OnReply("b", 0, FromB(1), absl::Milliseconds(8), kStart);
  m.OnReply("b", 0, FromB(1), absl::Milliseconds(16), kStart);
  v1::PeerStatus s = m.Status(kStart)[0];
  EXPECT_DOUBLE_EQ(s.paths(0).last_rtt_ms(), 16.0);
  EXPECT_DOUBLE_EQ(s.paths(0).rtt_ms(), 9.0);
}

TEST(MembershipTest, RefusalShowsUntilAHelloIsAccepted) {
  Membership m(Config());
  m.OnRefused("b", "certificate is for cluster \"x\"");
  EXPECT_EQ(m.Status(kStart)[0].last_error(), "certificate is for cluster \"x\"");
  m.OnInboundHello("b", FromB(1), kStart);
  EXPECT_EQ(m.Status(kStart)[0].last_error(), "");
  // Unknown peers and paths are ignored.
  m.OnReply("zz", 0, FromB(1), absl::Milliseconds(1), kStart);
  m.OnReply("b", 7, FromB(1), absl::Milliseconds(1), kStart);
}

}  // namespace
}  // namespace cloudha
