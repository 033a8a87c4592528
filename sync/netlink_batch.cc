#include "sync/netlink_batch.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"

namespace cloudha {
namespace {

// How many bytes one sendmsg() carries at most: several hundred conntrack
// requests, well under the default netlink SO_SNDBUF (net.core.wmem_default,
// 208 KiB; sendmsg() refuses more than SO_SNDBUF less 32 bytes).
constexpr size_t kSendBytes = 128 * 1024;

// What one error message costs the receive buffer at most: the kernel
// charges an skb's true size (data rounded up to a slab size, plus struct
// sk_buff and skb_shared_info), about 0.8 KiB for a capped error message
// on Linux 6.x. Twice that leaves room for kernels that charge more or
// cannot cap the message (NETLINK_CAP_ACK, Linux >= 4.3).
constexpr size_t kAnswerBytes = 2048;

// The kernel answers a request before sendmsg() returns; an answer not
// there after this long was dropped without ENOBUFS, which does not
// happen, so the wait only keeps a kernel bug from hanging the caller.
constexpr int kAnswerTimeoutSeconds = 10;

// Answers are read up to this many a recvmmsg(): one system call per
// answer would cost more than the kernel's work on a failed request.
constexpr unsigned kAnswersPerRead = 64;
// An error message is 36 bytes when capped (NETLINK_CAP_ACK), else it
// carries the request too. A longer one is truncated to this, which still
// holds its header and error number: all that is read of it.
constexpr size_t kAnswerSlotBytes = 1024;

struct FlushState {
  uint32_t first_seq;
  const std::vector<size_t>* indexes;
  std::vector<int>* outcomes;
  bool last_answered = false;
};

// The answer to request `seq`: an errno, or 0 for the acknowledgement the
// last request of a send asked for.
void Answer(FlushState* state, uint32_t seq, int error) {
  // Unsigned: a sequence number from before first_seq is far out of range.
  const uint32_t position = seq - state->first_seq;
  if (position >= state->indexes->size()) return;  // not of this send
  if (error < 0) (*state->outcomes)[(*state->indexes)[position]] = -error;
  if (position + 1 == state->indexes->size()) state->last_answered = true;
}

int OnError(const nlmsghdr* message, void* data) {
  if (mnl_nlmsg_get_payload_len(message) < sizeof(int)) return MNL_CB_OK;
  const auto* answer = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(message));
  Answer(static_cast<FlushState*>(data), message->nlmsg_seq, answer->error);
  return MNL_CB_OK;
}

// One datagram from the kernel: whole, or the start of a truncated one.
void ReadAnswer(const char* data, size_t length, bool truncated, uint32_t port_id,
                FlushState* state) {
  if (truncated) {
    const auto* message = reinterpret_cast<const nlmsghdr*>(data);
    if (length >= NLMSG_HDRLEN + sizeof(int) && message->nlmsg_type == NLMSG_ERROR) {
      Answer(state, message->nlmsg_seq, *reinterpret_cast<const int*>(data + NLMSG_HDRLEN));
    }
    return;
  }
  mnl_cb_t on_control[NLMSG_MIN_TYPE] = {};
  on_control[NLMSG_ERROR] = &OnError;
  mnl_cb_run2(data, length, 0, port_id, nullptr, state, on_control, NLMSG_MIN_TYPE);
}

bool Readable(int fd) {
  pollfd ready = {fd, POLLIN, 0};
  return poll(&ready, 1, 0) > 0;
}

int SocketOption(mnl_socket* socket, int option) {
  int value = 0;
  socklen_t length = sizeof(value);
  if (getsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, option, &value, &length) != 0) return 0;
  return value;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NetlinkBatch>> NetlinkBatch::Open(int bus,
                                                                 int receive_buffer_bytes) {
  mnl_socket* socket = mnl_socket_open2(bus, SOCK_CLOEXEC);
  if (socket == nullptr) return absl::ErrnoToStatus(errno, "netlink socket()");
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) != 0) {
    absl::Status status = absl::ErrnoToStatus(errno, "netlink bind()");
    mnl_socket_close(socket);
    return status;
  }
  // Error messages carry the failed request's header only, not all of it.
  // Older kernels lack the option and send it all: kAnswerBytes allows it.
  int on = 1;
  mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, sizeof(on));
  // SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN in the
  // initial user namespace; SO_RCVBUF is capped by it. Either way the send
  // size follows what the kernel granted (getsockopt reports the doubled
  // value it charges against).
  const int fd = mnl_socket_get_fd(socket);
  if (receive_buffer_bytes > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer_bytes,
                                             sizeof(receive_buffer_bytes)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof(receive_buffer_bytes));
  }
  timeval timeout = {kAnswerTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  const int send_buffer = SocketOption(socket, SO_SNDBUF);
  // At least one request of the largest size; a send the kernel refuses
  // (EMSGSIZE) fails its requests.
  const size_t send_bytes = std::max(
      kMaxRequestBytes, std::min(kSendBytes, static_cast<size_t>(std::max(send_buffer - 1024, 0))));
  const size_t requests =
      std::max<size_t>(1, static_cast<size_t>(SocketOption(socket, SO_RCVBUF)) / kAnswerBytes);
  return absl::WrapUnique(new NetlinkBatch(socket, send_bytes, requests));
}

