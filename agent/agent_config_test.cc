#include "agent/agent_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "crypto/certificate_authority.h"
#include "base/secure_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class ConfigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(absl::StrCat(getenv("TEST_TMPDIR"), "/agent_config_test"));
    mkdir(dir_->c_str(), 0755);
    mkdir((*dir_ + "/certs").c_str(), 0755);
    Validity validity{kNow - absl::Hours(1), absl::Hours(48)};
    PemPair ca = *CreateClusterCa("demo", validity);
    Write("certs/ca.crt", ca.cert_pem);
    for (const char* node : {"a", "b"}) {
      PemPair pair = *IssueNodeCertificate(ca, {"demo", node}, validity);
      Write(absl::StrCat("certs/", node, ".crt"), pair.cert_pem);
      Write(absl::StrCat("certs/", node, ".key"), pair.key_pem);
    }
  }

  static void Write(const std::string& name, const std::string& content) {
    ASSERT_TRUE(
        WriteFileAtomically(*dir_ + "/" + name, content, 0600, Overwrite::kReplace).ok());
  }

  static std::string Good() {
    return R"(cluster { name: "demo" group_id: 7 }
node { id: "a" priority: 200 }
listen: "127.0.0.1:7801"
peers { id: "b" addresses: "127.0.0.1:7802" }
tls { ca_file: "certs/ca.crt" cert_file: "certs/a.crt" key_file: "certs/a.key" }
heartbeat { interval_ms: 200 lost_threshold: 6 }
admin { socket: "/tmp/cloudha-config-test.sock" }
health { listen: "127.0.0.1:7901" }
state_dir: "state/a"
)";
  }

  LoadedConfig Parse(const std::string& text, const std::string& name = "a.textproto") {
    return ParseAgentConfig(*dir_ + "/" + name, text, kNow);
  }

  static std::string* dir_;
};

std::string* ConfigTest::dir_ = nullptr;

TEST_F(ConfigTest, GoodTextprotoResolvesPathsAndFillsDefaults) {
  LoadedConfig loaded = Parse(absl::StrReplaceAll(Good(), {{"heartbeat { interval_ms: 200 lost_threshold: 6 }\n", ""}}));
  ASSERT_THAT(loaded.problems, IsEmpty()) << loaded.problems[0].ToString();
  EXPECT_EQ(loaded.config.tls().ca_file(), *dir_ + "/certs/ca.crt");
  EXPECT_EQ(loaded.config.admin().socket(), "/tmp/cloudha-config-test.sock");
  EXPECT_EQ(loaded.config.state_dir(), *dir_ + "/state/a");
  EXPECT_EQ(loaded.config.heartbeat().interval_ms(), kDefaultIntervalMs);
  EXPECT_EQ(loaded.config.heartbeat().lost_threshold(), kDefaultLostThreshold);
  EXPECT_EQ(loaded.config.node().priority(), 200u);
}

TEST_F(ConfigTest, ConfigSyncDefaultsAndResolves) {
  LoadedConfig loaded = Parse(Good() +
                              "config_sync { exclude: \"system.interface.**\" "
                              "exclude: \"system.hostname\" "
                              "on_change { prefix: \"firewall.\" command: \"/bin/true\" } }\n");
  ASSERT_THAT(loaded.problems, IsEmpty()) << loaded.problems[0].ToString();
  EXPECT_EQ(loaded.config.config_sync().store_file(), *dir_ + "/state/a/config.db");
  EXPECT_EQ(loaded.config.config_sync().on_change(0).timeout_ms(), 30000u);
  EXPECT_EQ(loaded.config.config_sync().exclude_size(), 2);
}

TEST_F(ConfigTest, GoodJson) {
  LoadedConfig loaded = Parse(R"({
  "cluster": {"name": "demo", "groupId": 7},
  "node": {"id": "a"},
  "listen": "127.0.0.1:7801",
  "peers": [{"id": "b", "addresses": ["127.0.0.1:7802", "127.0.0.2:7802"]}],
  "tls": {"caFile": "certs/ca.crt", "certFile": "certs/a.crt", "keyFile": "certs/a.key"}
})", "a.json");
  ASSERT_THAT(loaded.problems, IsEmpty()) << loaded.problems[0].ToString();
  EXPECT_EQ(loaded.config.node().priority(), kDefaultPriority);
  EXPECT_EQ(loaded.config.admin().socket(), kDefaultAdminSocket);
  EXPECT_EQ(loaded.config.peers(0).addresses_size(), 2);
}

