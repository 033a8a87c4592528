// Two cloudha agents with the conntrack source, each in its own network
// namespace (its own conntrack table), joined by a veth pair in
// 198.18.8.0/24: the kernel-to-kernel half of session_sync_bench. The lab
// makes load in a's kernel by writing entries through ctnetlink, as a data
// plane's packets would make them, and reads the tables' sizes from inside
// each namespace. Needs root, `ip netns` and the conntrack tool.
//
// Not thread-safe: one benchmark thread drives it.
#ifndef CLOUDHA_TEST_BENCH_CONNTRACK_SYNC_LAB_H_
#define CLOUDHA_TEST_BENCH_CONNTRACK_SYNC_LAB_H_

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "test/test_cluster.h"

namespace cloudha {

class ConntrackSyncLab {
 public:
  // The namespaces and the link; nullptr with `*why` when the machine
  // cannot (not root, no ip netns, no conntrack tool).
  static std::unique_ptr<ConntrackSyncLab> Create(std::string* why);
  ~ConntrackSyncLab();

  // Starts a (priority 200) and b with sessions.commit `commit`
  // ("CONTINUOUS" or "ON_PROMOTION"), each table flushed first; true once
  // a is primary and b in sync.
  bool StartAgents(const std::string& commit);
  // Kills both agents (SIGKILL) and waits for them.
  void StopAgents();
  // Marks `node` as no longer running (the caller killed it).
  void Forget(const std::string& node) { started_.erase(node); }
  // Empties both kernels' tables.
  void Flush();

  // Writes `n` established TCP entries (keys from `first` on) into a's
  // kernel in batches, as fast as ctnetlink takes them.
  absl::Status Load(uint32_t first, uint32_t n);
  // Entries in `node`'s kernel ("a" or "b").
  size_t KernelCount(const std::string& node);
  // Polls KernelCount(node) until it reaches `count`; the time it did, or
  // InfiniteFuture after `timeout`.
  absl::Time WaitKernelCount(const std::string& node, size_t count, absl::Duration timeout);

  const std::string& ns(const std::string& node) const { return node == "a" ? ns_a_ : ns_b_; }
  const std::string& link(const std::string& node) const {
    return node == "a" ? link_a_ : link_b_;
  }
  static std::string address(const std::string& node) {
    return node == "a" ? "198.18.8.1" : "198.18.8.2";
  }
  TestCluster& cluster() { return cluster_; }

 private:
  ConntrackSyncLab() = default;
  // Runs `work` on a thread inside `node`'s namespace.
  void InNamespace(const std::string& node, const std::function<void()>& work);

  std::string ns_a_, ns_b_, link_a_, link_b_;
  bool created_ = false;
  std::set<std::string> started_;
  TestCluster cluster_{{"a", "b"}};
};

}  // namespace cloudha

#endif  // CLOUDHA_TEST_BENCH_CONNTRACK_SYNC_LAB_H_
