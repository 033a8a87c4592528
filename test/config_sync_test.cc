// Config sync between real agents over mutual TLS on loopback: ten thousand
// keys converge; zone-local values on excluded paths differ while the
// checksums agree; a secondary refuses synced writes naming the primary; a
// restarted secondary resyncs only what changed; apply hooks get the
// changed paths; a peer that is not the primary, or sends bad paths, is
// refused and changes nothing.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "base/secure_file.h"
#include "crypto/tls_material.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "test/config_client.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ConfigSyncTest : public ::testing::Test {
 protected:
  std::string Config(const std::string& node, int priority, const std::string& config_sync = "") {
    TestCluster::Settings settings;
    settings.priority = priority;
    settings.election = "hello_holddown_s: 1 failover_hold_s: 0";
    if (!config_sync.empty()) settings.extra = absl::StrCat("config_sync { ", config_sync, " }\n");
    return cluster_.Config(node, settings);
  }

  void StartPair(const std::string& sync_a = "", const std::string& sync_b = "") {
    cluster_.WriteConfig("a", Config("a", 200, sync_a));
    cluster_.WriteConfig("b", Config("b", 100, sync_b));
    ASSERT_NE(cluster_.Start("a"), nullptr);
    ASSERT_NE(cluster_.Start("b"), nullptr);
    ASSERT_TRUE(WaitRole("a", v1::PRIMARY)) << Logs(cluster_.agent("a"));
    ASSERT_TRUE(WaitInSync("b")) << Logs(cluster_.agent("b"));
  }

  bool WaitRole(const std::string& node, v1::Role role) {
    return cluster_.WaitFor(node, [&](const v1::StatusResponse& s) { return s.role() == role; });
  }

  bool WaitInSync(const std::string& node, absl::Duration timeout = absl::Seconds(15)) {
    return cluster_.WaitFor(
        node,
        [](const v1::StatusResponse& s) {
          return s.role() == v1::SECONDARY && s.sync_state() == v1::IN_SYNC &&
                 s.config().in_sync() && !s.primary().empty();
        },
        timeout);
  }

  // Both stores hold the same synced content: the root checksums over the
  // pair's synced paths agree (checksum --cluster).
  bool WaitChecksumsAgree(absl::Duration timeout = absl::Seconds(15)) {
    absl::Time deadline = absl::Now() + timeout;
    ConfigClient a(cluster_.socket("a"));
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::ConfigChecksumsResponse> c = a.Checksums(true);
      if (c.ok() && c->nodes_size() == 2 && c->nodes(1).error().empty() &&
          c->nodes(0).subtrees_size() > 0 && c->nodes(1).subtrees_size() > 0 &&
          c->nodes(0).subtrees(0).checksum() == c->nodes(1).subtrees(0).checksum()) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  std::map<std::string, std::string> ListOf(const std::string& node,
                                            const std::string& prefix = "") {
    absl::StatusOr<std::map<std::string, std::string>> l =
        ConfigClient(cluster_.socket(node)).List(prefix);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.value_or(std::map<std::string, std::string>());
  }

  TestCluster cluster_{{"a", "b"}};
};

std::vector<std::pair<std::string, std::string>> Policies(int n, const std::string& tag) {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({absl::StrCat("firewall.policy.", i, ".action"), absl::StrCat(tag, i)});
  }
  return out;
}

TEST_F(ConfigSyncTest, TenThousandKeysConverge) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  ConfigClient a(cluster_.socket("a"));
  auto policies = Policies(10000, "accept-");
  absl::StatusOr<uint64_t> rev = a.PutMany(policies);
  ASSERT_TRUE(rev.ok()) << rev.status();
  // And single writes on top, each its own commit.
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(a.Put(absl::StrCat("lb.pool.web.member.", i), "198.18.0.1").ok());
  }
  ASSERT_TRUE(a.Delete("lb.pool.web.member.7").ok());
  // Concurrent writers rewriting the same keys: commits queued behind one
  // another travel to b merged, and b ends with each key's last value.
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([this, t] {
      ConfigClient client(cluster_.socket("a"));
      for (int i = 0; i < 150; ++i) {
        EXPECT_TRUE(client.Put(absl::StrCat("firewall.policy.", i % 40, ".action"),
                               absl::StrCat("w", t, "-", i))
                        .ok());
      }
    });
  }
  for (std::thread& w : writers) w.join();
  ASSERT_TRUE(WaitChecksumsAgree()) << Logs(cluster_.agent("b"));
  std::map<std::string, std::string> la = ListOf("a");
  std::map<std::string, std::string> lb = ListOf("b");
  EXPECT_EQ(la.size(), 10049u);
  EXPECT_TRUE(la == lb) << "a has " << la.size() << " entries, b " << lb.size();
  absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->config().in_sync());
  EXPECT_EQ(b->config().replica_of(), "a");
  EXPECT_EQ(b->config().entries(), 10049u);
  // The hello comparison agrees too.
  EXPECT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
    return s.peers_size() == 1 && s.peers(0).config().checksum_match();
  }));
}

