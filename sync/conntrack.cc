#include "sync/conntrack.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "sync/netlink_batch.h"

namespace cloudha {
namespace {

constexpr uint8_t kTcp = IPPROTO_TCP;
// One event is well under a kilobyte; a datagram larger than this is lost.
constexpr size_t kReceiveBufferSize = 64 * 1024;
// SO_RCVBUF asked for the write socket: room for the error messages of
// about a thousand failed writes per sendmsg() (see NetlinkBatch).
constexpr int kWriteReceiveBufferBytes = 1 << 20;

struct CtDeleter {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
using CtPtr = std::unique_ptr<nf_conntrack, CtDeleter>;

std::string ErrorText(int err) {
  char buffer[128];
  return strerror_r(err, buffer, sizeof(buffer));  // the GNU strerror_r
}

// The error of a failed netlink call, its code chosen by what the caller
// can do about it.
absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string message = absl::StrCat("conntrack: ", what, ": ", ErrorText(err));
  switch (err) {
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(
          absl::StrCat(message, "; the conntrack source needs CAP_NET_ADMIN"));
    case EPROTONOSUPPORT:
      return absl::UnavailableError(absl::StrCat(
          message, "; the kernel lacks ctnetlink (modprobe nf_conntrack_netlink)"));
    case EINVAL:
    case EOPNOTSUPP:
    case EAFNOSUPPORT:
      return absl::InvalidArgumentError(message);
    default:
      return absl::UnavailableError(message);
  }
}

bool IsIcmp(uint8_t l4_protocol) {
  return l4_protocol == IPPROTO_ICMP || l4_protocol == IPPROTO_ICMPV6;
}

// Protocols whose tuples carry ports that NAT may rewrite.
bool HasNatPorts(uint8_t l4_protocol) {
  switch (l4_protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
    case IPPROTO_DCCP:
      return true;
    default:
      return false;
  }
}

// The ICMP type of the reply to `type`, as the kernel inverts tuples
// (nf_conntrack_proto_icmp{,v6}.c); other types are not tracked.
uint8_t ReplyIcmpType(uint8_t l4_protocol, uint8_t type) {
  if (l4_protocol == IPPROTO_ICMP) {
    switch (type) {
      case 8: return 0;    // echo
      case 0: return 8;    // echo reply
      case 13: return 14;  // timestamp
      case 14: return 13;
      case 15: return 16;  // information
      case 16: return 15;
      case 17: return 18;  // address mask
      case 18: return 17;
    }
  } else {
    switch (type) {
      case 128: return 129;  // echo
      case 129: return 128;
      case 139: return 140;  // node information
      case 140: return 139;
    }
  }
  return type;
}

void GetAddress(const nf_conntrack* ct, uint8_t family, nf_conntrack_attr ipv4,
                nf_conntrack_attr ipv6, IpAddress* out) {
  const void* value = nfct_get_attr(ct, family == AF_INET ? ipv4 : ipv6);
  if (value != nullptr) std::memcpy(out->data(), value, family == AF_INET ? 4 : 16);
}

void SetAddress(nf_conntrack* ct, uint8_t family, nf_conntrack_attr ipv4,
                nf_conntrack_attr ipv6, const IpAddress& address) {
  if (family == AF_INET) {
    uint32_t ip;
    std::memcpy(&ip, address.data(), 4);
    nfct_set_attr_u32(ct, ipv4, ip);
  } else {
    nfct_set_attr(ct, ipv6, address.data());
  }
}

bool InZones(const absl::flat_hash_set<uint16_t>& zones, uint16_t zone) {
  return zones.empty() || zones.contains(zone);
}

// Sets SNAT/DNAT so that the kernel, inverting the original tuple and
// applying them, arrives at the record's reply tuple. The reply destination
// is where the source was translated to, the reply source where the
// destination was.
void SetNat(const SessionRecord& record, nf_conntrack* ct) {
  const SessionKey& key = record.key;
  const SessionValue& value = record.value;
  const bool ports = HasNatPorts(key.l4_protocol);
  const bool snat =
      value.reply_dst != key.src || (ports && value.reply_dst_port != key.src_port);
  const bool dnat =
      value.reply_src != key.dst || (ports && value.reply_src_port != key.dst_port);
  if (snat) {
    SetAddress(ct, key.family, ATTR_SNAT_IPV4, ATTR_SNAT_IPV6, value.reply_dst);
    if (ports) nfct_set_attr_u16(ct, ATTR_SNAT_PORT, htons(value.reply_dst_port));
  }
  if (dnat) {
    SetAddress(ct, key.family, ATTR_DNAT_IPV4, ATTR_DNAT_IPV6, value.reply_src);
    if (ports) nfct_set_attr_u16(ct, ATTR_DNAT_PORT, htons(value.reply_src_port));
  }
}

// Window tracking needs sequence numbers the records do not carry: be
// liberal, as conntrackd does without tcp_window_tracking. Closing states
// also get CLOSE_INIT, again as conntrackd does, so that the kernel treats
// the connection as closing from both sides.
void SetTcpFlags(uint8_t kernel_state, nf_conntrack* ct) {
  uint8_t flags = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
  if (kernel_state >= TCP_CONNTRACK_TIME_WAIT) flags |= IP_CT_TCP_FLAG_CLOSE_INIT;
  nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_ORIG, flags);
  nfct_set_attr_u8(ct, ATTR_TCP_MASK_ORIG, flags);
  nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_REPL, flags);
  nfct_set_attr_u8(ct, ATTR_TCP_MASK_REPL, flags);
}

