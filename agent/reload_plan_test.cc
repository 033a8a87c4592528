#include "agent/reload_plan.h"

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

v1::AgentConfig Parse(const std::string& text) {
  v1::AgentConfig c;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c)) << text;
  return c;
}

constexpr char kBase[] =
    "node { id: \"a\" priority: 200 } cluster { name: \"demo\" } listen: \"0.0.0.0:7801\" "
    "peers { id: \"b\" addresses: \"10.0.0.2:7801\" } heartbeat { interval_ms: 100 } ";

TEST(ReloadPlanTest, NothingChangedAppliesNothing) {
  ReloadPlan plan = PlanReload(Parse(kBase), Parse(kBase));
  EXPECT_THAT(plan.applied, IsEmpty());
  EXPECT_THAT(plan.refused, IsEmpty());
}

TEST(ReloadPlanTest, LogHooksAndMonitorsAreLive) {
  ReloadPlan plan = PlanReload(
      Parse(kBase), Parse(std::string(kBase) +
                          "log { level: DEBUG } hooks { on: TO_PRIMARY command: \"/bin/true\" } "
                          "monitors { name: \"m\" tcp { address: \"127.0.0.1:1\" } }"));
  EXPECT_THAT(plan.applied, ElementsAre("log", "monitors", "hooks"));
  EXPECT_THAT(plan.refused, IsEmpty());
}

TEST(ReloadPlanTest, IdentityAndAddressesNeedARestart) {
  ReloadPlan plan = PlanReload(
      Parse(kBase),
      Parse("node { id: \"c\" priority: 200 } cluster { name: \"demo\" } "
            "listen: \"0.0.0.0:7802\" peers { id: \"b\" addresses: \"10.0.0.2:7801\" } "
            "heartbeat { interval_ms: 200 } log { level: WARN }"));
  EXPECT_THAT(plan.applied, ElementsAre("heartbeat", "log"));
  EXPECT_THAT(plan.refused, ElementsAre("node", "listen"));
}

TEST(ReloadPlanTest, OfConfigSyncOnlyTheExclusionListIsLive) {
  ReloadPlan plan = PlanReload(
      Parse(std::string(kBase) + "config_sync { exclude: \"zone.**\" }"),
      Parse(std::string(kBase) + "config_sync { exclude: \"zone.**\" exclude: \"local.*\" }"));
  EXPECT_THAT(plan.applied, ElementsAre("config_sync.exclude"));
  EXPECT_THAT(plan.refused, IsEmpty());
  plan = PlanReload(
      Parse(std::string(kBase) + "config_sync { exclude: \"zone.**\" }"),
      Parse(std::string(kBase) +
            "config_sync { exclude: \"local.*\" store_file: \"/var/lib/x.db\" }"));
  EXPECT_THAT(plan.applied, IsEmpty());
  EXPECT_THAT(plan.refused, ElementsAre("config_sync"));
}

TEST(ReloadPlanTest, WithAnArbiterTheTimersNeedARestart) {
  std::string arbiter = "arbiter { witness { addresses: \"198.18.0.9:7900\" } } ";
  v1::AgentConfig next = Parse(std::string(kBase) + arbiter);
  next.mutable_heartbeat()->set_interval_ms(200);
  ReloadPlan plan = PlanReload(Parse(std::string(kBase) + arbiter), next);
  EXPECT_THAT(plan.applied, IsEmpty());
  EXPECT_THAT(plan.refused, ElementsAre("heartbeat"));
}

TEST(ReloadPlanTest, HooksSplitIntoRoleAndPeerHooks) {
  v1::AgentConfig c = Parse(
      "hooks { on: TO_PRIMARY command: \"p\" } hooks { on: PEER_LOST command: \"l\" } "
      "hooks { on: TO_FAULT command: \"f\" } hooks { on: PEER_FOUND command: \"u\" }");
  std::vector<v1::HookConfig> role, peer;
  SplitHooks(c, &role, &peer);
  ASSERT_EQ(role.size(), 2u);
  ASSERT_EQ(peer.size(), 2u);
  EXPECT_EQ(role[0].command(0), "p");
  EXPECT_EQ(role[1].command(0), "f");
  EXPECT_EQ(peer[0].command(0), "l");
  EXPECT_EQ(peer[1].command(0), "u");
}

}  // namespace
}  // namespace cloudha
