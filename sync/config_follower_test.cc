#include "sync/config_follower.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "base/fake_clock.h"
#include "sync/config_test_util.h"

namespace cloudha {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ConfigFollowerTest : public ::testing::Test {
 protected:
  ConfigFollowerTest()
      : store_(NewTestConfigStore(&clock_)),
        primary_store_(NewTestConfigStore(&clock_)),
        committer_(store_.get(), nullptr, nullptr) {
    replaced_file_ =
        absl::StrCat(getenv("TEST_TMPDIR"), "/replaced-",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".jsonl");
    ConfigFollowerOptions options;
    options.own = Excluding({"zone.**"});
    options.replaced_file = replaced_file_;
    options.still_follows = [this](const std::string& primary) -> absl::Status {
      if (!accept_) return absl::AbortedError(absl::StrCat("not following ", primary));
      return absl::OkStatus();
    };
    options.on_primary_exclusions = [this](const std::string& primary,
                                           const std::vector<std::string>& patterns) {
      learned_[primary] = patterns;
    };
    options.note = [this](const std::string& m) { notes_.push_back(m); };
    follower_ = std::make_unique<ConfigFollower>(std::move(options), &committer_, &clock_);
  }

  // Opens a stream from "a" whose own list is `exclude`.
  uint64_t Open(std::vector<std::string> exclude = {"local.*"}, const std::string& from = "a") {
    v1::ConfigSyncOpen open;
    open.set_epoch(4);
    for (const std::string& p : exclude) open.add_exclude(p);
    absl::StatusOr<ConfigFollower::Opened> opened = follower_->Open(from, open);
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? opened->stream : 0;
  }

  // The pair's effective set with the default Open.
  ExclusionSet Effective() { return Excluding({"zone.**"}).Union(Excluding({"local.*"})); }

  // The primary's root checksum over the pair's paths.
  std::string PrimaryRoot() { return primary_store_->Checksum("", Effective()).checksum; }

  // A whole-store pull response with the primary's content, then the
  // "complete" marker.
  v1::ConfigSyncMessage Pull(bool complete) {
    v1::ConfigSyncMessage m;
    v1::ConfigPullResponse* p = m.mutable_pull_response();
    p->add_prefixes("");
    for (const StoredEntry& e : primary_store_->List("")) {
      v1::ConfigEntry* out = p->add_entries();
      out->set_path(e.path);
      out->set_value(e.value);
      out->set_revision(e.revision);
    }
    p->set_revision(primary_store_->revision());
    p->set_complete(complete);
    if (complete) p->set_root_checksum(PrimaryRoot());
    return m;
  }
  v1::ConfigSyncMessage Complete(const std::string& root) {
    v1::ConfigSyncMessage m;
    m.mutable_pull_response()->set_complete(true);
    m.mutable_pull_response()->set_revision(primary_store_->revision());
    m.mutable_pull_response()->set_root_checksum(root);
    return m;
  }
  // Commits `changes` on the primary and returns the commit message.
  v1::ConfigSyncMessage PrimaryCommit(const std::vector<ConfigChange>& changes) {
    absl::StatusOr<ConfigCommitResult> r = primary_store_->Apply(changes);
    EXPECT_TRUE(r.ok()) << r.status();
    v1::ConfigSyncMessage m;
    for (const ConfigChange& c : changes) {
      if (c.value.has_value()) {
        v1::ConfigEntry* e = m.mutable_commit()->add_puts();
        e->set_path(c.path);
        e->set_value(*c.value);
      } else {
        m.mutable_commit()->add_deletes(c.path);
      }
    }
    m.mutable_commit()->set_revision(primary_store_->revision());
    m.mutable_commit()->set_root_checksum(PrimaryRoot());
    return m;
  }
  // Opens and resyncs to the primary's content.
  uint64_t InSync() {
    uint64_t s = Open();
    auto ack = follower_->OnMessage(s, Pull(true));
    EXPECT_TRUE(ack.ok()) << ack.status();
    EXPECT_EQ(follower_->synced_with(), "a");
    return s;
  }

