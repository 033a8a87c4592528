// What several benchmarks measure the same way: percentiles of samples, and
// a process's CPU time and resident memory from /proc.
#ifndef CLOUDHA_TEST_BENCH_BENCH_UTIL_H_
#define CLOUDHA_TEST_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <vector>

#include "absl/time/time.h"

namespace cloudha {

// The nearest-rank percentile `p` (0..100) of `v`; 0 for none.
double Percentile(std::vector<double> v, double p);

// CPU time (user + system) `pid` has used so far, in seconds; 0 when it
// cannot be read.
double CpuSeconds(pid_t pid);

// CPU percent of one core used by `pid` over the next `window` (sleeps).
double CpuPercent(pid_t pid, absl::Duration window);

// Resident memory of `pid`, MB.
double RssMb(pid_t pid);

}  // namespace cloudha

#endif  // CLOUDHA_TEST_BENCH_BENCH_UTIL_H_
