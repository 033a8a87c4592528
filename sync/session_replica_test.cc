#include "sync/session_replica.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sync/session_test_util.h"
#include "base/fake_clock.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

class SessionReplicaTest : public ::testing::Test {
 protected:
  SessionReplicaTest() : table_({}, &clock_), replica_(&table_, &clock_) {}

  int64_t NowMs() { return absl::ToUnixMillis(clock_.WallNow()); }

  v1::SessionBatch Batch(uint64_t sequence, const std::vector<SessionChange>& changes,
                         bool begin = false, bool end = false) {
    v1::SessionBatch b;
    b.set_sequence(sequence);
    std::string data;
    for (const SessionChange& c : changes) AppendChange(c, &data);
    b.set_changes(data);
    b.set_change_count(changes.size());
    b.set_snapshot_begin(begin);
    b.set_snapshot_end(end);
    b.set_position(sequence * 100);
    b.set_cut_time_us(absl::ToUnixMicros(clock_.WallNow()) - 3000);
    return b;
  }

  uint64_t OpenStream(uint64_t next = 1, v1::SessionResumeOffer* offer = nullptr,
                      uint64_t epoch = 3, uint64_t boot_id = 7, const std::string& from = "a") {
    v1::SessionSyncOpen open;
    open.set_epoch(epoch);
    open.set_boot_id(boot_id);
    open.set_next_sequence(next);
    v1::SessionResumeOffer ignored;
    return replica_.Open(from, open, offer != nullptr ? offer : &ignored);
  }

  FakeClock clock_;
  SessionTable table_;
  SessionReplica replica_;
};

TEST_F(SessionReplicaTest, SnapshotThenTailMakesTheReplicaComplete) {
  uint64_t s = OpenStream();
  EXPECT_FALSE(replica_.complete());
  auto ack = replica_.OnBatch(s, Batch(1, {Upsert(TestSession(1, NowMs()))}, true, false));
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->ack().sequence(), 1u);
  EXPECT_FALSE(replica_.complete());
  ack = replica_.OnBatch(s, Batch(2, {Upsert(TestSession(2, NowMs()))}, false, true));
  ASSERT_TRUE(ack.ok());
  EXPECT_TRUE(replica_.complete());
  EXPECT_EQ(ack->ack().table_size(), 2u);
  ack = replica_.OnBatch(s, Batch(3, {Delete(TestSession(1, NowMs()).key)}));
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_EQ(replica_.position(), 300u);
  EXPECT_NEAR(replica_.lag_ms(), 3.0, 0.01);
  EXPECT_EQ(replica_.replica_of(), "a");
  EXPECT_EQ(replica_.snapshots(), 1u);
}

TEST_F(SessionReplicaTest, ASnapshotRemovesWhatItDidNotRefreshOnlyAtItsEnd) {
  table_.Apply({Upsert(TestSession(1, NowMs())), Upsert(TestSession(2, NowMs()))});
  uint64_t s = OpenStream();
  ASSERT_TRUE(replica_.OnBatch(s, Batch(1, {Upsert(TestSession(2, NowMs()))}, true)).ok());
  // Interrupted here (the primary died): nothing the replica held is lost.
  replica_.Close(s);
  EXPECT_EQ(table_.size(), 2u);
  EXPECT_FALSE(replica_.complete());
  s = OpenStream();
  ASSERT_TRUE(replica_.OnBatch(s, Batch(1, {Upsert(TestSession(2, NowMs()))}, true)).ok());
  ASSERT_TRUE(replica_.OnBatch(s, Batch(2, {Upsert(TestSession(3, NowMs()))}, false, true)).ok());
  EXPECT_EQ(table_.size(), 2u);  // 1 was gone from the primary
  EXPECT_TRUE(replica_.complete());
}

TEST_F(SessionReplicaTest, AGapAsksForAResyncAndIgnoresTheTailUntilTheSnapshot) {
  uint64_t s = OpenStream();
  ASSERT_TRUE(replica_.OnBatch(s, Batch(1, {}, true, true)).ok());
  auto reply = replica_.OnBatch(s, Batch(3, {Upsert(TestSession(1, NowMs()))}));
  ASSERT_TRUE(reply.ok());
  ASSERT_TRUE(reply->has_resync());
  EXPECT_THAT(reply->resync().reason(), HasSubstr("expected 2, got 3"));
  EXPECT_FALSE(replica_.complete());
  EXPECT_EQ(table_.size(), 0u);
  reply = replica_.OnBatch(s, Batch(4, {Upsert(TestSession(2, NowMs()))}));
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply->has_ack());
  EXPECT_EQ(table_.size(), 0u);
  reply = replica_.OnBatch(s, Batch(5, {Upsert(TestSession(2, NowMs()))}, true, true));
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(replica_.complete());
  EXPECT_EQ(table_.size(), 1u);
}

TEST_F(SessionReplicaTest, MalformedBatchesChangeNothing) {
  uint64_t s = OpenStream();
  ASSERT_TRUE(replica_.OnBatch(s, Batch(1, {Upsert(TestSession(1, NowMs()))}, true, true)).ok());
  v1::SessionBatch bad = Batch(2, {Upsert(TestSession(2, NowMs())), Upsert(TestSession(3, 0))});
  bad.mutable_changes()->resize(bad.changes().size() - 5);
  auto reply = replica_.OnBatch(s, bad);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reply.status().message(), HasSubstr("batch 2: malformed session change 1"));
  v1::SessionBatch huge = Batch(2, {});
  huge.set_change_count(kMaxChangesPerBatch + 1);
  EXPECT_THAT(replica_.OnBatch(s, huge).status().message(), HasSubstr("at most"));
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_EQ(replica_.refused(), 2u);
  EXPECT_TRUE(replica_.complete());
}

