// Config sync between two real agents over mutual TLS on loopback, driven
// over their admin sockets (the path `cloudha config` takes):
//   change_p50/p99_ms  one Put on the primary until a Watch on the
//                      secondary's admin socket receives it: 500 sequential
//                      Puts, each alone (5 ms apart). Baseline, from the same
//                      Puts: a Watch on the primary itself (local commit and
//                      watch path), so the ratio is the replication's share;
//   resync_10k_ms      the secondary's own last_resync_ms (primary's stream
//                      opening to the checksum-verified end) when it restarts
//                      with its store deleted and the primary holds 10 000
//                      keys; beside it, the wall time from its process start
//                      to IN_SYNC (agent start-up and election hold-down
//                      included). Baseline: the same restart without deleting
//                      the store (nothing to send);
//   writes_per_s       sequential single Puts on the primary for 3 s, from
//                      the first Put until the secondary holds the last one;
//                      also with 4 client threads, and both on the primary
//                      alone (the secondary killed) as the baseline.
// Three runs on a fresh pair each, medians; asserts nothing about time. The
// last line is one JSON object.
//
//   bazel run //test/bench:config_sync_bench
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "test/config_client.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

constexpr int kChanges = 500;
constexpr int kWarmupChanges = 20;
constexpr absl::Duration kChangeGap = absl::Milliseconds(5);
constexpr int kResyncKeys = 10000;
constexpr absl::Duration kWriteTime = absl::Seconds(3);
constexpr int kMaxWrites = 50000;

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Nearest rank: the smallest sample with at least p of them at or below it.
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * v.size()));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// The 1-minute load average: the agents, this client and whatever else runs
// share the CPUs, so a busy machine shows in every figure.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "?" : one;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// A firewall policy as a JSON-ish value of 70-90 bytes.
std::string PolicyValue(int i) {
  return absl::StrFormat(
      "{\"action\":\"%s\",\"src\":\"198.18.%d.0/24\",\"dst\":\"203.0.113.%d\",\"port\":%d,"
      "\"log\":%s}",
      i % 3 == 0 ? "deny" : "accept", i % 256, i % 250, 1024 + i % 60000,
      i % 2 == 0 ? "true" : "false");
}

struct ChangeFigures {
  std::vector<double> remote_ms, local_ms, put_ms;
  int lost = 0;
};

struct RestartFigures {
  bool ok = false;
  double resync_ms = 0;         // the secondary's last_resync_ms
  uint64_t entries = 0;         // its last_resync_entries
  uint64_t resyncs = 0;         // resyncs since its start
  double start_to_sync_ms = 0;  // process start -> IN_SYNC, polled every 10 ms
  bool store_existed = false;   // (with delete) the store file was there
};

struct WriteFigures {
  int writes = 0;
  int errors = 0;
  double acked_per_s = 0;    // first Put -> last Put returned
  double synced_per_s = 0;   // first Put -> the secondary holds the last
  double catch_up_ms = 0;    // last Put returned -> the secondary holds it
};

class Bench {
 public:
  explicit Bench(int run) : run_(run) {}

  bool Start() {
    for (std::string n : {"a", "b"}) {
      TestCluster::Settings s;
      s.priority = n == "a" ? 200 : 100;
      s.election = "hello_holddown_s: 1 failover_hold_s: 0";
      cluster_.WriteConfig(n, cluster_.Config(n, s));
    }
    if (cluster_.Start("a") == nullptr || cluster_.Start("b") == nullptr) return false;
    if (!cluster_.WaitFor("a", [](const v1::StatusResponse& s) { return s.role() == v1::PRIMARY; },
                          absl::Seconds(30))) {
      return false;
    }
    return WaitInSync(absl::Seconds(30));
  }