TEST_F(ConfigTest, MetricsMayPickItsPortOthersMayNot) {
  LoadedConfig loaded = Parse(Good() + "metrics { listen: \"127.0.0.1:0\" }\n");
  EXPECT_TRUE(loaded.problems.empty()) << loaded.problems[0].ToString();
  loaded = Parse(absl::StrReplaceAll(Good(), {{"health { listen: \"127.0.0.1:7901\" }",
                                               "health { listen: \"127.0.0.1:0\" }"}}));
  ASSERT_EQ(loaded.problems.size(), 1u);
  EXPECT_THAT(loaded.problems[0].message, HasSubstr("outside 1..65535"));
}

TEST_F(ConfigTest, SyntaxErrorHasTheLine) {
  LoadedConfig loaded = Parse("cluster { name: \"demo\" }\nnode { id: \"a\" \nlisten: 5\n");
  ASSERT_FALSE(loaded.problems.empty());
  EXPECT_EQ(loaded.problems[0].line, 3);
  EXPECT_THAT(loaded.problems[0].ToString(), HasSubstr("a.textproto:3: "));
}

TEST_F(ConfigTest, UnknownFieldHasTheLine) {
  LoadedConfig loaded = Parse(Good() + "bogus_field: 1\n");
  ASSERT_EQ(loaded.problems.size(), 1u);
  EXPECT_EQ(loaded.problems[0].line, 10);
  EXPECT_THAT(loaded.problems[0].message, HasSubstr("bogus_field"));
}

// A textproto escape makes a string that is not UTF-8; the agent then
// could not send the status carrying it ("cannot reach the agent").
TEST_F(ConfigTest, StringsThatAreNotUtf8AreRefusedWithTheirLine) {
  LoadedConfig loaded =
      Parse(Good() + "monitors { name: \"up\\377link\" tcp { address: \"127.0.0.1:1\" } }\n");
  ASSERT_EQ(loaded.problems.size(), 1u) << loaded.problems[0].ToString();
  EXPECT_EQ(loaded.problems[0].message, "monitors[0].name is not valid UTF-8");
  EXPECT_EQ(loaded.problems[0].line, 10);
  loaded = Parse(Good() + "config_sync { exclude: \"ok.**\" exclude: \"a\\300\" }\n");
  ASSERT_FALSE(loaded.problems.empty());
  EXPECT_EQ(loaded.problems[0].message, "config_sync.exclude[1] is not valid UTF-8");
}

struct BadCase {
  const char* from;
  const char* to;
  int line;
  const char* message;
};