// A reload changes b's exclusion list live (SIGHUP): the streams restart
// with the new union, a path b now excludes stops arriving and b may write
// it, a path it no longer excludes is synced from the primary, and the
// processes never restart.
TEST_F(ConfigSyncTest, AReloadChangesTheExclusionListLive) {
  ASSERT_NO_FATAL_FAILURE(StartPair("", "exclude: \"system.hostname\""));
  // b holds a's content over the pair's union, by its hellos' checksums.
  auto agree = [&] {
    return cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.config().in_sync() && s.peers_size() == 1 &&
             s.peers(0).config().checksum_match();
    });
  };
  ConfigClient a(cluster_.socket("a"));
  ConfigClient b(cluster_.socket("b"));
  ASSERT_TRUE(a.Put("system.hostname", "fw-zone-a").ok());
  ASSERT_TRUE(a.Put("router.static.1.gateway", "198.18.1.254").ok());
  ASSERT_TRUE(agree()) << cluster_.Cli({"status", "--json", "--socket", cluster_.socket("b")}).out
                       << cluster_.Cli({"status", "--json", "--socket", cluster_.socket("a")}).out;
  ASSERT_EQ(b.Get("router.static.1.gateway").value_or(""), "198.18.1.254");
  ASSERT_FALSE(b.Get("system.hostname").ok());

  // b now keeps router.static for itself and takes the hostname from a.
  cluster_.WriteConfig("b", Config("b", 100, "exclude: \"router.static.**\""));
  cluster_.Kill("b", SIGHUP);
  ASSERT_TRUE(WaitForLog(cluster_.agent("b"), "event=config_exclusions_changed"));
  ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
    return s.config().exclude_size() == 1 && s.config().exclude(0) == "router.static.**" &&
           s.config().in_sync();
  })) << cluster_.Status("b")->config().DebugString();
  ASSERT_TRUE(agree()) << Logs(cluster_.agent("b"));
  EXPECT_EQ(b.Get("system.hostname").value_or(""), "fw-zone-a");
  EXPECT_TRUE(b.Put("router.static.1.gateway", "198.18.2.254").ok());
  ASSERT_TRUE(a.Put("router.static.2.gateway", "198.18.1.253").ok());
  ASSERT_TRUE(a.Put("firewall.policy.9.action", "accept").ok());
  ASSERT_TRUE(agree()) << Logs(cluster_.agent("b"));
  EXPECT_EQ(b.Get("firewall.policy.9.action").value_or(""), "accept");
  EXPECT_FALSE(b.Get("router.static.2.gateway").ok());
  EXPECT_EQ(b.Get("router.static.1.gateway").value_or(""), "198.18.2.254");
  // Same processes all along.
  absl::StatusOr<v1::StatusResponse> sa = cluster_.Status("a");
  ASSERT_TRUE(sa.ok());
  EXPECT_EQ(sa->peers(0).restarts(), 0u);
  EXPECT_EQ(sa->role(), v1::PRIMARY);
}