  // b follows a and holds its content (as config_sync_test waits for it),
  // polled every 10 ms.
  bool WaitInSync(absl::Duration timeout, uint64_t min_resyncs = 0) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::StatusResponse> s = cluster_.Status("b");
      if (s.ok() && s->role() == v1::SECONDARY && s->sync_state() == v1::IN_SYNC &&
          s->config().in_sync() && !s->primary().empty() &&
          s->config().resyncs() >= min_resyncs) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  // Puts 10 000 policies on a; waits until b holds them.
  bool Fill() {
    std::vector<std::pair<std::string, std::string>> entries;
    for (int i = 0; i < kResyncKeys; ++i) {
      entries.push_back({absl::StrCat("firewall.policy.", i, ".action"), PolicyValue(i)});
    }
    absl::StatusOr<uint64_t> rev = ConfigClient(cluster_.socket("a")).PutMany(entries);
    if (!rev.ok()) {
      fprintf(stderr, "PutMany of %d keys: %s\n", kResyncKeys, rev.status().ToString().c_str());
      return false;
    }
    return cluster_.WaitFor(
        "b",
        [&](const v1::StatusResponse& s) {
          return s.config().entries() == kResyncKeys && s.config().primary_revision() == *rev &&
                 s.config().in_sync();
        },
        absl::Seconds(30));
  }

  // Kills b (SIGKILL), lets a declare it down, optionally deletes b's store,
  // starts b again and times its resync.
  RestartFigures RestartSecondary(bool delete_store) {
    RestartFigures f;
    absl::StatusOr<v1::StatusResponse> before = cluster_.Status("b");
    if (!before.ok()) return f;
    const std::string store = before->config().store_file();
    cluster_.Kill("b", SIGKILL);
    cluster_.agent("b")->Wait(absl::Seconds(10));
    // A fresh pusher for the restarted b, not one in reconnect backoff.
    if (!cluster_.WaitForPeerState("a", "b", v1::PeerStatus::DOWN, absl::Seconds(10))) return f;
    if (delete_store) {
      std::error_code ignored;
      f.store_existed = std::filesystem::exists(store);
      for (const char* suffix : {"", "-wal", "-shm"}) {
        std::filesystem::remove(store + suffix, ignored);
      }
    }
    absl::Time start = absl::Now();
    if (cluster_.Start("b") == nullptr) return f;
    if (!WaitInSync(absl::Seconds(30), /*min_resyncs=*/1)) return f;
    f.start_to_sync_ms = Ms(absl::Now() - start);
    absl::StatusOr<v1::StatusResponse> s = cluster_.Status("b");
    if (!s.ok()) return f;
    f.resync_ms = s->config().last_resync_ms();
    f.entries = s->config().last_resync_entries();
    f.resyncs = s->config().resyncs();
    f.ok = true;
    return f;
  }

  // Sequential single Puts on a, each alone, seen by watches on b and on a.
  ChangeFigures Changes() {
    ChangeFigures f;
    ConfigClient a(cluster_.socket("a"));
    ConfigWatch on_b(cluster_.socket("b"), "bench.change");
    ConfigWatch on_a(cluster_.socket("a"), "bench.change");
    if (!on_b.WaitReady(absl::Seconds(10)) || !on_a.WaitReady(absl::Seconds(10))) {
      f.lost = kChanges;
      return f;
    }
    for (int i = 0; i < kWarmupChanges + kChanges; ++i) {
      std::string path = absl::StrCat("bench.change.key", i % 10);
      std::string value = absl::StrCat("run", run_, "-change", i);
      absl::Time start = absl::Now();
      bool put = a.Put(path, value).ok();
      absl::Time returned = absl::Now();
      absl::StatusOr<absl::Time> remote = on_b.WaitForPut(path, value, absl::Seconds(5));
      absl::StatusOr<absl::Time> local = on_a.WaitForPut(path, value, absl::Seconds(5));
      if (i >= kWarmupChanges) {
        if (!put || !remote.ok() || !local.ok()) {
          ++f.lost;
        } else {
          f.remote_ms.push_back(Ms(*remote - start));
          f.local_ms.push_back(Ms(*local - start));
          f.put_ms.push_back(Ms(returned - start));
        }
      }
      absl::SleepFor(kChangeGap);
    }
    return f;
  }