NetlinkBatch::NetlinkBatch(mnl_socket* socket, size_t send_bytes, size_t max_requests_per_send)
    : socket_(socket),
      send_bytes_(send_bytes),
      max_requests_per_send_(max_requests_per_send),
      buffer_(send_bytes + kMaxRequestBytes),
      answers_(kAnswersPerRead * kAnswerSlotBytes) {}

NetlinkBatch::~NetlinkBatch() { mnl_socket_close(socket_); }

uint32_t NetlinkBatch::port_id() const { return mnl_socket_get_portid(socket_); }

void NetlinkBatch::Send(size_t count, Builder build, std::vector<int>* outcomes) {
  outcomes->assign(count, 0);
  if (count == 0) return;
  mnl_nlmsg_batch* batch = mnl_nlmsg_batch_start(buffer_.data(), send_bytes_);
  if (batch == nullptr) {
    outcomes->assign(count, ENOMEM);
    return;
  }
  std::vector<size_t> indexes;  // of the requests in the batch, in order
  uint32_t first_seq = next_seq_;
  for (size_t i = 0; i < count; ++i) {
    nlmsghdr* request = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(batch));
    if (int err = build(i, request); err != 0) {
      (*outcomes)[i] = err;
      continue;  // the next request is written over this one
    }
    if (request->nlmsg_len > kMaxRequestBytes) {
      (*outcomes)[i] = EMSGSIZE;
      continue;
    }
    const uint32_t seq = next_seq_++;
    request->nlmsg_flags |= NLM_F_REQUEST;
    request->nlmsg_seq = seq;
    if (!mnl_nlmsg_batch_next(batch)) {
      // It does not fit: send the others; reset moves it to the front.
      if (!indexes.empty()) Flush(mnl_nlmsg_batch_size(batch), first_seq, indexes, outcomes);
      mnl_nlmsg_batch_reset(batch);
      indexes.clear();
      first_seq = seq;
    }
    indexes.push_back(i);
    if (indexes.size() >= max_requests_per_send_) {
      Flush(mnl_nlmsg_batch_size(batch), first_seq, indexes, outcomes);
      mnl_nlmsg_batch_reset(batch);
      indexes.clear();
      first_seq = next_seq_;
    }
  }
  if (!indexes.empty()) Flush(mnl_nlmsg_batch_size(batch), first_seq, indexes, outcomes);
  mnl_nlmsg_batch_stop(batch);
}

void NetlinkBatch::Flush(size_t bytes, uint32_t first_seq, const std::vector<size_t>& indexes,
                         std::vector<int>* outcomes) {
  // The requests are back to back from buffer_[0]; find the last one's
  // header to ask for its acknowledgement.
  auto* last = reinterpret_cast<nlmsghdr*>(buffer_.data());
  for (size_t i = 1; i < indexes.size(); ++i) {
    last =
        reinterpret_cast<nlmsghdr*>(reinterpret_cast<char*>(last) + NLMSG_ALIGN(last->nlmsg_len));
  }
  last->nlmsg_flags |= NLM_F_ACK;

  ssize_t sent;
  do {
    sent = mnl_socket_sendto(socket_, buffer_.data(), bytes);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    const int err = errno;
    for (size_t index : indexes) (*outcomes)[index] = err;
    return;
  }

  FlushState state{first_seq, &indexes, outcomes};
  const int fd = mnl_socket_get_fd(socket_);
  const uint32_t port_id = mnl_socket_get_portid(socket_);
  mmsghdr reads[kAnswersPerRead];
  iovec slots[kAnswersPerRead];
  sockaddr_nl senders[kAnswersPerRead];
  int unknown = 0;  // why some outcomes are unknown, if they are
  while (!state.last_answered) {
    // After a loss the last answer may be lost too: read only what is there.
    if (unknown == ENOBUFS && !Readable(fd)) break;
    for (unsigned i = 0; i < kAnswersPerRead; ++i) {
      slots[i] = {answers_.data() + i * kAnswerSlotBytes, kAnswerSlotBytes};
      reads[i] = {};
      reads[i].msg_hdr.msg_name = &senders[i];
      reads[i].msg_hdr.msg_namelen = sizeof(senders[i]);
      reads[i].msg_hdr.msg_iov = &slots[i];
      reads[i].msg_hdr.msg_iovlen = 1;
    }
    // Waits (up to SO_RCVTIMEO) for the first answer only.
    const int read = recvmmsg(fd, reads, kAnswersPerRead, MSG_WAITFORONE, nullptr);
    if (read < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        unknown = ENOBUFS;
        continue;
      }
      if (unknown == 0) unknown = (errno == EAGAIN || errno == EWOULDBLOCK) ? ETIMEDOUT : errno;
      break;
    }
    for (int i = 0; i < read; ++i) {
      if (senders[i].nl_pid != 0) continue;  // not from the kernel
      ReadAnswer(static_cast<const char*>(slots[i].iov_base), reads[i].msg_len,
                 (reads[i].msg_hdr.msg_flags & MSG_TRUNC) != 0, port_id, &state);
    }
  }
  if (!state.last_answered && unknown == 0) unknown = ETIMEDOUT;
  if (unknown == 0) return;
  // A request without an error may have failed with one that was dropped.
  for (size_t index : indexes) {
    if ((*outcomes)[index] == 0) (*outcomes)[index] = unknown;
  }
  if (unknown == ENOBUFS) max_requests_per_send_ = std::max<size_t>(1, max_requests_per_send_ / 2);
}

}  // namespace cloudha