TEST_F(ConfigSyncTest, ZoneLocalValuesDifferWhileChecksumsAgree) {
  ASSERT_NO_FATAL_FAILURE(StartPair(
      "exclude: \"system.interface.**\" exclude: \"router.static.**\"",
      "exclude: \"system.hostname\" exclude: \"system.interface.**\""));
  ConfigClient a(cluster_.socket("a"));
  ConfigClient b(cluster_.socket("b"));
  ASSERT_TRUE(a.Put("system.interface.port1.ip", "198.18.1.1/24").ok());
  ASSERT_TRUE(a.Put("router.static.1.gateway", "198.18.1.254").ok());
  ASSERT_TRUE(a.Put("system.hostname", "fw-zone-a").ok());  // b excludes it: not sent
  ASSERT_TRUE(a.Put("firewall.policy.1.action", "accept").ok());
  // b writes its own zone-local values: its excluded paths only.
  ASSERT_TRUE(b.Put("system.interface.port1.ip", "198.18.2.1/24").ok());
  ASSERT_TRUE(b.Put("system.hostname", "fw-zone-b").ok());
  absl::StatusOr<uint64_t> refused = b.Put("firewall.policy.1.action", "deny");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("primary, a"));
  // router.static is excluded by a only: the pair never syncs it, so b
  // may write its own value there too.
  EXPECT_TRUE(b.Put("router.static.1.gateway", "198.18.2.254").ok());

  ASSERT_TRUE(WaitChecksumsAgree()) << Logs(cluster_.agent("b"));
  EXPECT_EQ(b.Get("firewall.policy.1.action").value_or(""), "accept");
  EXPECT_EQ(b.Get("system.interface.port1.ip").value_or(""), "198.18.2.1/24");
  EXPECT_EQ(b.Get("system.hostname").value_or(""), "fw-zone-b");
  EXPECT_EQ(b.Get("router.static.1.gateway").value_or(""), "198.18.2.254");
  EXPECT_EQ(a.Get("router.static.1.gateway").value_or(""), "198.18.1.254");
  EXPECT_EQ(a.Get("system.hostname").value_or(""), "fw-zone-a");

  // Diff: nothing differs over the synced paths; the effective list is the
  // union of both.
  absl::StatusOr<v1::DiffConfigResponse> diff = a.Diff();
  ASSERT_TRUE(diff.ok()) << diff.status();
  ASSERT_EQ(diff->peers_size(), 1);
  EXPECT_EQ(diff->peers(0).error(), "");
  EXPECT_EQ(diff->peers(0).differences_size(), 0);
  EXPECT_THAT(diff->peers(0).exclude(),
              ElementsAre("router.static.**", "system.hostname", "system.interface.**"));
  EXPECT_THAT(diff->exclude(), ElementsAre("router.static.**", "system.interface.**"));
  absl::StatusOr<v1::StatusResponse> sa = cluster_.Status("a");
  ASSERT_TRUE(sa.ok());
  EXPECT_THAT(sa->peers(0).config().effective_exclude(),
              ElementsAre("router.static.**", "system.hostname", "system.interface.**"));
  // The cluster checksums agree subtree by subtree.
  absl::StatusOr<v1::ConfigChecksumsResponse> sums = b.Checksums(true);
  ASSERT_TRUE(sums.ok()) << sums.status();
  ASSERT_EQ(sums->nodes_size(), 2);
  ASSERT_EQ(sums->nodes(0).subtrees_size(), sums->nodes(1).subtrees_size());
  for (int i = 0; i < sums->nodes(0).subtrees_size(); ++i) {
    EXPECT_EQ(sums->nodes(0).subtrees(i).prefix(), sums->nodes(1).subtrees(i).prefix());
    EXPECT_EQ(sums->nodes(0).subtrees(i).checksum(), sums->nodes(1).subtrees(i).checksum());
  }
  // The primary's last commit touches only what the pair does not sync: b
  // still acknowledges its revision, so a handover goes through at once.
  ASSERT_TRUE(a.Put("system.interface.port2.ip", "198.18.3.1/24").ok());
  CommandResult handover = cluster_.Cli({"failover", "--socket", cluster_.socket("a")});
  EXPECT_EQ(handover.exit_code, 0) << handover.out << handover.err;
}

TEST_F(ConfigSyncTest, RestartedSecondaryResyncsOnlyWhatChanged) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  ConfigClient a(cluster_.socket("a"));
  ASSERT_TRUE(a.PutMany(Policies(5000, "accept-")).ok());
  ASSERT_TRUE(WaitChecksumsAgree()) << Logs(cluster_.agent("b"));

  cluster_.Kill("b", SIGKILL);
  cluster_.agent("b")->Wait(absl::Seconds(10));
  // While b is down: 10 changed, 3 added, 2 deleted.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(a.Put(absl::StrCat("firewall.policy.", i * 100, ".action"), "deny").ok());
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a.Put(absl::StrCat("firewall.policy.", 9000 + i, ".action"), "accept").ok());
  }
  ASSERT_TRUE(a.Delete("firewall.policy.4998.action").ok());
  ASSERT_TRUE(a.Delete("firewall.policy.4999.action").ok());

  ASSERT_NE(cluster_.Start("b"), nullptr);
  ASSERT_TRUE(WaitInSync("b")) << Logs(cluster_.agent("b"));
  absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
  ASSERT_TRUE(b.ok());
  EXPECT_GE(b->config().resyncs(), 1u);
  EXPECT_EQ(b->config().last_resync_entries(), 15u);
  EXPECT_TRUE(ListOf("a") == ListOf("b"));
  EXPECT_EQ(ConfigClient(cluster_.socket("b")).Get("firewall.policy.300.action").value_or(""),
            "deny");
}

