// Failover benchmark: kills the primary of a real two-agent cluster (mutual
// TLS on loopback) again and again, and measures
//   detection: kill -> the survivor declares the peer lost (its event time);
//   failover:  kill -> cloudha.v1.Primary SERVING on the survivor, as seen by
//              a grpc.health.v1 Watch client;
// at heartbeat 100 ms x 3 and at the defaults (200 ms x 6), beside the bound
// interval x threshold; then an idle agent's CPU and RSS. Prints figures,
// asserts nothing about time. The last line is one JSON object (top-level
// figures are those of the defaults).
//
//   bazel run -c opt //test/bench:failover_bench -- [--kills N]
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cloudha/v1/admin.grpc.pb.h"
#include "base/secure_file.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "test/bench/bench_util.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

struct Figures {
  int interval_ms;
  int threshold;
  std::vector<double> detection_ms;
  std::vector<double> failover_ms;
  double bound_ms() const { return interval_ms * threshold; }
};

std::string Config(TestCluster& cluster, const std::string& node, int priority, int interval_ms,
                   int threshold) {
  TestCluster::Settings settings;
  settings.priority = priority;
  settings.interval_ms = interval_ms;
  settings.lost_threshold = threshold;
  settings.election = "hello_holddown_s: 1 failover_hold_s: 0";
  return cluster.Config(node, settings);
}

bool Ready(TestCluster& cluster, const std::string& primary, const std::string& standby) {
  return cluster.WaitFor(primary,
                         [](const v1::StatusResponse& s) {
                           return s.role() == v1::PRIMARY && s.primary_ready() &&
                                  s.peers(0).state() == v1::PeerStatus::UP;
                         }) &&
         cluster.WaitFor(standby, [&](const v1::StatusResponse& s) {
           return s.role() == v1::SECONDARY && s.primary() == primary &&
                  s.peers(0).state() == v1::PeerStatus::UP;
         });
}