absl::Status OpenError(int err) { return ErrnoStatus(err, "opening netlink"); }

// Sets the event socket's receive buffer: SO_RCVBUFFORCE passes
// net.core.rmem_max but needs CAP_NET_ADMIN; SO_RCVBUF is capped.
void SetReceiveBuffer(int fd, int bytes) {
  if (bytes <= 0) return;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  }
}

int PollMillis(absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) return 0;
  if (timeout >= absl::Milliseconds(INT_MAX)) return INT_MAX;
  return static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(timeout, absl::Milliseconds(1))));
}

struct ReadContext {
  const absl::flat_hash_set<uint16_t>* zones;
  int64_t now_ms;
  std::vector<SessionRecord> records;
};

int CollectRecord(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
  auto* context = static_cast<ReadContext*>(data);
  SessionRecord record;
  if (ConntrackToRecord(ct, context->now_ms, &record).ok() &&
      InZones(*context->zones, record.key.zone)) {
    context->records.push_back(record);
  }
  return NFCT_CB_CONTINUE;
}

// Runs a query whose answers are entries (a dump or a get), collecting
// them. Returns errno, 0 on success.
int QueryRecords(nfct_handle* handle, nf_conntrack_query query, const void* data,
                 ReadContext* context) {
  nfct_callback_register(handle, NFCT_T_ALL, &CollectRecord, context);
  int result = nfct_query(handle, query, data);
  int err = errno;
  nfct_callback_unregister(handle);
  return result < 0 ? err : 0;
}

// Starts a ctnetlink request of `type` for an entry of `family`; the
// caller adds the entry's attributes.
void PutRequestHeader(nlmsghdr* request, uint16_t type, uint16_t flags, uint8_t family) {
  request->nlmsg_type = static_cast<uint16_t>(NFNL_SUBSYS_CTNETLINK << 8 | type);
  request->nlmsg_flags = NLM_F_REQUEST | flags;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(request, sizeof(nfgenmsg)));
  header->nfgen_family = family;
  header->version = NFNETLINK_V0;
  header->res_id = 0;
}

// The errno of a failed nfct_nlmsg_build (which does not always set one).
int BuildError() { return errno != 0 ? errno : EINVAL; }

