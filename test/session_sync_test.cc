// Session sync between real agents over mutual TLS on loopback, fed by a
// publisher on the primary's admin socket: a table with churn replicates
// exactly; a killed primary leaves the new primary every session it had
// acked; a secondary that joins during churn, or restarts, converges; bad
// input is refused and changes nothing.
#include <signal.h>

#include <atomic>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "crypto/tls_material.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "sync/session_test_util.h"
#include "test/session_client.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

constexpr char kSessions[] =
    "sessions { pickup: true source: PUBLISHER pickup_connectionless: true } ";

// Random churn over keys [base, base + span): upserts of new and known keys
// (with a changed state) and deletes of known ones.
class Churn {
 public:
  Churn(uint32_t base, uint32_t span, uint32_t seed) : base_(base), span_(span), random_(seed) {}
  std::vector<SessionChange> Next(size_t n, int64_t now_ms) {
    std::vector<SessionChange> out;
    for (size_t i = 0; i < n; ++i) {
      uint32_t k = base_ + random_() % span_;
      SessionRecord r = TestSession(k, now_ms, k % 5 == 0, k % 7 == 0 ? 17 : 6);
      if (random_() % 10 < 3) {
        out.push_back(Delete(r.key));
      } else {
        r.value.mark = random_();
        out.push_back(Upsert(r));
      }
    }
    return out;
  }

 private:
  uint32_t base_;
  uint32_t span_;
  std::mt19937 random_;
};

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

class SessionSyncTest : public ::testing::Test {
 protected:
  std::string Config(const std::string& node, int priority,
                     const std::string& sessions = kSessions) {
    TestCluster::Settings settings;
    settings.priority = priority;
    settings.election = "hello_holddown_s: 1 failover_hold_s: 0";
    settings.extra = sessions;
    return cluster_.Config(node, settings);
  }

  void StartPair() {
    cluster_.WriteConfig("a", Config("a", 200));
    cluster_.WriteConfig("b", Config("b", 100));
    ASSERT_NE(cluster_.Start("a"), nullptr);
    ASSERT_NE(cluster_.Start("b"), nullptr);
    ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
    ASSERT_TRUE(WaitInSync("b")) << Logs(cluster_.agent("b"));
  }

  bool WaitRole(const std::string& node, v1::Role role) {
    return cluster_.WaitFor(node, [&](const v1::StatusResponse& s) { return s.role() == role; });
  }

  bool WaitInSync(const std::string& node) {
    return cluster_.WaitFor(node, [](const v1::StatusResponse& s) {
      return s.role() == v1::SECONDARY && s.sync_state() == v1::IN_SYNC && !s.primary().empty();
    });
  }

  // The primary `p` has had every change acknowledged by `peer`.
  bool WaitCaughtUp(const std::string& p, const std::string& peer,
                    absl::Duration timeout = absl::Seconds(30)) {
    return cluster_.WaitFor(
        p,
        [&](const v1::StatusResponse& s) {
          for (const v1::PeerStatus& ps : s.peers()) {
            if (ps.id() == peer && ps.sessions().state() == "streaming" &&
                ps.sessions().acked_position() == s.sessions().position()) {
              return true;
            }
          }
          return false;
        },
        timeout);
  }

  void ExpectEqualTables(const std::string& x, const std::string& y) {
    absl::StatusOr<std::vector<SessionRecord>> tx = ListSessions(cluster_.socket(x));
    absl::StatusOr<std::vector<SessionRecord>> ty = ListSessions(cluster_.socket(y));
    ASSERT_TRUE(tx.ok()) << tx.status();
    ASSERT_TRUE(ty.ok()) << ty.status();
    EXPECT_EQ(tx->size(), ty->size());
    EXPECT_TRUE(*tx == *ty) << x << " and " << y << " differ";
  }

  TestCluster cluster_{{"a", "b"}};
};