  FakeClock clock_;
  std::unique_ptr<ConfigStore> store_;
  std::unique_ptr<ConfigStore> primary_store_;
  ConfigCommitter committer_;
  std::string replaced_file_;
  bool accept_ = true;
  std::map<std::string, std::vector<std::string>> learned_;
  std::vector<std::string> notes_;
  std::unique_ptr<ConfigFollower> follower_;
};

TEST_F(ConfigFollowerTest, OpenAnswersWithItsListRevisionAndRootAndLearnsThePrimarysList) {
  ASSERT_TRUE(store_->Apply({PutChange("fw.a", "1")}).ok());
  v1::ConfigSyncOpen open;
  open.set_epoch(4);
  open.add_exclude("local.*");
  absl::StatusOr<ConfigFollower::Opened> opened = follower_->Open("a", open);
  ASSERT_TRUE(opened.ok()) << opened.status();
  const v1::ConfigSyncOpen& reply = opened->reply.open();
  EXPECT_THAT(reply.exclude(), ElementsAre("zone.**"));
  EXPECT_EQ(reply.revision(), 1u);
  EXPECT_EQ(reply.root_checksum(), store_->Checksum("", Effective()).checksum);
  EXPECT_THAT(learned_["a"], ElementsAre("local.*"));
  EXPECT_EQ(follower_->following(), "a");
  EXPECT_EQ(follower_->synced_with(), "");
}

TEST_F(ConfigFollowerTest, ABadExclusionListIsRefused) {
  v1::ConfigSyncOpen open;
  open.add_exclude("a..b");
  absl::StatusOr<ConfigFollower::Opened> opened = follower_->Open("a", open);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(opened.status().message(), HasSubstr("exclusion list"));
}

TEST_F(ConfigFollowerTest, AChecksumRequestIsAnsweredOverThePairsPaths) {
  ASSERT_TRUE(
      store_->Apply({PutChange("fw.a", "1"), PutChange("zone.ip", "x"), PutChange("dns.b", "2")})
          .ok());
  uint64_t s = Open();
  v1::ConfigSyncMessage request;
  request.mutable_checksum_request()->add_prefixes("");
  auto reply = follower_->OnMessage(s, request);
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_TRUE(reply->has_value());
  const auto& subtrees = (*reply)->checksums().subtrees();
  ASSERT_EQ(subtrees.size(), 3);  // the root, dns, fw: zone is excluded
  EXPECT_EQ(subtrees[0].prefix(), "");
  EXPECT_EQ(subtrees[0].entries(), 2u);
  EXPECT_EQ(subtrees[1].prefix(), "dns");
  EXPECT_EQ(subtrees[2].prefix(), "fw");
}

TEST_F(ConfigFollowerTest, AResyncReplacesTheCoveredContentAndTheCompleteMarkerVerifiesIt) {
  ASSERT_TRUE(primary_store_->Apply({PutChange("fw.a", "1"), PutChange("fw.b", "2")}).ok());
  ASSERT_TRUE(store_
                  ->Apply({PutChange("fw.a", "old"), PutChange("fw.gone", "x"),
                           PutChange("zone.ip", "10.0.0.1")})
                  .ok());
  uint64_t s = Open();
  auto none = follower_->OnMessage(s, Pull(false));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());  // content is not acked, only the marker
  EXPECT_EQ(follower_->synced_with(), "");
  // Not deleted before the marker: an interrupted resync loses nothing.
  EXPECT_EQ(ValueAt(*store_, "fw.gone"), "x");
  auto ack = follower_->OnMessage(s, Complete(PrimaryRoot()));
  ASSERT_TRUE(ack.ok()) << ack.status();
  ASSERT_TRUE(ack->has_value());
  EXPECT_FALSE((*ack)->ack().resync());
  EXPECT_EQ((*ack)->ack().revision(), primary_store_->revision());
  EXPECT_EQ((*ack)->ack().root_checksum(), PrimaryRoot());
  EXPECT_EQ(ValueAt(*store_, "fw.a"), "1");
  EXPECT_EQ(ValueAt(*store_, "fw.gone"), std::nullopt);
  EXPECT_EQ(ValueAt(*store_, "zone.ip"), "10.0.0.1");  // zone-local, kept
  EXPECT_EQ(follower_->synced_with(), "a");
  EXPECT_EQ(follower_->primary_revision(), primary_store_->revision());
  EXPECT_EQ(follower_->stats().resyncs, 1u);
  // What it lost was logged, noted and saved.
  EXPECT_THAT(notes_, testing::Contains(HasSubstr("fw.a = old replaced by a's 1")));
  std::ifstream in(replaced_file_);
  std::stringstream saved;
  saved << in.rdbuf();
  EXPECT_THAT(saved.str(), HasSubstr("\"path\":\"fw.gone\""));
  EXPECT_THAT(saved.str(), HasSubstr("\"local\":\"old\""));
}

