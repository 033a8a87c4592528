// The Linux conntrack table as a source and a sink of sessions, through
// ctnetlink (libnetfilter_conntrack): the primary dumps its table and follows
// its events; a secondary commits what it receives into its own table.
//
// Every netlink call needs CAP_NET_ADMIN in the network namespace's owning
// user namespace. A socket belongs to the network namespace of the thread
// that opens it: the query and write sockets in Create(), the event socket
// in StartEvents(); keep the thread in one namespace.
//
// What the kernel accepts (found on Linux 6.x, and what conntrackd does):
//  - create refuses IPS_EXPECTED and IPS_DYING (EBUSY) and ignores the rest
//    of IPS_UNCHANGEABLE_MASK; the NAT bits follow from the NAT attributes;
//  - NAT can be set only when an entry is created (an update carrying NAT
//    attributes fails with EOPNOTSUPP), so the reply tuple of an existing
//    entry never changes;
//  - an update must repeat IPS_CONFIRMED (and not set IPS_EXPECTED) and may
//    not clear IPS_SEEN_REPLY or IPS_ASSURED, else EBUSY;
//  - an UPDATE event from the packet path carries the TCP state only when
//    the state changed (ctnetlink's own updates always carry it).
#ifndef CLOUDHA_SYNC_CONNTRACK_H_
#define CLOUDHA_SYNC_CONNTRACK_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "sync/session_codec.h"
#include "sync/session_record.h"

struct nf_conntrack;
struct nfct_handle;
struct nlmsghdr;

namespace cloudha {

class NetlinkBatch;
enum class ConntrackWrite;  // below, with the mapping

struct ConntrackOptions {
  // Only entries of these conntrack zones are dumped and reported; empty
  // means every zone. Commit and Delete write whatever they are given.
  std::vector<uint16_t> zones;
  // SO_RCVBUF of the event socket. Set with SO_RCVBUFFORCE when the process
  // may (CAP_NET_ADMIN), else with SO_RCVBUF, which the kernel caps at
  // net.core.rmem_max. A full buffer loses events (ReadResult::kOverrun).
  int receive_buffer_bytes = 64 << 20;
};

// Thread-compatible: one instance per thread of use. Owns three netlink
// sockets: one for events, one for dumps and reads, one (libmnl) for the
// batched writes of Commit and Delete. `clock` is not owned and must
// outlive the instance; it stamps records with wall time and ages timeouts
// on Commit.
//
// An instance does not report its own writes: the kernel tags the events a
// netlink request causes with the requester's port id (nlmsg_pid; 0 for
// the packet path and timeouts), and ReadEvents() skips those tagged with
// the port id of this instance's write or query socket, as conntrackd
// skips its own. Writes by anyone else (another instance, the conntrack
// tool) are reported.
class Conntrack {
 public:
  // Opens the query handle and the write socket, and checks that the
  // process may join the event groups (which needs CAP_NET_ADMIN, as dumps
  // and writes do); events are not received until StartEvents() or
  // ReadEvents(). PERMISSION_DENIED when the process lacks CAP_NET_ADMIN;
  // UNAVAILABLE when ctnetlink is missing.
  static absl::StatusOr<std::unique_ptr<Conntrack>> Create(const ConntrackOptions& options,
                                                           Clock* clock);
  ~Conntrack();

  Conntrack(const Conntrack&) = delete;
  Conntrack& operator=(const Conntrack&) = delete;

  // Appends every entry of the table, IPv4 and IPv6, of the selected zones.
  // created_ms is the kernel's start timestamp when the kernel keeps them
  // (net.netfilter.nf_conntrack_timestamp=1), else clock->WallNow();
  // last_update_ms is clock->WallNow(), the moment timeout_s was read.
  // On error *out is unchanged.
  absl::Status Dump(std::vector<SessionRecord>* out);

  // Subscribes to NEW, UPDATE and DESTROY events if not subscribed. Events
  // queue from here on: to follow the table without a gap, call this, then
  // Dump(), then ReadEvents(). PERMISSION_DENIED or UNAVAILABLE on failure.
  absl::Status StartEvents();

  enum class ReadResult {
    kOk,
    // The kernel dropped events (the receive buffer was full): the table
    // may have changed unseen. The events still queued are discarded; dump
    // again and reconcile; events read after this are valid and in order,
    // and a loss during the dump is reported by the next read.
    kOverrun,
  };
  // Subscribes if needed, then waits up to `timeout` for events and appends
  // at most `max_events` (>= 1) changes: NEW and UPDATE as kUpsert with the
  // full record, DESTROY as kDelete (only the key is meaningful), leaving
  // out those this instance's Commit() and Delete() caused. Returns
  // with what is ready without waiting further, and early when the wait is
  // interrupted by a signal. Records are stamped as in Dump(), except that
  // an event never carries the start timestamp of an entry, so created_ms
  // of an upsert is when it was seen. An UPDATE that leaves out the TCP
  // state of a TCP entry costs a Get() to fill it in. The ICMP reply tuple
  // is the kernel's inversion of the original (echo 8 -> reply 0).
  absl::StatusOr<ReadResult> ReadEvents(absl::Duration timeout, size_t max_events,
                                        std::vector<SessionChange>* out);

  // Unsubscribes and discards the events not yet read (on demotion). A
  // later StartEvents() or ReadEvents() subscribes again.
  void StopEvents();