TEST_F(ConfigSyncTest, ApplyHooksGetTheChangedPathsOnEveryNode) {
  auto hook = [&](const std::string& node) {
    std::string path = absl::StrCat(cluster_.dir(), "/apply-", node, ".sh");
    std::string log = absl::StrCat(cluster_.dir(), "/apply-", node, ".log");
    WriteFileAtomically(path,
                        absl::StrCat("#!/bin/sh\necho \"$CLOUDHA_NODE $CLOUDHA_CONFIG_PATHS_COUNT "
                                     "$*\" >> ",
                                     log, "\n"),
                        0755, Overwrite::kReplace)
        .IgnoreError();
    return absl::StrCat("on_change { prefix: \"firewall.\" command: \"", path, "\" }");
  };
  ASSERT_NO_FATAL_FAILURE(StartPair(hook("a"), hook("b")));
  ConfigClient a(cluster_.socket("a"));
  ASSERT_TRUE(a.PutMany({{"firewall.policy.1.action", "accept"},
                         {"firewall.policy.2.action", "deny"},
                         {"lb.pool.web.port", "443"}})
                  .ok());
  auto wait_lines = [&](const std::string& log, size_t n) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    std::string text;
    while (absl::Now() < deadline) {
      text = ReadSmallFile(log).value_or("");
      if (static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) >= n) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return text;
  };
  for (const char* node : {"a", "b"}) {
    std::string log = absl::StrCat(cluster_.dir(), "/apply-", node, ".log");
    EXPECT_EQ(wait_lines(log, 1),
              absl::StrCat(node, " 2 firewall.policy.1.action firewall.policy.2.action\n"))
        << Logs(cluster_.agent(node));
  }
  // A commit outside the prefix runs no hook; the next one under it runs
  // with its own paths only.
  ASSERT_TRUE(a.Put("lb.pool.web.port", "8443").ok());
  ASSERT_TRUE(a.Delete("firewall.policy.2.action").ok());
  for (const char* node : {"a", "b"}) {
    std::string log = absl::StrCat(cluster_.dir(), "/apply-", node, ".log");
    EXPECT_EQ(wait_lines(log, 2),
              absl::StrCat(node, " 2 firewall.policy.1.action firewall.policy.2.action\n", node,
                           " 1 firewall.policy.2.action\n"))
        << Logs(cluster_.agent(node));
  }
}

