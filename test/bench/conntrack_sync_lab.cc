#include "test/bench/conntrack_sync_lab.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/real_clock.h"
#include "sync/conntrack.h"

namespace cloudha {

std::unique_ptr<ConntrackSyncLab> ConntrackSyncLab::Create(std::string* why) {
  if (geteuid() != 0) {
    *why = "needs root to create network namespaces";
    return nullptr;
  }
  std::unique_ptr<ConntrackSyncLab> lab(new ConntrackSyncLab());
  const std::string dir = lab->cluster_.dir();
  if (RunCommand({"conntrack", "--version"}, dir).exit_code != 0) {
    *why = "needs the conntrack tool (Debian package conntrack)";
    return nullptr;
  }
  std::string tag = absl::StrCat(getpid() % 100000);
  lab->ns_a_ = absl::StrCat("cloudha-bench-", tag, "-a");
  lab->ns_b_ = absl::StrCat("cloudha-bench-", tag, "-b");
  lab->link_a_ = absl::StrCat("cb", tag, "a");
  lab->link_b_ = absl::StrCat("cb", tag, "b");
  CommandResult add = RunCommand({"ip", "netns", "add", lab->ns_a_}, dir);
  if (add.exit_code != 0) {
    *why = absl::StrCat("ip netns add failed: ", add.err);
    return nullptr;
  }
  lab->created_ = true;
  bool ok = RunCommand({"ip", "netns", "add", lab->ns_b_}, dir).exit_code == 0 &&
            RunCommand({"ip", "link", "add", lab->link_a_, "netns", lab->ns_a_, "type", "veth",
                        "peer", "name", lab->link_b_, "netns", lab->ns_b_},
                       dir)
                    .exit_code == 0;
  for (const char* node : {"a", "b"}) {
    if (!ok) break;
    ok = RunCommand({"ip", "-n", lab->ns(node), "addr", "add",
                     absl::StrCat(address(node), "/24"), "dev", lab->link(node)},
                    dir)
                 .exit_code == 0 &&
         RunCommand({"ip", "-n", lab->ns(node), "link", "set", lab->link(node), "up"}, dir)
                 .exit_code == 0 &&
         RunCommand({"ip", "-n", lab->ns(node), "link", "set", "lo", "up"}, dir).exit_code == 0;
  }
  if (!ok) {
    *why = "could not set up the namespaces' link";
    return nullptr;
  }
  return lab;
}

ConntrackSyncLab::~ConntrackSyncLab() {
  StopAgents();
  if (created_) {
    RunCommand({"ip", "netns", "del", ns_a_}, cluster_.dir());
    RunCommand({"ip", "netns", "del", ns_b_}, cluster_.dir());
  }
}

bool ConntrackSyncLab::StartAgents(const std::string& commit) {
  StopAgents();
  Flush();
  for (const std::string node : {"a", "b"}) {
    const std::string peer = node == "a" ? "b" : "a";
    cluster_.WriteConfig(
        node,
        absl::StrCat("cluster { name: \"demo\" group_id: 7 }\n", "node { id: \"", node,
                     "\" priority: ", node == "a" ? 200 : 100, " }\n",
                     "listen: \"0.0.0.0:7801\"\n", "peers { id: \"", peer, "\" addresses: \"",
                     address(peer), ":7801\" }\n", "tls { ca_file: \"ca.crt\" cert_file: \"",
                     node, ".crt\" key_file: \"", node, ".key\" }\n",
                     "heartbeat { interval_ms: 100 lost_threshold: 5 }\n",
                     "election { hello_holddown_s: 1 failover_hold_s: 0 }\n",
                     "admin { socket: \"", node, ".sock\" }\n", "state_dir: \"state-", node,
                     "\"\n", "sessions { pickup: true source: CONNTRACK commit: ", commit,
                     " max_sessions: 4000000 }\n"));
  }
  if (cluster_.Start("a", {"ip", "netns", "exec", ns_a_}) == nullptr) return false;
  started_.insert("a");
  if (!cluster_.WaitFor("a", [](const v1::StatusResponse& s) { return s.role() == v1::PRIMARY; },
                        absl::Seconds(15))) {
    return false;
  }
  if (cluster_.Start("b", {"ip", "netns", "exec", ns_b_}) == nullptr) return false;
  started_.insert("b");
  return cluster_.WaitFor(
      "b",
      [](const v1::StatusResponse& s) {
        return s.role() == v1::SECONDARY && s.sync_state() == v1::IN_SYNC;
      },
      absl::Seconds(15));
}

void ConntrackSyncLab::StopAgents() {
  for (const std::string& node : started_) {
    cluster_.Kill(node, SIGKILL);
    cluster_.agent(node)->Wait(absl::Seconds(5));
  }
  started_.clear();
}

void ConntrackSyncLab::Flush() {
  for (const char* node : {"a", "b"}) {
    RunCommand({"ip", "netns", "exec", ns(node), "conntrack", "-F"}, cluster_.dir());
  }
}

void ConntrackSyncLab::InNamespace(const std::string& node, const std::function<void()>& work) {
  std::thread thread([&] {
    int fd = open(absl::StrCat("/run/netns/", ns(node)).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    // setns changes this thread only; it ends with the work.
    bool entered = setns(fd, CLONE_NEWNET) == 0;
    close(fd);
    if (entered) work();
  });
  thread.join();
}

absl::Status ConntrackSyncLab::Load(uint32_t first, uint32_t n) {
  absl::Status result = absl::UnknownError("could not enter the namespace");
  InNamespace("a", [&] {
    RealClock clock;
    absl::StatusOr<std::unique_ptr<Conntrack>> conntrack = Conntrack::Create({}, &clock);
    if (!conntrack.ok()) {
      result = conntrack.status();
      return;
    }
    result = absl::OkStatus();
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    std::vector<SessionRecord> batch;
    for (uint32_t i = first; i < first + n; ++i) {
      SessionRecord r;
      r.key.family = 2;
      r.key.l4_protocol = 6;
      r.key.src = {198, 18, static_cast<uint8_t>(100 + (i >> 16)), static_cast<uint8_t>(i >> 8)};
      r.key.dst = {198, 19, 0, 1};
      r.key.src_port = static_cast<uint16_t>(1024 + (i & 0xff));
      r.key.dst_port = 443;
      r.value.reply_src = r.key.dst;
      r.value.reply_dst = r.key.src;
      r.value.reply_src_port = r.key.dst_port;
      r.value.reply_dst_port = r.key.src_port;
      r.value.tcp_state = 3;  // ESTABLISHED
      r.value.flags = 0x0e;   // SEEN_REPLY | ASSURED | CONFIRMED
      r.value.timeout_s = 3600;
      r.value.created_ms = now_ms;
      r.value.last_update_ms = now_ms;
      batch.push_back(r);
      if (batch.size() == 10000 || i + 1 == first + n) {
        absl::StatusOr<Conntrack::CommitStats> stats = (*conntrack)->Commit(batch);
        if (!stats.ok()) {
          result = stats.status();
          return;
        }
        batch.clear();
      }
    }
  });
  return result;
}

size_t ConntrackSyncLab::KernelCount(const std::string& node) {
  size_t count = 0;
  InNamespace(node, [&] {
    // /proc/sys/net shows the namespace of the thread that opens it.
    std::ifstream in("/proc/sys/net/netfilter/nf_conntrack_count");
    in >> count;
  });
  return count;
}

absl::Time ConntrackSyncLab::WaitKernelCount(const std::string& node, size_t count,
                                             absl::Duration timeout) {
  absl::Time reached = absl::InfiniteFuture();
  InNamespace(node, [&] {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      size_t n = 0;
      std::ifstream in("/proc/sys/net/netfilter/nf_conntrack_count");
      in >> n;
      if (n >= count) {
        reached = absl::Now();
        return;
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
  });
  return reached;
}

}  // namespace cloudha
