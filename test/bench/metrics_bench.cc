// Metrics benchmark: a real pair (mutual TLS on loopback) with four paths
// between the nodes (127.0.0.1 to 127.0.0.4) and metrics.listen, at the
// default heartbeat. Prints the scrape's size (bytes, samples), how long a
// scrape takes (median of 50), and the idle primary's CPU without scrapes
// and with one scrape a second, in alternating windows (median of each, and
// their difference beside the spread of the windows without: the noise).
// Asserts nothing about time; the last line is one JSON object.
//
//   bazel run -c opt //test/bench:metrics_bench -- [--windows N] [--window_s S]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/probe_client.h"
#include "cloudha/v1/admin.pb.h"
#include "test/bench/bench_util.h"
#include "test/subprocess.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

constexpr int kPaths = 4;

// Node `node`'s configuration: listens on every loopback address (the four
// paths dial 127.0.0.1..4), peers over four addresses, metrics on.
std::string Config(TestCluster& cluster, const std::string& node, const std::string& peer,
                   int metrics_port) {
  TestCluster::Settings settings;
  settings.priority = node == "a" ? 200 : 100;
  settings.interval_ms = 200;
  settings.lost_threshold = 6;
  settings.extra = absl::StrCat("metrics { listen: \"127.0.0.1:", metrics_port, "\" }\n");
  std::string text = cluster.Config(node, settings);
  std::string addresses;
  for (int i = 1; i <= kPaths; ++i) {
    absl::StrAppend(&addresses, i == 1 ? "" : " addresses: ", "\"127.0.0.", i, ":",
                    cluster.port(peer), "\"");
  }
  return absl::StrReplaceAll(
      text, {{absl::StrCat("listen: \"127.0.0.1:", cluster.port(node), "\""),
              absl::StrCat("listen: \"0.0.0.0:", cluster.port(node), "\"")},
             {absl::StrCat("\"127.0.0.1:", cluster.port(peer), "\""), addresses}});
}

bool AllPathsUp(TestCluster& cluster, const std::string& node) {
  return cluster.WaitFor(
      node,
      [](const v1::StatusResponse& s) {
        if (s.peers_size() != 1 || s.peers(0).paths_size() != kPaths) return false;
        for (const v1::PathStatus& p : s.peers(0).paths()) {
          if (p.state() != v1::PeerStatus::UP) return false;
        }
        return true;
      },
      absl::Seconds(30));
}

int Main(int argc, char** argv) {
  int windows = 5;
  int window_s = 10;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--windows") windows = std::max(1, atoi(argv[i + 1]));
    if (std::string(argv[i]) == "--window_s") window_s = std::max(1, atoi(argv[i + 1]));
  }
  TestCluster cluster({"a", "b"});
  int port_a = PickUnusedPort();
  int port_b = PickUnusedPort();
  cluster.WriteConfig("a", Config(cluster, "a", "b", port_a));
  cluster.WriteConfig("b", Config(cluster, "b", "a", port_b));
  Subprocess* a = cluster.Start("a");
  if (a == nullptr || cluster.Start("b") == nullptr || !AllPathsUp(cluster, "a") ||
      !AllPathsUp(cluster, "b")) {
    fprintf(stderr, "metrics_bench: the pair did not come up with %d paths up\n", kPaths);
    return 1;
  }
  absl::SleepFor(absl::Seconds(2));

  // Size and time of a scrape of the primary.
  std::string body;
  std::vector<double> scrape_ms;
  for (int i = 0; i < 50; ++i) {
    absl::Time start = absl::Now();
    ProbeAnswer answer = ProbeRequest(port_a, "GET", "/metrics");
    scrape_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    if (answer.code != 200) {
      fprintf(stderr, "metrics_bench: scrape answered %d\n", answer.code);
      return 1;
    }
    body = std::move(answer.body);
  }
  int samples = 0;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "#")) ++samples;
  }
  double cpu_before_scrapes = CpuSeconds(a->pid());
  for (int i = 0; i < 200; ++i) ProbeRequest(port_a, "GET", "/metrics");
  double cpu_per_scrape_ms = (CpuSeconds(a->pid()) - cpu_before_scrapes) / 200 * 1000;

  // Idle CPU: windows without and with one scrape a second, alternating.
  std::vector<double> without, with;
  for (int w = 0; w < windows; ++w) {
    without.push_back(CpuPercent(a->pid(), absl::Seconds(window_s)));
    double before = CpuSeconds(a->pid());
    absl::Time start = absl::Now();
    for (int i = 0; i < window_s; ++i) {
      ProbeRequest(port_a, "GET", "/metrics");
      absl::SleepFor(start + absl::Seconds(i + 1) - absl::Now());
    }
    with.push_back(100.0 * (CpuSeconds(a->pid()) - before) /
                   absl::ToDoubleSeconds(absl::Now() - start));
  }
  double idle = Percentile(without, 50), scraped = Percentile(with, 50);
  double noise = Percentile(without, 100) - Percentile(without, 0);
  printf("scrape of a pair with %d paths: %zu bytes, %d samples; scrape p50 %.2f ms, p99 %.2f ms; "
         "agent CPU %.3f ms a scrape (200 back to back)\n",
         kPaths, body.size(), samples, Percentile(scrape_ms, 50), Percentile(scrape_ms, 99),
         cpu_per_scrape_ms);
  printf("idle primary CPU, %d alternating windows of %d s: without scrapes %.2f%% of a core "
         "(median; spread %.2f), with a scrape a second %.2f%% (median); difference %+.2f "
         "points\n",
         windows, window_s, idle, noise, scraped, scraped - idle);
  printf("{\"paths\":%d,\"scrape_bytes\":%zu,\"scrape_samples\":%d,\"scrape_p50_ms\":%.2f,"
         "\"scrape_p99_ms\":%.2f,\"cpu_ms_per_scrape\":%.3f,\"idle_cpu_pct\":%.2f,"
         "\"idle_cpu_spread_pct\":%.2f,\"scraped_cpu_pct\":%.2f,\"windows\":%d}\n",
         kPaths, body.size(), samples, Percentile(scrape_ms, 50), Percentile(scrape_ms, 99),
         cpu_per_scrape_ms, idle, noise, scraped, windows);
  return 0;
}

}  // namespace
}  // namespace cloudha

int main(int argc, char** argv) { return cloudha::Main(argc, argv); }
