#include "sync/session_table.h"

#include <limits>

#include <gtest/gtest.h>

#include <limits>

#include "sync/session_test_util.h"
#include "base/fake_clock.h"

namespace cloudha {
namespace {

class SessionTableTest : public ::testing::Test {
 protected:
  int64_t NowMs() { return absl::ToUnixMillis(clock_.WallNow()); }
  // Everything the log holds for `reader`, decoded.
  std::vector<SessionChange> Drain(SessionTable& table, int reader) {
    std::vector<SessionChange> out;
    LogBatch batch;
    while (table.Read(reader, 1 << 20, &batch) == ChangeLog::ReadResult::kOk) {
      EXPECT_TRUE(DecodeChanges(batch.changes, batch.count, &out).ok());
    }
    return out;
  }
  static size_t Count(const SessionSnapshot& s) {
    size_t n = 0;
    for (uint32_t c : s.counts) n += c;
    return n;
  }
  FakeClock clock_;
};

TEST_F(SessionTableTest, UpsertDeleteAndLogInOrder) {
  SessionTable table({}, &clock_);
  int reader = 0;
  SessionSnapshot empty = table.Snapshot(1 << 20, &reader);
  EXPECT_EQ(empty.sessions, 0u);
  SessionRecord a = TestSession(1, NowMs());
  SessionRecord b = TestSession(2, NowMs());
  ApplyResult r = table.Apply({Upsert(a), Upsert(b), Delete(a.key), Upsert(a)});
  EXPECT_EQ(r.applied, 4u);
  EXPECT_EQ(table.size(), 2u);
  std::vector<SessionChange> log = Drain(table, reader);
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[2].op, SessionChange::Op::kDelete);
  EXPECT_EQ(log[3].record, a);
  EXPECT_EQ(table.position(), 4u);
}

TEST_F(SessionTableTest, MaxSessionsRefusesNewKeysButUpdatesExistingOnes) {
  SessionTableOptions options;
  options.max_sessions = 10;
  SessionTable table(options, &clock_);
  std::vector<SessionChange> changes;
  for (uint32_t i = 0; i < 15; ++i) changes.push_back(Upsert(TestSession(i, NowMs())));
  ApplyResult r = table.Apply(changes);
  EXPECT_EQ(r.applied, 10u);
  EXPECT_EQ(r.refused, 5u);
  EXPECT_EQ(table.size(), 10u);
  EXPECT_EQ(table.refused(), 5u);
  SessionRecord updated = TestSession(3, NowMs());
  updated.value.mark = 99;
  EXPECT_EQ(table.Apply({Upsert(updated)}).applied, 1u);
  EXPECT_EQ(table.Records([&](const SessionRecord& s) { return s.key == updated.key; })[0]
                .value.mark,
            99u);
}

TEST_F(SessionTableTest, ConnectionlessAndDelayedSessionsReplicateByThePickupRules) {
  SessionTableOptions options;
  options.pickup_delay = absl::Seconds(30);
  SessionTable table(options, &clock_);
  int reader = 0;
  table.Snapshot(1 << 20, &reader);
  SessionRecord old_tcp = TestSession(1, NowMs());  // created 60 s ago
  SessionRecord young_tcp = TestSession(2, NowMs());
  young_tcp.value.created_ms = NowMs() - 1000;
  SessionRecord udp = TestSession(3, NowMs(), false, 17);
  SessionRecord short_lived = TestSession(4, NowMs());
  short_lived.value.created_ms = NowMs();
  table.Apply({Upsert(old_tcp), Upsert(young_tcp), Upsert(udp), Upsert(short_lived)});
  table.Apply({Delete(short_lived.key)});
  EXPECT_EQ(table.size(), 3u);  // the table holds all; only some replicate
  std::vector<SessionChange> log = Drain(table, reader);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].record.key, old_tcp.key);

  clock_.Advance(absl::Seconds(28));
  table.Tick();
  EXPECT_TRUE(Drain(table, reader).empty());
  clock_.Advance(absl::Seconds(1));
  table.Tick();
  log = Drain(table, reader);
  ASSERT_EQ(log.size(), 1u);  // the short-lived one never crossed
  EXPECT_EQ(log[0].record.key, young_tcp.key);
  int other = 0;
  EXPECT_EQ(Count(table.Snapshot(1 << 20, &other)), 2u);
}

