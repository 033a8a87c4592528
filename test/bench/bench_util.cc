#include "test/bench/bench_util.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/secure_file.h"

namespace cloudha {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double CpuSeconds(pid_t pid) {
  std::string stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat")).value_or("");
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields;
  size_t start = close + 2;
  while (start < stat.size()) {
    size_t space = stat.find(' ', start);
    if (space == std::string::npos) space = stat.size();
    fields.push_back(stat.substr(start, space - start));
    start = space + 1;
  }
  double utime = 0, stime = 0;
  // Fields after the command: state is [0], utime is [11], stime [12].
  if (fields.size() > 12) {
    absl::SimpleAtod(fields[11], &utime);
    absl::SimpleAtod(fields[12], &stime);
  }
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}

double CpuPercent(pid_t pid, absl::Duration window) {
  double before = CpuSeconds(pid);
  absl::SleepFor(window);
  return 100.0 * (CpuSeconds(pid) - before) / absl::ToDoubleSeconds(window);
}

double RssMb(pid_t pid) {
  std::string status = ReadSmallFile(absl::StrCat("/proc/", pid, "/status")).value_or("");
  size_t at = status.find("VmRSS:");
  if (at == std::string::npos) return 0;
  double kb = 0;
  absl::SimpleAtod(status.substr(at + 6, status.find("kB", at) - at - 6), &kb);
  return kb / 1024.0;
}

}  // namespace cloudha
