#include "sync/config_pusher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "base/fake_clock.h"
#include "sync/config_follower.h"
#include "sync/config_outbox.h"
#include "sync/config_test_util.h"

namespace cloudha {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// One direction of a fake stream.
class Pipe {
 public:
  void Put(const v1::ConfigSyncMessage& m) {
    absl::MutexLock lock(&mu_);
    if (!closed_) queue_.push_back(m);
  }
  // Blocks until a message comes or the pipe closes.
  bool Get(v1::ConfigSyncMessage* m) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || closed_; };
    mu_.Await(absl::Condition(&ready));
    if (queue_.empty()) return false;
    *m = std::move(queue_.front());
    queue_.pop_front();
    return true;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

 private:
  absl::Mutex mu_;
  std::deque<v1::ConfigSyncMessage> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

struct Link {
  Pipe to_secondary;
  Pipe to_primary;
  void Close() {
    to_secondary.Close();
    to_primary.Close();
  }
};

class FakePushStream : public ConfigPushStream {
 public:
  explicit FakePushStream(std::shared_ptr<Link> link) : link_(std::move(link)) {}
  bool Write(const v1::ConfigSyncMessage& m) override {
    link_->to_secondary.Put(m);
    return true;
  }
  bool Read(v1::ConfigSyncMessage* m) override { return link_->to_primary.Get(m); }
  void Cancel() override { link_->Close(); }
  absl::Status Finish() override { return absl::OkStatus(); }

 private:
  std::shared_ptr<Link> link_;
};

// A primary (store, committer, registry, pusher) and, at the far end of each
// stream the pusher dials, a secondary (store, follower) that answers.
class ConfigPusherTest : public ::testing::Test {
 protected:
  ConfigPusherTest()
      : primary_store_(NewTestConfigStore(&clock_)),
        secondary_store_(NewTestConfigStore(&clock_)),
        primary_committer_(
            primary_store_.get(), nullptr,
            [this](const ConfigCommitResult& r, bool) { outboxes_.Publish(r, *primary_store_); }),
        secondary_committer_(secondary_store_.get(), nullptr, nullptr) {
    ConfigFollowerOptions options;
    options.own = Excluding({"zone.**"});
    follower_ =
        std::make_unique<ConfigFollower>(std::move(options), &secondary_committer_, &clock_);
  }

  ~ConfigPusherTest() override {
    pusher_.reset();
    for (auto& link : links_) link->Close();
    for (std::thread& t : secondaries_) t.join();
  }

  void StartPusher() {
    ConfigPusherOptions options;
    options.peer = "b";
    options.epoch = 7;
    options.own = Excluding({"local.*"});
    pusher_ = std::make_unique<ConfigPusher>(
        std::move(options), &primary_committer_, &outboxes_,
        [this] {
          auto link = std::make_shared<Link>();
          links_.push_back(link);
          secondaries_.emplace_back([this, link] { Secondary(link.get()); });
          return std::make_unique<FakePushStream>(link);
        },
        [this](const std::string& peer, const std::vector<std::string>& patterns) {
          absl::MutexLock lock(&mu_);
          learned_[peer] = patterns;
        },
        &clock_);
  }

  // The secondary's end: the follower answers every message.
  void Secondary(Link* link) {
    v1::ConfigSyncMessage open;
    if (!link->to_secondary.Get(&open)) return;
    {
      absl::MutexLock lock(&mu_);
      opens_.push_back(open);
      if (close_at_open_) {
        link->Close();
        return;
      }
    }
    absl::StatusOr<ConfigFollower::Opened> opened = follower_->Open("a", open.open());
    ASSERT_TRUE(opened.ok()) << opened.status();
    link->to_primary.Put(opened->reply);
    v1::ConfigSyncMessage in;
    while (link->to_secondary.Get(&in)) {
      auto reply = follower_->OnMessage(opened->stream, in);
      ASSERT_TRUE(reply.ok()) << reply.status();
      if (reply->has_value()) link->to_primary.Put(**reply);
    }
    follower_->Close(opened->stream);
  }

  // Waits until the secondary has applied everything queued and said so.
  void AwaitCaughtUp() {
    while (!outboxes_.CaughtUp("b")) std::this_thread::yield();
  }

  ExclusionSet Effective() { return Excluding({"local.*"}).Union(Excluding({"zone.**"})); }