TEST_F(ConfigTest, SemanticErrorsNameFieldAndLine) {
  const BadCase cases[] = {
      {"name: \"demo\"", "name: \"Demo!\"", 1, "cluster.name"},
      {"group_id: 7", "group_id: 70000", 1, "cluster.group_id must be 0..65535, got 70000"},
      {"priority: 200", "priority: 300", 2, "node.priority must be 0..255"},
      {"listen: \"127.0.0.1:7801\"", "listen: \"127.0.0.1\"", 3, "has no port"},
      {"id: \"b\"", "id: \"a\"", 4, "is this node's own id"},
      {"addresses: \"127.0.0.1:7802\"", "addresses: \"127.0.0.1:99999\"", 4, "outside 1..65535"},
      {"interval_ms: 200", "interval_ms: 0", 6,
       "heartbeat.interval_ms must be 10..60000, got 0"},
      {"lost_threshold: 6", "lost_threshold: 61", 6, "heartbeat.lost_threshold must be 1..60"},
      {"cert_file: \"certs/a.crt\" key_file: \"certs/a.key\"",
       "cert_file: \"certs/b.crt\" key_file: \"certs/b.key\"", 5, "is for node \"b\""},
      {"key_file: \"certs/a.key\"", "key_file: \"certs/b.key\"", 5,
       "b.key: the private key does not belong to the certificate"},
      {"ca_file: \"certs/ca.crt\"", "ca_file: \"certs/none.crt\"", 5, "none.crt"},
      {"health { listen: \"127.0.0.1:7901\" }", "health { listen: \"127.0.0.1:7801\" }", 8,
       "never accepts plaintext"},
      {"health { listen: \"127.0.0.1:7901\" }",
       "health { listen: \"127.0.0.1:7901\" http_listen: \"127.0.0.1:7901\" }", 8,
       "health.http_listen must differ from health.listen: each listener needs a port"},
      {"health { listen: \"127.0.0.1:7901\" }",
       "health { listen: \"127.0.0.1:7901\" tcp_primary_listen: \"127.0.0.1:7801\" }", 8,
       "health.tcp_primary_listen must differ from listen: the peer port never accepts"},
      {"health { listen: \"127.0.0.1:7901\" }",
       "health { listen: \"127.0.0.1:7901\" http_listen: \"127.0.0.1\" }", 8, "has no port"},
      {"health { listen: \"127.0.0.1:7901\" }",
       "health { listen: \"127.0.0.1:7901\" }\nmetrics { listen: \"127.0.0.1:7901\" }", 9,
       "metrics.listen must differ from health.listen: each listener needs a port"},
      {"health { listen: \"127.0.0.1:7901\" }",
       "health { listen: \"127.0.0.1:7901\" }\nmetrics { listen: \"127.0.0.1:7801\" }", 9,
       "metrics.listen must differ from listen: the peer port never accepts plaintext"},
      {"health { listen: \"127.0.0.1:7901\" }",
       "health { listen: \"127.0.0.1:7901\" }\nmetrics { listen: \"127.0.0.1:99999\" }", 9,
       "outside 1..65535"},
      {"health { listen: \"127.0.0.1:7901\" }",
       "health { listen: \"127.0.0.1:7901\" }\n"
       "sessions { pickup: true source: PUBLISHER commit: CONTINUOUS }",
       9, "sessions.commit CONTINUOUS writes into the kernel's conntrack table: it needs"},
  };
  for (const BadCase& c : cases) {
    std::string text = absl::StrReplaceAll(Good(), {{c.from, c.to}});
    ASSERT_NE(text, Good()) << c.from;
    LoadedConfig loaded = Parse(text);
    ASSERT_EQ(loaded.problems.size(), 1u) << c.to;
    EXPECT_EQ(loaded.problems[0].line, c.line) << c.to << ": " << loaded.problems[0].ToString();
    EXPECT_THAT(loaded.problems[0].message, HasSubstr(c.message)) << c.to;
  }
}

TEST_F(ConfigTest, RecheckIsForPrimaryHooksWithinItsRange) {
  LoadedConfig ok = Parse(Good() + "hooks { on: TO_PRIMARY command: \"/bin/true\" recheck_s: 60 }\n");
  EXPECT_TRUE(ok.problems.empty()) << ok.problems[0].ToString();
  LoadedConfig wrong_event =
      Parse(Good() + "hooks { on: TO_SECONDARY command: \"/bin/true\" recheck_s: 60 }\n");
  ASSERT_EQ(wrong_event.problems.size(), 1u);
  EXPECT_THAT(wrong_event.problems[0].message,
              HasSubstr("hooks[0].recheck_s is for TO_PRIMARY hooks only"));
  LoadedConfig too_often =
      Parse(Good() + "hooks { on: TO_PRIMARY command: \"/bin/true\" recheck_s: 2 }\n");
  ASSERT_EQ(too_often.problems.size(), 1u);
  EXPECT_THAT(too_often.problems[0].message, HasSubstr("hooks[0].recheck_s"));
}

