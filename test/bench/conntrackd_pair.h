// Debian's conntrackd on two nodes, each in its own network namespace (its
// own conntrack table), syncing over one veth link: the baseline that a
// benchmark measures cloudha's kernel-to-kernel sync against. Needs root,
// `ip netns` and the conntrackd package (ConntrackdBinary() says whether
// it is installed); the caller makes the namespaces and the link.
//
// The configuration, the same on both nodes but for the addresses:
//   - Sync Mode FTFW over unicast UDP (IPv4_address, IPv4_Destination_Address,
//     Interface, port 3780): conntrackd's reliable protocol (sequence
//     numbers, acks, resends), the one its manual recommends, and unicast
//     because a veth pair needs no multicast group.
//   - DisableExternalCache On: what the peer sends is written straight into
//     this node's kernel table rather than kept in user space until a
//     fail-over script commits it, so a backup's table follows the
//     primary's as it changes: conntrackd's equivalent of cloudha's
//     continuous commit. Both daemons are alike (active-active); node a is
//     the one the benchmark loads.
//   - Filter From Userspace: TCP only, ignoring 127.0.0.1 and both link
//     addresses (the sync link's own flows are not worth replicating).
//   - Netlink event buffer 128 MiB (growth to 256 MiB), UDP socket buffers
//     16 MiB: at 16 MiB a burst of 100 000 new entries overran the event
//     socket, and the overrun resync that follows put b's injected entries
//     into b's cache and sent them back to a.
//   - Lock file, UNIX control socket and log file in the scratch directory,
//     never the /var/run defaults, so that pairs do not meet; Systemd off.
// Each daemon runs in the foreground (`ip netns exec NS conntrackd -C FILE`,
// no -d) as a child of this process.
//
// What a caller may rely on, measured with conntrackd 1.4.7: entries made in
// a's kernel after Start() reach b's kernel as they are made, with no
// command; entries a's kernel held before Start() reach b only after
// RequestResync() (`conntrackd -n` on b; about 1 s for 100 000).
// Nothing else may run conntrackd in the two namespaces: a second daemon on
// the same address and port starts without complaint and shares the
// traffic.
//
// Not thread-safe: one benchmark thread drives it.
#ifndef CLOUDHA_TEST_BENCH_CONNTRACKD_PAIR_H_
#define CLOUDHA_TEST_BENCH_CONNTRACKD_PAIR_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "test/subprocess.h"

namespace cloudha {

class ConntrackdPair {
 public:
  // The conntrackd executable (PATH, then /usr/sbin and /sbin, which a
  // test's PATH may lack), or "" when it is not installed.
  static std::string ConntrackdBinary();

  // Starts nothing. Node a is namespace `netns_a`, whose link end
  // `interface_a` has IPv4 `address_a`; likewise b. `scratch_dir` exists
  // and is short (the control sockets' paths hold 107 bytes). `binary` ""
  // means ConntrackdBinary().
  ConntrackdPair(std::string scratch_dir, std::string netns_a, std::string netns_b,
                 std::string interface_a, std::string interface_b, std::string address_a,
                 std::string address_b, std::string binary = "");
  ConntrackdPair(const ConntrackdPair&) = delete;
  ConntrackdPair& operator=(const ConntrackdPair&) = delete;
  // Stop().
  ~ConntrackdPair();

  // Writes both configurations and starts both daemons; OK once both answer
  // on their control sockets. FAILED_PRECONDITION when conntrackd is not
  // installed or a daemon exits (the message holds its log), UNAVAILABLE
  // when one does not answer within `timeout`, INVALID_ARGUMENT for a
  // scratch path too long. On error, whatever started is stopped.
  absl::Status Start(absl::Duration timeout = absl::Seconds(10));

  // SIGTERM, then SIGKILL after 5 s, and waits for both; removes a lock
  // file a killed daemon left (it would refuse the next start). Idempotent.
  void Stop();

  // Asks b's daemon to fetch a's whole table (`conntrackd -n`).
  absl::Status RequestResync();

  // `conntrackd -s` of node "a" or "b": its counters, among them failed
  // injections and lost messages; "" when it does not answer.
  std::string Stats(const std::string& node);

 private:
  struct Daemon {
    std::string name;  // "a" or "b"
    std::string netns, interface, address, peer_address;
    std::string config_path, socket_path, lock_path, log_path;
    std::unique_ptr<Subprocess> process;
  };

  absl::Status StartDaemon(Daemon& daemon);
  // OK once `daemon` answers `conntrackd -s`.
  absl::Status WaitReady(Daemon& daemon, absl::Time deadline);
  // Waits for `daemon`, which was sent SIGTERM; SIGKILL after 5 s.
  void StopDaemon(Daemon& daemon);
  // stdout, stderr and the log file of a daemon that failed.
  std::string Output(const Daemon& daemon) const;

  const std::string scratch_dir_;
  const std::string binary_;
  Daemon a_, b_;
};

}  // namespace cloudha

#endif  // CLOUDHA_TEST_BENCH_CONNTRACKD_PAIR_H_