TEST_F(ConfigSyncTest, BadPushesAreRefusedAndChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  ConfigClient a(cluster_.socket("a"));
  ASSERT_TRUE(a.Put("firewall.policy.1.action", "accept").ok());
  ASSERT_TRUE(WaitChecksumsAgree());

  auto open_as = [&](const std::string& me, const std::string& to,
                     grpc::ClientContext* context) {
    absl::StatusOr<TlsMaterial> tls = LoadTlsMaterial(
        {cluster_.dir() + "/ca.crt", cluster_.dir() + "/" + me + ".crt",
         cluster_.dir() + "/" + me + ".key"},
        absl::Now());
    EXPECT_TRUE(tls.ok()) << tls.status();
    grpc::ChannelArguments args;
    SetExpectedPeer({"demo", to}, &args);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", cluster_.port(to)),
                                             PeerChannelCredentials(*tls), args);
    auto stub = v1::PeerService::NewStub(channel);
    return std::make_pair(std::move(stub), channel);
  };
  // b is not the primary: a refuses its push.
  {
    grpc::ClientContext context;
    context.AddMetadata("cloudha-group-id", "7");  // as a peer of this group
    auto [stub, channel] = open_as("b", "a", &context);
    auto stream = stub->SyncConfig(&context);
    v1::ConfigSyncMessage open;
    open.mutable_open()->set_epoch(1);
    stream->Write(open);
    stream->WritesDone();
    v1::ConfigSyncMessage reply;
    EXPECT_FALSE(stream->Read(&reply));
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("this node is primary"));
  }
  // A stream as a (the primary's certificate) with a malformed path. The
  // real a reconnects and supersedes it, so it may be cancelled before its
  // commit is judged: try again then; it must never be accepted.
  grpc::Status judged;
  for (int attempt = 0; attempt < 10; ++attempt) {
    grpc::ClientContext context;
    context.AddMetadata("cloudha-group-id", "7");  // as a peer of this group
    auto [stub, channel] = open_as("a", "b", &context);
    absl::StatusOr<v1::StatusResponse> sb = cluster_.Status("b");
    ASSERT_TRUE(sb.ok());
    auto stream = stub->SyncConfig(&context);
    v1::ConfigSyncMessage open;
    open.mutable_open()->set_epoch(sb->epoch());
    ASSERT_TRUE(stream->Write(open));
    v1::ConfigSyncMessage reply;
    ASSERT_TRUE(stream->Read(&reply));
    ASSERT_TRUE(reply.has_open());
    v1::ConfigSyncMessage commit;
    commit.mutable_commit()->set_revision(1000);
    v1::ConfigEntry* good = commit.mutable_commit()->add_puts();
    good->set_path("firewall.policy.2.action");
    good->set_value("accept");
    v1::ConfigEntry* bad = commit.mutable_commit()->add_puts();
    bad->set_path("firewall..policy");
    bad->set_value("x");
    stream->Write(commit);
    stream->WritesDone();
    while (stream->Read(&reply)) {
    }
    judged = stream->Finish();
    EXPECT_FALSE(judged.ok());
    if (judged.error_code() == grpc::StatusCode::INVALID_ARGUMENT) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(judged.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << judged.error_message();
  EXPECT_THAT(judged.error_message(), HasSubstr("firewall..policy"));
  ConfigClient b(cluster_.socket("b"));
  EXPECT_EQ(b.Get("firewall.policy.2.action").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(b.Get("firewall.policy.1.action").value_or(""), "accept");
  // The real primary's stream comes back, and b is in sync again.
  ASSERT_TRUE(a.Put("firewall.policy.3.action", "accept").ok());
  EXPECT_TRUE(WaitChecksumsAgree()) << Logs(cluster_.agent("b"));
  EXPECT_TRUE(WaitInSync("b"));
}

TEST_F(ConfigSyncTest, CliSetImportExportDiffAndClusterChecksums) {
  ASSERT_NO_FATAL_FAILURE(StartPair("exclude: \"system.hostname\"", "exclude: \"system.hostname\""));
  const std::string sa = cluster_.socket("a");
  const std::string sb = cluster_.socket("b");
  CommandResult r = cluster_.Cli({"config", "set", "firewall.policy.1.action", "accept",
                                  "--socket", sa});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("revision "));
  std::string json = cluster_.dir() + "/lb.json";
  WriteFileAtomically(json,
                      "{\"pool\": {\"web\": {\"port\": 443, \"members\": {\"m1\": "
                      "\"198.18.0.1\", \"m2\": \"198.18.0.2\"}}}}",
                      0644, Overwrite::kReplace)
      .IgnoreError();
  r = cluster_.Cli({"config", "import", "lb", json, "--socket", sa});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("imported 3 paths"));
  r = cluster_.Cli({"config", "set", "system.hostname", "fw-b", "--socket", sb});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitChecksumsAgree()) << Logs(cluster_.agent("b"));

  r = cluster_.Cli({"config", "get", "lb.pool.web.members.m2", "--socket", sb});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "198.18.0.2\n");
  r = cluster_.Cli({"config", "export", "lb", "--socket", sb});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"port\": \"443\""));
  EXPECT_THAT(r.out, HasSubstr("\"m1\": \"198.18.0.1\""));
  r = cluster_.Cli({"config", "set", "firewall.policy.1.action", "deny", "--socket", sb});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(r.err, HasSubstr("primary, a"));
  r = cluster_.Cli({"config", "history", "lb", "--limit", "2", "--socket", sb});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(" set lb.pool.web."));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  r = cluster_.Cli({"config", "diff", "--socket", sa});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("identical"));
  r = cluster_.Cli({"config", "checksum", "--cluster", "--socket", sb});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("match"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("DIFFERS")));
  EXPECT_THAT(r.out, HasSubstr("firewall"));
  EXPECT_THAT(r.out, HasSubstr("lb"));
  // Re-import with a member gone: replaced in one commit, on both nodes.
  WriteFileAtomically(json, "{\"pool\": {\"web\": {\"port\": 443, \"members\": {\"m1\": "
                            "\"198.18.0.1\"}}}}",
                      0644, Overwrite::kReplace)
      .IgnoreError();
  r = cluster_.Cli({"config", "import", "lb", json, "--socket", sa});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitChecksumsAgree());
  EXPECT_EQ(ConfigClient(sb).Get("lb.pool.web.members.m2").status().code(),
            absl::StatusCode::kNotFound);
}

