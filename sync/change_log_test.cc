#include "sync/change_log.h"

#include <gtest/gtest.h>

#include "sync/session_test_util.h"

namespace cloudha {
namespace {

std::vector<SessionChange> Decode(const LogBatch& batch) {
  std::vector<SessionChange> out;
  EXPECT_TRUE(DecodeChanges(batch.changes, batch.count, &out).ok());
  return out;
}

TEST(ChangeLogTest, KeepsNothingWithoutReaders) {
  ChangeLog log(1 << 20);
  for (uint32_t i = 0; i < 100; ++i) log.Append(Upsert(TestSession(i, 0)), i);
  EXPECT_EQ(log.end(), 100u);
  EXPECT_EQ(log.bytes(), 0u);
}

TEST(ChangeLogTest, ReaderGetsEveryChangeInOrderFromItsPosition) {
  ChangeLog log(1 << 20);
  log.Append(Upsert(TestSession(0, 0)), 1);
  log.Seal();
  int reader = log.AddReader(log.end());
  for (uint32_t i = 1; i <= 3000; ++i) log.Append(Upsert(TestSession(i, 0)), 1000 + i);
  LogBatch batch;
  std::vector<SessionChange> all;
  while (log.Read(reader, 32 << 10, &batch) == ChangeLog::ReadResult::kOk) {
    for (const SessionChange& c : Decode(batch)) all.push_back(c);
  }
  ASSERT_EQ(all.size(), 3000u);
  for (uint32_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].record.key, TestSession(i + 1, 0).key);
  EXPECT_EQ(batch.end_position, 3001u);
  // Read chunks stay until the reader's peer acknowledged them.
  EXPECT_GT(log.bytes(), 0u);
  log.Ack(reader, batch.end_position);
  EXPECT_EQ(log.bytes(), 0u);
  // A read seals the chunk being written: new changes start a new chunk.
  log.Append(Delete(TestSession(1, 0).key), 5000);
  ASSERT_EQ(log.Read(reader, 1 << 20, &batch), ChangeLog::ReadResult::kOk);
  EXPECT_EQ(batch.count, 1u);
  EXPECT_EQ(batch.oldest_us, 5000);
  EXPECT_EQ(log.Read(reader, 1 << 20, &batch), ChangeLog::ReadResult::kEmpty);
}

TEST(ChangeLogTest, SlowReaderIsToldItFellBehindAndMemoryStaysBounded) {
  ChangeLog log(256 << 10);
  int slow = log.AddReader(log.end());
  int fast = log.AddReader(log.end());
  LogBatch batch;
  for (uint32_t i = 0; i < 50000; ++i) {
    log.Append(Upsert(TestSession(i, 0)), i);
    if (i % 1000 == 999) {
      while (log.Read(fast, 1 << 20, &batch) == ChangeLog::ReadResult::kOk) {
      }
    }
  }
  EXPECT_LE(log.bytes(), (256u << 10) + (64u << 10));
  EXPECT_EQ(log.Read(slow, 1 << 20, &batch), ChangeLog::ReadResult::kGone);
  // The fast reader is not affected.
  log.Append(Upsert(TestSession(1, 0)), 1);
  EXPECT_EQ(log.Read(fast, 1 << 20, &batch), ChangeLog::ReadResult::kOk);
  EXPECT_EQ(batch.end_position, 50001u);
}

TEST(ChangeLogTest, RewindReadsAgainFromWhatThePeerApplied) {
  ChangeLog log(1 << 20);
  int reader = log.AddReader(log.end());
  LogBatch batch;
  for (uint32_t i = 0; i < 100; ++i) log.Append(Upsert(TestSession(i, 0)), i);
  ASSERT_EQ(log.Read(reader, 1 << 20, &batch), ChangeLog::ReadResult::kOk);
  const uint64_t first_end = batch.end_position;  // the peer applied this
  for (uint32_t i = 100; i < 150; ++i) log.Append(Upsert(TestSession(i, 0)), i);
  ASSERT_EQ(log.Read(reader, 1 << 20, &batch), ChangeLog::ReadResult::kOk);
  log.Ack(reader, first_end);
  // The stream broke after the second read; the peer applied only the first.
  ASSERT_TRUE(log.Rewind(reader, first_end));
  ASSERT_EQ(log.Read(reader, 1 << 20, &batch), ChangeLog::ReadResult::kOk);
  std::vector<SessionChange> again = Decode(batch);
  ASSERT_EQ(again.size(), 50u);
  EXPECT_EQ(again[0].record.key, TestSession(100, 0).key);
  EXPECT_EQ(batch.end_position, 150u);
  // Not before what was acknowledged (released), not past what was read.
  EXPECT_FALSE(log.Rewind(reader, 0));
  EXPECT_FALSE(log.Rewind(reader, 151));
  EXPECT_FALSE(log.Rewind(reader + 1, 150));
  log.Ack(reader, 150);
  EXPECT_EQ(log.bytes(), 0u);
}

TEST(ChangeLogTest, RewindBeyondWhatMemoryKeptIsGone) {
  ChangeLog log(256 << 10);
  int reader = log.AddReader(log.end());
  LogBatch batch;
  for (uint32_t i = 0; i < 50000; ++i) {
    log.Append(Upsert(TestSession(i, 0)), i);
    if (i % 1000 == 999) {
      while (log.Read(reader, 1 << 20, &batch) == ChangeLog::ReadResult::kOk) {
      }
    }
  }
  // Never acknowledged: memory still bounded, and the start is gone.
  EXPECT_LE(log.bytes(), (256u << 10) + (64u << 10));
  ASSERT_TRUE(log.Rewind(reader, 0));
  EXPECT_EQ(log.Read(reader, 1 << 20, &batch), ChangeLog::ReadResult::kGone);
}

}  // namespace
}  // namespace cloudha
