// The primary's side of one config stream, driven message by message on
// one thread against a real follower: diff, commits, acks, resync requests
// and bad answers.
#include "sync/config_push_session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "base/fake_clock.h"
#include "sync/config_follower.h"
#include "sync/config_test_util.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

class ConfigPushSessionTest : public ::testing::Test {
 protected:
  ConfigPushSessionTest()
      : primary_store_(NewTestConfigStore(&clock_)),
        secondary_store_(NewTestConfigStore(&clock_)),
        primary_(primary_store_.get(), [](const auto&) { return absl::OkStatus(); },
                 [this](const ConfigCommitResult& r, bool) { outboxes_.Publish(r, *primary_store_); }),
        secondary_(secondary_store_.get(), [](const auto&) { return absl::OkStatus(); },
                   [](const ConfigCommitResult&, bool) {}) {
    ConfigFollowerOptions options;
    options.own = Excluding({"zone.b.**"});
    follower_ = std::make_unique<ConfigFollower>(options, &secondary_, &clock_);
  }

  // Opens a stream: the follower answers the open message, the session
  // starts on its answer.
  void Open() {
    v1::ConfigSyncMessage open =
        ConfigPushSession::OpenMessage(7, *primary_store_, Excluding({"zone.a.**"}));
    absl::StatusOr<ConfigFollower::Opened> opened = follower_->Open("a", open.open());
    ASSERT_TRUE(opened.ok()) << opened.status();
    stream_ = opened->stream;
    absl::StatusOr<std::unique_ptr<ConfigPushSession>> s = ConfigPushSession::Start(
        "b", Excluding({"zone.a.**"}), opened->reply, &primary_, &outboxes_);
    ASSERT_TRUE(s.ok()) << s.status();
    session_ = *std::move(s);
  }

  // Delivers what the session queued and the follower's answers until both
  // sides are quiet; returns how many messages went each way.
  int Exchange() {
    int messages = 0;
    for (int round = 0; round < 100; ++round) {
      absl::StatusOr<std::vector<v1::ConfigSyncMessage>> out =
          session_->TakeOutgoing([] { return true; }, absl::ZeroDuration());
      EXPECT_TRUE(out.ok()) << out.status();
      if (!out.ok() || out->empty()) return messages;
      for (const v1::ConfigSyncMessage& m : *out) {
        ++messages;
        auto reply = follower_->OnMessage(stream_, m);
        EXPECT_TRUE(reply.ok()) << reply.status();
        if (reply.ok() && reply->has_value()) {
          EXPECT_TRUE(session_->OnMessage(**reply).ok());
        }
      }
    }
    ADD_FAILURE() << "the exchange did not end";
    return messages;
  }

  FakeClock clock_;
  std::unique_ptr<ConfigStore> primary_store_;
  std::unique_ptr<ConfigStore> secondary_store_;
  ConfigOutboxRegistry outboxes_;
  ConfigCommitter primary_;
  ConfigCommitter secondary_;
  std::unique_ptr<ConfigFollower> follower_;
  uint64_t stream_ = 0;
  std::unique_ptr<ConfigPushSession> session_;
};

TEST_F(ConfigPushSessionTest, DiffBringsTheSecondaryInSyncAndCommitsFollow) {
  ASSERT_TRUE(primary_.WriteLocal({PutChange("fw.rule.1", "allow"), PutChange("zone.a.ip", "1")})
                  .ok());
  ASSERT_TRUE(secondary_.WriteLocal({PutChange("fw.rule.9", "stale"), PutChange("zone.b.ip", "2")})
                  .ok());
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(session_->effective().patterns().size(), 2u);
  EXPECT_THAT(session_->peer_exclusions(), ::testing::ElementsAre("zone.b.**"));
  EXPECT_EQ(session_->state(), "diffing");
  EXPECT_FALSE(session_->outbox()->CaughtUp());
  Exchange();
  EXPECT_EQ(follower_->synced_with(), "a");
  EXPECT_EQ(ValueAt(*secondary_store_, "fw.rule.1"), "allow");
  EXPECT_EQ(ValueAt(*secondary_store_, "fw.rule.9"), std::nullopt);
  // Neither side's zone-local paths crossed.
  EXPECT_EQ(ValueAt(*secondary_store_, "zone.a.ip"), std::nullopt);
  EXPECT_EQ(ValueAt(*secondary_store_, "zone.b.ip"), "2");
  // The follower's ack of the diff came back in the same exchange.
  EXPECT_EQ(session_->state(), absl::StrCat("in sync at revision ", primary_store_->revision()));

  ASSERT_TRUE(primary_.WriteLocal({PutChange("fw.rule.2", "deny")}).ok());
  EXPECT_FALSE(outboxes_.CaughtUp("b"));
  Exchange();
  EXPECT_TRUE(outboxes_.CaughtUp("b"));
  EXPECT_EQ(ValueAt(*secondary_store_, "fw.rule.2"), "deny");
  EXPECT_EQ(session_->state(), absl::StrCat("in sync at revision ", primary_store_->revision()));
  EXPECT_EQ(primary_store_->Checksum("", session_->effective()).checksum,
            secondary_store_->Checksum("", session_->effective()).checksum);
}

TEST_F(ConfigPushSessionTest, AResyncRequestStartsANewDiff) {
  ASSERT_TRUE(primary_.WriteLocal({PutChange("fw.rule.1", "allow")}).ok());
  ASSERT_NO_FATAL_FAILURE(Open());
  Exchange();
  ASSERT_TRUE(outboxes_.CaughtUp("b") || follower_->synced_with() == "a");
  v1::ConfigSyncMessage resync;
  resync.mutable_ack()->set_resync(true);
  ASSERT_TRUE(session_->OnMessage(resync).ok());
  EXPECT_FALSE(session_->outbox()->CaughtUp());
  EXPECT_EQ(session_->state(), "diffing");
  absl::StatusOr<std::vector<v1::ConfigSyncMessage>> out =
      session_->TakeOutgoing([] { return true; }, absl::ZeroDuration());
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 1u);
  EXPECT_TRUE((*out)[0].has_checksum_request());
}

TEST_F(ConfigPushSessionTest, AnAnswerThatIsNotOpenOrHasABadListIsRefused) {
  v1::ConfigSyncMessage ack;
  ack.mutable_ack()->set_revision(1);
  absl::StatusOr<std::unique_ptr<ConfigPushSession>> s =
      ConfigPushSession::Start("b", ExclusionSet(), ack, &primary_, &outboxes_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("did not answer"));
  v1::ConfigSyncMessage bad;
  bad.mutable_open()->add_exclude("a..b");
  s = ConfigPushSession::Start("b", ExclusionSet(), bad, &primary_, &outboxes_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("b sent a bad exclusion list"));
  EXPECT_EQ(outboxes_.size(), 0u);
}

TEST_F(ConfigPushSessionTest, AnUnexpectedMessageEndsTheStreamAndTheOutboxGoesWithTheSession) {
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(outboxes_.size(), 1u);
  v1::ConfigSyncMessage commit;
  commit.mutable_commit()->set_revision(3);
  absl::Status s = session_->OnMessage(commit);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("b sent an unexpected message"));
  session_.reset();
  EXPECT_EQ(outboxes_.size(), 0u);
  EXPECT_FALSE(outboxes_.CaughtUp("b"));
}

}  // namespace
}  // namespace cloudha