  FakeClock clock_;
  std::unique_ptr<ConfigStore> primary_store_;
  std::unique_ptr<ConfigStore> secondary_store_;
  ConfigOutboxRegistry outboxes_;
  ConfigCommitter primary_committer_;
  ConfigCommitter secondary_committer_;
  std::unique_ptr<ConfigFollower> follower_;
  absl::Mutex mu_;
  std::vector<v1::ConfigSyncMessage> opens_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> learned_ ABSL_GUARDED_BY(mu_);
  bool close_at_open_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::shared_ptr<Link>> links_;
  std::vector<std::thread> secondaries_;
  std::unique_ptr<ConfigPusher> pusher_;
};

TEST_F(ConfigPusherTest, ResyncsTheSecondaryThenStreamsEachCommit) {
  ASSERT_TRUE(primary_committer_
                  .WriteLocal({PutChange("fw.a", "1"), PutChange("fw.b", "2"),
                               PutChange("local.x", "primary's")})
                  .ok());
  ASSERT_TRUE(secondary_store_
                  ->Apply({PutChange("fw.a", "stale"), PutChange("fw.gone", "x"),
                           PutChange("zone.ip", "10.0.0.2"), PutChange("local.x", "mine")})
                  .ok());
  StartPusher();
  AwaitCaughtUp();
  EXPECT_EQ(follower_->synced_with(), "a");
  EXPECT_EQ(secondary_store_->Checksum("", Effective()).checksum,
            primary_store_->Checksum("", Effective()).checksum);
  EXPECT_EQ(ValueAt(*secondary_store_, "fw.gone"), std::nullopt);
  EXPECT_EQ(ValueAt(*secondary_store_, "zone.ip"), "10.0.0.2");
  EXPECT_EQ(ValueAt(*secondary_store_, "local.x"), "mine");
  EXPECT_THAT(pusher_->state(), StartsWith("in sync at revision"));
  {
    absl::MutexLock lock(&mu_);
    ASSERT_EQ(opens_.size(), 1u);
    EXPECT_EQ(opens_[0].open().epoch(), 7u);
    EXPECT_THAT(opens_[0].open().exclude(), ElementsAre("local.*"));
    EXPECT_THAT(learned_["b"], ElementsAre("zone.**"));
  }
  // A commit after the resync reaches the secondary.
  ASSERT_TRUE(primary_committer_.WriteLocal({PutChange("fw.c", "3"), DeleteChange("fw.b")}).ok());
  while (ValueAt(*secondary_store_, "fw.c") != "3") std::this_thread::yield();
  AwaitCaughtUp();
  EXPECT_EQ(ValueAt(*secondary_store_, "fw.b"), std::nullopt);
  EXPECT_EQ(follower_->primary_revision(), primary_store_->revision());
}

TEST_F(ConfigPusherTest, ALargeDifferingSubtreeIsComparedOneLevelDown) {
  std::vector<ConfigChange> many;
  for (int i = 0; i < 300; ++i) {
    many.push_back(PutChange(absl::StrCat("fw.rule", i / 100, ".n", i), "v"));
  }
  ASSERT_TRUE(primary_committer_.WriteLocal(many).ok());
  ASSERT_TRUE(secondary_store_->Apply(many).ok());
  ASSERT_TRUE(secondary_store_->Apply({PutChange("fw.rule1.n150", "changed")}).ok());
  StartPusher();
  AwaitCaughtUp();
  EXPECT_EQ(ValueAt(*secondary_store_, "fw.rule1.n150"), "v");
  // Only the differing subtree's content travelled.
  EXPECT_THAT(follower_->stats().last_resync_entries, testing::Le(100u));
}

TEST_F(ConfigPusherTest, AStreamThatEndsRemovesTheOutboxAndRetries) {
  {
    absl::MutexLock lock(&mu_);
    close_at_open_ = true;
  }
  StartPusher();
  while (!absl::StartsWith(pusher_->state(), "reconnecting")) std::this_thread::yield();
  EXPECT_EQ(outboxes_.size(), 0u);
  EXPECT_FALSE(outboxes_.CaughtUp("b"));
  // The retry waits on the injected clock.
  {
    absl::MutexLock lock(&mu_);
    close_at_open_ = false;
  }
  while (clock_.sleepers() == 0) std::this_thread::yield();
  clock_.Advance(absl::Seconds(1));
  AwaitCaughtUp();
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(opens_.size(), 2u);
}

TEST(ConfigPusherCoalesceTest, ConsecutiveCommitsTravelAsOneKeepingEachPathsLastChange) {
  auto commit = [](uint64_t revision, std::vector<std::pair<std::string, std::string>> puts,
                   std::vector<std::string> deletes) {
    v1::ConfigSyncMessage m;
    for (auto& [path, value] : puts) {
      v1::ConfigEntry* e = m.mutable_commit()->add_puts();
      e->set_path(path);
      e->set_value(value);
    }
    for (auto& d : deletes) m.mutable_commit()->add_deletes(d);
    m.mutable_commit()->set_revision(revision);
    m.mutable_commit()->set_root_checksum(absl::StrCat("root", revision));
    return m;
  };
  std::deque<v1::ConfigSyncMessage> in;
  in.push_back(commit(1, {{"a", "1"}, {"b", "1"}}, {}));
  in.push_back(commit(2, {{"a", "2"}}, {"b"}));
  v1::ConfigSyncMessage marker;
  marker.mutable_pull_response()->set_complete(true);
  in.push_back(marker);
  in.push_back(commit(3, {}, {}));
  std::vector<v1::ConfigSyncMessage> out = ConfigPushSession::Coalesce(std::move(in));
  ASSERT_EQ(out.size(), 3u);
  const v1::ConfigCommit& first = out[0].commit();
  EXPECT_EQ(first.revision(), 2u);
  EXPECT_EQ(first.root_checksum(), "root2");
  ASSERT_EQ(first.puts_size(), 1);
  EXPECT_EQ(first.puts(0).path(), "a");
  EXPECT_EQ(first.puts(0).value(), "2");
  EXPECT_THAT(first.deletes(), ElementsAre("b"));
  EXPECT_TRUE(out[1].has_pull_response());
  // A commit with no paths (only what the pair excludes) still travels.
  EXPECT_EQ(out[2].commit().revision(), 3u);
}

}  // namespace
}  // namespace cloudha