TEST_F(SessionTableTest, ExpiryRemovesTimedOutSessionsOnlyWhenOn) {
  SessionTable table({}, &clock_);
  SessionRecord a = TestSession(1, NowMs());
  a.value.timeout_s = 10;
  SessionRecord b = TestSession(2, NowMs());
  b.value.timeout_s = 100;
  table.Apply({Upsert(a), Upsert(b)});
  int reader = 0;
  table.Snapshot(1 << 20, &reader);
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(table.Tick(), 0u);
  table.SetExpiry(true);
  EXPECT_EQ(table.Tick(), 1u);
  EXPECT_EQ(table.size(), 1u);
  std::vector<SessionChange> log = Drain(table, reader);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].op, SessionChange::Op::kDelete);
  EXPECT_EQ(log[0].record.key, a.key);
}

TEST_F(SessionTableTest, ExpiryFollowsUpdatesThatMoveTheDueTimeEitherWay) {
  SessionTable table({}, &clock_);
  table.SetExpiry(true);
  SessionRecord later = TestSession(1, NowMs());
  later.value.timeout_s = 10;
  SessionRecord sooner = TestSession(2, NowMs());
  sooner.value.timeout_s = 3600;
  table.Apply({Upsert(later), Upsert(sooner)});
  clock_.Advance(absl::Seconds(8));
  // Refreshed: due 10 s from now. Shortened (a TCP close): due 5 s from now.
  later.value.last_update_ms = NowMs();
  sooner.value.last_update_ms = NowMs();
  sooner.value.timeout_s = 5;
  table.Apply({Upsert(later), Upsert(sooner)});
  clock_.Advance(absl::Seconds(4));  // 12 s: the first filing of `later` is due
  EXPECT_EQ(table.Tick(), 0u);
  EXPECT_EQ(table.size(), 2u);
  clock_.Advance(absl::Seconds(2));  // 14 s: `sooner` is 6 s past its update
  EXPECT_EQ(table.Tick(), 1u);
  EXPECT_EQ(table.Records()[0].key, later.key);
  clock_.Advance(absl::Seconds(5));  // 19 s: `later` is 11 s past its update
  EXPECT_EQ(table.Tick(), 1u);
  EXPECT_EQ(table.size(), 0u);
}

TEST_F(SessionTableTest, ExpiryOffAndOnAgainFilesEveryEntry) {
  SessionTable table({}, &clock_);
  std::vector<SessionChange> changes;
  for (uint32_t i = 0; i < 1000; ++i) {
    SessionRecord r = TestSession(i, NowMs());
    r.value.timeout_s = 1 + i % 10;
    changes.push_back(Upsert(r));
  }
  table.Apply(changes);
  table.SetExpiry(true);
  table.SetExpiry(false);
  clock_.Advance(absl::Seconds(6));
  EXPECT_EQ(table.Tick(), 0u);  // off
  table.SetExpiry(true);
  EXPECT_EQ(table.Tick(), 500u);  // timeouts 1..5 s
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(table.Tick(), 500u);
}

// last_update_ms + timeout overflowed for a record stamped at INT64_MAX and
// expired it at once.
TEST_F(SessionTableTest, ExpiryDoesNotOverflowOnExtremeTimestamps) {
  SessionTable table({}, &clock_);
  SessionRecord future = TestSession(1, std::numeric_limits<int64_t>::max());
  future.value.timeout_s = std::numeric_limits<uint32_t>::max();
  SessionRecord past = TestSession(2, std::numeric_limits<int64_t>::min());
  past.value.timeout_s = std::numeric_limits<uint32_t>::max();
  table.Apply({Upsert(future), Upsert(past)});
  table.SetExpiry(true);
  EXPECT_EQ(table.Tick(), 1u);  // only the one stamped in the distant past
  EXPECT_EQ(table.size(), 1u);
}