// The netlink port id of a libnetfilter_conntrack handle's socket; 0 when
// it cannot be read (no event carries 0 from a request).
uint32_t PortId(nfct_handle* handle) {
  sockaddr_nl address = {};
  socklen_t length = sizeof(address);
  if (getsockname(nfct_fd(handle), reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  return address.nl_pid;
}

}  // namespace

uint8_t TcpStateFromKernel(uint8_t kernel_state) {
  switch (kernel_state) {
    case TCP_CONNTRACK_SYN_SENT: return v1::TCP_SYN_SENT;
    case TCP_CONNTRACK_SYN_RECV: return v1::TCP_SYN_RECV;
    case TCP_CONNTRACK_ESTABLISHED: return v1::TCP_ESTABLISHED;
    case TCP_CONNTRACK_FIN_WAIT: return v1::TCP_FIN_WAIT;
    case TCP_CONNTRACK_CLOSE_WAIT: return v1::TCP_CLOSE_WAIT;
    case TCP_CONNTRACK_LAST_ACK: return v1::TCP_LAST_ACK;
    case TCP_CONNTRACK_TIME_WAIT: return v1::TCP_TIME_WAIT;
    case TCP_CONNTRACK_CLOSE: return v1::TCP_CLOSE;
    case TCP_CONNTRACK_SYN_SENT2: return v1::TCP_SYN_SENT2;
    default: return v1::TCP_STATE_NONE;
  }
}

uint8_t TcpStateToKernel(uint8_t tcp_state) {
  switch (tcp_state) {
    case v1::TCP_SYN_SENT: return TCP_CONNTRACK_SYN_SENT;
    case v1::TCP_SYN_RECV: return TCP_CONNTRACK_SYN_RECV;
    case v1::TCP_ESTABLISHED: return TCP_CONNTRACK_ESTABLISHED;
    case v1::TCP_FIN_WAIT: return TCP_CONNTRACK_FIN_WAIT;
    case v1::TCP_CLOSE_WAIT: return TCP_CONNTRACK_CLOSE_WAIT;
    case v1::TCP_LAST_ACK: return TCP_CONNTRACK_LAST_ACK;
    case v1::TCP_TIME_WAIT: return TCP_CONNTRACK_TIME_WAIT;
    case v1::TCP_CLOSE: return TCP_CONNTRACK_CLOSE;
    case v1::TCP_SYN_SENT2: return TCP_CONNTRACK_SYN_SENT2;
    default: return TCP_CONNTRACK_NONE;
  }
}

absl::Status ConntrackToRecord(const nf_conntrack* ct, int64_t now_ms, SessionRecord* out) {
  const uint8_t family = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO);
  if (family != AF_INET && family != AF_INET6) {
    return absl::InvalidArgumentError(
        absl::StrCat("conntrack entry of address family ", family, " (not IPv4 or IPv6)"));
  }
  SessionRecord record;
  SessionKey& key = record.key;
  SessionValue& value = record.value;
  key.family = family;
  key.l4_protocol = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO);
  key.zone = nfct_get_attr_u16(ct, ATTR_ZONE);  // 0 when unset
  GetAddress(ct, family, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, &key.src);
  GetAddress(ct, family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, &key.dst);
  GetAddress(ct, family, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, &value.reply_src);
  GetAddress(ct, family, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, &value.reply_dst);
  if (IsIcmp(key.l4_protocol)) {
    // libnetfilter_conntrack keeps only the original ICMP attributes; the
    // reply is their inversion (the id is shared by both directions).
    const uint8_t type = nfct_get_attr_u8(ct, ATTR_ICMP_TYPE);
    const uint8_t code = nfct_get_attr_u8(ct, ATTR_ICMP_CODE);
    key.src_port = ntohs(nfct_get_attr_u16(ct, ATTR_ICMP_ID));
    key.dst_port = static_cast<uint16_t>(type << 8 | code);
    value.reply_src_port = key.src_port;
    value.reply_dst_port = static_cast<uint16_t>(ReplyIcmpType(key.l4_protocol, type) << 8 | code);
  } else {
    key.src_port = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC));
    key.dst_port = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST));
    value.reply_src_port = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
    value.reply_dst_port = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST));
  }
  if (key.l4_protocol == kTcp && nfct_attr_is_set(ct, ATTR_TCP_STATE)) {
    value.tcp_state = TcpStateFromKernel(nfct_get_attr_u8(ct, ATTR_TCP_STATE));
  }
  value.timeout_s = nfct_get_attr_u32(ct, ATTR_TIMEOUT);
  value.flags = nfct_get_attr_u32(ct, ATTR_STATUS);
  value.mark = nfct_get_attr_u32(ct, ATTR_MARK);
  value.created_ms = now_ms;
  if (nfct_attr_is_set(ct, ATTR_TIMESTAMP_START)) {
    value.created_ms = static_cast<int64_t>(nfct_get_attr_u64(ct, ATTR_TIMESTAMP_START) / 1000000);
  }
  value.last_update_ms = now_ms;
  *out = record;
  return absl::OkStatus();
}