// Wall-clock time (ms) of the survivor's "<peer> down" event after `after_ms`.
int64_t PeerDownAt(TestCluster& cluster, const std::string& survivor, const std::string& peer,
                   int64_t after_ms) {
  auto stub = v1::AdminService::NewStub(
      grpc::CreateChannel("unix:" + cluster.socket(survivor), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto reader = stub->ListEvents(&context, v1::ListEventsRequest());
  v1::Event event;
  int64_t found = -1;
  while (reader->Read(&event)) {
    if (event.kind() == "peer" && event.message() == peer + " down" && event.time_ms() >= after_ms &&
        found < 0) {
      found = event.time_ms();
    }
  }
  reader->Finish();
  return found;
}

bool RunConfig(Figures* f, int kills) {
  TestCluster cluster({"a", "b"});
  cluster.WriteConfig("a", Config(cluster, "a", 200, f->interval_ms, f->threshold));
  cluster.WriteConfig("b", Config(cluster, "b", 100, f->interval_ms, f->threshold));
  if (cluster.Start("a") == nullptr || cluster.Start("b") == nullptr) return false;
  std::string primary = "a";
  std::string standby = "b";
  for (int i = 0; i < kills; ++i) {
    if (!Ready(cluster, primary, standby)) {
      fprintf(stderr, "cluster did not settle:\n%s\n%s\n", Logs(cluster.agent(primary)).c_str(),
              Logs(cluster.agent(standby)).c_str());
      return false;
    }
    auto health = cluster.HealthStub(standby);
    grpc::ClientContext watch;
    watch.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    HealthCheckRequest request;
    request.set_service("cloudha.v1.Primary");
    auto reader = health->Watch(&watch, request);
    HealthCheckResponse update;
    if (!reader->Read(&update) || update.status() != HealthCheckResponse::NOT_SERVING) return false;

    absl::Time killed = absl::Now();
    cluster.Kill(primary, SIGKILL);
    bool serving = false;
    while (!serving && reader->Read(&update)) serving = update.status() == HealthCheckResponse::SERVING;
    absl::Time served = absl::Now();
    watch.TryCancel();
    reader->Finish();
    if (!serving) return false;
    int64_t down = PeerDownAt(cluster, standby, primary, absl::ToUnixMillis(killed) - 1);
    if (down < 0) return false;
    f->failover_ms.push_back(absl::ToDoubleMilliseconds(served - killed));
    f->detection_ms.push_back(static_cast<double>(down) -
                              absl::ToDoubleMilliseconds(killed - absl::UnixEpoch()));
    cluster.agent(primary)->Wait(absl::Seconds(5));
    if (cluster.Start(primary) == nullptr) return false;
    std::swap(primary, standby);
  }
  return true;
}

void Print(const Figures& f) {
  double d50 = Percentile(f.detection_ms, 50), d99 = Percentile(f.detection_ms, 99);
  double f50 = Percentile(f.failover_ms, 50), f99 = Percentile(f.failover_ms, 99);
  printf("heartbeat %d ms x %d (bound %.0f ms, target detection <= %.0f ms), %zu kills:\n",
         f.interval_ms, f.threshold, f.bound_ms(), f.bound_ms() + f.interval_ms,
         f.detection_ms.size());
  printf("  detection p50 %7.1f ms (%.2f x bound)   p99 %7.1f ms (%.2f x bound)\n", d50,
         d50 / f.bound_ms(), d99, d99 / f.bound_ms());
  printf("  failover  p50 %7.1f ms (+%.1f ms)        p99 %7.1f ms (+%.1f ms over detection p99)\n",
         f50, f50 - d50, f99, f99 - d99);
}

std::string Json(const Figures& f) {
  return absl::StrFormat(
      "\"detection_p50_ms\":%.1f,\"detection_p99_ms\":%.1f,\"failover_p50_ms\":%.1f,"
      "\"failover_p99_ms\":%.1f,\"bound_ms\":%.0f",
      Percentile(f.detection_ms, 50), Percentile(f.detection_ms, 99),
      Percentile(f.failover_ms, 50), Percentile(f.failover_ms, 99), f.bound_ms());
}

int Main(int argc, char** argv) {
  int kills = 20;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--kills") kills = std::max(1, atoi(argv[i + 1]));
  }
  Figures fast{100, 3, {}, {}};
  Figures defaults{200, 6, {}, {}};
  for (Figures* f : {&fast, &defaults}) {
    if (!RunConfig(f, kills)) {
      fprintf(stderr, "failover_bench: a run failed\n");
      return 1;
    }
    Print(*f);
  }

  // An idle pair at the defaults: CPU over three windows (median), RSS.
  TestCluster cluster({"a", "b"});
  cluster.WriteConfig("a", Config(cluster, "a", 200, 200, 6));
  cluster.WriteConfig("b", Config(cluster, "b", 100, 200, 6));
  Subprocess* a = cluster.Start("a");
  if (a == nullptr || cluster.Start("b") == nullptr || !Ready(cluster, "a", "b")) return 1;
  absl::SleepFor(absl::Seconds(2));
  std::vector<double> cpu;
  for (int i = 0; i < 3; ++i) cpu.push_back(CpuPercent(a->pid(), absl::Seconds(10)));
  double idle_cpu = Percentile(cpu, 50);
  double rss = RssMb(a->pid());
  printf("idle primary agent: CPU %.2f%% of one core (median of 3 x 10 s; target <= 1%%), "
         "RSS %.1f MB (target <= 30 MB)\n",
         idle_cpu, rss);
  printf("{%s,\"idle_cpu_pct\":%.2f,\"rss_mb\":%.1f,\"fast\":{%s},\"kills\":%d}\n",
         Json(defaults).c_str(), idle_cpu, rss, Json(fast).c_str(), kills);
  return 0;
}

}  // namespace
}  // namespace cloudha

int main(int argc, char** argv) { return cloudha::Main(argc, argv); }
