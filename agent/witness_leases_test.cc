#include "agent/witness_leases.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/fake_clock.h"
#include "base/secure_file.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

class WitnessLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cloudha-witness-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<WitnessLeases> Open() {
    absl::StatusOr<std::unique_ptr<WitnessLeases>> leases = WitnessLeases::Open(dir_, "w", &clock_);
    EXPECT_TRUE(leases.ok()) << leases.status();
    return leases.ok() ? *std::move(leases) : nullptr;
  }

  const absl::Duration ttl_ = absl::Seconds(2);
  std::string dir_;
  FakeClock clock_;
};

TEST_F(WitnessLeasesTest, GrantsRenewsRefusesAndExpires) {
  std::unique_ptr<WitnessLeases> w = Open();
  absl::StatusOr<v1::LeaseReply> a = w->Acquire("demo", "a", ttl_, 1, false, 0);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->granted());
  EXPECT_EQ(a->fence(), 1u);
  EXPECT_EQ(a->holder(), "a");
  EXPECT_EQ(a->cluster(), "demo");
  EXPECT_EQ(a->witness(), "w");
  // Another node is refused, told how long the holder's lease has left.
  clock_.Advance(absl::Milliseconds(500));
  absl::StatusOr<v1::LeaseReply> b = w->Acquire("demo", "b", ttl_, 2, false, 0);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->granted());
  EXPECT_EQ(b->holder(), "a");
  EXPECT_NEAR(b->remaining_ms(), 1500, 2);
  // A renewal keeps the fence and moves the end.
  a = w->Acquire("demo", "a", ttl_, 1, true, 1);
  EXPECT_TRUE(a->granted());
  EXPECT_EQ(a->fence(), 1u);
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_FALSE(w->Acquire("demo", "b", ttl_, 2, false, 0)->granted());
  // Expired: the next holder gets a higher fence.
  clock_.Advance(absl::Milliseconds(1));
  b = w->Acquire("demo", "b", ttl_, 2, false, 0);
  EXPECT_TRUE(b->granted());
  EXPECT_EQ(b->fence(), 2u);
  // Clusters are independent.
  EXPECT_EQ(w->Acquire("other", "a", ttl_, 1, false, 0)->fence(), 1u);
}

TEST_F(WitnessLeasesTest, ReleaseLetsTheNextNodeInAtOnce) {
  std::unique_ptr<WitnessLeases> w = Open();
  ASSERT_TRUE(w->Acquire("demo", "a", ttl_, 1, false, 0)->granted());
  // Only the holder's release of its own lease counts.
  w->Release("demo", "b", 1, 1);
  w->Release("demo", "a", 1, 0);  // fence 0: a query
  EXPECT_FALSE(w->Acquire("demo", "b", ttl_, 2, false, 0)->granted());
  w->Release("demo", "a", 1, 1);
  absl::StatusOr<v1::LeaseReply> b = w->Acquire("demo", "b", ttl_, 2, false, 0);
  EXPECT_TRUE(b->granted());
  EXPECT_EQ(b->fence(), 2u);
}

TEST_F(WitnessLeasesTest, TheFenceSurvivesARestartAndTheHolderKeepsItsWholeLease) {
  {
    std::unique_ptr<WitnessLeases> w = Open();
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<v1::LeaseReply> r = w->Acquire("demo", i % 2 ? "b" : "a", ttl_, 1, false, 0);
      ASSERT_TRUE(r->granted());
      w->Release("demo", i % 2 ? "b" : "a", 1, r->fence());
    }
    ASSERT_TRUE(w->Acquire("demo", "a", ttl_, 1, false, 0)->granted());  // fence 4, held by a
  }
  clock_.Advance(absl::Seconds(10));  // the witness was down a while
  std::unique_ptr<WitnessLeases> w = Open();
  // The restarted witness cannot know how much of a's lease is left.
  EXPECT_EQ(w->Peek("demo").holder(), "a");
  EXPECT_FALSE(w->Acquire("demo", "b", ttl_, 2, false, 0)->granted());
  absl::StatusOr<v1::LeaseReply> a = w->Acquire("demo", "a", ttl_, 1, true, 4);
  EXPECT_TRUE(a->granted());
  EXPECT_EQ(a->fence(), 4u);
  clock_.Advance(ttl_ + absl::Milliseconds(1));
  absl::StatusOr<v1::LeaseReply> b = w->Acquire("demo", "b", ttl_, 2, false, 0);
  EXPECT_TRUE(b->granted());
  EXPECT_EQ(b->fence(), 5u);
}

