#include "sync/config_committer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "base/fake_clock.h"
#include "sync/config_test_util.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

class ConfigCommitterTest : public ::testing::Test {
 protected:
  ConfigCommitterTest()
      : store_(NewTestConfigStore(&clock_)),
        committer_(
            store_.get(),
            [this](const std::vector<ConfigChange>& changes) -> absl::Status {
              for (const ConfigChange& c : changes) {
                if (absl::StartsWith(c.path, "block.") && in_check_ != nullptr) {
                  in_check_->Notify();
                  release_->WaitForNotification();
                }
                if (absl::StartsWith(c.path, "synced.")) {
                  return absl::FailedPreconditionError(absl::StrCat(c.path, " is synced"));
                }
              }
              return absl::OkStatus();
            },
            [this](const ConfigCommitResult& result, bool replicated) {
              absl::MutexLock lock(&mu_);
              commits_.push_back({result.revision, replicated});
            }) {}

  std::vector<std::pair<uint64_t, bool>> Commits() {
    absl::MutexLock lock(&mu_);
    return commits_;
  }

  FakeClock clock_;
  std::unique_ptr<ConfigStore> store_;
  // Set by a test: a write to block.* waits in its check for release_.
  std::unique_ptr<absl::Notification> in_check_, release_;
  absl::Mutex mu_;
  std::vector<std::pair<uint64_t, bool>> commits_ ABSL_GUARDED_BY(mu_);
  ConfigCommitter committer_;
};

TEST_F(ConfigCommitterTest, ALocalWriteIsCommittedAndReportsWhatItApplied) {
  absl::StatusOr<ConfigCommitResult> r =
      committer_.WriteLocal({PutChange("fw.a", "1"), PutChange("fw.b", "2")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->revision, 1u);
  EXPECT_EQ(r->applied.size(), 2u);
  EXPECT_EQ(ValueAt(*store_, "fw.a"), "1");
  EXPECT_EQ(Commits(), (std::vector<std::pair<uint64_t, bool>>{{1, false}}));
  // Nothing changed: no revision, nothing fed.
  r = committer_.WriteLocal({PutChange("fw.a", "1")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 0u);
  EXPECT_EQ(Commits().size(), 1u);
}

TEST_F(ConfigCommitterTest, EachLocalWriteIsCheckedOnItsOwn) {
  absl::StatusOr<ConfigCommitResult> r = committer_.WriteLocal({PutChange("synced.a", "1")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  r = committer_.WriteLocal({PutChange("bad..path", "1")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = committer_.WriteLocal({PutChange("fw.big", std::string(kMaxConfigValueBytes + 1, 'x'))});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("fw.big"));
  EXPECT_EQ(store_->size(), 0u);
  EXPECT_TRUE(Commits().empty());
}

TEST_F(ConfigCommitterTest, WritesWaitingForTheCommitLockAreCommittedTogether) {
  // The first write's check (made under the commit lock) holds the lock
  // while the next writers queue behind it.
  in_check_ = std::make_unique<absl::Notification>();
  release_ = std::make_unique<absl::Notification>();
  absl::StatusOr<ConfigCommitResult> first, refused, second;
  std::thread w1([&] { first = committer_.WriteLocal({PutChange("block.a", "1")}); });
  in_check_->WaitForNotification();
  std::thread w2([&] { refused = committer_.WriteLocal({PutChange("synced.x", "1")}); });
  std::thread w3([&] {
    second = committer_.WriteLocal({PutChange("fw.b", "2"), PutChange("fw.c", "3")});
  });
  while (committer_.waiting() != 2) std::this_thread::yield();
  release_->Notify();
  w1.join();
  w2.join();
  w3.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(first->revision, 1u);
  // One transaction for the queued writes; each gets back only its own.
  EXPECT_EQ(second->revision, 2u);
  ASSERT_EQ(second->applied.size(), 2u);
  EXPECT_EQ(second->applied[0].path, "fw.b");
  EXPECT_EQ(Commits().size(), 2u);
  EXPECT_EQ(ValueAt(*store_, "synced.x"), std::nullopt);
}

TEST_F(ConfigCommitterTest, AReplicatedWriteIsCommittedOnlyWhileItsStreamIsCurrent) {
  absl::StatusOr<ConfigCommitResult> r = committer_.WriteReplicated(
      {PutChange("synced.a", "1")}, "a", [] { return absl::AbortedError("superseded"); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->size(), 0u);
  // Not subject to the local-write check: the primary writes synced paths.
  r = committer_.WriteReplicated({PutChange("synced.a", "1")}, "a",
                                 [] { return absl::OkStatus(); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ValueAt(*store_, "synced.a"), "1");
  EXPECT_EQ(Commits(), (std::vector<std::pair<uint64_t, bool>>{{1, true}}));
}

}  // namespace
}  // namespace cloudha
