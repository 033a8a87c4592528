// Many netlink requests to the kernel in few system calls, each with its
// own answer: a libmnl socket that packs requests into one buffer
// (mnl_nlmsg_batch), sends it with one sendmsg() and reads back the errors,
// dozens a recvmmsg(), which it maps to the requests by sequence number.
//
// The kernel handles the requests of a sendmsg() one after the other before
// the call returns, queueing an error message for each one that fails.
// Only the last request of each send asks for an acknowledgement
// (NLM_F_ACK): when its answer is read, every earlier request has been
// answered, and one without an error succeeded. A send never holds more
// requests than the socket's receive buffer can hold error messages for,
// so no error is dropped for lack of room; if the kernel drops answers all
// the same (ENOBUFS, e.g. out of memory), the requests whose outcome is
// unknown are reported as failed with ENOBUFS, never as done.
//
// This is not nfnetlink's transaction batch (NFNL_MSG_BATCH_BEGIN, which
// ctnetlink does not take): each request succeeds or fails on its own.
#ifndef CLOUDHA_SYNC_NETLINK_BATCH_H_
#define CLOUDHA_SYNC_NETLINK_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

struct mnl_socket;
struct nlmsghdr;

namespace cloudha {

// Thread-compatible. The socket belongs to the network namespace of the
// thread that called Open().
class NetlinkBatch {
 public:
  // The largest request a builder may write, header included.
  static constexpr size_t kMaxRequestBytes = 16 * 1024;

  // Opens and binds a socket of netlink `bus` (NETLINK_NETFILTER, ...),
  // joining no groups. `receive_buffer_bytes` sizes SO_RCVBUF(FORCE), which
  // bounds how many requests one sendmsg() carries. On error the status of
  // the failed call's errno (absl::ErrnoToStatus).
  static absl::StatusOr<std::unique_ptr<NetlinkBatch>> Open(int bus, int receive_buffer_bytes);
  ~NetlinkBatch();

  NetlinkBatch(const NetlinkBatch&) = delete;
  NetlinkBatch& operator=(const NetlinkBatch&) = delete;

  // The socket's netlink port id: the kernel puts it in nlmsg_pid of the
  // multicast notifications (e.g. ctnetlink events) that this socket's
  // requests cause.
  uint32_t port_id() const;

  // How many requests one sendmsg() carries at most: as many as the receive
  // buffer holds error messages for; halved after a send lost answers.
  size_t max_requests_per_send() const { return max_requests_per_send_; }

  // Writes request `index` into `request`, a header from
  // mnl_nlmsg_put_header() with room for kMaxRequestBytes: nlmsg_type,
  // flags (NLM_F_REQUEST is added), extra header and attributes. Returns 0,
  // or an errno that becomes the request's outcome without sending it.
  using Builder = absl::FunctionRef<int(size_t index, nlmsghdr* request)>;

  // Sends `count` requests made by `build`, in order, and sets
  // (*outcomes)[i] (resized to `count`) to 0 when the kernel carried out
  // request i, else to the errno it failed with: the kernel's, the
  // builder's, sendmsg()'s for a whole send, ENOBUFS when answers were
  // dropped and its outcome is unknown, ETIMEDOUT when the kernel did not
  // answer within 10 s. Always answers every request.
  void Send(size_t count, Builder build, std::vector<int>* outcomes);

 private:
  NetlinkBatch(mnl_socket* socket, size_t send_bytes, size_t max_requests_per_send);

  // Sends the requests in buffer_[0, bytes), whose sequence numbers run
  // from first_seq for indexes.size(), the last one asking for an ack, and
  // records their outcomes.
  void Flush(size_t bytes, uint32_t first_seq, const std::vector<size_t>& indexes,
             std::vector<int>* outcomes);

  mnl_socket* const socket_;
  // How many bytes one sendmsg() carries at most (a request that does not
  // fit in what is left starts the next send), and how many requests.
  const size_t send_bytes_;
  size_t max_requests_per_send_;
  // send_bytes_ + kMaxRequestBytes: mnl_nlmsg_batch writes the request that
  // overflows a send past send_bytes_.
  std::vector<char> buffer_;
  std::vector<char> answers_;  // slots for the answers one read takes
  uint32_t next_seq_ = 1;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_NETLINK_BATCH_H_