TEST_F(SessionSyncTest, HundredThousandSessionsWithChurnReplicateExactly) {
  StartPair();
  SessionPublisher publisher(cluster_.socket("a"));
  std::vector<SessionChange> initial;
  for (uint32_t i = 0; i < 100000; ++i) {
    initial.push_back(Upsert(TestSession(i, NowMs(), i % 5 == 0, i % 7 == 0 ? 17 : 6)));
  }
  ASSERT_TRUE(publisher.Publish(initial));
  Churn churn(0, 150000, 1);
  for (int round = 0; round < 10; ++round) ASSERT_TRUE(publisher.Publish(churn.Next(20000, NowMs())));
  absl::StatusOr<v1::PublishSessionsResponse> done = publisher.Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->accepted(), 300000u);
  ASSERT_TRUE(WaitCaughtUp("a", "b")) << Logs(cluster_.agent("a"));
  ExpectEqualTables("a", "b");
  absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->sessions().replica_of(), "a");
  EXPECT_GE(b->sessions().table_size(), 100000u);

  CommandResult count =
      cluster_.Cli({"sessions", "--socket", cluster_.socket("b"), "--count"});
  EXPECT_EQ(count.exit_code, 0) << count.err;
  EXPECT_EQ(count.out, absl::StrCat(b->sessions().table_size(), "\n"));
  CommandResult filtered = cluster_.Cli({"sessions", "--socket", cluster_.socket("b"),
                                         "--filter", "proto=udp", "--limit", "3"});
  EXPECT_EQ(filtered.exit_code, 0);
  EXPECT_THAT(filtered.out, HasSubstr("udp "));
  EXPECT_THAT(filtered.err, HasSubstr("3 of "));
  CommandResult bad = cluster_.Cli({"sessions", "--socket", cluster_.socket("b"), "--filter",
                                    "port=99999"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("not a number 0..65535"));
  CommandResult lag = cluster_.Cli({"sessions", "--socket", cluster_.socket("a"), "--lag"});
  EXPECT_THAT(lag.out, HasSubstr("to b: streaming"));
}

TEST_F(SessionSyncTest, KilledPrimaryLeavesTheNewPrimaryEverySessionItHadAcked) {
  StartPair();
  SessionPublisher publisher(cluster_.socket("a"));
  std::vector<SessionChange> initial;
  for (uint32_t i = 0; i < 50000; ++i) initial.push_back(Upsert(TestSession(i, NowMs())));
  ASSERT_TRUE(publisher.Publish(initial));
  ASSERT_TRUE(WaitCaughtUp("a", "b"));
  absl::StatusOr<std::vector<SessionRecord>> acked = ListSessions(cluster_.socket("a"));
  ASSERT_TRUE(acked.ok());
  // Churn on new keys continues while the primary dies.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    uint32_t next = 1000000;
    for (int i = 0; i < 2000 && !stop; ++i) {
      std::vector<SessionChange> more;
      for (int j = 0; j < 500; ++j) more.push_back(Upsert(TestSession(next++, NowMs())));
      if (!publisher.Publish(more)) break;
    }
  });
  absl::SleepFor(absl::Milliseconds(300));
  cluster_.Kill("a", SIGKILL);
  stop = true;
  writer.join();
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY)) << Logs(cluster_.agent("b"));
  absl::StatusOr<std::vector<SessionRecord>> after = ListSessions(cluster_.socket("b"));
  ASSERT_TRUE(after.ok());
  size_t missing = 0;
  for (const SessionRecord& r : *acked) {
    if (!std::binary_search(after->begin(), after->end(), r,
                            [](const SessionRecord& x, const SessionRecord& y) {
                              return std::memcmp(&x.key, &y.key, sizeof(SessionKey)) < 0;
                            })) {
      ++missing;
    }
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_GT(after->size(), acked->size());  // some of the churn made it too
}

TEST_F(SessionSyncTest, SecondaryJoiningDuringChurnAndRestartingConverges) {
  cluster_.WriteConfig("a", Config("a", 200));
  cluster_.WriteConfig("b", Config("b", 100));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
  std::atomic<bool> stop{false};
  auto churn_until_stopped = [&](uint32_t seed) {
    SessionPublisher publisher(cluster_.socket("a"));
    Churn churn(0, 80000, seed);
    for (int i = 0; i < 4000 && !stop; ++i) {
      if (!publisher.Publish(churn.Next(2000, NowMs()))) break;
    }
    EXPECT_TRUE(publisher.Finish().ok());
  };
  std::thread writer(churn_until_stopped, 2);
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_NE(cluster_.Start("b"), nullptr);
  EXPECT_TRUE(WaitInSync("b")) << Logs(cluster_.agent("b"));
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  writer.join();
  ASSERT_TRUE(WaitCaughtUp("a", "b"));
  ExpectEqualTables("a", "b");

  // b restarts while the table changes: it resyncs.
  cluster_.Kill("b", SIGKILL);
  cluster_.agent("b")->Wait(absl::Seconds(5));
  stop = false;
  std::thread writer2(churn_until_stopped, 3);
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_NE(cluster_.Start("b"), nullptr);
  EXPECT_TRUE(WaitInSync("b")) << Logs(cluster_.agent("b"));
  stop = true;
  writer2.join();
  ASSERT_TRUE(WaitCaughtUp("a", "b"));
  ExpectEqualTables("a", "b");
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  ASSERT_TRUE(a.ok());
  EXPECT_GE(a->sessions().snapshots(), 2u);
}

