// Session sync over mutual TLS on loopback between two real agents, fed by
// a publisher on the primary's admin socket (the data plane's path):
//   upserts_per_s   sustained upserts/s primary -> secondary (published and
//                   acknowledged by the secondary), 2 M upserts a run;
//   bulk_1m_s       a restarted secondary's bulk sync of 1 M sessions, from
//                   its start to IN_SYNC with every session;
//   lag_p50/p99_ms  replication lag at 200 000 upserts/s for 5 s: the age of
//                   each batch's oldest change when the secondary applied
//                   it, sampled from its status every 20 ms;
//   bytes_per_session  the secondary's RSS growth per session at 1 M;
//   resume_after_1s_cut_ms  b frozen for 1 s (a drops it, 20 000 changes
//                   made meanwhile), then thawed: from the thaw to a's last
//                   change acknowledged by b, resumed without a snapshot;
// and kernel to kernel, two agents with the conntrack source in two network
// namespaces (root; null with the reason otherwise), 100 000 TCP entries
// written into a's kernel through ctnetlink as the load:
//   conntrack_100k_s   load start -> all in b's kernel, commit CONTINUOUS;
//   failover_to_kernel_100k_ms  kill -9 of a -> all in b's kernel, for
//                   CONTINUOUS (they are there before) and ON_PROMOTION
//                   (detection + the commit);
//   commit_entries_per_s  b's commit on promotion (ON_PROMOTION), entries/s;
//   conntrackd_100k_s  the same load and measure with Debian's conntrackd
//                   (FTFW over UDP, DisableExternalCache: straight into b's
//                   kernel) on the same link, when it is installed.
// Three runs each, medians; the last line is one JSON object.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "sync/session_test_util.h"
#include "test/bench/conntrack_sync_lab.h"
#include "test/bench/conntrackd_pair.h"
#include "test/session_client.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

constexpr char kSessions[] =
    "sessions { pickup: true source: PUBLISHER pickup_connectionless: true "
    "max_sessions: 4000000 } ";

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

double RssMb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

class Bench {
 public:
  bool Start() {
    for (const std::string n : {"a", "b"}) {
      TestCluster::Settings s;
      s.priority = n == "a" ? 200 : 100;
      // b rides out the 1 s freeze of ResumeAfterCut still following a (a
      // drops it after 0.5 s), as after a cut only the primary noticed.
      if (n == "b") s.lost_threshold = 60;
      s.election = "hello_holddown_s: 1 failover_hold_s: 0";
      s.extra = kSessions;
      cluster_.WriteConfig(n, cluster_.Config(n, s));
    }
    if (cluster_.Start("a") == nullptr || cluster_.Start("b") == nullptr) return false;
    return WaitInSync();
  }

  bool WaitInSync(absl::Duration timeout = absl::Seconds(30)) {
    return cluster_.WaitFor(
        "b",
        [](const v1::StatusResponse& s) {
          return s.role() == v1::SECONDARY && s.sync_state() == v1::IN_SYNC;
        },
        timeout);
  }

  // Waits until b acknowledged everything a has; false on timeout.
  bool WaitCaughtUp(absl::Duration timeout = absl::Seconds(60)) {
    return cluster_.WaitFor(
        "a",
        [](const v1::StatusResponse& s) {
          for (const v1::PeerStatus& p : s.peers()) {
            if (p.sessions().state() == "streaming" &&
                p.sessions().acked_position() == s.sessions().position()) {
              return true;
            }
          }
          return false;
        },
        timeout);
  }

  // Upserts/s from the first publish to b's last ack.
  double Throughput(uint32_t total, uint32_t base) {
    std::vector<SessionChange> batch;
    int64_t now_ms = absl::ToUnixMillis(absl::Now());
    absl::Time start = absl::Now();
    SessionPublisher publisher(cluster_.socket("a"));
    for (uint32_t i = 0; i < total; i += 100000) {
      batch.clear();
      for (uint32_t j = i; j < std::min(total, i + 100000); ++j) {
        SessionRecord r = TestSession(base + (j % 500000), now_ms);
        r.value.mark = j;
        batch.push_back(Upsert(r));
      }
      if (!publisher.Publish(batch)) break;
    }
    if (!publisher.Finish().ok() || !WaitCaughtUp()) return 0;
    return total / absl::ToDoubleSeconds(absl::Now() - start);
  }

