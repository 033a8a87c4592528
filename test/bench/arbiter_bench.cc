// Arbiter benchmark (test/arbiter_lab.h: two agents and the arbiter in three
// network namespaces, 100 ms x 5 hellos), once per back end: a `cloudha
// witness` with a 1000 ms lease, then an etcd with a 2000 ms lease (etcd
// counts leases in whole seconds). Isolates the primary from everything N
// times (default 20) and measures, sampling both nodes' status every 5 ms,
//   handover gap: old primary no longer serving cloudha.v1.Primary -> the
//                 new primary serving it;
//   failover:     isolation -> the new primary serving;
//   dual primary: time both nodes said PRIMARY (must be 0);
// then, as the baseline in the same run, the same isolation without an
// arbiter (both nodes primary for the rest of each 3 s cut). Prints figures,
// asserts nothing about time; the last lines are one JSON object per back
// end. Needs root (and etcd-server for the etcd run).
//
//   bazel run -c opt //test/bench:arbiter_bench -- [--rounds N]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "test/arbiter_lab.h"

namespace cloudha {
namespace {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

struct Round {
  double gap_ms = -1;
  double failover_ms = -1;
  double dual_ms = 0;
};

// Isolates the primary; samples until the other serves and `hold` more.
Round Isolate(ArbiterLab& lab, absl::Duration hold) {
  ArbiterLab::Roles start = lab.Sample();
  const bool a_was = start.a_primary;
  const std::string old_primary = a_was ? "a" : "b";
  const absl::Time cut = absl::Now();
  lab.Isolate(old_primary, true);
  absl::Time old_gone = absl::InfiniteFuture();
  absl::Time serving = absl::InfiniteFuture();
  absl::Time last = cut;
  Round r;
  absl::Time end = cut + absl::Seconds(10);
  while (absl::Now() < end) {
    ArbiterLab::Roles s = lab.Sample();
    absl::Time now = absl::Now();
    const bool old_serving = a_was ? s.a_serving : s.b_serving;
    const bool new_serving = a_was ? s.b_serving : s.a_serving;
    if (s.a_primary && s.b_primary) r.dual_ms += absl::ToDoubleMilliseconds(now - last);
    last = now;
    if (!old_serving && old_gone == absl::InfiniteFuture()) old_gone = now;
    if (new_serving && serving == absl::InfiniteFuture()) {
      serving = now;
      end = std::min(end, now + hold);
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (serving != absl::InfiniteFuture()) {
    r.failover_ms = absl::ToDoubleMilliseconds(serving - cut);
    r.gap_ms = absl::ToDoubleMilliseconds(serving - old_gone);
  }
  lab.Isolate(old_primary, false);
  const std::string next = a_was ? "b" : "a";
  // Back to one primary (the old one follows, or with no arbiter the lower
  // epoch steps down) before the next round.
  lab.Follows(old_primary, next, absl::Seconds(10)) || lab.Follows(next, old_primary, absl::Seconds(5));
  return r;
}

std::vector<double> Collect(const std::vector<Round>& rs, double Round::*field) {
  std::vector<double> v;
  for (const Round& r : rs) {
    if (r.*field >= 0) v.push_back(r.*field);
  }
  return v;
}

// One back end's rounds; `skipped` says why there are none.
struct Run {
  ArbiterLab::Options options;
  std::vector<Round> rounds;
  std::string skipped;
};

int Main(int argc, char** argv) {
  int rounds = 20;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--rounds") == 0 && !absl::SimpleAtoi(argv[i + 1], &rounds)) {
      std::fprintf(stderr, "--rounds takes a number\n");
      return 1;
    }
  }
  std::vector<Run> runs(2);
  runs[0].options.backend = ArbiterLab::Backend::kWitness;
  runs[0].options.lease_ttl_ms = 1000;
  runs[1].options.backend = ArbiterLab::Backend::kEtcd;
  runs[1].options.lease_ttl_ms = 2000;
  for (Run& run : runs) {
    const char* name = ArbiterLab::Name(run.options.backend);
    ArbiterLab lab;
    absl::Status s = lab.Create();
    if (!s.ok()) {
      std::printf("arbiter_bench: skipped: %s\n{\"skipped\": \"%s\"}\n",
                  std::string(s.message()).c_str(), std::string(s.message()).c_str());
      return 0;
    }
    if (absl::Status p = lab.StartPair(run.options); !p.ok()) {
      if (absl::IsFailedPrecondition(p)) {
        run.skipped = std::string(p.message());
        std::printf("%s: skipped: %s\n", name, run.skipped.c_str());
        continue;
      }
      std::fprintf(stderr, "%s\n", std::string(p.message()).c_str());
      return 1;
    }
    for (int i = 0; i < rounds; ++i) {
      run.rounds.push_back(Isolate(lab, absl::Milliseconds(500)));
      std::printf("%s round %2d: failover %7.1f ms  gap %6.1f ms  dual primary %5.1f ms\n", name,
                  i, run.rounds.back().failover_ms, run.rounds.back().gap_ms,
                  run.rounds.back().dual_ms);
    }
  }
  std::vector<Round> without;
  {
    ArbiterLab lab;
    if (!lab.Create().ok()) return 1;
    ArbiterLab::Options none;
    none.on_isolation = "";
    if (absl::Status p = lab.StartPair(none); !p.ok()) {
      std::fprintf(stderr, "%s\n", std::string(p.message()).c_str());
      return 1;
    }
    const int baseline_rounds = std::max(3, rounds / 4);
    for (int i = 0; i < baseline_rounds; ++i) {
      without.push_back(Isolate(lab, absl::Seconds(3)));
      std::printf("no arbiter round %2d: failover %7.1f ms  dual primary %6.1f ms of the cut\n", i,
                  without.back().failover_ms, without.back().dual_ms);
    }
  }
  const double base_dual = Percentile(Collect(without, &Round::dual_ms), 50);
  const double base_failover = Percentile(Collect(without, &Round::failover_ms), 50);
  std::vector<std::string> json;
  for (const Run& run : runs) {
    const char* name = ArbiterLab::Name(run.options.backend);
    if (!run.skipped.empty()) {
      json.push_back(absl::StrFormat("{\"backend\": \"%s\", \"skipped\": \"%s\"}", name,
                                     run.skipped));
      continue;
    }
    std::vector<double> gap = Collect(run.rounds, &Round::gap_ms);
    std::vector<double> failover = Collect(run.rounds, &Round::failover_ms);
    double dual = 0;
    for (const Round& r : run.rounds) dual += r.dual_ms;
    std::printf(
        "\n%s (lease %d ms, 100 ms x 5), %zu isolations:\n"
        "  handover gap   p50 %7.1f ms  p99 %7.1f ms\n"
        "  failover       p50 %7.1f ms  p99 %7.1f ms  (no arbiter: p50 %.1f ms)\n"
        "  dual primary   %.1f ms in all (no arbiter: median %.1f ms per 3 s cut)\n",
        name, run.options.lease_ttl_ms, failover.size(), Percentile(gap, 50),
        Percentile(gap, 99), Percentile(failover, 50), Percentile(failover, 99), base_failover,
        dual, base_dual);
    json.push_back(absl::StrFormat(
        "{\"backend\": \"%s\", \"lease_ttl_ms\": %d, \"rounds\": %zu, "
        "\"handover_gap_p50_ms\": %.1f, \"handover_gap_p99_ms\": %.1f, "
        "\"failover_p50_ms\": %.1f, \"failover_p99_ms\": %.1f, \"dual_primary_ms\": %.1f, "
        "\"baseline_no_arbiter_dual_primary_ms_per_cut\": %.1f, "
        "\"baseline_no_arbiter_failover_p50_ms\": %.1f}",
        name, run.options.lease_ttl_ms, failover.size(), Percentile(gap, 50),
        Percentile(gap, 99), Percentile(failover, 50), Percentile(failover, 99), dual, base_dual,
        base_failover));
  }
  std::printf("\n");
  for (const std::string& line : json) std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace
}  // namespace cloudha

int main(int argc, char** argv) { return cloudha::Main(argc, argv); }