absl::Status KeyToConntrack(const SessionKey& key, nf_conntrack* ct) {
  if (key.family != AF_INET && key.family != AF_INET6) {
    return absl::InvalidArgumentError(absl::StrCat(
        "session ", DescribeKey(key), ": family must be 2 (IPv4) or 10 (IPv6), got ", key.family));
  }
  nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, key.family);
  nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, key.l4_protocol);
  SetAddress(ct, key.family, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, key.src);
  SetAddress(ct, key.family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, key.dst);
  if (IsIcmp(key.l4_protocol)) {
    nfct_set_attr_u16(ct, ATTR_ICMP_ID, htons(key.src_port));
    nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, static_cast<uint8_t>(key.dst_port >> 8));
    nfct_set_attr_u8(ct, ATTR_ICMP_CODE, static_cast<uint8_t>(key.dst_port & 0xff));
  } else {
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(key.src_port));
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(key.dst_port));
  }
  nfct_set_attr_u16(ct, ATTR_ZONE, key.zone);
  return absl::OkStatus();
}

absl::Status RecordToConntrack(const SessionRecord& record, uint32_t timeout_s,
                               ConntrackWrite write, nf_conntrack* ct) {
  if (absl::Status s = KeyToConntrack(record.key, ct); !s.ok()) return s;
  const SessionValue& value = record.value;
  uint32_t status = value.flags & ~static_cast<uint32_t>(IPS_UNCHANGEABLE_MASK);
  if (write == ConntrackWrite::kCreate) {
    // The reply tuple is the inverted original; the kernel applies the
    // NAT attributes to it.
    nfct_setobjopt(ct, NFCT_SOPT_SETUP_REPLY);
    SetNat(record, ct);
  } else {
    // The entry exists, so it is confirmed; the kernel requires the bit.
    status |= IPS_CONFIRMED;
  }
  nfct_set_attr_u32(ct, ATTR_STATUS, status);
  nfct_set_attr_u32(ct, ATTR_TIMEOUT, timeout_s);
  nfct_set_attr_u32(ct, ATTR_MARK, value.mark);
  if (record.key.l4_protocol == kTcp) {
    const uint8_t state = TcpStateToKernel(value.tcp_state);
    nfct_set_attr_u8(ct, ATTR_TCP_STATE, state);
    SetTcpFlags(state, ct);
  }
  return absl::OkStatus();
}

uint32_t RemainingTimeout(const SessionValue& value, int64_t now_ms) {
  int64_t remaining = value.timeout_s;
  if (value.last_update_ms > 0 && now_ms > value.last_update_ms) {
    remaining -= (now_ms - value.last_update_ms) / 1000;
  }
  return static_cast<uint32_t>(std::max<int64_t>(remaining, 1));
}

std::optional<SessionChange> EventToChange(const nlmsghdr* message, int64_t now_ms,
                                           bool* missing_tcp_state) {
  *missing_tcp_state = false;
  if (message->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg)) ||
      NFNL_SUBSYS_ID(message->nlmsg_type) != NFNL_SUBSYS_CTNETLINK) {
    return std::nullopt;
  }
  const int type = NFNL_MSG_TYPE(message->nlmsg_type);
  if (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE) return std::nullopt;
  CtPtr ct(nfct_new());
  if (ct == nullptr || nfct_nlmsg_parse(message, ct.get()) < 0) return std::nullopt;
  SessionChange change;
  if (!ConntrackToRecord(ct.get(), now_ms, &change.record).ok()) return std::nullopt;
  if (type == IPCTNL_MSG_CT_DELETE) {
    change.op = SessionChange::Op::kDelete;
    change.record.value = SessionValue();
  } else {
    change.op = SessionChange::Op::kUpsert;
    *missing_tcp_state =
        change.record.key.l4_protocol == kTcp && !nfct_attr_is_set(ct.get(), ATTR_TCP_STATE);
  }
  return change;
}

absl::StatusOr<std::unique_ptr<Conntrack>> Conntrack::Create(const ConntrackOptions& options,
                                                             Clock* clock) {
  if (clock == nullptr) return absl::InvalidArgumentError("conntrack: clock must not be null");
  nfct_handle* query = nfct_open(CONNTRACK, 0);
  if (query == nullptr) return OpenError(errno);
  // A socket without groups opens for anyone; joining the event groups is
  // where the kernel checks CAP_NET_ADMIN, with no other effect.
  nfct_handle* probe = nfct_open(CONNTRACK, NFCT_ALL_CT_GROUPS);
  if (probe == nullptr) {
    int err = errno;
    nfct_close(query);
    return OpenError(err);
  }
  nfct_close(probe);
  absl::StatusOr<std::unique_ptr<NetlinkBatch>> writer =
      NetlinkBatch::Open(NETLINK_NETFILTER, kWriteReceiveBufferBytes);
  if (!writer.ok()) {
    nfct_close(query);
    return absl::Status(writer.status().code(),
                        absl::StrCat("conntrack: opening the write socket: ",
                                     writer.status().message()));
  }
  return absl::WrapUnique(new Conntrack(options, clock, query, std::move(*writer)));
}