// Writes acknowledged by the primary before a handover are all on the new
// primary after it: the handover waits until the secondary applied them,
// and writes during it are refused, not lost.
TEST_F(ConfigSyncTest, HandoverLosesNoAcknowledgedWrite) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  std::atomic<bool> stop{false};
  std::atomic<int> count{0};
  std::vector<std::string> acked;
  std::thread writer([&] {
    ConfigClient a(cluster_.socket("a"));
    for (int i = 0; i < 20000 && !stop.load(); ++i) {
      std::string path = absl::StrCat("lb.pool.web.member.", i);
      if (a.Put(path, "198.18.0.1").ok()) {
        acked.push_back(path);
        ++count;
      }
    }
  });
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (count.load() < 20 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  // Refused (UNAVAILABLE, nothing handed over) if b had not applied every
  // commit within 2 s; an operator tries again.
  CommandResult r;
  for (int attempt = 0; attempt < 3; ++attempt) {
    r = cluster_.Cli({"failover", "--socket", cluster_.socket("a")});
    if (r.exit_code == 0) break;
  }
  stop.store(true);
  writer.join();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(WaitRole("b", v1::PRIMARY));
  ASSERT_GT(acked.size(), 10u);
  std::map<std::string, std::string> on_b = ListOf("b", "lb");
  size_t missing = 0;
  for (const std::string& path : acked) missing += on_b.count(path) == 0;
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged writes";
}

// A full disk on the primary: the write is refused with a clear error, the
// store keeps what it had, and writes work again once there is room.
TEST_F(ConfigSyncTest, FullDiskRefusesTheWriteAndKeepsTheStore) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string small = cluster_.dir() + "/small";
  mkdir(small.c_str(), 0755);
  CommandResult mount = RunCommand({"mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", small},
                                   cluster_.dir());
  if (mount.exit_code != 0) GTEST_SKIP() << "mount tmpfs failed: " << mount.err;
  struct Unmount {
    std::string dir;
    ~Unmount() { RunCommand({"umount", "-l", dir}, "/"); }
  } unmount{small};
  ASSERT_NO_FATAL_FAILURE(
      StartPair(absl::StrCat("store_file: \"", small, "/config.db\""), ""));
  ConfigClient a(cluster_.socket("a"));
  ASSERT_TRUE(a.Put("firewall.policy.1.action", "accept").ok());
  absl::StatusOr<uint64_t> big = a.Put("firewall.blob", std::string(900 * 1024, 'x'));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.status().message(), HasSubstr("disk full, the write was not applied"));
  EXPECT_EQ(a.Get("firewall.blob").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.Get("firewall.policy.1.action").value_or(""), "accept");
  EXPECT_TRUE(a.Put("firewall.policy.2.action", "deny").ok());
  ASSERT_TRUE(WaitChecksumsAgree()) << Logs(cluster_.agent("a"));
  EXPECT_EQ(ConfigClient(cluster_.socket("b")).Get("firewall.policy.2.action").value_or(""),
            "deny");
  EXPECT_TRUE(WaitForLog(cluster_.agent("a"), "event=config_commit_failed"));
}