// A secondary cut off for a while (frozen: no hellos, no acks; the primary
// declares it down and drops its stream) comes back and gets only the
// changes it missed: no second bulk sync, and it never stops being eligible.
TEST_F(SessionSyncTest, SecondaryBackWithinTheWindowResumesWithoutASnapshot) {
  // b tolerates 6 s without hellos, a 0.5 s: a drops b during the freeze,
  // b (thawed) still follows a, as after a short cut that only the primary
  // noticed. (Without an arbiter, a secondary that itself declared the
  // primary lost would promote; that is failover, not this test.)
  TestCluster::Settings settings;
  settings.priority = 100;
  settings.lost_threshold = 60;
  settings.election = "hello_holddown_s: 1 failover_hold_s: 0";
  settings.extra = kSessions;
  cluster_.WriteConfig("a", Config("a", 200));
  cluster_.WriteConfig("b", cluster_.Config("b", settings));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_NE(cluster_.Start("b"), nullptr);
  ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
  ASSERT_TRUE(WaitInSync("b")) << Logs(cluster_.agent("b"));
  SessionPublisher publisher(cluster_.socket("a"));
  Churn churn(0, 30000, 4);
  ASSERT_TRUE(publisher.Publish(churn.Next(40000, NowMs())));
  ASSERT_TRUE(WaitCaughtUp("a", "b"));
  cluster_.Kill("b", SIGSTOP);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.peers_size() == 1 && s.peers(0).state() != v1::PeerStatus::UP;
  })) << "a never saw the frozen b go down";
  ASSERT_TRUE(publisher.Publish(churn.Next(20000, NowMs())));  // missed by b
  cluster_.Kill("b", SIGCONT);
  ASSERT_TRUE(WaitCaughtUp("a", "b")) << Logs(cluster_.agent("a"));
  ASSERT_TRUE(publisher.Finish().ok());
  ExpectEqualTables("a", "b");
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->sessions().snapshots(), 1u) << Logs(cluster_.agent("a"));
  EXPECT_GE(a->sessions().resumes(), 1u);
  EXPECT_GE(a->peers(0).sessions().resumes(), 1u);
  EXPECT_EQ(b->sessions().snapshots(), 1u) << Logs(cluster_.agent("b"));
  EXPECT_GE(b->sessions().resumes(), 1u);
  EXPECT_EQ(b->sync_state(), v1::IN_SYNC);
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr("session_stream_resumed"));
}

// A restarted secondary has nothing to resume from: it gets a snapshot.
TEST_F(SessionSyncTest, RestartedSecondaryGetsASnapshotNotAResume) {
  StartPair();
  SessionPublisher publisher(cluster_.socket("a"));
  ASSERT_TRUE(publisher.Publish(Churn(0, 5000, 5).Next(5000, NowMs())));
  ASSERT_TRUE(publisher.Finish().ok());
  ASSERT_TRUE(WaitCaughtUp("a", "b"));
  cluster_.Kill("b", SIGKILL);
  cluster_.agent("b")->Wait(absl::Seconds(5));
  ASSERT_NE(cluster_.Start("b"), nullptr);
  ASSERT_TRUE(WaitInSync("b"));
  ASSERT_TRUE(WaitCaughtUp("a", "b"));
  ExpectEqualTables("a", "b");
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->sessions().snapshots(), 2u);
  EXPECT_EQ(a->sessions().resumes(), 0u);
}