  // Fills a with `n` sessions (b caught up), restarts b, times its bulk sync.
  double BulkSync(uint32_t n, double* bytes_per_session) {
    SessionPublisher publisher(cluster_.socket("a"));
    std::vector<SessionChange> batch;
    int64_t now_ms = absl::ToUnixMillis(absl::Now());
    for (uint32_t i = 0; i < n; ++i) batch.push_back(Upsert(TestSession(i, now_ms)));
    if (!publisher.Publish(batch) || !publisher.Finish().ok() || !WaitCaughtUp()) return 0;
    absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
    if (!a.ok()) return 0;
    uint64_t size = a->sessions().table_size();
    cluster_.Kill("b", SIGKILL);
    cluster_.agent("b")->Wait(absl::Seconds(5));
    absl::Time start = absl::Now();
    Subprocess* b = cluster_.Start("b");
    if (b == nullptr) return 0;
    double empty_rss = RssMb(b->pid());
    bool done = cluster_.WaitFor(
        "b",
        [&](const v1::StatusResponse& s) {
          return s.sync_state() == v1::IN_SYNC && s.sessions().table_size() == size;
        },
        absl::Seconds(60));
    double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (!done) return 0;
    *bytes_per_session = (RssMb(b->pid()) - empty_rss) * 1024 * 1024 / size;
    return seconds;
  }

  // Publishes at `rate` upserts/s for `duration`, sampling b's lag.
  std::vector<double> Lag(int rate, absl::Duration duration) {
    std::vector<double> samples;
    std::atomic<bool> done{false};
    std::thread sampler([&] {
      while (!done) {
        absl::StatusOr<v1::StatusResponse> s = cluster_.Status("b");
        if (s.ok()) samples.push_back(s->sessions().lag_ms());
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
    SessionPublisher publisher(cluster_.socket("a"));
    const int per_tick = rate / 100;  // every 10 ms
    absl::Time start = absl::Now();
    uint32_t next = 0;
    for (int tick = 0; absl::Now() - start < duration; ++tick) {
      absl::Time due = start + absl::Milliseconds(10) * tick;
      if (due > absl::Now()) absl::SleepFor(due - absl::Now());
      std::vector<SessionChange> batch;
      int64_t now_ms = absl::ToUnixMillis(absl::Now());
      for (int j = 0; j < per_tick; ++j) batch.push_back(Upsert(TestSession(next++ % 400000, now_ms)));
      if (!publisher.Publish(batch, per_tick)) break;
    }
    (void)publisher.Finish();
    done = true;
    sampler.join();
    return samples;
  }

  // Freezes b for `cut` while `changes` upserts are published, thaws it and
  // times until b acknowledged everything; b must have resumed (no new
  // snapshot). 0 on failure.
  double ResumeAfterCut(absl::Duration cut, uint32_t changes) {
    absl::StatusOr<v1::StatusResponse> before = cluster_.Status("a");
    if (!before.ok()) return 0;
    cluster_.Kill("b", SIGSTOP);
    bool dropped = cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
      return s.peers_size() == 1 && s.peers(0).state() != v1::PeerStatus::UP;
    });
    absl::Time frozen = absl::Now();
    SessionPublisher publisher(cluster_.socket("a"));
    std::vector<SessionChange> batch;
    int64_t now_ms = absl::ToUnixMillis(absl::Now());
    for (uint32_t i = 0; i < changes; ++i) {
      SessionRecord r = TestSession(i % 500000, now_ms);
      r.value.mark = i + 7;
      batch.push_back(Upsert(r));
    }
    bool published = publisher.Publish(batch) && publisher.Finish().ok();
    if (absl::Now() < frozen + cut) absl::SleepFor(frozen + cut - absl::Now());
    absl::Time thawed = absl::Now();
    cluster_.Kill("b", SIGCONT);
    if (!dropped || !published || !WaitCaughtUp()) return 0;
    double ms = absl::ToDoubleMilliseconds(absl::Now() - thawed);
    absl::StatusOr<v1::StatusResponse> after = cluster_.Status("a");
    if (!after.ok() || after->sessions().snapshots() != before->sessions().snapshots() ||
        after->sessions().resumes() <= before->sessions().resumes()) {
      fprintf(stderr, "resume: b got a snapshot instead of a resume\n");
      return 0;
    }
    return ms;
  }

  TestCluster cluster_{{"a", "b"}};
};

constexpr uint32_t kKernelLoad = 100000;

struct KernelRun {
  double continuous_s = 0;      // load start -> all in b's kernel
  double load_s = 0;            // the load's own time
  double continuous_failover_ms = 0;
  double on_promotion_failover_ms = 0;
  double commit_per_s = 0;
  double conntrackd_s = 0;
  // b's CPU seconds from the load's start until it held all of it.
  double b_cpu_continuous_s = 0;
  double b_cpu_on_promotion_s = 0;
};

// CPU seconds (user + system) process `pid` has used.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t end = stat.rfind(')');
  if (end == std::string::npos) return 0;
  std::vector<std::string> fields;
  std::istringstream rest(stat.substr(end + 2));
  for (std::string f; rest >> f;) fields.push_back(f);
  // After the name: state is field 3, utime 14 and stime 15 (1-based).
  if (fields.size() < 13) return 0;
  return (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK);
}