TEST_F(ConfigSyncTest, BadRequestsGetClearErrors) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  ConfigClient a(cluster_.socket("a"));
  absl::StatusOr<uint64_t> r = a.Put("firewall..x", "v");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("firewall..x"));
  r = a.Put("firewall.x", std::string(2 * 1024 * 1024, 'v'));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(a.Get("nothing.here").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.Delete("nothing.here").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.List("bad..prefix").status().code(), absl::StatusCode::kInvalidArgument);
  // A path that would reach the apply hooks as an option.
  CommandResult option =
      cluster_.Cli({"config", "set", "--socket", cluster_.socket("a"), "--", "--help", "v1"});
  EXPECT_EQ(option.exit_code, 1);
  EXPECT_THAT(option.err, HasSubstr("starts with '-'"));
  // Nothing was written.
  EXPECT_TRUE(ListOf("a").empty());
  // The whole store is replaced or deleted only when named (".").
  ASSERT_TRUE(a.Put("firewall.policy.1.action", "accept").ok());
  absl::StatusOr<uint64_t> all = a.Delete("", true);
  EXPECT_EQ(all.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(all.status().message(), HasSubstr("\".\" deletes the whole store"));
  std::string json = cluster_.dir() + "/x.json";
  WriteFileAtomically(json, "{\"x\": \"y\"}", 0644, Overwrite::kReplace).IgnoreError();
  CommandResult imported =
      cluster_.Cli({"config", "import", json, "--socket", cluster_.socket("a")});
  EXPECT_EQ(imported.exit_code, 1);
  EXPECT_THAT(imported.err, HasSubstr("\".\" replaces the whole store"));
  EXPECT_EQ(a.Get("firewall.policy.1.action").value_or(""), "accept");
  EXPECT_TRUE(a.Delete(".", true).ok());
  EXPECT_TRUE(ListOf("a").empty());
}

// Three nodes: the primary pushes to both secondaries, each pair with its
// own union of exclusions, and checksum --cluster shows three columns that
// agree over the union of all three lists.
TEST(ConfigSyncThreeNodesTest, PrimaryPushesToEverySecondary) {
  TestCluster cluster({"a", "b", "c"});
  const std::map<std::string, std::pair<int, std::string>> nodes = {
      {"a", {200, "exclude: \"system.hostname\""}},
      {"b", {150, "exclude: \"system.hostname\" exclude: \"router.static.**\""}},
      {"c", {100, "exclude: \"system.hostname\""}}};
  for (const auto& [node, setup] : nodes) {
    TestCluster::Settings settings;
    settings.priority = setup.first;
    settings.election = "hello_holddown_s: 1 failover_hold_s: 0";
    settings.extra = absl::StrCat("config_sync { ", setup.second, " }\n");
    cluster.WriteConfig(node, cluster.Config(node, settings));
    ASSERT_NE(cluster.Start(node), nullptr);
  }
  for (const char* node : {"b", "c"}) {
    ASSERT_TRUE(cluster.WaitFor(node, [](const v1::StatusResponse& s) {
      return s.role() == v1::SECONDARY && s.primary() == "a" && s.config().in_sync() &&
             s.sync_state() == v1::IN_SYNC;
    })) << Logs(cluster.agent(node));
  }
  ConfigClient a(cluster.socket("a"));
  ASSERT_TRUE(a.PutMany(Policies(500, "accept-")).ok());
  ASSERT_TRUE(a.Put("router.static.1.gateway", "198.18.1.254").ok());
  for (const char* node : {"b", "c"}) {
    ConfigClient client(cluster.socket(node));
    absl::Time deadline = absl::Now() + absl::Seconds(15);
    while (client.Get("firewall.policy.499.action").value_or("") != "accept-499" &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_EQ(client.Get("firewall.policy.499.action").value_or(""), "accept-499") << node;
  }
  // b excludes router.static (a-b pair leaves it out); c gets it.
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  ConfigClient c(cluster.socket("c"));
  while (c.Get("router.static.1.gateway").status().code() == absl::StatusCode::kNotFound &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(c.Get("router.static.1.gateway").value_or(""), "198.18.1.254");
  EXPECT_EQ(ConfigClient(cluster.socket("b")).Get("router.static.1.gateway").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<v1::ConfigChecksumsResponse> sums = c.Checksums(true);
  ASSERT_TRUE(sums.ok()) << sums.status();
  ASSERT_EQ(sums->nodes_size(), 3);
  EXPECT_THAT(sums->exclude(), ElementsAre("router.static.**", "system.hostname"));
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(sums->nodes(n).error(), "");
    ASSERT_GT(sums->nodes(n).subtrees_size(), 0);
    EXPECT_EQ(sums->nodes(n).subtrees(0).checksum(), sums->nodes(0).subtrees(0).checksum())
        << sums->nodes(n).node_id();
  }
}

}  // namespace
}  // namespace cloudha
