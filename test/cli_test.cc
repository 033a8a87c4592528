// The `cloudha` command line: certs init, check-config, and client errors.
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
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