TEST_F(ConfigTest, EtcdArbiterResolvesItsTlsFiles) {
  LoadedConfig loaded = Parse(Good() + R"(arbiter {
  etcd {
    endpoints: "198.18.3.1:2379" endpoints: "198.18.3.2:2379"
    tls { ca_file: "certs/ca.crt" cert_file: "certs/a.crt" key_file: "certs/a.key" }
    server_name: "etcd.demo.cloudha"
  }
})");
  ASSERT_THAT(loaded.problems, IsEmpty()) << loaded.problems[0].ToString();
  const v1::EtcdArbiterConfig& etcd = loaded.config.arbiter().etcd();
  EXPECT_EQ(etcd.tls().ca_file(), *dir_ + "/certs/ca.crt");
  EXPECT_EQ(etcd.tls().cert_file(), *dir_ + "/certs/a.crt");
  EXPECT_EQ(etcd.tls().key_file(), *dir_ + "/certs/a.key");
  EXPECT_EQ(loaded.config.arbiter().lease_ttl_ms(), 2000u);
  // Plaintext, said so; a prefix of one's own; no client certificate.
  for (const char* good :
       {"arbiter { etcd { endpoints: \"127.0.0.1:2379\" plaintext: true } lease_ttl_ms: 3000 }",
        "arbiter { etcd { endpoints: \"127.0.0.1:2379\" plaintext: true prefix: \"/ha/x\" } }",
        "arbiter { etcd { endpoints: \"127.0.0.1:2379\" tls { ca_file: \"certs/ca.crt\" } } }"}) {
    LoadedConfig ok = Parse(Good() + good + "\n");
    EXPECT_THAT(ok.problems, IsEmpty()) << good << ": " << ok.problems[0].ToString();
  }
}

TEST_F(ConfigTest, BadEtcdArbiterSettings) {
  const std::string plain = "endpoints: \"127.0.0.1:2379\" plaintext: true";
  const std::string ca = "endpoints: \"127.0.0.1:2379\" tls { ca_file: \"certs/ca.crt\" ";
  const std::pair<std::string, const char*> cases[] = {
      {"etcd { endpoints: \"127.0.0.1:2379\" }", "needs tls { ca_file"},
      {"etcd { " + plain + " } witness { addresses: \"127.0.0.1:1\" }", "not both"},
      {"etcd { plaintext: true }", "1 to 5 endpoints, got 0"},
      {"etcd { endpoints: \"etcd\" plaintext: true }", "arbiter.etcd.endpoints[0] \"etcd\" has no port"},
      {"etcd { " + plain + " } lease_ttl_ms: 2500", "whole seconds of at least 2000 with etcd, got 2500"},
      {"etcd { " + plain + " } lease_ttl_ms: 1000", "whole seconds of at least 2000 with etcd, got 1000"},
      {"etcd { " + plain + " tls { ca_file: \"certs/ca.crt\" } }", "plaintext excludes tls"},
      {"etcd { " + ca + "cert_file: \"certs/a.crt\" } }", "cert_file and key_file together"},
      {"etcd { endpoints: \"127.0.0.1:2379\" tls { ca_file: \"certs/none.crt\" } }",
       "arbiter.etcd.tls.ca_file: "},
      {"etcd { " + ca + "cert_file: \"certs/a.crt\" key_file: \"certs/ca.crt\" } }",
       "arbiter.etcd.tls.key_file: " },
      {"etcd { " + plain + " prefix: \"cloudha\" }", "must start with '/'"},
      {"etcd { " + plain + " prefix: \"/cloudha/\" }", "not end with '/'"},
      {"etcd { " + ca + "} server_name: \"etcd one\" }", "is not a host name"},
  };
  for (const auto& [arbiter, message] : cases) {
    LoadedConfig loaded = Parse(Good() + "arbiter { " + arbiter + " }\n");
    ASSERT_EQ(loaded.problems.size(), 1u) << arbiter;
    EXPECT_EQ(loaded.problems[0].line, 10) << loaded.problems[0].ToString();
    EXPECT_THAT(loaded.problems[0].message, HasSubstr(message)) << arbiter;
  }
  LoadedConfig missing = Parse(Good() +
      "arbiter { etcd { endpoints: \"127.0.0.1:2379\" tls { ca_file: \"certs/none.crt\" } } }\n");
  ASSERT_EQ(missing.problems.size(), 1u);
  EXPECT_THAT(missing.problems[0].message, HasSubstr("certs/none.crt"));
}

