// The `cloudha` command line: certs init, check-config, sessions publish, and
// client errors.
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/certificate_authority.h"
#include "crypto/node_identity.h"
#include "base/secure_file.h"
#include "crypto/tls_material.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

class CliTest : public ::testing::Test {
 protected:
  std::string Read(const std::string& name) {
    return ReadSmallFile(cluster_.dir() + "/" + name).value_or("");
  }
  int Mode(const std::string& name) {
    struct stat st;
    if (stat((cluster_.dir() + "/" + name).c_str(), &st) != 0) return -1;
    return st.st_mode & 0777;
  }

  TestCluster cluster_{{"a", "b"}};
};

TEST_F(CliTest, VersionNamesTheReleaseCommitBuildAndLibraries) {
  for (const char* flag : {"--version", "-V"}) {
    CommandResult r = cluster_.Cli({flag});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, ::testing::MatchesRegex(
                           "cloudha [0-9]+\\.[0-9]+\\.[0-9]+\ncommit [0-9a-z-]+\n"
                           "built [0-9TZ:-]+\ngRPC 1\\.[0-9.]+, protobuf 3\\.[0-9.]+, "
                           "OpenSSL [0-9].*\n"));
  }
}

TEST_F(CliTest, CertsInitWritesCaAndNodeCertificates) {
  CommandResult r = cluster_.Cli(
      {"certs", "init", "--cluster", "prod", "--nodes", "fw-1,fw-2", "--out", cluster_.dir() + "/pki"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Mode("pki/ca.key"), 0600);
  EXPECT_EQ(Mode("pki/fw-1.key"), 0600);
  EXPECT_EQ(Mode("pki/fw-2.key"), 0600);
  EXPECT_EQ(Mode("pki/ca.crt"), 0644);
  for (const char* node : {"fw-1", "fw-2"}) {
    absl::StatusOr<TlsMaterial> m =
        CheckTlsMaterial(Read("pki/ca.crt"), Read(absl::StrCat("pki/", node, ".crt")),
                         Read(absl::StrCat("pki/", node, ".key")), absl::Now());
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->identity, (NodeIdentity{"prod", node}));
  }
}

TEST_F(CliTest, CertsInitCreatesMissingParentFolders) {
  // As on a fresh node: `--out /etc/cloudha/certs` before /etc/cloudha exists.
  CommandResult r = cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "a", "--out",
                                  cluster_.dir() + "/etc/cloudha/certs"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Mode("etc/cloudha/certs/a.key"), 0600);
  EXPECT_EQ(Mode("etc/cloudha/certs"), 0755);
}

TEST_F(CliTest, CertsInitRefusesAFileWhereTheFolderGoes) {
  ASSERT_TRUE(WriteFileAtomically(cluster_.dir() + "/plain", "x", 0600, Overwrite::kRefuse).ok());
  CommandResult r = cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "a", "--out",
                                  cluster_.dir() + "/plain/pki"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is not a folder"));
}

TEST_F(CliTest, CertsInitNeverOverwritesWithoutForce) {
  const std::string out = cluster_.dir() + "/pki";
  ASSERT_EQ(cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "a,b", "--out", out})
                .exit_code,
            0);
  std::string ca = Read("pki/ca.crt");
  std::string key = Read("pki/a.key");
  CommandResult again =
      cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "a,b", "--out", out});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("already exist; nothing was written"));
  EXPECT_EQ(Read("pki/ca.crt"), ca);
  EXPECT_EQ(Read("pki/a.key"), key);

  // --force reissues the nodes under the same CA: b's certificate, not
  // reissued, still verifies (it once made a new CA and broke every node).
  std::string b_crt = Read("pki/b.crt");
  CommandResult forced = cluster_.Cli(
      {"certs", "init", "--cluster", "prod", "--nodes", "a", "--out", out, "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_THAT(forced.out, HasSubstr("using the existing CA"));
  EXPECT_EQ(Read("pki/ca.crt"), ca);
  EXPECT_NE(Read("pki/a.key"), key);
  EXPECT_TRUE(CheckTlsMaterial(ca, b_crt, Read("pki/b.key"), absl::Now()).ok());
  EXPECT_TRUE(CheckTlsMaterial(ca, Read("pki/a.crt"), Read("pki/a.key"), absl::Now()).ok());

  // A new CA only when asked for, and replacing one only with --force too.
  CommandResult new_ca = cluster_.Cli(
      {"certs", "init", "--cluster", "prod", "--nodes", "c", "--out", out, "--new-ca"});
  EXPECT_EQ(new_ca.exit_code, 1);
  EXPECT_THAT(new_ca.err, HasSubstr("--new-ca replaces it only with --force"));
  EXPECT_EQ(Read("pki/ca.crt"), ca);
  new_ca = cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "a,b", "--out", out,
                         "--new-ca", "--force"});
  EXPECT_EQ(new_ca.exit_code, 0) << new_ca.err;
  EXPECT_NE(Read("pki/ca.crt"), ca);
}

