#include "agent/primary_stream_rule.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

TEST(PrimaryStreamRuleTest, SecondaryTakesItsPrimarysStream) {
  EXPECT_TRUE(CheckStreamFromPrimary(v1::SECONDARY, 3, "a", "a", 3, "config").ok());
}

TEST(PrimaryStreamRuleTest, StartingNodeTakesAnyPrimaryAtItsEpoch) {
  EXPECT_TRUE(CheckStreamFromPrimary(v1::STARTING, 0, "", "b", 1, "sessions").ok());
}

TEST(PrimaryStreamRuleTest, PrimaryRefusesEveryStream) {
  absl::Status s = CheckStreamFromPrimary(v1::PRIMARY, 3, "", "b", 4, "config");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("this node is primary"));
}

TEST(PrimaryStreamRuleTest, OlderEpochIsRefused) {
  absl::Status s = CheckStreamFromPrimary(v1::SECONDARY, 5, "a", "a", 4, "sessions");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("epoch 4, but this node knows epoch 5"));
}

TEST(PrimaryStreamRuleTest, AnotherNodeAtTheSameEpochIsNotThePrimary) {
  absl::Status s = CheckStreamFromPrimary(v1::SECONDARY, 5, "a", "c", 5, "config");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("follows a"));
}

TEST(PrimaryStreamRuleTest, AnotherNodeAtANewerEpochIsTaken) {
  EXPECT_TRUE(CheckStreamFromPrimary(v1::SECONDARY, 5, "a", "c", 6, "config").ok());
}

}  // namespace
}  // namespace cloudha