TEST_F(ConfigTest, MonitorsHooksAndElection) {
  std::string good = Good() +
                     "election { override: true failover_hold_s: 30 }\n"
                     "monitors { name: \"up\" tcp { address: \"10.0.0.1:443\" } }\n"
                     "monitors { name: \"app\" exec { command: \"/bin/true\" } weight: 5 }\n"
                     "monitors { name: \"eth0\" interface { name: \"eth0\" } }\n"
                     "hooks { on: TO_PRIMARY command: \"/bin/true\" command: \"x\" }\n";
  LoadedConfig loaded = Parse(good);
  ASSERT_THAT(loaded.problems, IsEmpty()) << loaded.problems[0].ToString();
  const auto& c = loaded.config;
  EXPECT_TRUE(c.election().override());
  EXPECT_EQ(c.election().hello_holddown_s(), kDefaultHelloHolddownS);
  EXPECT_EQ(c.monitors(0).rise(), 2u);
  EXPECT_EQ(c.monitors(0).fall(), 3u);
  EXPECT_EQ(c.monitors(0).weight(), 10u);
  EXPECT_EQ(c.monitors(1).weight(), 5u);
  EXPECT_EQ(c.hooks(0).retries(), 2u);
  EXPECT_EQ(c.hooks(0).timeout_ms(), 30000u);
}

TEST_F(ConfigTest, BadMonitorsAndHooks) {
  const BadCase cases[] = {
      {"", "monitors { name: \"m\" }", 10, "monitors[0] needs one check"},
      {"", "monitors { tcp { address: \"x:1\" } }", 10, "monitors[0].name is required"},
      {"", "monitors { name: \"m\" tcp { address: \"nope\" } }", 10, "has no port"},
      {"", "monitors { name: \"m\" exec { command: \"ping\" } }", 10,
       "monitors[0].exec.command[0] \"ping\" must be a path"},
      {"", "monitors { name: \"m\" exec { command: \"/no/such\" } }", 10,
       "/no/such is not an executable file"},
      {"", "monitors { name: \"m\" interface { name: \"eth0\" } fall: 0 }", 10,
       "monitors[0].fall must be 1..100, got 0"},
      {"", "hooks { command: \"/bin/true\" }", 10, "hooks[0].on is required"},
      {"", "hooks { on: TO_FAULT }", 10, "hooks[0].command is empty"},
      {"", "hooks { on: TO_FAULT command: \"/bin/true\" retries: 11 }", 10,
       "hooks[0].retries must be 0..10"},
      {"", "election { failover_hold_s: 4000 }", 10, "election.failover_hold_s must be 0..3600"},
      {"", "config_sync { exclude: \"system..hostname\" }", 10, "config_sync.exclude[0]"},
      {"", "config_sync { exclude: \"system.*x\" }", 10, "config_sync.exclude[0]"},
      {"", "config_sync { exclude: \"a.b\" exclude: \"a.b\" }", 10, "appears twice"},
      {"", "config_sync { on_change { prefix: \"firewall.\" } }", 10,
       "config_sync.on_change[0].command is empty"},
      {"", "config_sync { on_change { command: \"reload\" } }", 10,
       "config_sync.on_change[0].command[0] \"reload\" must be a path"},
  };
  for (const BadCase& c : cases) {
    LoadedConfig loaded = Parse(Good() + c.to + "\n");
    ASSERT_EQ(loaded.problems.size(), 1u) << c.to << ": " << loaded.problems[0].ToString();
    EXPECT_EQ(loaded.problems[0].line, c.line) << c.to;
    EXPECT_THAT(loaded.problems[0].message, HasSubstr(c.message)) << c.to;
  }
  LoadedConfig dup = Parse(Good() + "monitors { name: \"m\" tcp { address: \"x:1\" } }\n" +
                           "monitors { name: \"m\" tcp { address: \"x:2\" } }\n");
  ASSERT_EQ(dup.problems.size(), 1u);
  EXPECT_THAT(dup.problems[0].message, HasSubstr("appears twice"));
}