double Seconds(absl::Time from, absl::Time to) {
  return to == absl::InfiniteFuture() ? 0 : absl::ToDoubleSeconds(to - from);
}

// One run of each kernel measure; false when the lab failed.
bool KernelMeasures(ConntrackSyncLab& lab, KernelRun* run) {
  TestCluster& cluster = lab.cluster();
  // CONTINUOUS: the load reaches b's kernel with no failover.
  if (!lab.StartAgents("CONTINUOUS")) {
    fprintf(stderr, "the CONTINUOUS pair did not start:\n%s\n%s\n",
            Logs(cluster.agent("a")).c_str(), Logs(cluster.agent("b")).c_str());
    return false;
  }
  size_t base = lab.KernelCount("b");
  double cpu = CpuSeconds(cluster.agent("b")->pid());
  absl::Time start = absl::Now();
  if (absl::Status s = lab.Load(0, kKernelLoad); !s.ok()) {
    fprintf(stderr, "load: %s\n", std::string(s.message()).c_str());
    return false;
  }
  run->load_s = Seconds(start, absl::Now());
  run->continuous_s = Seconds(start, lab.WaitKernelCount("b", base + kKernelLoad, absl::Seconds(60)));
  run->b_cpu_continuous_s = CpuSeconds(cluster.agent("b")->pid()) - cpu;
  absl::Time kill = absl::Now();
  cluster.Kill("a", SIGKILL);
  lab.Forget("a");
  run->continuous_failover_ms =
      1000 * Seconds(kill, lab.WaitKernelCount("b", base + kKernelLoad, absl::Seconds(30)));

  // ON_PROMOTION: b's replica has them; the kernel gets them on promotion.
  if (!lab.StartAgents("ON_PROMOTION")) {
    fprintf(stderr, "the ON_PROMOTION pair did not start\n");
    return false;
  }
  base = lab.KernelCount("b");
  cpu = CpuSeconds(cluster.agent("b")->pid());
  if (absl::Status s = lab.Load(0, kKernelLoad); !s.ok()) {
    fprintf(stderr, "load: %s\n", std::string(s.message()).c_str());
    return false;
  }
  bool replicated = cluster.WaitFor(
      "b",
      [](const v1::StatusResponse& s) { return s.sessions().table_size() >= kKernelLoad; },
      absl::Seconds(60));
  if (!replicated) {
    absl::StatusOr<v1::StatusResponse> a = cluster.Status("a");
    absl::StatusOr<v1::StatusResponse> b = cluster.Status("b");
    fprintf(stderr, "b's replica never held the load:\n%s\n%s\n%s\n%s\n",
            a.ok() ? a->sessions().DebugString().c_str() : "a?",
            b.ok() ? b->sessions().DebugString().c_str() : "b?",
            Logs(cluster.agent("a")).c_str(), Logs(cluster.agent("b")).c_str());
    return false;
  }
  run->b_cpu_on_promotion_s = CpuSeconds(cluster.agent("b")->pid()) - cpu;
  kill = absl::Now();
  cluster.Kill("a", SIGKILL);
  lab.Forget("a");
  run->on_promotion_failover_ms =
      1000 * Seconds(kill, lab.WaitKernelCount("b", base + kKernelLoad, absl::Seconds(30)));
  cluster.WaitFor("b", [](const v1::StatusResponse& s) {
    return s.role() == v1::PRIMARY && s.sessions().promotion_commit_ms() > 0;
  });
  absl::StatusOr<v1::StatusResponse> b = cluster.Status("b");
  if (b.ok() && b->sessions().promotion_commit_ms() > 0) {
    run->commit_per_s =
        b->sessions().promotion_committed() / (b->sessions().promotion_commit_ms() / 1000);
  }
  lab.StopAgents();

  // conntrackd on the same link, when installed.
  if (!ConntrackdPair::ConntrackdBinary().empty()) {
    lab.Flush();
    ConntrackdPair conntrackd(cluster.dir(), lab.ns("a"), lab.ns("b"), lab.link("a"),
                              lab.link("b"), ConntrackSyncLab::address("a"),
                              ConntrackSyncLab::address("b"));
    if (absl::Status s = conntrackd.Start(); !s.ok()) {
      fprintf(stderr, "conntrackd: %s\n", std::string(s.message()).c_str());
    } else {
      base = lab.KernelCount("b");
      start = absl::Now();
      if (lab.Load(0, kKernelLoad).ok()) {
        run->conntrackd_s =
            Seconds(start, lab.WaitKernelCount("b", base + kKernelLoad, absl::Seconds(60)));
      }
    }
  }
  return true;
}