TEST_F(CliTest, CertsInitAddsANodeUnderTheExistingCa) {
  const std::string out = cluster_.dir() + "/pki";
  ASSERT_EQ(cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "a,b", "--out", out})
                .exit_code,
            0);
  std::string ca = Read("pki/ca.crt");
  CommandResult added =
      cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "c", "--out", out});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  EXPECT_THAT(added.out, HasSubstr("using the existing CA"));
  EXPECT_EQ(Read("pki/ca.crt"), ca);
  EXPECT_TRUE(CheckTlsMaterial(ca, Read("pki/c.crt"), Read("pki/c.key"), absl::Now()).ok());
}

TEST_F(CliTest, CertsInitRefusesTheCaOfAnotherCluster) {
  const std::string out = cluster_.dir() + "/pki";
  ASSERT_EQ(cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "a", "--out", out})
                .exit_code,
            0);
  CommandResult r = cluster_.Cli({"certs", "init", "--cluster", "test", "--nodes", "b", "--out", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is the CA of cluster \"prod\", not \"test\""));
  EXPECT_NE(access((out + "/b.key").c_str(), F_OK), 0);
}

TEST_F(CliTest, CertsInitRefusesBadNames) {
  CommandResult r = cluster_.Cli(
      {"certs", "init", "--cluster", "Prod", "--nodes", "a", "--out", cluster_.dir() + "/pki"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--cluster \"Prod\" may hold only lowercase letters"));
  CommandResult dup = cluster_.Cli(
      {"certs", "init", "--cluster", "prod", "--nodes", "a,a", "--out", cluster_.dir() + "/pki"});
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_THAT(dup.err, HasSubstr("named twice"));
}

// --- CA rotation: rotate-ca, init --ca next, retire-ca.

class CertsRotationTest : public CliTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(Certs({"init", "--cluster", "prod", "--nodes", "a,b"}).exit_code, 0);
    old_ca_ = Read("pki/ca.crt");
  }
  CommandResult Certs(std::vector<std::string> args) {
    args.insert(args.begin(), "certs");
    args.push_back("--out");
    args.push_back(out_);
    return cluster_.Cli(args);
  }
  bool Exists(const std::string& name) {
    return access((cluster_.dir() + "/" + name).c_str(), F_OK) == 0;
  }
  bool Verifies(const std::string& bundle, const std::string& node) {
    return CheckTlsMaterial(bundle, Read("pki/" + node + ".crt"), Read("pki/" + node + ".key"),
                            absl::Now())
        .ok();
  }

  const std::string out_ = cluster_.dir() + "/pki";
  std::string old_ca_;
};