TEST_F(ConfigTest, DuplicatePeersAndMissingSections) {
  LoadedConfig dup = Parse(Good() + "peers { id: \"b\" addresses: \"127.0.0.1:7803\" }\n");
  ASSERT_EQ(dup.problems.size(), 1u) << dup.problems[1].ToString();
  EXPECT_EQ(dup.problems[0].line, 10);
  EXPECT_THAT(dup.problems[0].message, HasSubstr("appears twice"));

  LoadedConfig empty = Parse("");
  EXPECT_GE(empty.problems.size(), 4u);
  for (const ConfigProblem& p : empty.problems) EXPECT_EQ(p.line, 0) << p.ToString();
}

TEST_F(ConfigTest, UnknownExtensionAndMissingFile) {
  LoadedConfig yaml = Parse(Good(), "a.yaml");
  ASSERT_EQ(yaml.problems.size(), 1u);
  EXPECT_THAT(yaml.problems[0].message, HasSubstr(".textproto, .txtpb or .json"));
  LoadedConfig missing = LoadAgentConfig(*dir_ + "/nope.textproto", kNow);
  ASSERT_EQ(missing.problems.size(), 1u);
  EXPECT_THAT(missing.problems[0].ToString(), HasSubstr("nope.textproto:0: "));
}

TEST_F(ConfigTest, BadJsonIsRefused) {
  LoadedConfig loaded = Parse("{\"cluster\": ", "a.json");
  ASSERT_EQ(loaded.problems.size(), 1u);
  EXPECT_THAT(loaded.problems[0].message, HasSubstr("JSON"));
}

TEST_F(ConfigTest, SessionsNetnsIsAConntrackNamespaceThatExists) {
  const std::string missing = absl::StrCat("cloudha-config-test-", getpid());
  const struct {
    std::string sessions;
    std::string message;
  } cases[] = {
      {"source: PUBLISHER netns: \"blue\"",
       "sessions.netns needs sessions.source CONNTRACK"},
      {"source: CONNTRACK netns: \"a/b\"", "sessions.netns: network namespace name \"a/b\" holds"},
      {"source: CONNTRACK netns: \"..\"", "must not start with '.' or '-'"},
      {"source: CONNTRACK netns: \"-n\"", "must not start with '.' or '-'"},
      {absl::StrCat("source: CONNTRACK netns: \"", missing, "\""),
       absl::StrCat("sessions.netns ", missing, ": /run/netns/", missing,
                    " does not exist (ip netns add ", missing, ")")},
  };
  for (const auto& c : cases) {
    LoadedConfig loaded = Parse(Good() + "sessions { pickup: true " + c.sessions + " }\n");
    ASSERT_EQ(loaded.problems.size(), 1u) << c.sessions;
    EXPECT_EQ(loaded.problems[0].line, 10) << c.sessions;
    EXPECT_THAT(loaded.problems[0].message, HasSubstr(c.message)) << c.sessions;
  }
}

TEST_F(ConfigTest, SessionsNetnsThatExistsIsAccepted) {
  // What the check looks for is the name `ip netns add` leaves in
  // /run/netns; a file of that name stands in for one here.
  const std::string name = absl::StrCat("cloudha-config-test-ok-", getpid());
  const std::string path = "/run/netns/" + name;
  const bool made_dir = mkdir("/run/netns", 0755) == 0;
  if (!WriteFileAtomically(path, "", 0600, Overwrite::kRefuse).ok()) {
    GTEST_SKIP() << "cannot write " << path << " (needs root)";
  }
  LoadedConfig loaded = Parse(Good() + "sessions { pickup: true source: CONNTRACK netns: \"" +
                              name + "\" }\n");
  unlink(path.c_str());
  if (made_dir) rmdir("/run/netns");
  ASSERT_THAT(loaded.problems, IsEmpty()) << loaded.problems[0].ToString();
  EXPECT_EQ(loaded.config.sessions().netns(), name);
}

TEST(HostPortTest, Forms) {
  EXPECT_EQ(ParseHostPort("x", "[::1]:80")->host, "::1");
  EXPECT_EQ(ParseHostPort("x", "host.example:443")->port, 443);
  EXPECT_FALSE(ParseHostPort("x", "::1:80").ok());
  EXPECT_FALSE(ParseHostPort("x", ":80").ok());
  EXPECT_FALSE(ParseHostPort("x", "[::1]80").ok());
}

}  // namespace
}  // namespace cloudha