TEST_F(SessionSyncTest, BadInputIsRefusedAndChangesNothing) {
  const std::string limited =
      "sessions { pickup: true source: PUBLISHER pickup_connectionless: true "
      "max_sessions: 1000 } ";
  cluster_.WriteConfig("a", Config("a", 200, limited));
  cluster_.WriteConfig("b", Config("b", 100, limited));
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_NE(cluster_.Start("b"), nullptr);
  ASSERT_TRUE(WaitRole("a", v1::PRIMARY));
  ASSERT_TRUE(WaitInSync("b"));

  // A publisher on the secondary is told where the primary is.
  SessionPublisher wrong(cluster_.socket("b"));
  wrong.Publish({Upsert(TestSession(1, NowMs()))});
  absl::StatusOr<v1::PublishSessionsResponse> refused = wrong.Finish();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("publish to the primary (a)"));

  // Beyond max_sessions: refused and counted, never a crash.
  SessionPublisher publisher(cluster_.socket("a"));
  std::vector<SessionChange> many;
  for (uint32_t i = 0; i < 1500; ++i) many.push_back(Upsert(TestSession(i, NowMs())));
  ASSERT_TRUE(publisher.Publish(many));
  absl::StatusOr<v1::PublishSessionsResponse> counts = publisher.Finish();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->accepted(), 1000u);
  EXPECT_EQ(counts->refused(), 500u);

  // A malformed message: nothing of it is applied.
  {
    auto stub = v1::AdminService::NewStub(grpc::CreateChannel(
        "unix:" + cluster_.socket("a"), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    v1::PublishSessionsResponse response;
    auto writer = stub->PublishSessions(&context, &response);
    v1::PublishSessionsRequest request;
    AppendUpsert(TestSession(5000, NowMs()), request.mutable_changes());
    request.mutable_changes()->append("\x07garbage");
    request.set_change_count(2);
    writer->Write(request);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("malformed session change 1"));
  }
  // Valid, junk (not a PublishSessionsRequest at all), valid, valid: gRPC
  // ends the agent's read at the junk; without the end marker the call says
  // so instead of OK (it once answered OK with accepted=1, the rest lost).
  {
    auto channel =
        grpc::CreateChannel("unix:" + cluster_.socket("a"), grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    auto wait = [&cq]() {
      void* tag = nullptr;
      bool ok = false;
      return cq.Next(&tag, &ok) && ok;
    };
    auto bytes = [](const std::string& raw) {
      grpc::Slice slice(raw);
      return grpc::ByteBuffer(&slice, 1);
    };
    auto valid = [&](uint32_t id) {
      v1::PublishSessionsRequest r;
      AppendUpsert(TestSession(id, NowMs()), r.mutable_changes());
      r.set_change_count(1);
      return r.SerializeAsString();
    };
    auto call =
        stub.PrepareCall(&context, "/cloudha.v1.AdminService/PublishSessions", &cq);
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(wait());
    for (const std::string& raw : {valid(9001), std::string("\xff\xff\xff\xff"), valid(9002),
                                   valid(9003)}) {
      call->Write(bytes(raw), reinterpret_cast<void*>(2));
      if (!wait()) break;  // the agent may have ended the call already
    }
    call->WritesDone(reinterpret_cast<void*>(3));
    wait();
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(4));
    wait();
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(5));
    ASSERT_TRUE(wait());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("message 2 could not be parsed"));
    // (The table is full here: that one upsert was counted as refused.)
    EXPECT_THAT(status.error_message(), HasSubstr("the 1 message(s) before it were applied"));
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }
  ASSERT_TRUE(WaitCaughtUp("a", "b"));
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->sessions().table_size(), 1000u);
  EXPECT_EQ(a->sessions().refused_max_sessions(), 501u);  // and the one above
  ExpectEqualTables("a", "b");
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "sessions_refused"));

  // A session stream from a node that is not the primary (b, to a).
  absl::StatusOr<TlsMaterial> tls = LoadTlsMaterial(
      {cluster_.dir() + "/ca.crt", cluster_.dir() + "/b.crt", cluster_.dir() + "/b.key"},
      absl::Now());
  ASSERT_TRUE(tls.ok()) << tls.status();
  grpc::ChannelArguments args;
  SetExpectedPeer({"demo", "a"}, &args);
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", cluster_.port("a")),
                                           PeerChannelCredentials(*tls), args);
  auto peer = v1::PeerService::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("cloudha-group-id", "7");  // as a peer of this group
  auto stream = peer->SyncSessions(&context);
  v1::SessionSyncMessage open;
  open.mutable_open()->set_epoch(99);
  open.mutable_open()->set_next_sequence(1);
  stream->Write(open);
  stream->WritesDone();
  v1::SessionSyncMessage ignored;
  while (stream->Read(&ignored)) {
  }
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("this node is primary"));
}

}  // namespace
}  // namespace cloudha
