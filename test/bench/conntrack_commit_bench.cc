// Conntrack commit benchmark: how fast Conntrack::Commit writes sessions
// into the kernel's table (sync/conntrack.h, batched ctnetlink requests).
// In a network namespace of its own, N runs (default 5) of:
//   create: Commit() of 100 000 TCP ESTABLISHED sessions (every fourth
//           behind SNAT) into an empty table;
//   update: Commit() of the same sessions again (a new mark), all updates;
//   baseline: the conntrack tool loading the same sessions from a file
//           (`conntrack -R FILE`, one `-A ...` line each) into an empty
//           table;
// flushing the table (`conntrack -F`) before each. Prints every run, the
// medians in entries/s and the ratio Commit create / conntrack tool, then
// one JSON line. Asserts nothing about time. Needs root (CAP_NET_ADMIN and
// unshare(CLONE_NEWNET)); without it prints why and exits 0. Addresses are
// in 198.18.0.0/15 and live only in the private namespace.
//
//   bazel run -c opt //test/bench:conntrack_commit_bench -- [--runs N] [--sessions N]
#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "base/command_runner.h"
#include "base/real_clock.h"
#include "sync/conntrack.h"

namespace cloudha {
namespace {

constexpr int kMaxSessions = 200000;

const char* ConntrackTool() {
  for (const char* path : {"/usr/sbin/conntrack", "/sbin/conntrack", "/usr/bin/conntrack"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return nullptr;
}

// Runs the conntrack tool in this process's namespace.
CommandOutcome Tool(std::vector<std::string> args) {
  args.insert(args.begin(), ConntrackTool());
  return RunCommand(args, {}, absl::Minutes(5));
}

std::string Text(const IpAddress& address) {
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, address.data(), text, sizeof(text));
  return text;
}

IpAddress V4(uint32_t host_order) {
  IpAddress address{};
  const uint32_t network = htonl(host_order);
  std::memcpy(address.data(), &network, 4);
  return address;
}

// Session i: 198.18.0.0 + i % 65536 -> 198.19.0.1:443 from port
// 1000 + i / 65536; every fourth with SNAT to 198.19.128.1:10000 + i / 4.
std::vector<SessionRecord> Sessions(int count, int64_t now_ms) {
  std::vector<SessionRecord> records;
  for (int i = 0; i < count; ++i) {
    SessionRecord record;
    SessionKey& key = record.key;
    key.family = AF_INET;
    key.l4_protocol = IPPROTO_TCP;
    key.src = V4(0xc6120000u + static_cast<uint32_t>(i % 65536));
    key.dst = V4(0xc6130001u);
    key.src_port = static_cast<uint16_t>(1000 + i / 65536);
    key.dst_port = 443;
    SessionValue& value = record.value;
    value.reply_src = key.dst;
    value.reply_src_port = key.dst_port;
    value.reply_dst = key.src;
    value.reply_dst_port = key.src_port;
    if (i % 4 == 0) {
      value.reply_dst = V4(0xc6138001u);
      value.reply_dst_port = static_cast<uint16_t>(10000 + i / 4);
      value.flags |= IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;
    }
    value.tcp_state = v1::TCP_ESTABLISHED;
    value.timeout_s = 600;
    value.flags |= IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED;
    value.created_ms = now_ms;
    value.last_update_ms = now_ms;
    records.push_back(record);
  }
  return records;
}

// The same sessions as `conntrack -R` lines. (The tool's own `-L -o save`
// lines do not load back in conntrack 1.4.7: it refuses their reply tuple.)
std::string LoadFile(const std::vector<SessionRecord>& records) {
  std::string text;
  for (const SessionRecord& record : records) {
    const SessionKey& key = record.key;
    absl::StrAppend(&text, "-A -t ", record.value.timeout_s, " -u SEEN_REPLY,ASSURED -s ",
                    Text(key.src), " -d ", Text(key.dst), " -p tcp --sport ", key.src_port,
                    " --dport ", key.dst_port, " --state ESTABLISHED");
    if (record.value.reply_dst != key.src) {
      absl::StrAppend(&text, " --src-nat ", Text(record.value.reply_dst), ":",
                      record.value.reply_dst_port);
    }
    text += "\n";
  }
  return text;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string Skip(const std::string& reason) {
  return absl::StrFormat("conntrack_commit_bench: skipped: %s\n{\"skipped\": \"%s\"}\n", reason,
                         absl::StrReplaceAll(reason, {{"\"", "'"}, {"\\", "/"}}));
}

struct Figures {
  std::vector<double> create, update, tool;
};

// Empties the table; false (with the reason printed) when it failed.
bool Flush() {
  CommandOutcome flushed = Tool({"-F"});
  if (!flushed.ok()) {
    std::printf("conntrack -F: %s: %s\n", flushed.summary.c_str(), flushed.output.c_str());
  }
  return flushed.ok();
}

// Commits `records` and returns how long it took, or nullopt (with the
// reason printed) unless every one was counted in `count`.
std::optional<double> TimeCommit(Conntrack& conntrack, const std::vector<SessionRecord>& records,
                                 size_t Conntrack::CommitStats::*count, const char* what) {
  const absl::Time start = absl::Now();
  absl::StatusOr<Conntrack::CommitStats> stats = conntrack.Commit(records);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!stats.ok()) {
    std::printf("%s: %s\n", what, stats.status().ToString().c_str());
    return std::nullopt;
  }
  if ((*stats).*count != records.size()) {
    std::printf("%s: %zu of %zu; first error: %s\n", what, (*stats).*count, records.size(),
                stats->first_error.c_str());
    return std::nullopt;
  }
  return seconds;
}

// One run; returns false (with the reason printed) when a step went wrong.
bool Run(int round, Conntrack& conntrack, const std::vector<SessionRecord>& records,
         const std::string& load_file, Figures* figures) {
  if (!Flush()) return false;
  std::optional<double> create_s =
      TimeCommit(conntrack, records, &Conntrack::CommitStats::created, "create");
  if (!create_s.has_value()) return false;
  std::vector<SessionRecord> updates = records;
  for (SessionRecord& record : updates) record.value.mark = static_cast<uint32_t>(round + 1);
  std::optional<double> update_s =
      TimeCommit(conntrack, updates, &Conntrack::CommitStats::updated, "update");
  if (!update_s.has_value()) return false;

  if (!Flush()) return false;
  const absl::Time start = absl::Now();
  const CommandOutcome loaded = Tool({"-R", load_file});
  const double tool_s = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<SessionRecord> table;
  absl::Status dumped = conntrack.Dump(&table);
  if (!loaded.ok() || !dumped.ok() || table.size() != records.size()) {
    std::printf("conntrack -R: %s, %zu entries in the table (%s): %s\n", loaded.summary.c_str(),
                table.size(), dumped.ToString().c_str(), loaded.output.c_str());
    return false;
  }

  const double n = static_cast<double>(records.size());
  figures->create.push_back(n / *create_s);
  figures->update.push_back(n / *update_s);
  figures->tool.push_back(n / tool_s);
  std::printf(
      "run %d: create %9.0f entries/s (%.3f s)  update %9.0f entries/s (%.3f s)  "
      "conntrack -R %9.0f entries/s (%.3f s)\n",
      round, n / *create_s, *create_s, n / *update_s, *update_s, n / tool_s, tool_s);
  return true;
}

int Main(int argc, char** argv) {
  int runs = 5;
  int sessions = 100000;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--runs") == 0 && has_value && absl::SimpleAtoi(argv[i + 1], &runs) &&
        runs >= 1) {
      ++i;
    } else if (std::strcmp(argv[i], "--sessions") == 0 && has_value &&
               absl::SimpleAtoi(argv[i + 1], &sessions) && sessions >= 1 &&
               sessions <= kMaxSessions) {
      ++i;
    } else {
      std::fprintf(stderr, "usage: %s [--runs N>=1] [--sessions 1..%d]\n", argv[0], kMaxSessions);
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::printf("%s", Skip("needs root (CAP_NET_ADMIN) and a private network namespace").c_str());
    return 0;
  }
  if (unshare(CLONE_NEWNET) != 0) {
    std::printf("%s", Skip(absl::StrCat("unshare(CLONE_NEWNET): ", std::strerror(errno))).c_str());
    return 0;
  }
  if (ConntrackTool() == nullptr) {
    std::printf("%s", Skip("needs the conntrack tool (Debian package conntrack)").c_str());
    return 0;
  }
  RealClock clock;
  absl::StatusOr<std::unique_ptr<Conntrack>> conntrack = Conntrack::Create({}, &clock);
  if (!conntrack.ok()) {
    std::printf("%s", Skip(std::string(conntrack.status().message())).c_str());
    return 0;
  }

  const std::vector<SessionRecord> records =
      Sessions(sessions, absl::ToUnixMillis(clock.WallNow()));
  char path[] = "/tmp/conntrack_commit_bench.XXXXXX";
  const int fd = mkstemp(path);
  const std::string text = LoadFile(records);
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::fprintf(stderr, "writing %s: %s\n", path, std::strerror(errno));
    return 1;
  }
  close(fd);

  std::printf(
      "%d sessions (TCP ESTABLISHED, every fourth with SNAT), %d runs, private network "
      "namespace\n",
      sessions, runs);
  Figures figures;
  bool ok = true;
  for (int round = 1; round <= runs && ok; ++round) {
    ok = Run(round, **conntrack, records, path, &figures);
  }
  unlink(path);
  if (!ok) return 1;

  const double create = Median(figures.create);
  const double update = Median(figures.update);
  const double tool = Median(figures.tool);
  std::printf(
      "\nmedian of %d runs: Commit create %.0f entries/s, Commit update %.0f entries/s, "
      "conntrack -R %.0f entries/s; create / conntrack -R = %.2f\n",
      runs, create, update, tool, create / tool);
  std::printf(
      "{\"sessions\": %d, \"runs\": %d, \"commit_create_per_s\": %.0f, "
      "\"commit_update_per_s\": %.0f, \"conntrack_tool_per_s\": %.0f, \"ratio\": %.2f}\n",
      sessions, runs, create, update, tool, create / tool);
  return 0;
}

}  // namespace
}  // namespace cloudha

int main(int argc, char** argv) { return cloudha::Main(argc, argv); }