TEST_F(CertsRotationTest, RotateCaWritesTheNextCaAndTheBundleOfBoth) {
  CommandResult r = Certs({"rotate-ca"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--nodes a,b"));
  EXPECT_THAT(r.out, HasSubstr("retire-ca"));
  EXPECT_EQ(Mode("pki/ca-next.key"), 0600);
  EXPECT_EQ(Mode("pki/ca-next.crt"), 0644);
  EXPECT_EQ(Mode("pki/ca-bundle.crt"), 0644);
  EXPECT_EQ(Read("pki/ca.crt"), old_ca_);
  absl::StatusOr<std::vector<TrustedCa>> bundle = CheckCaBundle(Read("pki/ca-bundle.crt"));
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  ASSERT_EQ(bundle->size(), 2u);
  EXPECT_EQ((*bundle)[0].fingerprint, *CertificateFingerprint(old_ca_));
  EXPECT_EQ((*bundle)[1].fingerprint, *CertificateFingerprint(Read("pki/ca-next.crt")));
  // The nodes' certificates of the old CA verify under the bundle.
  EXPECT_TRUE(Verifies(Read("pki/ca-bundle.crt"), "a"));

  // A second rotation is refused and writes nothing; --force starts over.
  std::string next = Read("pki/ca-next.crt");
  CommandResult again = Certs({"rotate-ca"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("a rotation is under way"));
  EXPECT_THAT(again.err, HasSubstr("nothing was written"));
  EXPECT_EQ(Read("pki/ca-next.crt"), next);
  CommandResult forced = Certs({"rotate-ca", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(Read("pki/ca-next.crt"), next);
}

TEST_F(CertsRotationTest, RotateCaNeedsACurrentCa) {
  CommandResult r = cluster_.Cli({"certs", "rotate-ca", "--out", cluster_.dir() + "/empty"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("ca.crt"));
  EXPECT_FALSE(Exists("empty/ca-next.crt"));
}

TEST_F(CertsRotationTest, InitWithCaNextIssuesUnderTheNewCa) {
  CommandResult none = Certs({"init", "--cluster", "prod", "--nodes", "a", "--ca", "next",
                              "--force"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err, HasSubstr("no CA rotation is under way"));
  ASSERT_EQ(Certs({"rotate-ca"}).exit_code, 0);
  std::string a_before = Read("pki/a.crt");
  CommandResult r = Certs({"init", "--cluster", "prod", "--nodes", "a", "--ca", "next", "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("using the new CA of the rotation"));
  EXPECT_NE(Read("pki/a.crt"), a_before);
  EXPECT_TRUE(*SignedBy(Read("pki/a.crt"), Read("pki/ca-next.crt")));
  EXPECT_TRUE(Verifies(Read("pki/ca-bundle.crt"), "a"));
  EXPECT_TRUE(Verifies(Read("pki/ca-next.crt"), "a"));
  EXPECT_FALSE(Verifies(old_ca_, "a"));
  // Under the current CA during a rotation: allowed, with a note.
  CommandResult current = Certs({"init", "--cluster", "prod", "--nodes", "c"});
  EXPECT_EQ(current.exit_code, 0) << current.err;
  EXPECT_THAT(current.err, HasSubstr("a CA rotation is under way"));
  // No new CA in the middle of a rotation.
  CommandResult new_ca =
      Certs({"init", "--cluster", "prod", "--nodes", "d", "--new-ca", "--force"});
  EXPECT_EQ(new_ca.exit_code, 1);
  EXPECT_THAT(new_ca.err, HasSubstr("finish it with `cloudha certs retire-ca`"));
  EXPECT_FALSE(Exists("pki/d.crt"));
  CommandResult both =
      Certs({"init", "--cluster", "prod", "--nodes", "d", "--new-ca", "--ca", "next"});
  EXPECT_EQ(both.exit_code, 1);
  CommandResult bad = Certs({"init", "--cluster", "prod", "--nodes", "d", "--ca", "newest"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("--ca must be current or next"));
}

TEST_F(CertsRotationTest, RetireCaWaitsForEveryNodeThenMovesTheOldCaAside) {
  CommandResult early = Certs({"retire-ca"});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_THAT(early.err, HasSubstr("no CA rotation is under way"));
  ASSERT_EQ(Certs({"rotate-ca"}).exit_code, 0);
  std::string next = Read("pki/ca-next.crt");
  std::string next_key = Read("pki/ca-next.key");
  ASSERT_EQ(Certs({"init", "--cluster", "prod", "--nodes", "a", "--ca", "next", "--force"})
                .exit_code,
            0);
  // b still has a certificate of the old CA: refused, nothing changed.
  CommandResult refused = Certs({"retire-ca"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr(out_ + "/b.crt is not issued by the new CA"));
  EXPECT_THAT(refused.err, HasSubstr("--nodes b --out " + out_ + " --ca next --force"));
  EXPECT_THAT(refused.err, HasSubstr("nothing was changed"));
  EXPECT_EQ(Read("pki/ca.crt"), old_ca_);
  EXPECT_EQ(Read("pki/ca-next.crt"), next);
  const std::string retired =
      "pki/retired-ca-" + CertificateFingerprint(old_ca_)->substr(7);
  EXPECT_FALSE(Exists(retired));

  ASSERT_EQ(Certs({"init", "--cluster", "prod", "--nodes", "b", "--ca", "next", "--force"})
                .exit_code,
            0);
  std::string old_key = Read("pki/ca.key");
  std::string bundle = Read("pki/ca-bundle.crt");
  CommandResult r = Certs({"retire-ca"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("install " + out_ + "/ca.crt as tls.ca_file on every node"));
  EXPECT_EQ(Read("pki/ca.crt"), next);
  EXPECT_EQ(Read("pki/ca.key"), next_key);
  EXPECT_EQ(Mode("pki/ca.key"), 0600);
  EXPECT_FALSE(Exists("pki/ca-next.crt"));
  EXPECT_FALSE(Exists("pki/ca-next.key"));
  EXPECT_FALSE(Exists("pki/ca-bundle.crt"));
  EXPECT_EQ(Mode(retired), 0700);
  EXPECT_EQ(Read(retired + "/ca.crt"), old_ca_);
  EXPECT_EQ(Read(retired + "/ca.key"), old_key);
  EXPECT_EQ(Read(retired + "/ca-bundle.crt"), bundle);
  EXPECT_TRUE(Verifies(Read("pki/ca.crt"), "a"));
  EXPECT_TRUE(Verifies(Read("pki/ca.crt"), "b"));
  // Adding a node now uses the new CA; and a next rotation can start.
  ASSERT_EQ(Certs({"init", "--cluster", "prod", "--nodes", "c"}).exit_code, 0);
  EXPECT_TRUE(Verifies(next, "c"));
  EXPECT_EQ(Certs({"rotate-ca"}).exit_code, 0);
}

TEST_F(CertsRotationTest, RetireCaWithForceLeavesOldNodesBehindAndSaysSo) {
  ASSERT_EQ(Certs({"rotate-ca"}).exit_code, 0);
  CommandResult r = Certs({"retire-ca", "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not issued by the new CA: their nodes will be refused"));
  EXPECT_FALSE(Verifies(Read("pki/ca.crt"), "a"));
}

TEST_F(CliTest, CheckConfigListsTheTrustedCasAndWarnsOfExpiry) {
  // The test cluster's certificates last a day: warned, not refused.
  Validity validity{absl::Now() - absl::Hours(1), absl::Hours(24 * 365)};
  PemPair next = CreateClusterCa("demo", validity).value();
  ASSERT_TRUE(WriteFileAtomically(cluster_.dir() + "/ca.crt",
                                  cluster_.ca().cert_pem + next.cert_pem, 0644,
                                  Overwrite::kReplace)
                  .ok());
  cluster_.WriteConfig("a");
  CommandResult r = cluster_.Cli({"check-config", cluster_.config_path("a")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("trusts 2 CAs"));
  EXPECT_THAT(r.out, HasSubstr(*CertificateFingerprint(next.cert_pem)));
  EXPECT_THAT(r.out, HasSubstr("(issued this node's certificate)"));
  EXPECT_THAT(r.err, HasSubstr("warning: this node's certificate (a, SHA256:"));
  EXPECT_THAT(r.err, HasSubstr("expires in 2"));  // 22 or 23 hours
  // A CA key in the bundle is a problem.
  ASSERT_TRUE(WriteFileAtomically(cluster_.dir() + "/ca.crt",
                                  cluster_.ca().cert_pem + cluster_.ca().key_pem, 0644,
                                  Overwrite::kReplace)
                  .ok());
  CommandResult bad = cluster_.Cli({"check-config", cluster_.config_path("a")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("entry 2 is a private key"));
}

TEST_F(CliTest, CheckConfig) {
  cluster_.WriteConfig("a");
  CommandResult good = cluster_.Cli({"check-config", cluster_.config_path("a")});
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_THAT(good.out, HasSubstr("ok (node a of cluster demo, 1 peer)"));

  std::string bad = cluster_.DefaultConfig("a") + "peers { id: \"a\" addresses: \"x\" }\n";
  cluster_.WriteConfig("a", bad);
  CommandResult r = cluster_.Cli({"check-config", cluster_.config_path("a")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr(cluster_.config_path("a") + ":10: peers[1].id \"a\" is this node's own id"));
  EXPECT_THAT(r.err, HasSubstr(cluster_.config_path("a") + ":10: peers[1].addresses[0] \"x\" has no port"));
  EXPECT_THAT(r.err, HasSubstr("2 problems"));

  CommandResult missing = cluster_.Cli({"check-config", cluster_.dir() + "/none.json"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("none.json:0: cannot open"));
}

TEST_F(CliTest, ShippedExampleConfigurationIsValid) {
  std::string example = ReadSmallFile(absl::StrCat(getenv("TEST_SRCDIR"), "/",
                                                   getenv("TEST_WORKSPACE"),
                                                   "/deploy/config/agent.textproto"))
                            .value_or("");
  ASSERT_FALSE(example.empty());
  ASSERT_EQ(cluster_.Cli({"certs", "init", "--cluster", "prod", "--nodes", "a,b", "--out",
                          cluster_.dir() + "/certs"})
                .exit_code,
            0);
  ASSERT_TRUE(WriteFileAtomically(cluster_.dir() + "/agent.textproto", example, 0644,
                                  Overwrite::kReplace)
                  .ok());
  CommandResult r = cluster_.Cli({"check-config", cluster_.dir() + "/agent.textproto"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CliTest, StatusWithoutAgentSaysWhy) {
  CommandResult r = cluster_.Cli({"status", "--socket", cluster_.dir() + "/nobody.sock"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot reach the agent at " + cluster_.dir() + "/nobody.sock"));
}

TEST_F(CliTest, SessionsPublishSendsJsonLinesToThePrimary) {
  for (const auto& [node, priority] : {std::pair<std::string, int>{"a", 200}, {"b", 100}}) {
    TestCluster::Settings settings;
    settings.priority = priority;
    settings.election = "hello_holddown_s: 1 failover_hold_s: 0";
    settings.extra = "sessions { pickup: true source: PUBLISHER pickup_connectionless: true }\n";
    cluster_.WriteConfig(node, cluster_.Config(node, settings));
    ASSERT_NE(cluster_.Start(node), nullptr);
  }
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.role() == v1::PRIMARY;
  })) << Logs(cluster_.agent("a"));
  ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
    return s.role() == v1::SECONDARY && s.sync_state() == v1::IN_SYNC;
  })) << Logs(cluster_.agent("b"));
  auto table_size = [&](const std::string& node, uint64_t size) {
    return cluster_.WaitFor(node, [size](const v1::StatusResponse& s) {
      return s.sessions().table_size() == size;
    });
  };
  auto write = [&](const std::string& name, const std::string& text) {
    ASSERT_TRUE(WriteFileAtomically(cluster_.dir() + "/" + name, text, 0644,
                                    Overwrite::kReplace)
                    .ok());
  };
  // 198.18.0.1:40000 -> 198.19.0.10:443 over TCP, and a UDP one in the
  // field names `cloudha sessions --json` prints; addresses are base64.
  write("sessions.jsonl",
        "{\"family\": \"IPV4\", \"l4Protocol\": 6, \"original\": {\"srcAddr\": \"xhIAAQ==\", "
        "\"dstAddr\": \"xhMACg==\", \"srcPort\": 40000, \"dstPort\": 443}, \"reply\": "
        "{\"srcAddr\": \"xhMACg==\", \"dstAddr\": \"xhIAAQ==\", \"srcPort\": 443, \"dstPort\": "
        "40000}, \"tcpState\": \"TCP_ESTABLISHED\", \"timeoutS\": 600}\n"
        "\n"
        "{\"family\":\"IPV4\",\"l4_protocol\":17,\"original\":{\"src_addr\":\"xhIAAg==\","
        "\"dst_addr\":\"xhMACg==\",\"src_port\":5353,\"dst_port\":53},\"reply\":{\"src_addr\":"
        "\"xhMACg==\",\"dst_addr\":\"xhIAAg==\",\"src_port\":53,\"dst_port\":5353},"
        "\"timeout_s\":600}\n");
  CommandResult published = cluster_.Cli(
      {"sessions", "publish", cluster_.dir() + "/sessions.jsonl", "--socket",
       cluster_.socket("a")});
  ASSERT_EQ(published.exit_code, 0) << published.err;
  EXPECT_EQ(published.out, "published 2, refused 0\n");
  EXPECT_TRUE(table_size("b", 2)) << Logs(cluster_.agent("b"));
  CommandResult listed = cluster_.Cli({"sessions", "--filter", "proto=tcp", "--socket",
                                       cluster_.socket("b")});
  EXPECT_THAT(listed.out, HasSubstr("tcp ESTABLISHED"));
  EXPECT_THAT(listed.out, HasSubstr("src=198.18.0.1 dst=198.19.0.10 sport=40000 dport=443"));

  // A delete, from standard input.
  write("delete.jsonl",
        "{\"delete\": {\"family\": \"IPV4\", \"l4_protocol\": 17, \"original\": {\"src_addr\": "
        "\"xhIAAg==\", \"dst_addr\": \"xhMACg==\", \"src_port\": 5353, \"dst_port\": 53}}}\n");
  CommandResult deleted =
      RunCommand({"/bin/sh", "-c",
                  absl::StrCat(CloudhaBinary(), " sessions --socket ", cluster_.socket("a"),
                               " publish < ", cluster_.dir(), "/delete.jsonl")},
                 cluster_.dir());
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "published 1, refused 0\n");
  EXPECT_TRUE(table_size("b", 1)) << Logs(cluster_.agent("b"));

  // A bad line anywhere: its number, and nothing sent. (The first line has
  // no reply tuple: the original reversed, as `conntrack -I` does.)
  write("bad.jsonl",
        "{\"family\": \"IPV4\", \"l4_protocol\": 6, \"original\": {\"src_addr\": \"xhIAAg==\", "
        "\"dst_addr\": \"xhMACg==\", \"src_port\": 1, \"dst_port\": 2}, \"timeout_s\": 60}\n"
        "{\"family\": \"IPV4\", \"l4_protocol\": 6, \"original\": {\"src_addr\": \"xhIA\"}}\n");
  CommandResult bad = cluster_.Cli(
      {"sessions", "publish", cluster_.dir() + "/bad.jsonl", "--socket", cluster_.socket("a")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr(cluster_.dir() + "/bad.jsonl:2: "));
  EXPECT_THAT(bad.err, HasSubstr("nothing was sent"));
  write("bad.jsonl", "{\"delete\": {}}\nsrc=198.18.0.1\n");
  bad = cluster_.Cli(
      {"sessions", "publish", cluster_.dir() + "/bad.jsonl", "--socket", cluster_.socket("a")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("bad.jsonl:1: delete: "));
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->sessions().table_size(), 1u);

  // The secondary sends the publisher to the primary.
  CommandResult secondary = cluster_.Cli(
      {"sessions", "publish", cluster_.dir() + "/sessions.jsonl", "--socket",
       cluster_.socket("b")});
  EXPECT_EQ(secondary.exit_code, 1);
  EXPECT_THAT(secondary.err, HasSubstr("publish to the primary (a)"));
}

TEST_F(CliTest, ArgumentErrors) {
  EXPECT_EQ(cluster_.Cli({}).exit_code, 1);
  EXPECT_EQ(cluster_.Cli({"frobnicate"}).exit_code, 1);
  EXPECT_EQ(cluster_.Cli({"agent"}).exit_code, 1);
  CommandResult help = cluster_.Cli({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("check-config"));
  EXPECT_EQ(cluster_.Cli({"status", "--socket", "x", "--config", "y"}).exit_code, 1);
}

}  // namespace
}  // namespace cloudha