TEST_F(WitnessLeasesTest, ACorruptFileStopsTheWitnessNamingIt) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/demo.lease", "fence x\n", 0600, Overwrite::kReplace)
                  .ok());
  absl::StatusOr<std::unique_ptr<WitnessLeases>> w = WitnessLeases::Open(dir_, "w", &clock_);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(w.status().message().find("demo.lease is corrupt"), std::string::npos)
      << w.status();
}

TEST_F(WitnessLeasesTest, AGrantThatCannotBeStoredIsRefusedAndChangesNothing) {
  std::unique_ptr<WitnessLeases> w = Open();
  ASSERT_TRUE(w->Acquire("demo", "a", ttl_, 1, false, 0)->granted());
  w->Release("demo", "a", 1, 1);
  // The file cannot be replaced (a folder in its place): as a full disk.
  ASSERT_EQ(system(absl::StrCat("rm -f '", dir_, "/demo.lease' && mkdir '", dir_,
                                "/demo.lease'")
                       .c_str()),
            0);
  absl::StatusOr<v1::LeaseReply> b = w->Acquire("demo", "b", ttl_, 2, false, 0);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(b.status().message().find("nothing was granted"), std::string::npos);
  EXPECT_EQ(w->Peek("demo").holder(), "");
  EXPECT_EQ(w->Peek("demo").fence(), 1u);
}

}  // namespace
}  // namespace cloudha

namespace cloudha {
namespace {

TEST_F(WitnessLeasesTest, TheHolderAskingAfreshGetsANewFence) {
  std::unique_ptr<WitnessLeases> w = Open();
  ASSERT_EQ(w->Acquire("demo", "a", ttl_, 1, /*renew=*/false, 0)->fence(), 1u);
  EXPECT_EQ(w->Acquire("demo", "a", ttl_, 1, /*renew=*/true, 1)->fence(), 1u);
  // a gave its lease up on its own clock (stepped down) and asks again.
  absl::StatusOr<v1::LeaseReply> again = w->Acquire("demo", "a", ttl_, 2, /*renew=*/false, 1);
  EXPECT_TRUE(again->granted());
  EXPECT_EQ(again->fence(), 2u);
  // A renewal naming another lease's fence is not a renewal either.
  EXPECT_EQ(w->Acquire("demo", "a", ttl_, 2, /*renew=*/true, 1)->fence(), 3u);
}

// A release that arrives late (sent for fence 1, after the node got fence
// 2) cannot end the newer lease: another node would be granted it while
// this one still counts it.
TEST_F(WitnessLeasesTest, ALateReleaseCannotEndANewerLease) {
  std::unique_ptr<WitnessLeases> w = Open();
  ASSERT_EQ(w->Acquire("demo", "a", ttl_, 1, false, 0)->fence(), 1u);
  w->Release("demo", "a", 1, 1);
  ASSERT_EQ(w->Acquire("demo", "a", ttl_, 2, false, 0)->fence(), 2u);
  w->Release("demo", "a", 1, 1);  // the late one
  EXPECT_EQ(w->Peek("demo").holder(), "a");
  EXPECT_FALSE(w->Acquire("demo", "b", ttl_, 3, false, 0)->granted());
}

}  // namespace
}  // namespace cloudha