TEST_F(ConfigFollowerTest, AChecksumMismatchAtTheMarkerAsksForAResync) {
  ASSERT_TRUE(primary_store_->Apply({PutChange("fw.a", "1")}).ok());
  uint64_t s = Open();
  v1::ConfigSyncMessage pull = Pull(true);
  pull.mutable_pull_response()->set_root_checksum(std::string(32, 'x'));
  auto ack = follower_->OnMessage(s, pull);
  ASSERT_TRUE(ack.ok()) << ack.status();
  ASSERT_TRUE(ack->has_value());
  EXPECT_TRUE((*ack)->ack().resync());
  EXPECT_EQ(follower_->synced_with(), "");
  EXPECT_EQ(follower_->stats().resyncs, 0u);
}

TEST_F(ConfigFollowerTest, CommitsAreAppliedAndAckedWithTheRootChecksum) {
  uint64_t s = InSync();
  auto ack = follower_->OnMessage(s, PrimaryCommit({PutChange("fw.c", "3")}));
  ASSERT_TRUE(ack.ok()) << ack.status();
  ASSERT_TRUE(ack->has_value());
  EXPECT_FALSE((*ack)->ack().resync());
  EXPECT_EQ((*ack)->ack().root_checksum(), PrimaryRoot());
  EXPECT_EQ(ValueAt(*store_, "fw.c"), "3");
  ack = follower_->OnMessage(s, PrimaryCommit({DeleteChange("fw.c")}));
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ValueAt(*store_, "fw.c"), std::nullopt);
  EXPECT_EQ(follower_->primary_revision(), primary_store_->revision());
  EXPECT_EQ(follower_->synced_with(), "a");
}

TEST_F(ConfigFollowerTest, AGapShowsAsAChecksumMismatchAndAsksForAResync) {
  uint64_t s = InSync();
  // A commit the follower never sees.
  PrimaryCommit({PutChange("fw.missed", "1")});
  auto ack = follower_->OnMessage(s, PrimaryCommit({PutChange("fw.next", "2")}));
  ASSERT_TRUE(ack.ok()) << ack.status();
  ASSERT_TRUE(ack->has_value());
  EXPECT_TRUE((*ack)->ack().resync());
  EXPECT_EQ(follower_->synced_with(), "");
  // The primary diffs again and sends what differs; in sync once verified.
  ack = follower_->OnMessage(s, Pull(true));
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_FALSE((*ack)->ack().resync());
  EXPECT_EQ(ValueAt(*store_, "fw.missed"), "1");
  EXPECT_EQ(follower_->synced_with(), "a");
}

TEST_F(ConfigFollowerTest, ANewDiffEndsInSyncUntilItCompletes) {
  uint64_t s = InSync();
  v1::ConfigSyncMessage request;
  request.mutable_checksum_request()->add_prefixes("");
  ASSERT_TRUE(follower_->OnMessage(s, request).ok());
  EXPECT_EQ(follower_->synced_with(), "");
}