TEST_F(SessionTableTest, TimesAtTheEndsOfInt64NeitherOverflowNorWrap) {
  // Found by test/fuzz/session_replica_fuzzer: created_ms and
  // last_update_ms come from a primary or a publisher, any int64, and the
  // pickup and expiry arithmetic on them overflowed.
  SessionTableOptions options;
  options.pickup_delay = absl::Seconds(5);
  SessionTable table(options, &clock_);
  int reader = 0;
  table.Snapshot(1 << 20, &reader);
  SessionRecord ancient = TestSession(1, NowMs());
  ancient.value.created_ms = std::numeric_limits<int64_t>::min();
  SessionRecord future = TestSession(2, NowMs());
  future.value.created_ms = std::numeric_limits<int64_t>::max();
  future.value.last_update_ms = std::numeric_limits<int64_t>::max();
  table.Apply({Upsert(ancient), Upsert(future)});
  std::vector<SessionChange> log = Drain(table, reader);
  ASSERT_EQ(log.size(), 1u);  // old enough; the other is due at the end of time
  EXPECT_EQ(log[0].record.key, ancient.key);
  table.SetExpiry(true);
  clock_.Advance(absl::Hours(24));
  table.Tick();
  // The ancient one timed out; the one updated at the end of time did not.
  log = Drain(table, reader);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].op, SessionChange::Op::kDelete);
  EXPECT_EQ(log[0].record.key, ancient.key);
  std::vector<SessionRecord> left = table.Records();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].key, future.key);
}

TEST_F(SessionTableTest, SnapshotPlusLogFromItsPositionIsTheWholeState) {
  SessionTable table({}, &clock_);
  std::vector<SessionChange> first;
  for (uint32_t i = 0; i < 5000; ++i) first.push_back(Upsert(TestSession(i, NowMs())));
  table.Apply(first);
  int reader = 0;
  SessionSnapshot snapshot = table.Snapshot(16 << 10, &reader);
  EXPECT_EQ(snapshot.sessions, 5000u);
  EXPECT_GT(snapshot.chunks.size(), 10u);
  EXPECT_EQ(snapshot.position, 5000u);
  table.Apply({Delete(TestSession(7, NowMs()).key), Upsert(TestSession(9000, NowMs()))});

  SessionTable replica({}, &clock_);
  for (size_t i = 0; i < snapshot.chunks.size(); ++i) {
    std::vector<SessionChange> changes;
    ASSERT_TRUE(DecodeChanges(snapshot.chunks[i], snapshot.counts[i], &changes).ok());
    replica.Apply(changes);
  }
  replica.Apply(Drain(table, reader));
  EXPECT_EQ(replica.size(), table.size());
  auto sorted = [](std::vector<SessionRecord> v) {
    std::sort(v.begin(), v.end(), [](const SessionRecord& a, const SessionRecord& b) {
      return std::memcmp(&a.key, &b.key, sizeof(SessionKey)) < 0;
    });
    return v;
  };
  EXPECT_TRUE(sorted(replica.Records()) == sorted(table.Records()));
}

TEST_F(SessionTableTest, ReconcileLogsOnlyTheDifferences) {
  SessionTable table({}, &clock_);
  table.Apply({Upsert(TestSession(1, NowMs())), Upsert(TestSession(2, NowMs()))});
  int reader = 0;
  table.Snapshot(1 << 20, &reader);
  SessionRecord changed = TestSession(2, NowMs());
  changed.value.tcp_state = 4;
  table.Reconcile({changed, TestSession(3, NowMs())});
  std::vector<SessionChange> log = Drain(table, reader);
  ASSERT_EQ(log.size(), 3u);  // delete 1, upsert 2, upsert 3
  EXPECT_EQ(log[0].op, SessionChange::Op::kDelete);
  EXPECT_EQ(log[1].record, changed);
  EXPECT_EQ(table.size(), 2u);
}

TEST_F(SessionTableTest, RemoveOlderThanKeepsWhatTheSnapshotRefreshed) {
  SessionTable table({}, &clock_);
  table.Apply({Upsert(TestSession(1, NowMs())), Upsert(TestSession(2, NowMs()))}, 1);
  table.Apply({Upsert(TestSession(2, NowMs())), Upsert(TestSession(3, NowMs()))}, 2);
  EXPECT_EQ(table.RemoveOlderThan(2), 1u);
  EXPECT_EQ(table.size(), 2u);
}

}  // namespace
}  // namespace cloudha
