// metrics.listen on a real pair over mutual TLS: the scrape passes
// `promtool check metrics` (when ./test.sh unpacked promtool), and its values
// agree with `cloudha status --json` before and after a config write, a
// refused write, a stranger's refused connection, a hook that fails and a
// failover (kill -9 of the primary).
#include <signal.h>

#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/probe_client.h"
#include "base/secure_file.h"
#include "cloudha/v1/admin.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "test/subprocess.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

// "name{labels}" -> value, from the text format (comments left out).
using Samples = std::map<std::string, double>;

Samples Parse(const std::string& text) {
  Samples samples;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    size_t space = line.rfind(' ');
    double value = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtod(line.substr(space + 1), &value)) {
      ADD_FAILURE() << "not a sample line: " << line;
      continue;
    }
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

// The sum of every series of `name` whose labels contain all of `parts`.
double Sum(const Samples& samples, const std::string& name,
           const std::vector<std::string>& parts = {}) {
  double sum = 0;
  for (const auto& [series, value] : samples) {
    if (!absl::StartsWith(series, name + "{") && series != name) continue;
    bool all = true;
    for (const std::string& part : parts) all = all && absl::StrContains(series, part);
    if (all) sum += value;
  }
  return sum;
}

class MetricsScrapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // c is a stranger to a and b (its certificate is from their CA, but
    // neither lists it): it dials a, which refuses it.
    for (const std::string node : {"a", "b", "c"}) {
      TestCluster::Settings settings;
      settings.priority = node == "a" ? 200 : 100;
      settings.election = "hello_holddown_s: 1 failover_hold_s: 0";
      settings.peers = node == "a" ? std::vector<std::string>{"b"}
                       : node == "b" ? std::vector<std::string>{"a"}
                                     : std::vector<std::string>{"a"};
      // Port 0: the agent picks a free one and its status says which (no
      // race with other tests for a port picked beforehand).
      settings.extra =
          "metrics { listen: \"127.0.0.1:0\" }\nsessions { pickup: true source: PUBLISHER }\n";
      if (node == "b") {
        std::string hook = absl::StrCat(cluster_.dir(), "/peer-lost.sh");
        ASSERT_TRUE(WriteFileAtomically(hook, "#!/bin/sh\necho cannot reach the cloud API >&2\nexit 3\n",
                                        0755, Overwrite::kReplace)
                        .ok());
        absl::StrAppend(&settings.extra, "hooks { on: PEER_LOST command: \"", hook,
                        "\" retries: 0 }\n");
      }
      cluster_.WriteConfig(node, cluster_.Config(node, settings));
    }
    ASSERT_NE(cluster_.Start("a"), nullptr);
    ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
      return s.role() == v1::PRIMARY && s.primary_ready();
    })) << Logs(cluster_.agent("a"));
    ASSERT_NE(cluster_.Start("b"), nullptr);
    ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.role() == v1::SECONDARY && s.primary() == "a" && s.sync_state() == v1::IN_SYNC;
    })) << Logs(cluster_.agent("b"));
    ASSERT_NO_FATAL_FAILURE(LearnMetricsPort("a"));
    ASSERT_NO_FATAL_FAILURE(LearnMetricsPort("b"));
    // Both directions' paths carry hellos (a redials b with a backoff).
    for (const std::string node : {"a", "b"}) {
      ASSERT_TRUE(cluster_.WaitFor(node, [](const v1::StatusResponse& s) {
        return s.peers_size() == 1 && s.peers(0).paths_size() == 1 &&
               s.peers(0).paths(0).state() == v1::PeerStatus::UP;
      })) << Logs(cluster_.agent(node));
    }
  }

  // The port `node` picked for metrics.listen, from its status (and as
  // `cloudha status` prints it).
  void LearnMetricsPort(const std::string& node) {
    absl::StatusOr<v1::StatusResponse> s = cluster_.Status(node);
    ASSERT_TRUE(s.ok()) << s.status();
    const std::string prefix = "127.0.0.1:";
    ASSERT_TRUE(absl::StartsWith(s->metrics_listen(), prefix)) << s->metrics_listen();
    ASSERT_TRUE(absl::SimpleAtoi(s->metrics_listen().substr(prefix.size()), &metrics_port_[node]));
    ASSERT_GT(metrics_port_[node], 0);
    CommandResult r = cluster_.Cli({"status", "--socket", cluster_.socket(node)});
    EXPECT_THAT(r.out, ::testing::HasSubstr(
                           absl::StrCat("metrics http://127.0.0.1:", metrics_port_[node], "/metrics")));
  }

  std::string Scrape(const std::string& node) {
    ProbeAnswer answer = ProbeRequest(metrics_port_.at(node), "GET", "/metrics");
    EXPECT_EQ(answer.code, 200) << node << ": " << answer.body;
    // "# TYPE NAME TYPE" lines: every family any scrape showed.
    for (absl::string_view line : absl::StrSplit(answer.body, '\n', absl::SkipEmpty())) {
      if (absl::ConsumePrefix(&line, "# TYPE ")) {
        std::pair<std::string, std::string> name_type = absl::StrSplit(line, ' ');
        families_seen_[name_type.first] = name_type.second;
      }
    }
    return answer.body;
  }

  // Scrapes `node` every 100 ms, for at most 10 s, until the series of
  // `name` with `parts` sum to at least 1.
  bool WaitForSum(const std::string& node, const std::string& name,
                  const std::vector<std::string>& parts) {
    for (int i = 0; i < 100; ++i) {
      if (Sum(Parse(Scrape(node)), name, parts) >= 1) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  // `cloudha status --json`, as an operator reads it.
  v1::StatusResponse StatusJson(const std::string& node) {
    CommandResult r = cluster_.Cli({"status", "--json", "--socket", cluster_.socket(node)});
    v1::StatusResponse status;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &status).ok()) << r.out;
    return status;
  }

  // The scrape between two status reads: what does not move must be equal,
  // counters must lie between the two reads.
  void ExpectAgrees(const std::string& node) {
    SCOPED_TRACE(node);
    v1::StatusResponse before = StatusJson(node);
    Samples m = Parse(Scrape(node));
    v1::StatusResponse after = StatusJson(node);
    ASSERT_EQ(before.role(), after.role()) << "the role changed during the check";
    const std::string role = absl::AsciiStrToLower(v1::Role_Name(after.role()));
    EXPECT_EQ(Sum(m, "cloudha_role", {absl::StrCat("role=\"", role, "\"")}), 1);
    EXPECT_EQ(Sum(m, "cloudha_role"), 1);
    EXPECT_EQ(Sum(m, "cloudha_epoch"), after.epoch());
    EXPECT_EQ(Sum(m, "cloudha_primary_ready"), after.primary_ready() ? 1 : 0);
    EXPECT_EQ(Sum(m, "cloudha_config_revision"), after.config().revision());
    EXPECT_EQ(Sum(m, "cloudha_config_entries"), after.config().entries());
    EXPECT_EQ(Sum(m, "cloudha_sessions"), after.sessions().table_size());
    // What `before` said of a peer's checksum (it may change in between: a
    // peer's hello brings its new checksum a moment after a write).
    auto old_config_match = [&](const std::string& id) {
      for (const v1::PeerStatus& q : before.peers()) {
        if (q.id() == id) return q.config().compared() && q.config().checksum_match();
      }
      return false;
    };
    for (const v1::PeerStatus& peer : after.peers()) {
      const std::string p = absl::StrCat("peer=\"", peer.id(), "\"");
      EXPECT_EQ(Sum(m, "cloudha_peer_up", {p}), peer.state() == v1::PeerStatus::UP ? 1 : 0) << p;
      for (int i = 0; i < peer.paths_size(); ++i) {
        const std::string path = absl::StrCat("path=\"", i, "\"");
        double sent = Sum(m, "cloudha_path_hellos_sent_total", {p, path});
        const v1::PeerStatus* old = nullptr;
        for (const v1::PeerStatus& q : before.peers()) {
          if (q.id() == peer.id()) old = &q;
        }
        ASSERT_NE(old, nullptr);
        EXPECT_GE(sent, old->paths(i).hellos_sent()) << p << path;
        EXPECT_LE(sent, peer.paths(i).hellos_sent()) << p << path;
        if (old->paths(i).state() == peer.paths(i).state()) {
          EXPECT_EQ(Sum(m, "cloudha_path_up", {p, path}),
                    peer.paths(i).state() == v1::PeerStatus::UP ? 1 : 0);
        }
        if (old->paths(i).hellos_received() > 0) {
          EXPECT_GT(Sum(m, "cloudha_path_rtt_seconds_count", {p, path}), 0) << p << path;
        }
      }
      if (peer.config().compared() && old_config_match(peer.id()) == peer.config().checksum_match()) {
        EXPECT_EQ(Sum(m, "cloudha_config_checksum_match", {p}),
                  peer.config().checksum_match() ? 1 : 0);
      }
    }
  }

  TestCluster cluster_{{"a", "b", "c"}};
  std::map<std::string, int> metrics_port_;
  std::map<std::string, std::string> families_seen_;
};