TEST_F(ConfigFollowerTest, PathsThePairExcludesAreNeverAccepted) {
  ASSERT_TRUE(store_->Apply({PutChange("zone.ip", "mine"), PutChange("local.x", "mine")}).ok());
  uint64_t s = InSync();
  v1::ConfigSyncMessage commit = PrimaryCommit({PutChange("fw.a", "1")});
  for (const char* path : {"zone.ip", "local.x"}) {
    v1::ConfigEntry* e = commit.mutable_commit()->add_puts();
    e->set_path(path);
    e->set_value("theirs");
  }
  commit.mutable_commit()->add_deletes("zone.other");
  ASSERT_TRUE(follower_->OnMessage(s, commit).ok());
  EXPECT_EQ(ValueAt(*store_, "fw.a"), "1");
  EXPECT_EQ(ValueAt(*store_, "zone.ip"), "mine");
  EXPECT_EQ(ValueAt(*store_, "local.x"), "mine");
  v1::ConfigSyncMessage pull = Pull(true);
  v1::ConfigEntry* e = pull.mutable_pull_response()->add_entries();
  e->set_path("zone.ip");
  e->set_value("theirs");
  ASSERT_TRUE(follower_->OnMessage(s, pull).ok());
  EXPECT_EQ(ValueAt(*store_, "zone.ip"), "mine");
}

TEST_F(ConfigFollowerTest, ASupersededStreamIsRefusedAndWritesNothing) {
  uint64_t first = Open();
  uint64_t second = Open();
  auto r = follower_->OnMessage(first, PrimaryCommit({PutChange("fw.a", "1")}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ValueAt(*store_, "fw.a"), std::nullopt);
  // The first stream's end does not end the second's.
  follower_->Close(first);
  EXPECT_EQ(follower_->following(), "a");
  ASSERT_TRUE(follower_->OnMessage(second, Pull(true)).ok());
  EXPECT_EQ(follower_->synced_with(), "a");
  follower_->Supersede();
  r = follower_->OnMessage(second, PrimaryCommit({PutChange("fw.b", "1")}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ValueAt(*store_, "fw.b"), std::nullopt);
  follower_->Close(second);
  EXPECT_EQ(follower_->following(), "");
  EXPECT_EQ(follower_->synced_with(), "");
}

TEST_F(ConfigFollowerTest, AWriteIsRefusedWhenThisNodeNoLongerFollowsThePrimary) {
  uint64_t s = Open();
  accept_ = false;  // e.g. promoted meanwhile
  auto r = follower_->OnMessage(s, PrimaryCommit({PutChange("fw.a", "1")}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ValueAt(*store_, "fw.a"), std::nullopt);
  EXPECT_THAT(follower_->stats().last_error, HasSubstr("not following a"));
}

TEST_F(ConfigFollowerTest, MalformedMessagesAreRefusedWhole) {
  uint64_t s = Open();
  v1::ConfigSyncMessage commit = PrimaryCommit({PutChange("fw.a", "1")});
  commit.mutable_commit()->add_deletes("bad..path");
  auto r = follower_->OnMessage(s, commit);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValueAt(*store_, "fw.a"), std::nullopt);
  v1::ConfigSyncMessage request;
  request.mutable_checksum_request()->add_prefixes("a..b");
  EXPECT_EQ(follower_->OnMessage(s, request).status().code(), absl::StatusCode::kInvalidArgument);
  v1::ConfigSyncMessage ack;
  ack.mutable_ack()->set_revision(1);
  EXPECT_EQ(follower_->OnMessage(s, ack).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(follower_->stats().last_error.empty());
}

TEST_F(ConfigFollowerTest, ADriftMarkedByTheAgentEndsInSync) {
  InSync();
  follower_->MarkUnsynced();
  EXPECT_EQ(follower_->synced_with(), "");
  EXPECT_EQ(follower_->following(), "a");
}

}  // namespace
}  // namespace cloudha