TEST_F(SessionReplicaTest, ANewerStreamSupersedesTheOldOne) {
  uint64_t old_stream = OpenStream();
  uint64_t new_stream = OpenStream();
  auto reply = replica_.OnBatch(old_stream, Batch(1, {}, true, true));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(replica_.OnBatch(new_stream, Batch(1, {}, true, true)).ok());
  replica_.Close(old_stream);
  EXPECT_EQ(replica_.replica_of(), "a");
}

TEST_F(SessionReplicaTest, ACompleteReplicaResumesFromItsPosition) {
  v1::SessionResumeOffer offer;
  uint64_t s = OpenStream(1, &offer);
  EXPECT_FALSE(offer.resumable());  // never fed: a snapshot first
  ASSERT_TRUE(replica_.OnBatch(s, Batch(1, {Upsert(TestSession(1, NowMs()))}, true, true)).ok());
  ASSERT_TRUE(replica_.OnBatch(s, Batch(2, {Upsert(TestSession(2, NowMs()))})).ok());
  replica_.Close(s);
  // The same primary process, same epoch: the stream continues at 200.
  s = OpenStream(3, &offer);
  ASSERT_TRUE(offer.resumable());
  EXPECT_EQ(offer.position(), 200u);
  EXPECT_TRUE(replica_.complete());  // still eligible while reconnecting
  v1::SessionBatch resume = Batch(3, {Upsert(TestSession(3, NowMs()))});
  resume.set_resume_from(200);
  std::vector<SessionChange> applied;
  auto ack = replica_.OnBatch(s, resume, &applied);
  ASSERT_TRUE(ack.ok());
  ASSERT_TRUE(ack->has_ack());
  EXPECT_EQ(applied.size(), 1u);
  EXPECT_EQ(table_.size(), 3u);
  EXPECT_TRUE(replica_.complete());
  EXPECT_EQ(replica_.resumes(), 1u);
  EXPECT_EQ(replica_.snapshots(), 1u);
}

TEST_F(SessionReplicaTest, NoResumeAcrossEpochsRestartsOrAfterAnInterruptedSnapshot) {
  v1::SessionResumeOffer offer;
  uint64_t s = OpenStream(1);
  ASSERT_TRUE(replica_.OnBatch(s, Batch(1, {Upsert(TestSession(1, NowMs()))}, true, true)).ok());
  replica_.Close(s);
  OpenStream(2, &offer, /*epoch=*/4);
  EXPECT_FALSE(offer.resumable()) << "new epoch";
  OpenStream(2, &offer, 3, /*boot_id=*/8);
  EXPECT_FALSE(offer.resumable()) << "the primary restarted";
  OpenStream(2, &offer, 3, 7, /*from=*/"c");
  EXPECT_FALSE(offer.resumable()) << "another primary";
  s = OpenStream(2, &offer);
  EXPECT_TRUE(offer.resumable());
  // The primary chose a snapshot anyway; it is interrupted.
  ASSERT_TRUE(replica_.OnBatch(s, Batch(2, {Upsert(TestSession(2, NowMs()))}, true, false)).ok());
  replica_.Close(s);
  OpenStream(3, &offer);
  EXPECT_FALSE(offer.resumable()) << "interrupted snapshot";
  // This node's own table (it was primary) has no primary's position.
  replica_.MarkComplete();
  OpenStream(3, &offer);
  EXPECT_FALSE(offer.resumable()) << "own table";
}

TEST_F(SessionReplicaTest, AResumeFromAnotherPositionAsksForASnapshot) {
  v1::SessionResumeOffer offer;
  uint64_t s = OpenStream(1);
  ASSERT_TRUE(replica_.OnBatch(s, Batch(1, {Upsert(TestSession(1, NowMs()))}, true, true)).ok());
  s = OpenStream(2, &offer);
  ASSERT_TRUE(offer.resumable());
  v1::SessionBatch resume = Batch(2, {});
  resume.set_resume_from(offer.position() + 5);
  auto reply = replica_.OnBatch(s, resume);
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply->has_resync()) << reply->DebugString();
  EXPECT_FALSE(replica_.complete());
  // A resume nobody offered is refused the same way.
  v1::SessionBatch snapshot = Batch(3, {Upsert(TestSession(1, NowMs()))}, true, true);
  ASSERT_TRUE(replica_.OnBatch(s, snapshot).ok());
  v1::SessionBatch unasked = Batch(4, {});
  unasked.set_resume_from(100);
  reply = replica_.OnBatch(s, unasked);
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply->has_resync());
}

TEST_F(SessionReplicaTest, AFinishedSnapshotReportsWhatItRemoved) {
  uint64_t s = OpenStream(1);
  ASSERT_TRUE(replica_.OnBatch(s, Batch(1, {Upsert(TestSession(1, NowMs())),
                                            Upsert(TestSession(2, NowMs()))}, true, true)).ok());
  s = OpenStream(2);
  std::vector<SessionChange> applied;
  ASSERT_TRUE(
      replica_.OnBatch(s, Batch(2, {Upsert(TestSession(2, NowMs()))}, true, true), &applied).ok());
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0].op, SessionChange::Op::kUpsert);
  EXPECT_EQ(applied[1].op, SessionChange::Op::kDelete);
  EXPECT_EQ(applied[1].record.key, TestSession(1, NowMs()).key);
}

}  // namespace
}  // namespace cloudha