Conntrack::Conntrack(const ConntrackOptions& options, Clock* clock, nfct_handle* query,
                     std::unique_ptr<NetlinkBatch> writer)
    : options_(options),
      zones_(options.zones.begin(), options.zones.end()),
      clock_(clock),
      query_(query),
      query_port_id_(PortId(query)),
      writer_(std::move(writer)),
      receive_buffer_(kReceiveBufferSize) {}

Conntrack::~Conntrack() {
  StopEvents();
  nfct_close(query_);
}

int64_t Conntrack::WallNowMs() { return absl::ToUnixMillis(clock_->WallNow()); }

absl::Status Conntrack::Dump(std::vector<SessionRecord>* out) {
  ReadContext context{&zones_, WallNowMs(), {}};
  uint32_t family = AF_UNSPEC;  // both IPv4 and IPv6
  if (int err = QueryRecords(query_, NFCT_Q_DUMP, &family, &context); err != 0) {
    return ErrnoStatus(err, "dumping the table");
  }
  if (out->empty()) {
    out->swap(context.records);
  } else {
    out->insert(out->end(), context.records.begin(), context.records.end());
  }
  return absl::OkStatus();
}

absl::Status Conntrack::StartEvents() {
  if (events_ != nullptr) return absl::OkStatus();
  nfct_handle* handle = nfct_open(CONNTRACK, NFCT_ALL_CT_GROUPS);
  if (handle == nullptr) return ErrnoStatus(errno, "subscribing to events");
  const int fd = nfct_fd(handle);
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int err = errno;
    nfct_close(handle);
    return ErrnoStatus(err, "making the event socket non-blocking");
  }
  SetReceiveBuffer(fd, options_.receive_buffer_bytes);
  events_ = handle;
  return absl::OkStatus();
}

void Conntrack::StopEvents() {
  if (events_ != nullptr) nfct_close(events_);
  events_ = nullptr;
  pending_.clear();
}

absl::StatusOr<Conntrack::ReadResult> Conntrack::ReadEvents(absl::Duration timeout,
                                                            size_t max_events,
                                                            std::vector<SessionChange>* out) {
  if (max_events == 0) return absl::InvalidArgumentError("conntrack: max_events must be >= 1");
  if (absl::Status s = StartEvents(); !s.ok()) return s;

  size_t appended = std::min(max_events, pending_.size());
  out->insert(out->end(), pending_.begin(), pending_.begin() + appended);
  pending_.erase(pending_.begin(), pending_.begin() + appended);
  if (appended == max_events) return ReadResult::kOk;

  const int fd = nfct_fd(events_);
  pollfd ready = {fd, POLLIN, 0};
  int polled = poll(&ready, 1, appended > 0 ? 0 : PollMillis(timeout));
  if (polled < 0) {
    if (errno == EINTR) return ReadResult::kOk;
    return ErrnoStatus(errno, "waiting for events");
  }
  if (polled == 0) return ReadResult::kOk;

  std::vector<SessionChange> changes;
  while (appended < max_events) {
    sockaddr_nl sender = {};
    iovec iov = {receive_buffer_.data(), receive_buffer_.size()};
    msghdr message = {};
    message.msg_name = &sender;
    message.msg_namelen = sizeof(sender);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    ssize_t length = recvmsg(fd, &message, MSG_DONTWAIT);
    if (length < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == ENOBUFS) return DrainAfterOverrun(fd);
      return ErrnoStatus(errno, "reading events");
    }
    if (message.msg_flags & MSG_TRUNC) return DrainAfterOverrun(fd);
    if (sender.nl_pid != 0) continue;  // not from the kernel
    changes.clear();
    ParseEvents(receive_buffer_.data(), static_cast<size_t>(length), &changes);
    for (SessionChange& change : changes) {
      if (appended < max_events) {
        out->push_back(change);
        ++appended;
      } else {
        pending_.push_back(change);
      }
    }
  }
  return ReadResult::kOk;
}

