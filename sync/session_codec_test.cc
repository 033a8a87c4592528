#include "sync/session_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sync/session_test_util.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kNowMs = 1'800'000'000'000;

TEST(SessionCodecTest, RoundTripsUpsertsAndDeletesInOrder) {
  std::vector<SessionChange> in = {Upsert(TestSession(1, kNowMs)),
                                   Delete(TestSession(1, kNowMs).key),
                                   Upsert(TestSession(2, kNowMs, /*v6=*/true)),
                                   Delete(TestSession(3, kNowMs, true).key),
                                   Upsert(TestSession(4, kNowMs, false, 17))};
  std::string data;
  size_t expected_size = 0;
  for (const SessionChange& c : in) {
    AppendChange(c, &data);
    expected_size += EncodedSize(c);
  }
  EXPECT_EQ(data.size(), expected_size);
  EXPECT_EQ(EncodedSize(in[0]), 58u);
  EXPECT_EQ(EncodedSize(in[2]), 106u);
  EXPECT_EQ(EncodedSize(in[1]), 18u);
  EXPECT_EQ(EncodedSize(in[3]), 42u);
  std::vector<SessionChange> out;
  ASSERT_TRUE(DecodeChanges(data, in.size(), &out).ok());
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].op, in[i].op) << i;
    EXPECT_EQ(out[i].record.key, in[i].record.key) << i;
    if (in[i].op == SessionChange::Op::kUpsert) {
      EXPECT_EQ(out[i].record.value, in[i].record.value) << i;
    }
  }
}

TEST(SessionCodecTest, RefusesMalformedInputWithoutAppending) {
  std::string good;
  AppendUpsert(TestSession(1, kNowMs), &good);
  std::vector<SessionChange> out = {Upsert(TestSession(9, kNowMs))};

  absl::Status truncated = DecodeChanges(good.substr(0, good.size() - 1), 1, &out);
  EXPECT_EQ(truncated.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(truncated.message(), HasSubstr("truncated upsert"));

  std::string bad_op = good;
  bad_op[0] = 7;
  EXPECT_THAT(DecodeChanges(bad_op, 1, &out).message(), HasSubstr("unknown operation 7"));

  std::string bad_family = good;
  bad_family[1] = 3;
  EXPECT_THAT(DecodeChanges(bad_family, 1, &out).message(), HasSubstr("unknown address family"));

  std::string bad_state = good;
  bad_state[3] = 99;
  EXPECT_THAT(DecodeChanges(bad_state, 1, &out).message(), HasSubstr("unknown TCP state 99"));

  std::string two = good + good;
  EXPECT_THAT(DecodeChanges(two, 1, &out).message(), HasSubstr("more records than the 1"));
  EXPECT_THAT(DecodeChanges(good, 2, &out).message(), HasSubstr("found 1 records"));
  // The second record is bad: the first is not kept either.
  std::string mixed = good + bad_op;
  absl::Status s = DecodeChanges(mixed, 2, &out);
  EXPECT_THAT(s.message(), HasSubstr("change 1 at byte 58"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].record.key, TestSession(9, kNowMs).key);
}

TEST(SessionCodecTest, ACountBeyondTheBytesIsRefusedWithoutReservingIt) {
  // Found by test/fuzz/session_codec_fuzzer: the announced count used to be
  // reserved before a record was read (4 G changes: 480 GB).
  std::string one;
  AppendDelete(TestSession(1, kNowMs).key, &one);
  std::vector<SessionChange> out;
  absl::Status s = DecodeChanges(one, 0xffffffff, &out);
  EXPECT_THAT(s.message(), HasSubstr("found 1 records, the batch announced 4294967295"));
  EXPECT_TRUE(out.empty());
  EXPECT_LT(out.capacity(), 2u);
}

TEST(SessionRecordTest, ProtoRoundTripAndValidation) {
  SessionRecord r = TestSession(5, kNowMs);
  v1::Session proto;
  RecordToProto(r, &proto);
  EXPECT_EQ(proto.original().src_addr().size(), 4u);
  EXPECT_EQ(proto.reply().dst_addr(), std::string("\xc6\x13\xff\x01", 4));
  absl::StatusOr<SessionRecord> back = RecordFromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, r);

  v1::Session bad = proto;
  bad.mutable_original()->set_src_addr("12345");
  EXPECT_THAT(RecordFromProto(bad).status().message(),
              HasSubstr("original.src_addr must be 4 bytes for IPv4, got 5"));
  bad = proto;
  bad.set_family(v1::ADDRESS_FAMILY_UNSPECIFIED);
  EXPECT_THAT(RecordFromProto(bad).status().message(), HasSubstr("family must be IPV4 or IPV6"));
  bad = proto;
  bad.mutable_reply()->set_dst_port(70000);
  EXPECT_THAT(RecordFromProto(bad).status().message(),
              HasSubstr("reply.dst_port must be 0..65535"));
  EXPECT_EQ(DescribeKey(r.key), "tcp 198.18.0.0:1029 -> 198.19.0.1:443 zone 2");
}

}  // namespace
}  // namespace cloudha