TEST_F(MetricsScrapeTest, ScrapesAgreeWithStatusThroughWritesRefusalsHooksAndAFailover) {
  ExpectAgrees("a");
  ExpectAgrees("b");

  // A config write on the primary reaches both scrapes.
  CommandResult r = cluster_.Cli({"config", "set", "firewall.policy.1.action", "accept", "--socket",
                                  cluster_.socket("a")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  uint64_t revision = StatusJson("a").config().revision();
  ASSERT_TRUE(cluster_.WaitFor("b", [&](const v1::StatusResponse& s) {
    return s.config().revision() == revision && s.config().in_sync();
  }));
  ExpectAgrees("a");
  ExpectAgrees("b");
  EXPECT_EQ(Sum(Parse(Scrape("b")), "cloudha_config_revision"), revision);

  // A synced path written on the secondary is refused, and counted.
  r = cluster_.Cli({"config", "set", "firewall.policy.2.action", "drop", "--socket",
                    cluster_.socket("b")});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_EQ(Sum(Parse(Scrape("b")), "cloudha_config_writes_refused_total"), 1);
  // a sent b its session snapshot, and b received it.
  EXPECT_GE(Sum(Parse(Scrape("a")), "cloudha_sessions_snapshots_total", {"direction=\"sent\""}), 1);
  EXPECT_GE(Sum(Parse(Scrape("b")), "cloudha_sessions_snapshots_total", {"direction=\"received\""}),
            1);
  EXPECT_EQ(Sum(Parse(Scrape("a")), "cloudha_config_writes_refused_total"), 0);

  // A stranger dials a: refused, counted as unknown (its name is not a label).
  ASSERT_NE(cluster_.Start("c"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("c", [](const v1::StatusResponse&) { return true; }));
  ASSERT_NO_FATAL_FAILURE(LearnMetricsPort("c"));
  EXPECT_TRUE(WaitForSum("a", "cloudha_connections_refused_total",
                         {"peer=\"unknown\"", "reason=\"wrong_node\""}))
      << Scrape("a");
  EXPECT_THAT(Scrape("a"), ::testing::Not(::testing::HasSubstr("peer=\"c\"")));
  cluster_.Kill("c", SIGKILL);

  // Failover: b takes the role because it lost a; its PEER_LOST hook fails.
  cluster_.Kill("a", SIGKILL);
  ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
    return s.role() == v1::PRIMARY && s.primary_ready();
  })) << Logs(cluster_.agent("b"));
  EXPECT_TRUE(WaitForSum("b", "cloudha_hook_runs_total", {"hook=\"peer_lost\"", "result=\"failed\""}))
      << Scrape("b");
  ExpectAgrees("b");
  Samples b = Parse(Scrape("b"));
  EXPECT_EQ(Sum(b, "cloudha_role_changes_total", {"to=\"primary\"", "cause=\"peer_lost\""}), 1);
  EXPECT_EQ(Sum(b, "cloudha_role_changes_total", {"to=\"secondary\""}), 1);
  EXPECT_EQ(Sum(b, "cloudha_peer_up", {"peer=\"a\""}), 0);
  EXPECT_GE(Sum(b, "cloudha_hook_duration_seconds_count", {"hook=\"peer_lost\""}), 1);
  EXPECT_EQ(Sum(b, "cloudha_build_info"), 1);

  // What the scrapes showed is the documented list (test/monitoring/
  // metrics.txt, which the alerts and the dashboard are checked against):
  // all of it but the arbiter's, the monitors' and the kernel's (no
  // arbiter, no monitors and no conntrack source here).
  absl::StatusOr<std::string> list = ReadSmallFile("test/monitoring/metrics.txt");
  ASSERT_TRUE(list.ok()) << list.status();
  std::map<std::string, std::string> listed;
  for (absl::string_view line : absl::StrSplit(*list, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    ASSERT_EQ(words.size(), 2u) << line;
    listed[words[0]] = words[1];
  }
  for (const auto& [name, type] : families_seen_) {
    auto it = listed.find(name);
    ASSERT_NE(it, listed.end()) << name << " is not in test/monitoring/metrics.txt";
    EXPECT_EQ(it->second, type) << name;
  }
  for (const auto& [name, type] : listed) {
    if (absl::StartsWith(name, "cloudha_arbiter_") || name == "cloudha_monitor_up" ||
        name == "cloudha_sessions_kernel_changes_total" ||
        name == "cloudha_sessions_promotion_commit_seconds") {
      continue;
    }
    EXPECT_EQ(families_seen_.count(name), 1u) << name << " was in no scrape";
  }
}

TEST_F(MetricsScrapeTest, ScrapePassesPromtoolCheckMetrics) {
  const char* promtool = std::getenv("CLOUDHA_PROMTOOL");
  if (promtool == nullptr || *promtool == 0) {
    GTEST_SKIP() << "no promtool (CLOUDHA_PROMTOOL unset: ./test.sh unpacks it from Debian's "
                    "prometheus package)";
  }
  for (const std::string node : {"a", "b"}) {
    std::string file = absl::StrCat(cluster_.dir(), "/scrape-", node, ".txt");
    ASSERT_TRUE(WriteFileAtomically(file, Scrape(node), 0644, Overwrite::kReplace).ok());
    // promtool reads the exposition on stdin.
    CommandResult r = RunCommand({"/bin/sh", "-c", absl::StrCat("\"$0\" check metrics < \"$1\""),
                                  promtool, file},
                                 cluster_.dir());
    EXPECT_EQ(r.exit_code, 0) << node << ": " << r.out << r.err;
  }
}

TEST_F(MetricsScrapeTest, OnlyMetricsIsServed) {
  EXPECT_EQ(ProbeRequest(metrics_port_["a"], "GET", "/").code, 404);
  EXPECT_EQ(ProbeRequest(metrics_port_["a"], "GET", "/healthz").code, 404);
  EXPECT_EQ(ProbeRequest(metrics_port_["a"], "POST", "/metrics").code, 405);
  EXPECT_EQ(ProbeRequest(metrics_port_["a"], "HEAD", "/metrics").code, 200);
}

}  // namespace
}  // namespace cloudha