Conntrack::ReadResult Conntrack::DrainAfterOverrun(int fd) {
  // The kernel reports a full buffer once, then drops events silently until
  // the queue is read empty: discard what is queued (the dump the caller
  // makes next covers it), so that a loss during that dump is reported too.
  pending_.clear();
  for (int i = 0; i < 1000000; ++i) {
    ssize_t length = recv(fd, receive_buffer_.data(), receive_buffer_.size(), MSG_DONTWAIT);
    if (length < 0 && errno != EINTR && errno != ENOBUFS) break;  // EAGAIN: empty
  }
  return ReadResult::kOverrun;
}

void Conntrack::ParseEvents(const char* data, size_t length,
                            std::vector<SessionChange>* changes) {
  const int64_t now_ms = WallNowMs();
  int remaining = static_cast<int>(length);
  for (const nlmsghdr* message = reinterpret_cast<const nlmsghdr*>(data);
       NLMSG_OK(message, remaining); message = NLMSG_NEXT(message, remaining)) {
    if (IsOwnWrite(message->nlmsg_pid)) continue;
    bool missing_tcp_state = false;
    std::optional<SessionChange> change = EventToChange(message, now_ms, &missing_tcp_state);
    if (!change.has_value() || !InZones(zones_, change->record.key.zone)) continue;
    if (missing_tcp_state) {
      absl::StatusOr<SessionRecord> current = Get(change->record.key);
      // Gone: its DESTROY event follows. On another failure the event's
      // record, without its TCP state, is the best there is.
      if (absl::IsNotFound(current.status())) continue;
      if (current.ok()) change->record = *current;
    }
    changes->push_back(*change);
  }
}

bool Conntrack::IsOwnWrite(uint32_t port_id) const {
  // The kernel's own events (timeouts, the packet path) carry 0.
  return port_id != 0 && (port_id == writer_->port_id() || port_id == query_port_id_);
}

absl::StatusOr<SessionRecord> Conntrack::Get(const SessionKey& key) {
  CtPtr ct(nfct_new());
  if (ct == nullptr) return absl::ResourceExhaustedError("conntrack: out of memory");
  if (absl::Status s = KeyToConntrack(key, ct.get()); !s.ok()) return s;
  const absl::flat_hash_set<uint16_t> any_zone;
  ReadContext context{&any_zone, WallNowMs(), {}};
  int err = QueryRecords(query_, NFCT_Q_GET, ct.get(), &context);
  if (err == ENOENT || (err == 0 && context.records.empty())) {
    return absl::NotFoundError(absl::StrCat("conntrack: no entry for ", DescribeKey(key)));
  }
  if (err != 0) return ErrnoStatus(err, absl::StrCat("reading ", DescribeKey(key)));
  return context.records[0];
}

void Conntrack::SendWrites(const std::vector<SessionRecord>& records,
                           const std::vector<size_t>& which, ConntrackWrite write, bool with_status,
                           int64_t now_ms, std::vector<int>* outcomes,
                           std::vector<std::pair<size_t, std::string>>* invalid) {
  const uint16_t flags = write == ConntrackWrite::kCreate ? NLM_F_CREATE | NLM_F_EXCL : 0;
  auto build = [&](size_t i, nlmsghdr* request) {
    const SessionRecord& record = records[which[i]];
    CtPtr ct(nfct_new());
    if (ct == nullptr) return ENOMEM;
    absl::Status valid =
        RecordToConntrack(record, RemainingTimeout(record.value, now_ms), write, ct.get());
    if (!valid.ok()) {
      invalid->emplace_back(which[i], std::string(valid.message()));
      return EINVAL;
    }
    if (!with_status) nfct_attr_unset(ct.get(), ATTR_STATUS);
    PutRequestHeader(request, IPCTNL_MSG_CT_NEW, flags, record.key.family);
    errno = 0;
    return nfct_nlmsg_build(request, ct.get()) == 0 ? 0 : BuildError();
  };
  writer_->Send(which.size(), build, outcomes);
}