  // `threads` clients Put on a for kWriteTime (kMaxWrites at most); with
  // `secondary`, then waits until b holds the last commit.
  WriteFigures Writes(int threads, bool secondary, const std::string& tag) {
    WriteFigures f;
    std::atomic<int> writes{0}, errors{0};
    absl::Mutex mu;
    uint64_t last_revision = 0;
    std::string last_path, last_value;
    absl::Time end_of_puts = absl::InfinitePast();
    const int per_thread = kMaxWrites / threads;
    absl::Time start = absl::Now();
    std::vector<std::thread> clients;
    for (int t = 0; t < threads; ++t) {
      clients.emplace_back([&, t] {
        ConfigClient client(cluster_.socket("a"));
        for (int i = 0; i < per_thread && absl::Now() - start < kWriteTime; ++i) {
          std::string path = absl::StrCat("bench.write.t", t, ".key", i % 100);
          std::string value = absl::StrCat("run", run_, "-", tag, "-", i);
          absl::StatusOr<uint64_t> rev = client.Put(path, value);
          absl::Time now = absl::Now();
          if (!rev.ok()) {
            ++errors;
            continue;
          }
          ++writes;
          absl::MutexLock lock(&mu);
          end_of_puts = std::max(end_of_puts, now);
          if (*rev > last_revision) {
            last_revision = *rev;
            last_path = path;
            last_value = value;
          }
        }
      });
    }
    for (std::thread& c : clients) c.join();
    f.writes = writes;
    f.errors = errors;
    if (f.writes == 0) return f;
    f.acked_per_s = f.writes / absl::ToDoubleSeconds(end_of_puts - start);
    if (!secondary) return f;
    // Commits reach b in commit order: once it holds the newest, it holds all.
    ConfigClient b(cluster_.socket("b"));
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> v = b.Get(last_path);
      if (v.ok() && *v == last_value) {
        absl::Time held = absl::Now();
        f.synced_per_s = f.writes / absl::ToDoubleSeconds(held - start);
        f.catch_up_ms = Ms(held - end_of_puts);
        return f;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    return f;  // synced_per_s 0: b never got there
  }

  // Kills b and waits until a declares it down: a then commits alone.
  bool StopSecondary() {
    cluster_.Kill("b", SIGKILL);
    cluster_.agent("b")->Wait(absl::Seconds(10));
    return cluster_.WaitForPeerState("a", "b", v1::PeerStatus::DOWN, absl::Seconds(10));
  }

  std::string Tail(const std::string& node) {
    std::string log = Logs(cluster_.agent(node));
    return log.size() > 3000 ? log.substr(log.size() - 3000) : log;
  }

 private:
  const int run_;
  TestCluster cluster_{{"a", "b"}};
};

// One run's figures, in the JSON's names.
struct Run {
  double change_p50 = 0, change_p99 = 0, local_p50 = 0, local_p99 = 0, put_p50 = 0;
  double resync_10k = 0, resync_noop = 0, start_full = 0, start_noop = 0;
  uint64_t resync_entries = 0;
  double writes = 0, writes_acked = 0, writes_4 = 0, catch_up = 0, catch_up_4 = 0;
  double single = 0, single_4 = 0;
  std::vector<double> remote, local;
};

bool OneRun(int run, Run* r) {
  Bench bench(run);
  auto fail = [&](const char* what) {
    fprintf(stderr, "config_sync_bench run %d: %s\n--- a ---\n%s\n--- b ---\n%s\n", run, what,
            bench.Tail("a").c_str(), bench.Tail("b").c_str());
    return false;
  };
  if (!bench.Start()) return fail("the pair did not start");

  // Resync first, so the store holds exactly the 10 000 policies.
  if (!bench.Fill()) return fail("b did not receive the 10 000 policies");
  RestartFigures noop = bench.RestartSecondary(/*delete_store=*/false);
  if (!noop.ok) return fail("b did not resync after a restart with its store");
  RestartFigures full = bench.RestartSecondary(/*delete_store=*/true);
  if (!full.ok) return fail("b did not resync after a restart without its store");
  if (!full.store_existed) return fail("b's store file was not where its status said");
  if (full.entries != static_cast<uint64_t>(kResyncKeys)) {
    fprintf(stderr, "run %d: the full resync moved %llu entries, expected %d\n", run,
            static_cast<unsigned long long>(full.entries), kResyncKeys);
    return false;
  }
  r->resync_10k = full.resync_ms;
  r->resync_entries = full.entries;
  r->start_full = full.start_to_sync_ms;
  r->resync_noop = noop.resync_ms;
  r->start_noop = noop.start_to_sync_ms;
  printf("run %d resync: 10k keys, store deleted: last_resync_ms %.1f (%llu entries, "
         "resyncs %llu), process start -> IN_SYNC %.0f ms | store kept (baseline): "
         "last_resync_ms %.1f (%llu entries, resyncs %llu), start -> IN_SYNC %.0f ms\n",
         run, full.resync_ms, static_cast<unsigned long long>(full.entries),
         static_cast<unsigned long long>(full.resyncs), full.start_to_sync_ms, noop.resync_ms,
         static_cast<unsigned long long>(noop.entries),
         static_cast<unsigned long long>(noop.resyncs), noop.start_to_sync_ms);
  fflush(stdout);

  ChangeFigures c = bench.Changes();
  if (c.remote_ms.empty()) return fail("no change was seen on both watches");
  r->remote = c.remote_ms;
  r->local = c.local_ms;
  r->change_p50 = Percentile(c.remote_ms, 0.5);
  r->change_p99 = Percentile(c.remote_ms, 0.99);
  r->local_p50 = Percentile(c.local_ms, 0.5);
  r->local_p99 = Percentile(c.local_ms, 0.99);
  r->put_p50 = Percentile(c.put_ms, 0.5);
  printf("run %d change: Put on a -> Watch on b p50 %.2f ms p99 %.2f ms max %.2f ms | "
         "-> Watch on a (baseline) p50 %.2f ms p99 %.2f ms | Put returned p50 %.2f ms "
         "(%zu changes, %d lost)\n",
         run, r->change_p50, r->change_p99, Percentile(c.remote_ms, 1.0), r->local_p50,
         r->local_p99, r->put_p50, c.remote_ms.size(), c.lost);
  fflush(stdout);

  WriteFigures seq = bench.Writes(1, /*secondary=*/true, "seq");
  WriteFigures par = bench.Writes(4, /*secondary=*/true, "par");
  if (seq.synced_per_s == 0 || par.synced_per_s == 0) return fail("b did not catch up");
  r->writes = seq.synced_per_s;
  r->writes_acked = seq.acked_per_s;
  r->catch_up = seq.catch_up_ms;
  r->writes_4 = par.synced_per_s;
  r->catch_up_4 = par.catch_up_ms;
  if (!bench.StopSecondary()) return fail("a did not declare b down");
  WriteFigures alone = bench.Writes(1, /*secondary=*/false, "alone");
  WriteFigures alone_4 = bench.Writes(4, /*secondary=*/false, "alone4");
  r->single = alone.acked_per_s;
  r->single_4 = alone_4.acked_per_s;
  printf("run %d writes: with b following: 1 client %.0f/s until b holds the last (%.0f/s "
         "acked, b %.1f ms behind at the end, %d writes, %d errors), 4 clients %.0f/s (b %.1f "
         "ms behind) | a alone (baseline): 1 client %.0f/s, 4 clients %.0f/s\n",
         run, seq.synced_per_s, seq.acked_per_s, seq.catch_up_ms, seq.writes,
         seq.errors + par.errors, par.synced_per_s, par.catch_up_ms, alone.acked_per_s,
         alone_4.acked_per_s);
  fflush(stdout);
  return true;
}

int Main() {
  std::vector<Run> runs;
  printf("%u CPUs; two agents, this client and anything else on the machine share them\n",
         std::thread::hardware_concurrency());
  for (int run = 1; run <= 3; ++run) {
    printf("run %d: load average %s\n", run, LoadAverage().c_str());
    Run r;
    if (!OneRun(run, &r)) return 1;
    runs.push_back(std::move(r));
  }
  auto med = [&](double Run::*field) {
    std::vector<double> v;
    for (const Run& r : runs) v.push_back(r.*field);
    return Median(v);
  };
  auto spread = [&](double Run::*field) {
    double lo = runs[0].*field, hi = lo;
    for (const Run& r : runs) {
      lo = std::min(lo, r.*field);
      hi = std::max(hi, r.*field);
    }
    return absl::StrFormat("%.4g..%.4g", lo, hi);
  };
  std::vector<double> remote_all, local_all;
  for (const Run& r : runs) {
    remote_all.insert(remote_all.end(), r.remote.begin(), r.remote.end());
    local_all.insert(local_all.end(), r.local.begin(), r.local.end());
  }
  double c50 = med(&Run::change_p50), c99 = med(&Run::change_p99);
  double l50 = med(&Run::local_p50), l99 = med(&Run::local_p99);
  double r10k = med(&Run::resync_10k), rnoop = med(&Run::resync_noop);
  double sfull = med(&Run::start_full), snoop = med(&Run::start_noop);
  double w = med(&Run::writes), wa = med(&Run::writes_acked), w4 = med(&Run::writes_4);
  double s1 = med(&Run::single), s4 = med(&Run::single_4);
  printf("median of 3 (runs' range in brackets):\n");
  absl::PrintF("  change on a -> watch on b: p50 %.2f ms [%s] p99 %.2f ms [%s] (target p99 20 ms: "
         "%.2f x); watch on a: p50 %.2f ms p99 %.2f ms; b/a %.2f x at p50, %.2f x at p99; "
         "pooled %zu changes: b p99 %.2f ms, a p99 %.2f ms\n",
         c50, spread(&Run::change_p50), c99, spread(&Run::change_p99), c99 / 20.0, l50, l99,
         c50 / l50, c99 / l99, remote_all.size(), Percentile(remote_all, 0.99),
         Percentile(local_all, 0.99));
  absl::PrintF("  resync of 10k keys (b's last_resync_ms): %.1f ms [%s] (target 200 ms: %.2f x); "
         "nothing to send (baseline) %.1f ms [%s], %.1f x; process start -> IN_SYNC %.0f ms "
         "[%s] (store kept: %.0f ms)\n",
         r10k, spread(&Run::resync_10k), r10k / 200.0, rnoop, spread(&Run::resync_noop),
         r10k / rnoop, sfull, spread(&Run::start_full), snoop);
  absl::PrintF("  writes, 1 client, until b holds the last: %.0f/s [%s] (acked %.0f/s); 4 clients "
         "%.0f/s [%s]; a alone (baseline): 1 client %.0f/s [%s], 4 clients %.0f/s; with b / "
         "alone %.2f x\n",
         w, spread(&Run::writes), wa, w4, spread(&Run::writes_4), s1, spread(&Run::single), s4,
         w / s1);
  printf("{\"change_p50_ms\":%.2f,\"change_p99_ms\":%.2f,\"change_local_p50_ms\":%.2f,"
         "\"change_local_p99_ms\":%.2f,\"resync_10k_ms\":%.1f,\"resync_10k_entries\":%llu,"
         "\"resync_noop_ms\":%.1f,\"startup_to_in_sync_ms\":%.0f,\"writes_per_s\":%.0f,"
         "\"writes_per_s_acked\":%.0f,\"writes_per_s_4threads\":%.0f,"
         "\"writes_per_s_single_node\":%.0f,\"writes_per_s_single_node_4threads\":%.0f}\n",
         c50, c99, l50, l99, r10k, static_cast<unsigned long long>(runs[0].resync_entries), rnoop,
         sfull, w, wa, w4, s1, s4);
  return 0;
}

}  // namespace
}  // namespace cloudha

int main() { return cloudha::Main(); }