  struct CommitStats {
    size_t created = 0;
    size_t updated = 0;
    size_t failed = 0;
    // The first failure: the session and the kernel's reason.
    std::string first_error;
  };
  // Writes records into the table: creates each entry, or updates it when
  // one with the same key exists. The timeout written is value.timeout_s
  // less the seconds since value.last_update_ms (by clock->WallNow()), at
  // least 1. A reply tuple that is not the inverted original becomes SNAT
  // (reply destination) and DNAT (reply source) with their ports for
  // TCP/UDP/UDP-Lite/SCTP/DCCP, applied when the entry is created. TCP
  // entries are written with liberal window tracking, as conntrackd does,
  // since sequence numbers are not replicated. An update the kernel refuses
  // for its status bits (the local entry has IPS_ASSURED or IPS_SEEN_REPLY
  // the record lacks, or is IPS_EXPECTED) is retried keeping the local
  // bits. Returns the counts, unless every write failed: then the first
  // failure as an error (its code after the errno: PERMISSION_DENIED,
  // INVALID_ARGUMENT, else UNAVAILABLE).
  //
  // The writes go in batches, hundreds of requests a system call: first
  // every create, then the updates of the entries that existed, then the
  // updates refused for their status bits again without them. Records with
  // the same key are written in their order, but a record whose update was
  // refused for its status bits is written after the others.
  absl::StatusOr<CommitStats> Commit(const std::vector<SessionRecord>& records);

  // The entry with this key, stamped as in Dump() (zones are not filtered).
  // NOT_FOUND when the table has none.
  absl::StatusOr<SessionRecord> Get(const SessionKey& key);

  // Deletes the entries with these keys, in batches as Commit() writes;
  // keys not in the table are skipped. On failures deletes the rest and
  // returns the first failure.
  absl::Status Delete(const std::vector<SessionKey>& keys);

 private:
  Conntrack(const ConntrackOptions& options, Clock* clock, nfct_handle* query,
            std::unique_ptr<NetlinkBatch> writer);

  int64_t WallNowMs();
  // After ENOBUFS: discards the queued events and returns kOverrun.
  ReadResult DrainAfterOverrun(int fd);
  // Parses one datagram of events; appends the selected changes.
  void ParseEvents(const char* data, size_t length, std::vector<SessionChange>* changes);
  // Whether an event with this nlmsg_pid was caused by this instance.
  bool IsOwnWrite(uint32_t port_id) const;
  // Writes records[which[i]] for every i in one batch and sets
  // (*outcomes)[i] to 0 or the errno; records that cannot be written get
  // EINVAL and their index and reason in *invalid.
  void SendWrites(const std::vector<SessionRecord>& records, const std::vector<size_t>& which,
                  ConntrackWrite write, bool with_status, int64_t now_ms,
                  std::vector<int>* outcomes, std::vector<std::pair<size_t, std::string>>* invalid);

  const ConntrackOptions options_;
  const absl::flat_hash_set<uint16_t> zones_;
  Clock* const clock_;
  nfct_handle* const query_;
  const uint32_t query_port_id_;
  const std::unique_ptr<NetlinkBatch> writer_;
  nfct_handle* events_ = nullptr;  // null when not subscribed
  std::vector<char> receive_buffer_;
  // Changes of the last datagram read that did not fit in max_events.
  std::vector<SessionChange> pending_;
};

// The record <-> nf_conntrack mapping, exposed for tests.

// Kernel TCP_CONNTRACK_* <-> v1::TcpState. Unknown values become NONE.
uint8_t TcpStateFromKernel(uint8_t kernel_state);
uint8_t TcpStateToKernel(uint8_t tcp_state);

// The record an entry (from a dump or an event) describes; `now_ms` stamps
// created_ms (unless the entry has a start timestamp) and last_update_ms.
// INVALID_ARGUMENT for families other than IPv4 and IPv6.
absl::Status ConntrackToRecord(const nf_conntrack* ct, int64_t now_ms, SessionRecord* out);

// Sets the original tuple and zone of `key` on `ct`: what finds an entry.
// INVALID_ARGUMENT for families other than IPv4 and IPv6.
absl::Status KeyToConntrack(const SessionKey& key, nf_conntrack* ct);

// The change one ctnetlink event message describes, stamped with `now_ms`
// as Dump() stamps records; nullopt for anything but a conntrack NEW or
// DELETE message of IPv4 or IPv6. The kernel puts the TCP state in an
// UPDATE event only when the state changed: then `*missing_tcp_state` is
// set, and the record's tcp_state must be read from the table.
std::optional<SessionChange> EventToChange(const nlmsghdr* message, int64_t now_ms,
                                           bool* missing_tcp_state);

enum class ConntrackWrite { kCreate, kUpdate };
// Sets everything Commit writes for `record` with `timeout_s` (see Commit):
// for kCreate with the NAT attributes and the status bits create accepts;
// for kUpdate without NAT, with IPS_CONFIRMED.
absl::Status RecordToConntrack(const SessionRecord& record, uint32_t timeout_s,
                               ConntrackWrite write, nf_conntrack* ct);

// value.timeout_s aged by the time since value.last_update_ms, at least 1;
// timeout_s as is when last_update_ms is 0 or in the future.
uint32_t RemainingTimeout(const SessionValue& value, int64_t now_ms);

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONNTRACK_H_