absl::StatusOr<Conntrack::CommitStats> Conntrack::Commit(
    const std::vector<SessionRecord>& records) {
  const int64_t now_ms = WallNowMs();
  // Per record: created, updated, or the errno it failed with and in which
  // write; filled in three rounds, each one batch of writes.
  enum class Outcome : uint8_t { kCreated, kUpdated, kFailedCreating, kFailedUpdating };
  std::vector<Outcome> outcome(records.size(), Outcome::kCreated);
  std::vector<int> err(records.size(), 0);
  std::vector<std::pair<size_t, std::string>> invalid;  // records that cannot be written

  // 1. Create everything. EEXIST: the entry exists; update it.
  std::vector<size_t> which(records.size());
  std::iota(which.begin(), which.end(), size_t{0});
  std::vector<int> outcomes;
  SendWrites(records, which, ConntrackWrite::kCreate, true, now_ms, &outcomes, &invalid);
  std::vector<size_t> existing;
  for (size_t i = 0; i < which.size(); ++i) {
    if (outcomes[i] == EEXIST) {
      existing.push_back(which[i]);
    } else if (outcomes[i] != 0) {
      outcome[which[i]] = Outcome::kFailedCreating;
      err[which[i]] = outcomes[i];
    }
  }
  // 2. Update those, and 3. again without the status bits those the kernel
  // refused for them (EBUSY: the local entry is EXPECTED, or has
  // SEEN_REPLY or ASSURED the record lacks).
  which.swap(existing);
  for (bool with_status : {true, false}) {
    if (which.empty()) break;
    SendWrites(records, which, ConntrackWrite::kUpdate, with_status, now_ms, &outcomes, &invalid);
    std::vector<size_t> busy;
    for (size_t i = 0; i < which.size(); ++i) {
      outcome[which[i]] = Outcome::kUpdated;
      if (outcomes[i] == EBUSY && with_status) {
        busy.push_back(which[i]);
      } else if (outcomes[i] != 0) {
        outcome[which[i]] = Outcome::kFailedUpdating;
        err[which[i]] = outcomes[i];
      }
    }
    which.swap(busy);
  }

  CommitStats stats;
  size_t first_failed = records.size();
  for (size_t i = 0; i < records.size(); ++i) {
    switch (outcome[i]) {
      case Outcome::kCreated:
        ++stats.created;
        break;
      case Outcome::kUpdated:
        ++stats.updated;
        break;
      default:
        if (stats.failed++ == 0) first_failed = i;
        break;
    }
  }
  if (stats.failed == 0) return stats;
  const char* what = outcome[first_failed] == Outcome::kFailedCreating ? "creating" : "updating";
  stats.first_error = absl::StrCat(DescribeKey(records[first_failed].key), ": ", what, ": ",
                                   ErrorText(err[first_failed]));
  for (const auto& [index, message] : invalid) {
    if (index == first_failed) stats.first_error = message;
  }
  if (stats.failed == records.size()) {
    absl::Status status = ErrnoStatus(err[first_failed], "committing");
    return absl::Status(status.code(), absl::StrCat("conntrack: committing ", records.size(),
                                                    " sessions failed; first: ",
                                                    stats.first_error));
  }
  return stats;
}

absl::Status Conntrack::Delete(const std::vector<SessionKey>& keys) {
  std::vector<std::pair<size_t, absl::Status>> invalid;
  std::vector<int> outcomes;
  auto build = [&](size_t i, nlmsghdr* request) {
    CtPtr ct(nfct_new());
    if (ct == nullptr) return ENOMEM;
    if (absl::Status valid = KeyToConntrack(keys[i], ct.get()); !valid.ok()) {
      invalid.emplace_back(i, std::move(valid));
      return EINVAL;
    }
    PutRequestHeader(request, IPCTNL_MSG_CT_DELETE, 0, keys[i].family);
    errno = 0;
    return nfct_nlmsg_build(request, ct.get()) == 0 ? 0 : BuildError();
  };
  writer_->Send(keys.size(), build, &outcomes);

  absl::Status first = absl::OkStatus();
  size_t failed = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (outcomes[i] == 0 || outcomes[i] == ENOENT) continue;  // gone already: skipped
    if (failed++ > 0) continue;
    first = ErrnoStatus(outcomes[i], absl::StrCat("deleting ", DescribeKey(keys[i])));
    for (const auto& [index, status] : invalid) {
      if (index == i) first = status;
    }
  }
  if (failed == 0) return absl::OkStatus();
  return absl::Status(first.code(),
                      absl::StrCat(failed, " of ", keys.size(), " deletes failed; first: ",
                                   first.message()));
}

}  // namespace cloudha
