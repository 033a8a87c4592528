// `cloudha agent` refuses to start, with a clear message and a non-zero exit,
// on a bad configuration, bad TLS material, a port in use or an admin socket
// in use; and it loses nothing of the agent already running.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "base/secure_file.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

class AgentStartupTest : public ::testing::Test {
 protected:
  CommandResult RunAgentWith(const std::string& config) {
    cluster_.WriteConfig("a", config);
    return cluster_.Cli({"agent", "--config", cluster_.config_path("a")});
  }

  TestCluster cluster_{{"a", "b"}};
};

TEST_F(AgentStartupTest, BadConfigurationExitsTwoWithFileAndLine) {
  std::string config =
      absl::StrReplaceAll(cluster_.DefaultConfig("a"), {{"interval_ms: 100", "interval_ms: 5"}});
  CommandResult r = RunAgentWith(config);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat(cluster_.config_path("a"), ":6: heartbeat.interval_ms "
                                            "must be 10..60000, got 5")));
  EXPECT_THAT(r.err, HasSubstr("refusing to start"));
}

TEST_F(AgentStartupTest, SyntaxErrorExitsTwo) {
  CommandResult r = RunAgentWith("cluster { name: \"demo\" \nnode {");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr(cluster_.config_path("a") + ":"));
}

TEST_F(AgentStartupTest, KeyOfAnotherCertificateExitsTwo) {
  CommandResult r = RunAgentWith(
      absl::StrReplaceAll(cluster_.DefaultConfig("a"), {{"key_file: \"a.key\"", "key_file: \"b.key\""}}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("b.key: the private key does not belong to the certificate"));
}

TEST_F(AgentStartupTest, MissingCertificateExitsTwo) {
  unlink((cluster_.dir() + "/a.crt").c_str());
  CommandResult r = RunAgentWith(cluster_.DefaultConfig("a"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("a.crt: No such file or directory"));
}

TEST_F(AgentStartupTest, PortInUseExitsOne) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(cluster_.port("a"));
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  CommandResult r = RunAgentWith(cluster_.DefaultConfig("a"));
  close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("cannot listen on listen 127.0.0.1:", cluster_.port("a"),
                                            ": Address already in use")));
}

TEST_F(AgentStartupTest, MetricsPortInUseExitsOneNamingIt) {
  int busy = PickUnusedPort();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(busy);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  CommandResult r = RunAgentWith(absl::StrCat(cluster_.DefaultConfig("a"),
                                              "metrics { listen: \"127.0.0.1:", busy, "\" }\n"));
  close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("metrics.listen: cannot listen on 127.0.0.1:", busy)));
}

TEST_F(AgentStartupTest, SecondAgentOnTheSameSocketExitsOneAndTheFirstKeepsRunning) {
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse&) { return true; }));
  // Same node, other ports, same admin socket.
  std::string config = absl::StrReplaceAll(
      cluster_.DefaultConfig("a"),
      {{absl::StrCat(":", cluster_.port("a"), "\""), absl::StrCat(":", PickUnusedPort(), "\"")},
       {absl::StrCat(":", cluster_.health_port("a"), "\""),
        absl::StrCat(":", PickUnusedPort(), "\"")}});
  WriteFileAtomically(cluster_.dir() + "/a2.textproto", config, 0644, Overwrite::kReplace)
      .IgnoreError();
  CommandResult r = cluster_.Cli({"agent", "--config", cluster_.dir() + "/a2.textproto"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is in use by another running agent"));
  EXPECT_TRUE(cluster_.agent("a")->Running());
  EXPECT_TRUE(cluster_.Status("a").ok());
}

TEST_F(AgentStartupTest, StaleSocketFromACrashIsReplaced) {
  ASSERT_NE(cluster_.Start("a"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse&) { return true; }));
  cluster_.Kill("a", SIGKILL);
  cluster_.agent("a")->Wait(absl::Seconds(10));
  ASSERT_EQ(access(cluster_.socket("a").c_str(), F_OK), 0) << "a crash leaves the socket";
  ASSERT_NE(cluster_.Start("a"), nullptr);
  EXPECT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse&) { return true; }))
      << Logs(cluster_.agent("a"));
}

}  // namespace
}  // namespace cloudha