std::string JsonOrNull(double value, bool measured, const char* format = "%.3f") {
  if (!measured) return "null";
  char buffer[64];
  snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}

int Main(const std::string& only) {
  std::vector<double> rates, bulks, bytes, lag50, lag99, resumes;
  for (int run = 0; run < 3 && only != "kernel"; ++run) {
    Bench bench;
    if (!bench.Start()) {
      fprintf(stderr, "session_sync_bench: the pair did not start\n");
      return 1;
    }
    double rate = bench.Throughput(2000000, 0);
    double per_session = 0;
    double bulk = bench.BulkSync(1000000, &per_session);
    if (!bench.WaitCaughtUp()) return 1;
    std::vector<double> lag = bench.Lag(200000, absl::Seconds(5));
    if (!bench.WaitCaughtUp()) return 1;
    resumes.push_back(bench.ResumeAfterCut(absl::Seconds(1), 20000));
    rates.push_back(rate);
    bulks.push_back(bulk);
    bytes.push_back(per_session);
    lag50.push_back(Percentile(lag, 0.5));
    lag99.push_back(Percentile(lag, 0.99));
    printf("run %d: %.0f upserts/s, bulk sync of 1M %.2f s, %.0f bytes/session, "
           "lag at 200k/s p50 %.1f ms p99 %.1f ms (%zu samples), resume after a 1 s cut "
           "%.0f ms\n",
           run + 1, rate, bulk, per_session, lag50.back(), lag99.back(), lag.size(),
           resumes.back());
    fflush(stdout);
  }
  // The publisher pair is gone; kernel to kernel, when the machine allows.
  std::string why;
  std::unique_ptr<ConntrackSyncLab> lab =
      only == "publisher" ? nullptr : ConntrackSyncLab::Create(&why);
  if (only == "publisher") why = "--only publisher";
  std::vector<double> ct_s, ct_load, ct_fail_cont, ct_fail_prom, ct_commit, ctd_s, cpu_cont,
      cpu_prom;
  for (int run = 0; lab != nullptr && run < 3; ++run) {
    KernelRun k;
    if (!KernelMeasures(*lab, &k)) {
      why = "the namespaced pair failed (see above)";
      break;
    }
    ct_s.push_back(k.continuous_s);
    ct_load.push_back(k.load_s);
    ct_fail_cont.push_back(k.continuous_failover_ms);
    ct_fail_prom.push_back(k.on_promotion_failover_ms);
    ct_commit.push_back(k.commit_per_s);
    cpu_cont.push_back(k.b_cpu_continuous_s);
    cpu_prom.push_back(k.b_cpu_on_promotion_s);
    if (k.conntrackd_s > 0) ctd_s.push_back(k.conntrackd_s);
    printf("kernel run %d: load of 100k %.3f s; in b's kernel (CONTINUOUS) %.3f s after the load "
           "began; kill -9 -> all in b's kernel: CONTINUOUS %.0f ms, ON_PROMOTION %.0f ms "
           "(commit %.0f entries/s); b's CPU for the 100k: CONTINUOUS %.2f s, ON_PROMOTION "
           "%.2f s; conntrackd %s s\n",
           run + 1, k.load_s, k.continuous_s, k.continuous_failover_ms,
           k.on_promotion_failover_ms, k.commit_per_s, k.b_cpu_continuous_s,
           k.b_cpu_on_promotion_s,
           JsonOrNull(k.conntrackd_s, k.conntrackd_s > 0).c_str());
    fflush(stdout);
  }
  const bool kernel = !ct_s.empty();
  const bool conntrackd = !ctd_s.empty();
  if (!kernel) printf("kernel to kernel: not measured: %s\n", why.c_str());
  if (kernel && !conntrackd) {
    printf("conntrackd: not measured: %s\n", ConntrackdPair::ConntrackdBinary().empty()
                                                  ? "not installed (apt-get install conntrackd)"
                                                  : "it did not start (see above)");
  }
  double rate = Median(rates), bulk = Median(bulks), per = Median(bytes);
  double l50 = Median(lag50), l99 = Median(lag99), resume = Median(resumes);
  printf("median of 3: upserts %.0f/s (%.2f x the 2 M/s goal), bulk 1M %.2f s (goal 1 s), "
         "lag p50 %.1f ms p99 %.1f ms (target p99 50 ms), %.0f bytes/session, resume after a "
         "1 s cut %.0f ms\n",
         rate, rate / 2e6, bulk, l50, l99, per, resume);
  if (kernel) {
    printf("median of %zu: conntrack 100k into b's kernel %.3f s (goal 1 s; the load itself "
           "%.3f s)%s; failover to kernel: CONTINUOUS %.0f ms, ON_PROMOTION %.0f ms; commit "
           "%.0f entries/s; b's CPU per 100k changes: CONTINUOUS %.2f s, ON_PROMOTION %.2f s\n",
           ct_s.size(), Median(ct_s), Median(ct_load),
           conntrackd ? absl::StrCat(", conntrackd ", Median(ctd_s), " s: ratio ",
                                     Median(ct_s) / Median(ctd_s), " (goal <= 0.5)")
                            .c_str()
                      : "",
           Median(ct_fail_cont), Median(ct_fail_prom), Median(ct_commit), Median(cpu_cont),
           Median(cpu_prom));
  }
  printf("{\"upserts_per_s\":%.0f,\"bulk_1m_s\":%.3f,\"lag_p50_ms\":%.2f,\"lag_p99_ms\":%.2f,"
         "\"bytes_per_session\":%.0f,\"resume_after_1s_cut_ms\":%.0f,\"conntrack_100k_s\":%s,"
         "\"failover_to_kernel_100k_ms\":{\"continuous\":%s,\"on_promotion\":%s},"
         "\"commit_entries_per_s\":%s,\"conntrackd_100k_s\":%s}\n",
         rate, bulk, l50, l99, per, resume, JsonOrNull(Median(ct_s), kernel).c_str(),
         JsonOrNull(Median(ct_fail_cont), kernel, "%.0f").c_str(),
         JsonOrNull(Median(ct_fail_prom), kernel, "%.0f").c_str(),
         JsonOrNull(Median(ct_commit), kernel, "%.0f").c_str(),
         JsonOrNull(Median(ctd_s), conntrackd).c_str());
  return 0;
}

}  // namespace
}  // namespace cloudha

// --only publisher | kernel: one half of the benchmark.
int main(int argc, char** argv) {
  std::string only;
  if (argc == 3 && std::string(argv[1]) == "--only") only = argv[2];
  return cloudha::Main(only);
}
