// The conntrack source and sink against the real kernel table. The tests
// that touch the kernel need root: the process moves into a network
// namespace of its own first, so every entry (addresses in 198.18.0.0/15 and
// 2001:db8::/32) lives and dies there. Without root, or without a kernel
// that allows it, they skip with the reason; the mapping tests run anyway.
#include "sync/conntrack.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "base/fake_clock.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

// Why the kernel tests cannot run; empty when they can.
std::string& SkipReason() {
  static std::string* reason = new std::string;
  return *reason;
}

const char* ConntrackTool() {
  for (const char* path : {"/usr/sbin/conntrack", "/sbin/conntrack", "/usr/bin/conntrack"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return nullptr;
}

// Moves the whole process into a new network namespace before any test
// runs (and before any thread exists, which unshare requires).
class PrivateNetworkNamespace : public ::testing::Environment {
 public:
  void SetUp() override {
    if (geteuid() != 0) {
      SkipReason() = "needs root (CAP_NET_ADMIN) to use conntrack in a private network namespace";
    } else if (unshare(CLONE_NEWNET) != 0) {
      SkipReason() = absl::StrCat("unshare(CLONE_NEWNET) failed: ", std::strerror(errno));
    } else if (ConntrackTool() == nullptr) {
      SkipReason() = "needs the conntrack tool (Debian package conntrack)";
    }
  }
};
::testing::Environment* const kNamespace =
    ::testing::AddGlobalTestEnvironment(new PrivateNetworkNamespace);

struct ToolResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs the conntrack tool with `args`, in this process's namespace.
ToolResult Tool(std::vector<std::string> args) {
  args.insert(args.begin(), ConntrackTool());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  ToolResult result;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0) result.output.append(buffer, n);
  close(fds[0]);
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

IpAddress Ip(const char* text) {
  IpAddress address{};
  if (inet_pton(AF_INET, text, address.data()) != 1) inet_pton(AF_INET6, text, address.data());
  return address;
}

SessionKey Key(uint8_t l4_protocol, const char* src, uint16_t src_port, const char* dst,
               uint16_t dst_port, uint16_t zone = 0) {
  SessionKey key;
  key.family = std::strchr(src, ':') != nullptr ? 10 : 2;
  key.l4_protocol = l4_protocol;
  key.zone = zone;
  key.src_port = src_port;
  key.dst_port = dst_port;
  key.src = Ip(src);
  key.dst = Ip(dst);
  return key;
}

// A session whose reply tuple is the inverted original (no NAT).
SessionRecord Plain(const SessionKey& key, int64_t now_ms) {
  SessionRecord record;
  record.key = key;
  record.value.reply_src = key.dst;
  record.value.reply_dst = key.src;
  record.value.reply_src_port = key.dst_port;
  record.value.reply_dst_port = key.src_port;
  if (key.l4_protocol == IPPROTO_TCP) record.value.tcp_state = v1::TCP_ESTABLISHED;
  record.value.timeout_s = 600;
  record.value.flags = IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED;
  record.value.created_ms = now_ms - 60000;
  record.value.last_update_ms = now_ms;
  return record;
}

const SessionRecord* Find(const std::vector<SessionRecord>& records, const SessionKey& key) {
  for (const SessionRecord& record : records) {
    if (record.key == key) return &record;
  }
  return nullptr;
}

// Sessions [first, first + count) (count < 50000): TCP ESTABLISHED from
// 198.18.0.0/16 to 198.19.0.1:443, every fifth behind SNAT.
std::vector<SessionRecord> ManySessions(int first, int count, int64_t now_ms) {
  std::vector<SessionRecord> records;
  for (int i = first; i < first + count; ++i) {
    std::string src = absl::StrCat("198.18.", i / 250, ".", 1 + i % 250);
    SessionRecord record = Plain(
        Key(IPPROTO_TCP, src.c_str(), static_cast<uint16_t>(1000 + i % 7), "198.19.0.1", 443),
        now_ms);
    if (i % 5 == 0) {
      record.value.reply_dst = Ip("198.19.128.1");
      record.value.reply_dst_port = static_cast<uint16_t>(10000 + i);
      record.value.flags |= IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;
    }
    records.push_back(record);
  }
  return records;
}

absl::flat_hash_map<SessionKey, SessionRecord> ByKey(const std::vector<SessionRecord>& records) {
  absl::flat_hash_map<SessionKey, SessionRecord> by_key;
  for (const SessionRecord& record : records) by_key[record.key] = record;
  return by_key;
}

struct CtDeleter {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
using CtPtr = std::unique_ptr<nf_conntrack, CtDeleter>;

// ---- The mapping, without the kernel ----

TEST(ConntrackMappingTest, TcpStatesMapExplicitly) {
  EXPECT_EQ(TcpStateFromKernel(TCP_CONNTRACK_NONE), v1::TCP_STATE_NONE);
  EXPECT_EQ(TcpStateFromKernel(TCP_CONNTRACK_SYN_SENT), v1::TCP_SYN_SENT);
  EXPECT_EQ(TcpStateFromKernel(TCP_CONNTRACK_ESTABLISHED), v1::TCP_ESTABLISHED);
  EXPECT_EQ(TcpStateFromKernel(TCP_CONNTRACK_TIME_WAIT), v1::TCP_TIME_WAIT);
  EXPECT_EQ(TcpStateFromKernel(TCP_CONNTRACK_CLOSE), v1::TCP_CLOSE);
  EXPECT_EQ(TcpStateFromKernel(TCP_CONNTRACK_SYN_SENT2), v1::TCP_SYN_SENT2);
  EXPECT_EQ(TcpStateFromKernel(TCP_CONNTRACK_MAX), v1::TCP_STATE_NONE);
  for (int state = v1::TCP_STATE_NONE; state <= v1::TCP_SYN_SENT2; ++state) {
    EXPECT_EQ(TcpStateFromKernel(TcpStateToKernel(state)), state);
  }
  EXPECT_EQ(TcpStateToKernel(42), TCP_CONNTRACK_NONE);
}

TEST(ConntrackMappingTest, CreateSetsNatFromTheReplyTuple) {
  SessionRecord record = Plain(Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80, 4), 0);
  record.value.reply_dst = Ip("198.18.7.1");
  record.value.reply_dst_port = 2000;
  record.value.flags |= IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE | IPS_EXPECTED;
  record.value.mark = 7;
  CtPtr ct(nfct_new());
  ASSERT_TRUE(RecordToConntrack(record, 500, ConntrackWrite::kCreate, ct.get()).ok());

  uint32_t snat_ip;
  std::memcpy(&snat_ip, Ip("198.18.7.1").data(), 4);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_SNAT_IPV4), snat_ip);
  EXPECT_EQ(ntohs(nfct_get_attr_u16(ct.get(), ATTR_SNAT_PORT)), 2000);
  EXPECT_FALSE(nfct_attr_is_set(ct.get(), ATTR_DNAT_IPV4));
  EXPECT_EQ(ntohs(nfct_get_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC)), 1000);
  EXPECT_EQ(nfct_get_attr_u16(ct.get(), ATTR_ZONE), 4);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_TIMEOUT), 500u);
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_MARK), 7u);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_TCP_STATE), TCP_CONNTRACK_ESTABLISHED);
  // The kernel refuses EXPECTED on create and ignores the NAT bits.
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_STATUS), uint32_t{IPS_SEEN_REPLY | IPS_ASSURED});
  // The reply tuple sent is the inverted original; the kernel applies NAT.
  EXPECT_EQ(ntohs(nfct_get_attr_u16(ct.get(), ATTR_REPL_PORT_DST)), 1000);

  SessionRecord back;
  ASSERT_TRUE(ConntrackToRecord(ct.get(), 1234, &back).ok());
  EXPECT_EQ(back.key, record.key);
  EXPECT_EQ(back.value.tcp_state, v1::TCP_ESTABLISHED);
  EXPECT_EQ(back.value.mark, 7u);
  EXPECT_EQ(back.value.created_ms, 1234);
  EXPECT_EQ(back.value.last_update_ms, 1234);
}

TEST(ConntrackMappingTest, UpdateCarriesNoNatAndKeepsConfirmed) {
  SessionRecord record = Plain(Key(IPPROTO_UDP, "2001:db8::1", 5, "2001:db8::2", 53), 0);
  record.value.reply_src = Ip("2001:db8::8");
  record.value.flags = IPS_SEEN_REPLY;
  CtPtr ct(nfct_new());
  ASSERT_TRUE(RecordToConntrack(record, 30, ConntrackWrite::kUpdate, ct.get()).ok());
  EXPECT_FALSE(nfct_attr_is_set(ct.get(), ATTR_DNAT_IPV6));
  EXPECT_EQ(nfct_get_attr_u32(ct.get(), ATTR_STATUS), uint32_t{IPS_SEEN_REPLY | IPS_CONFIRMED});
  EXPECT_EQ(std::memcmp(nfct_get_attr(ct.get(), ATTR_ORIG_IPV6_SRC), record.key.src.data(), 16),
            0);
  EXPECT_FALSE(nfct_attr_is_set(ct.get(), ATTR_TCP_STATE));
}

TEST(ConntrackMappingTest, IcmpKeysCarryIdAndTypeCode) {
  SessionKey key = Key(IPPROTO_ICMP, "198.18.5.3", 77, "198.18.6.1", 8 << 8);
  CtPtr ct(nfct_new());
  ASSERT_TRUE(KeyToConntrack(key, ct.get()).ok());
  EXPECT_EQ(ntohs(nfct_get_attr_u16(ct.get(), ATTR_ICMP_ID)), 77);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_ICMP_TYPE), 8);
  EXPECT_EQ(nfct_get_attr_u8(ct.get(), ATTR_ICMP_CODE), 0);
  SessionRecord back;
  ASSERT_TRUE(ConntrackToRecord(ct.get(), 0, &back).ok());
  EXPECT_EQ(back.key, key);
  EXPECT_EQ(back.value.reply_src_port, 77);
  EXPECT_EQ(back.value.reply_dst_port, 0);  // echo reply, code 0
}

// A ctnetlink event message carrying `ct`, as the kernel sends it.
std::vector<char> EventMessage(const nf_conntrack* ct, int type, uint16_t flags) {
  std::vector<char> buffer(4096);
  auto* message = reinterpret_cast<nlmsghdr*>(buffer.data());
  message->nlmsg_len = NLMSG_LENGTH(sizeof(nfgenmsg));
  message->nlmsg_type = static_cast<uint16_t>(NFNL_SUBSYS_CTNETLINK << 8 | type);
  message->nlmsg_flags = flags;
  auto* header = static_cast<nfgenmsg*>(NLMSG_DATA(message));
  header->nfgen_family = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO);
  header->version = NFNETLINK_V0;
  nfct_nlmsg_build(message, ct);
  return buffer;
}

TEST(ConntrackMappingTest, EventsBecomeChanges) {
  SessionRecord record = Plain(Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80, 3), 0);
  record.value.mark = 9;
  CtPtr ct(nfct_new());
  ASSERT_TRUE(RecordToConntrack(record, 100, ConntrackWrite::kUpdate, ct.get()).ok());
  bool missing_tcp_state = true;

  std::vector<char> created =
      EventMessage(ct.get(), IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL);
  std::optional<SessionChange> change =
      EventToChange(reinterpret_cast<nlmsghdr*>(created.data()), 5, &missing_tcp_state);
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->op, SessionChange::Op::kUpsert);
  EXPECT_EQ(change->record.key, record.key);
  EXPECT_EQ(change->record.value.tcp_state, v1::TCP_ESTABLISHED);
  EXPECT_EQ(change->record.value.mark, 9u);
  EXPECT_EQ(change->record.value.timeout_s, 100u);
  EXPECT_EQ(change->record.value.last_update_ms, 5);
  EXPECT_FALSE(missing_tcp_state);

  // A packet-path UPDATE (a new connmark, say) without a state change.
  nfct_attr_unset(ct.get(), ATTR_TCP_STATE);
  std::vector<char> updated = EventMessage(ct.get(), IPCTNL_MSG_CT_NEW, 0);
  change = EventToChange(reinterpret_cast<nlmsghdr*>(updated.data()), 5, &missing_tcp_state);
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->op, SessionChange::Op::kUpsert);
  EXPECT_TRUE(missing_tcp_state);

  std::vector<char> destroyed = EventMessage(ct.get(), IPCTNL_MSG_CT_DELETE, 0);
  change = EventToChange(reinterpret_cast<nlmsghdr*>(destroyed.data()), 5, &missing_tcp_state);
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->op, SessionChange::Op::kDelete);
  EXPECT_EQ(change->record.key, record.key);
  EXPECT_FALSE(missing_tcp_state);

  std::vector<char> other = EventMessage(ct.get(), IPCTNL_MSG_CT_GET, 0);
  EXPECT_FALSE(
      EventToChange(reinterpret_cast<nlmsghdr*>(other.data()), 5, &missing_tcp_state).has_value());
}

TEST(ConntrackMappingTest, UnknownFamilyIsInvalid) {
  SessionKey key;
  CtPtr ct(nfct_new());
  absl::Status status = KeyToConntrack(key, ct.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("family"));
  nfct_set_attr_u8(ct.get(), ATTR_ORIG_L3PROTO, AF_BRIDGE);
  SessionRecord record;
  EXPECT_EQ(ConntrackToRecord(ct.get(), 0, &record).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConntrackMappingTest, RemainingTimeoutAgesAndStaysPositive) {
  SessionValue value;
  value.timeout_s = 600;
  value.last_update_ms = 1'000'000;
  EXPECT_EQ(RemainingTimeout(value, 1'000'000 + 100'900), 500u);
  EXPECT_EQ(RemainingTimeout(value, 1'000'000 + 900'000), 1u);
  EXPECT_EQ(RemainingTimeout(value, 999'000), 600u);  // last update in the future
  value.last_update_ms = 0;
  EXPECT_EQ(RemainingTimeout(value, 5'000'000), 600u);
  value.timeout_s = 0;
  EXPECT_EQ(RemainingTimeout(value, 5'000'000), 1u);
}

// ---- Against the kernel, in the test's own network namespace ----

class ConntrackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
    ToolResult flush = Tool({"-F"});
    ASSERT_EQ(flush.exit_code, 0) << flush.output;
    conntrack_ = Open({});
    ASSERT_NE(conntrack_, nullptr);
  }

  std::unique_ptr<Conntrack> Open(const ConntrackOptions& options) {
    absl::StatusOr<std::unique_ptr<Conntrack>> conntrack = Conntrack::Create(options, &clock_);
    EXPECT_TRUE(conntrack.ok()) << conntrack.status();
    return conntrack.ok() ? std::move(*conntrack) : nullptr;
  }

  int64_t NowMs() { return absl::ToUnixMillis(clock_.WallNow()); }

  std::vector<SessionRecord> Dump(Conntrack& conntrack) {
    std::vector<SessionRecord> records;
    absl::Status status = conntrack.Dump(&records);
    EXPECT_TRUE(status.ok()) << status;
    return records;
  }

  // Reads events until one matches; nullopt when none does within about
  // ten seconds of silence.
  std::optional<SessionChange> WaitFor(Conntrack& conntrack,
                                       const std::function<bool(const SessionChange&)>& match) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      std::vector<SessionChange> changes;
      absl::StatusOr<Conntrack::ReadResult> read =
          conntrack.ReadEvents(absl::Seconds(1), 1000, &changes);
      EXPECT_TRUE(read.ok()) << read.status();
      if (!read.ok()) return std::nullopt;
      for (const SessionChange& change : changes) {
        if (match(change)) return change;
      }
    }
    return std::nullopt;
  }

  void Insert(std::vector<std::string> args) {
    args.insert(args.begin(), "-I");
    ToolResult result = Tool(args);
    ASSERT_EQ(result.exit_code, 0) << result.output;
  }

  FakeClock clock_;
  std::unique_ptr<Conntrack> conntrack_;
};

const std::vector<std::string> kTcpFlow = {"-s", "198.18.5.1", "-d", "198.18.6.1", "-p", "tcp",
                                           "--sport", "1000", "--dport", "80"};

std::vector<std::string> With(std::vector<std::string> base,
                              const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

TEST_F(ConntrackTest, DumpReportsEntriesOfBothFamilies) {
  Insert(With(kTcpFlow, {"--state", "ESTABLISHED", "--timeout", "600", "-u",
                         "SEEN_REPLY,ASSURED", "--mark", "7"}));
  Insert({"-s", "198.18.5.2", "-d", "198.18.6.1", "-p", "tcp", "--sport", "1000", "--dport", "80",
          "--state", "SYN_SENT", "--timeout", "120", "--src-nat", "198.18.7.1:2000"});
  Insert({"-s", "2001:db8::1", "-d", "2001:db8::2", "-p", "udp", "--sport", "5", "--dport", "53",
          "--timeout", "100", "--zone", "5", "--mark", "7"});
  Insert({"-s", "198.18.5.3", "-d", "198.18.6.1", "-p", "icmp", "--icmp-type", "8",
          "--icmp-code", "0", "--icmp-id", "77", "--timeout", "30"});

  std::vector<SessionRecord> records = Dump(*conntrack_);
  ASSERT_EQ(records.size(), 4u);

  const SessionRecord* tcp = Find(records, Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80));
  ASSERT_NE(tcp, nullptr);
  EXPECT_EQ(tcp->value.tcp_state, v1::TCP_ESTABLISHED);
  EXPECT_EQ(tcp->value.mark, 7u);
  EXPECT_GE(tcp->value.timeout_s, 590u);
  EXPECT_LE(tcp->value.timeout_s, 600u);
  EXPECT_EQ(tcp->value.flags & (IPS_SEEN_REPLY | IPS_ASSURED), uint32_t{IPS_SEEN_REPLY | IPS_ASSURED});
  EXPECT_EQ(tcp->value.reply_src, Ip("198.18.6.1"));
  EXPECT_EQ(tcp->value.reply_dst, Ip("198.18.5.1"));
  EXPECT_EQ(tcp->value.reply_src_port, 80);
  EXPECT_EQ(tcp->value.reply_dst_port, 1000);
  EXPECT_EQ(tcp->value.created_ms, NowMs());
  EXPECT_EQ(tcp->value.last_update_ms, NowMs());

  const SessionRecord* nat = Find(records, Key(IPPROTO_TCP, "198.18.5.2", 1000, "198.18.6.1", 80));
  ASSERT_NE(nat, nullptr);
  EXPECT_EQ(nat->value.tcp_state, v1::TCP_SYN_SENT);
  EXPECT_EQ(nat->value.reply_dst, Ip("198.18.7.1"));
  EXPECT_EQ(nat->value.reply_dst_port, 2000);
  EXPECT_NE(nat->value.flags & IPS_SRC_NAT, 0u);

  const SessionRecord* udp6 = Find(records, Key(IPPROTO_UDP, "2001:db8::1", 5, "2001:db8::2", 53, 5));
  ASSERT_NE(udp6, nullptr);
  EXPECT_EQ(udp6->value.mark, 7u);
  EXPECT_EQ(udp6->value.tcp_state, v1::TCP_STATE_NONE);
  EXPECT_EQ(udp6->value.reply_src, Ip("2001:db8::2"));
  EXPECT_LE(udp6->value.timeout_s, 100u);

  const SessionRecord* icmp = Find(records, Key(IPPROTO_ICMP, "198.18.5.3", 77, "198.18.6.1", 8 << 8));
  ASSERT_NE(icmp, nullptr);
  EXPECT_EQ(icmp->value.reply_src_port, 77);
  EXPECT_EQ(icmp->value.reply_dst_port, 0);
}

TEST_F(ConntrackTest, DumpKeepsOnlySelectedZones) {
  Insert(With(kTcpFlow, {"--timeout", "60", "--state", "ESTABLISHED"}));
  Insert(With(kTcpFlow, {"--timeout", "60", "--state", "ESTABLISHED", "--zone", "5"}));
  ConntrackOptions options;
  options.zones = {5};
  std::unique_ptr<Conntrack> zone5 = Open(options);
  ASSERT_NE(zone5, nullptr);
  std::vector<SessionRecord> records = Dump(*zone5);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].key.zone, 5);
  EXPECT_EQ(Dump(*conntrack_).size(), 2u);
}

TEST_F(ConntrackTest, KernelStartTimestampBecomesCreatedMs) {
  const char* path = "/proc/sys/net/netfilter/nf_conntrack_timestamp";
  {
    std::ofstream enable(path);
    enable << "1" << std::flush;
    if (!enable) GTEST_SKIP() << "cannot write " << path;
  }
  Insert(With(kTcpFlow, {"--timeout", "60", "--state", "ESTABLISHED"}));
  std::ofstream(path) << "0" << std::flush;
  std::vector<SessionRecord> records = Dump(*conntrack_);
  ASSERT_EQ(records.size(), 1u);
  // The kernel's clock, not the fake one.
  EXPECT_NEAR(records[0].value.created_ms, absl::ToUnixMillis(absl::Now()), 60000);
  EXPECT_EQ(records[0].value.last_update_ms, NowMs());
}

TEST_F(ConntrackTest, EventsReportNewUpdateAndDestroy) {
  ASSERT_TRUE(conntrack_->StartEvents().ok());
  const SessionKey key = Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80);
  Insert(With(kTcpFlow, {"--state", "ESTABLISHED", "--timeout", "600", "-u", "SEEN_REPLY,ASSURED"}));
  std::optional<SessionChange> created = WaitFor(*conntrack_, [&](const SessionChange& c) {
    return c.op == SessionChange::Op::kUpsert && c.record.key == key;
  });
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->record.value.tcp_state, v1::TCP_ESTABLISHED);

  // A mark change: the kernel's UPDATE event leaves out the TCP state.
  ToolResult update = Tool(With(With({"-U"}, kTcpFlow), {"--mark", "9"}));
  ASSERT_EQ(update.exit_code, 0) << update.output;
  std::optional<SessionChange> updated = WaitFor(*conntrack_, [&](const SessionChange& c) {
    return c.op == SessionChange::Op::kUpsert && c.record.key == key && c.record.value.mark == 9;
  });
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->record.value.tcp_state, v1::TCP_ESTABLISHED);
  EXPECT_GT(updated->record.value.timeout_s, 500u);

  ToolResult destroy = Tool(With({"-D"}, kTcpFlow));
  ASSERT_EQ(destroy.exit_code, 0) << destroy.output;
  std::optional<SessionChange> deleted = WaitFor(*conntrack_, [&](const SessionChange& c) {
    return c.op == SessionChange::Op::kDelete;
  });
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(deleted->record.key, key);
}

TEST_F(ConntrackTest, EventsOfOtherZonesAreSkipped) {
  ConntrackOptions options;
  options.zones = {5};
  std::unique_ptr<Conntrack> zone5 = Open(options);
  ASSERT_NE(zone5, nullptr);
  ASSERT_TRUE(zone5->StartEvents().ok());
  Insert(With(kTcpFlow, {"--timeout", "60", "--state", "ESTABLISHED"}));
  Insert(With(kTcpFlow, {"--timeout", "60", "--state", "ESTABLISHED", "--zone", "5"}));
  std::optional<SessionChange> first = WaitFor(*zone5, [](const SessionChange&) { return true; });
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->record.key.zone, 5);
}

TEST_F(ConntrackTest, ReadEventsHonoursMaxEventsAndTimeout) {
  ASSERT_TRUE(conntrack_->StartEvents().ok());
  std::vector<SessionChange> changes;
  absl::StatusOr<Conntrack::ReadResult> read =
      conntrack_->ReadEvents(absl::Milliseconds(20), 10, &changes);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(changes.empty());

  std::vector<SessionRecord> records;
  for (uint16_t port = 1; port <= 5; ++port) {
    records.push_back(Plain(Key(IPPROTO_UDP, "198.18.5.1", port, "198.18.6.1", 53), NowMs()));
  }
  // Written by another instance: an instance does not see its own writes.
  std::unique_ptr<Conntrack> writer = Open({});
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Commit(records).ok());
  size_t total = 0;
  for (int attempt = 0; attempt < 10 && total < 5; ++attempt) {
    changes.clear();
    read = conntrack_->ReadEvents(absl::Seconds(1), 2, &changes);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_LE(changes.size(), 2u);
    total += changes.size();
  }
  EXPECT_EQ(total, 5u);
  EXPECT_EQ(conntrack_->ReadEvents(absl::ZeroDuration(), 0, &changes).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ConntrackTest, StopEventsDiscardsAndReadEventsResubscribes) {
  ASSERT_TRUE(conntrack_->StartEvents().ok());
  Insert({"-s", "198.18.5.1", "-d", "198.18.6.1", "-p", "udp", "--sport", "1", "--dport", "53",
          "--timeout", "60"});
  conntrack_->StopEvents();
  Insert({"-s", "198.18.5.1", "-d", "198.18.6.1", "-p", "udp", "--sport", "2", "--dport", "53",
          "--timeout", "60"});
  std::vector<SessionChange> changes;
  ASSERT_TRUE(conntrack_->ReadEvents(absl::Milliseconds(50), 100, &changes).ok());
  EXPECT_TRUE(changes.empty());
  Insert({"-s", "198.18.5.1", "-d", "198.18.6.1", "-p", "udp", "--sport", "3", "--dport", "53",
          "--timeout", "60"});
  std::optional<SessionChange> third =
      WaitFor(*conntrack_, [](const SessionChange&) { return true; });
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->record.key.src_port, 3);
}

TEST_F(ConntrackTest, CommitCreatesEntriesWithNatStateAndAgedTimeout) {
  const int64_t now = NowMs();
  SessionRecord snat = Plain(Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80), now - 100000);
  snat.value.reply_dst = Ip("198.18.7.1");
  snat.value.reply_dst_port = 2000;
  snat.value.flags |= IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;
  snat.value.mark = 3;
  SessionRecord dnat = Plain(Key(IPPROTO_TCP, "198.18.5.2", 1001, "198.18.6.2", 80), now);
  dnat.value.reply_src = Ip("198.18.8.1");
  dnat.value.reply_src_port = 8080;
  dnat.value.tcp_state = v1::TCP_FIN_WAIT;
  SessionRecord udp6 = Plain(Key(IPPROTO_UDP, "2001:db8::1", 5, "2001:db8::2", 53, 5), now);
  udp6.value.mark = 7;
  SessionRecord snat6 = Plain(Key(IPPROTO_UDP, "2001:db8::1", 6, "2001:db8::2", 53), now);
  snat6.value.reply_dst = Ip("2001:db8::7");
  SessionRecord icmp = Plain(Key(IPPROTO_ICMP, "198.18.5.3", 77, "198.18.6.1", 8 << 8), now);
  icmp.value.reply_src_port = 77;  // the id
  icmp.value.reply_dst_port = 0;   // echo reply, code 0
  icmp.value.timeout_s = 30;
  const std::vector<SessionRecord> records = {snat, dnat, udp6, snat6, icmp};

  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit(records);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->created, records.size()) << stats->first_error;
  EXPECT_EQ(stats->failed, 0u) << stats->first_error;

  ToolResult listed = Tool({"-L", "-o", "extended"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_THAT(listed.output, HasSubstr("ESTABLISHED src=198.18.5.1 dst=198.18.6.1 sport=1000 "
                                       "dport=80 src=198.18.6.1 dst=198.18.7.1 sport=80 "
                                       "dport=2000 [ASSURED] mark=3"));
  EXPECT_THAT(listed.output, HasSubstr("src=198.18.8.1 dst=198.18.5.2 sport=8080 dport=1001"));
  EXPECT_THAT(listed.output, HasSubstr("FIN_WAIT"));
  EXPECT_THAT(listed.output, HasSubstr("mark=7 zone=5"));

  std::vector<SessionRecord> dumped = Dump(*conntrack_);
  ASSERT_EQ(dumped.size(), records.size());
  for (const SessionRecord& record : records) {
    SCOPED_TRACE(DescribeKey(record.key));
    const SessionRecord* got = Find(dumped, record.key);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->value.reply_src, record.value.reply_src);
    EXPECT_EQ(got->value.reply_dst, record.value.reply_dst);
    EXPECT_EQ(got->value.reply_src_port, record.value.reply_src_port);
    EXPECT_EQ(got->value.reply_dst_port, record.value.reply_dst_port);
    EXPECT_EQ(got->value.tcp_state, record.value.tcp_state);
    EXPECT_EQ(got->value.mark, record.value.mark);
    EXPECT_EQ(got->value.flags & (IPS_SEEN_REPLY | IPS_ASSURED),
              record.value.flags & (IPS_SEEN_REPLY | IPS_ASSURED));
  }
  const SessionRecord* aged = Find(dumped, snat.key);
  ASSERT_NE(aged, nullptr);
  EXPECT_GE(aged->value.timeout_s, 495u);  // 600 s, last updated 100 s ago
  EXPECT_LE(aged->value.timeout_s, 500u);
  EXPECT_NE(aged->value.flags & IPS_SRC_NAT, 0u);
  EXPECT_NE(Find(dumped, dnat.key)->value.flags & IPS_DST_NAT, 0u);
}

TEST_F(ConntrackTest, CommitUpdatesExistingEntries) {
  SessionRecord record = Plain(Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80), NowMs());
  record.value.reply_dst = Ip("198.18.7.1");  // NAT cannot be sent on update
  ASSERT_TRUE(conntrack_->Commit({record}).ok());

  record.value.mark = 11;
  record.value.tcp_state = v1::TCP_CLOSE_WAIT;
  record.value.timeout_s = 120;
  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit({record});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->updated, 1u) << stats->first_error;
  EXPECT_EQ(stats->created, 0u);
  std::vector<SessionRecord> dumped = Dump(*conntrack_);
  ASSERT_EQ(dumped.size(), 1u);
  EXPECT_EQ(dumped[0].value.mark, 11u);
  EXPECT_EQ(dumped[0].value.tcp_state, v1::TCP_CLOSE_WAIT);
  EXPECT_LE(dumped[0].value.timeout_s, 120u);
  EXPECT_GE(dumped[0].value.timeout_s, 115u);
  EXPECT_EQ(dumped[0].value.reply_dst, Ip("198.18.7.1"));

  // The kernel will not clear ASSURED; the rest still updates.
  record.value.flags = 0;
  record.value.mark = 12;
  stats = conntrack_->Commit({record});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->updated, 1u) << stats->first_error;
  dumped = Dump(*conntrack_);
  ASSERT_EQ(dumped.size(), 1u);
  EXPECT_EQ(dumped[0].value.mark, 12u);
}

TEST_F(ConntrackTest, CommitCountsFailuresAndFailsWhenAllFail) {
  SessionRecord good = Plain(Key(IPPROTO_UDP, "198.18.5.1", 5, "198.18.6.1", 53), NowMs());
  SessionRecord no_family = good;
  no_family.key.family = 0;
  // The kernel tracks ICMP queries only; destination unreachable is refused.
  SessionRecord unreachable = Plain(Key(IPPROTO_ICMP, "198.18.5.3", 1, "198.18.6.1", 3 << 8), 0);

  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit({no_family, good, unreachable});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->created, 1u);
  EXPECT_EQ(stats->failed, 2u);
  EXPECT_THAT(stats->first_error, HasSubstr("family"));

  absl::StatusOr<Conntrack::CommitStats> all_bad = conntrack_->Commit({unreachable});
  EXPECT_FALSE(all_bad.ok());
  EXPECT_THAT(all_bad.status().message(), HasSubstr("icmp 198.18.5.3"));
  std::cout << "kernel refusal of an untracked ICMP type: " << all_bad.status() << "\n";
  EXPECT_TRUE(conntrack_->Commit({}).ok());
}

TEST_F(ConntrackTest, GetReadsOneEntry) {
  SessionRecord record = Plain(Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80, 5), NowMs());
  record.value.mark = 4;
  ASSERT_TRUE(conntrack_->Commit({record}).ok());
  absl::StatusOr<SessionRecord> got = conntrack_->Get(record.key);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->key, record.key);
  EXPECT_EQ(got->value.mark, 4u);
  EXPECT_EQ(got->value.tcp_state, v1::TCP_ESTABLISHED);
  SessionKey other_zone = record.key;
  other_zone.zone = 6;
  EXPECT_EQ(conntrack_->Get(other_zone).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConntrackTest, DeleteRemovesEntriesAndSkipsMissingOnes) {
  SessionRecord a = Plain(Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80, 5), NowMs());
  SessionRecord b = Plain(Key(IPPROTO_UDP, "2001:db8::1", 5, "2001:db8::2", 53), NowMs());
  ASSERT_TRUE(conntrack_->Commit({a, b}).ok());
  SessionKey missing = Key(IPPROTO_TCP, "198.18.9.9", 1, "198.18.9.8", 2);
  absl::Status deleted = conntrack_->Delete({a.key, missing});
  EXPECT_TRUE(deleted.ok()) << deleted;
  std::vector<SessionRecord> dumped = Dump(*conntrack_);
  ASSERT_EQ(dumped.size(), 1u);
  EXPECT_EQ(dumped[0].key, b.key);
  EXPECT_EQ(conntrack_->Delete({SessionKey()}).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ConntrackTest, CommitWritesManySessionsInBatches) {
  std::vector<SessionRecord> records = ManySessions(0, 20000, NowMs());
  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit(records);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->created, records.size()) << stats->first_error;
  EXPECT_EQ(stats->updated, 0u);
  EXPECT_EQ(stats->failed, 0u) << stats->first_error;
  absl::flat_hash_map<SessionKey, SessionRecord> dumped = ByKey(Dump(*conntrack_));
  ASSERT_EQ(dumped.size(), records.size());
  for (const SessionRecord& record : records) {
    auto got = dumped.find(record.key);
    ASSERT_NE(got, dumped.end()) << DescribeKey(record.key);
    EXPECT_EQ(got->second.value.reply_dst, record.value.reply_dst) << DescribeKey(record.key);
    EXPECT_EQ(got->second.value.reply_dst_port, record.value.reply_dst_port);
    EXPECT_EQ(got->second.value.tcp_state, v1::TCP_ESTABLISHED);
  }

  // The same sessions again: every one an update.
  for (SessionRecord& record : records) record.value.mark = 5;
  stats = conntrack_->Commit(records);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->updated, records.size()) << stats->first_error;
  EXPECT_EQ(stats->created, 0u);
  EXPECT_EQ(stats->failed, 0u) << stats->first_error;
  dumped = ByKey(Dump(*conntrack_));
  ASSERT_EQ(dumped.size(), records.size());
  for (const SessionRecord& record : records) {
    auto got = dumped.find(record.key);
    ASSERT_NE(got, dumped.end()) << DescribeKey(record.key);
    EXPECT_EQ(got->second.value.mark, 5u) << DescribeKey(record.key);
  }
}

TEST_F(ConntrackTest, CommitMixesCreatesUpdatesAndStatusRetries) {
  std::vector<SessionRecord> records = ManySessions(0, 6000, NowMs());
  std::vector<SessionRecord> even;
  for (size_t i = 0; i < records.size(); i += 2) even.push_back(records[i]);
  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit(even);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->created, even.size()) << stats->first_error;

  for (size_t i = 0; i < records.size(); ++i) {
    records[i].value.mark = 9;
    // The kernel will not clear ASSURED: these updates are retried without
    // the status bits.
    if (i % 4 == 0) records[i].value.flags = 0;
  }
  stats = conntrack_->Commit(records);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->created, records.size() - even.size()) << stats->first_error;
  EXPECT_EQ(stats->updated, even.size()) << stats->first_error;
  EXPECT_EQ(stats->failed, 0u) << stats->first_error;
  absl::flat_hash_map<SessionKey, SessionRecord> dumped = ByKey(Dump(*conntrack_));
  ASSERT_EQ(dumped.size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    auto got = dumped.find(records[i].key);
    ASSERT_NE(got, dumped.end()) << DescribeKey(records[i].key);
    EXPECT_EQ(got->second.value.mark, 9u) << DescribeKey(records[i].key);
    if (i % 4 == 0) {
      EXPECT_NE(got->second.value.flags & IPS_ASSURED, 0u) << DescribeKey(records[i].key);
    }
  }
}

TEST_F(ConntrackTest, CommitReportsEveryFailureOfALargeBatch) {
  // Thousands of refusals in one commit, more than one send carries: none
  // may be lost, and the first in record order is the one reported.
  std::vector<SessionRecord> records;
  std::vector<SessionRecord> refused;
  size_t good = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string src = absl::StrCat("198.18.", i / 250, ".", 1 + i % 250);
    if (i % 100 == 0) {
      records.push_back(Plain(Key(IPPROTO_UDP, src.c_str(), 5, "198.19.0.1", 53), NowMs()));
      ++good;
    } else {
      // The kernel tracks ICMP queries only; destination unreachable is refused.
      refused.push_back(Plain(Key(IPPROTO_ICMP, src.c_str(), 1, "198.19.0.1", 3 << 8), 0));
      records.push_back(refused.back());
    }
  }
  SessionRecord no_family = records[2500];
  no_family.key.family = 0;
  records.push_back(no_family);

  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit(records);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->created, good);
  EXPECT_EQ(stats->updated, 0u);
  EXPECT_EQ(stats->failed, records.size() - good);
  EXPECT_THAT(stats->first_error,
              HasSubstr(absl::StrCat(DescribeKey(records[1].key), ": creating")));
  EXPECT_EQ(Dump(*conntrack_).size(), good);

  absl::StatusOr<Conntrack::CommitStats> all_bad = conntrack_->Commit(refused);
  EXPECT_EQ(all_bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(all_bad.status().message(),
              HasSubstr(absl::StrCat("committing ", refused.size(),
                                     " sessions failed; first: ", DescribeKey(refused[0].key))));
}

TEST_F(ConntrackTest, DeleteRemovesManyInBatches) {
  const std::vector<SessionRecord> records = ManySessions(0, 20000, NowMs());
  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit(records);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->created, records.size()) << stats->first_error;

  std::vector<SessionKey> keys;
  for (const SessionRecord& record : records) keys.push_back(record.key);
  for (const SessionRecord& missing : ManySessions(30000, 100, NowMs())) {
    keys.push_back(missing.key);
  }
  keys.insert(keys.begin() + 5000, SessionKey());  // no family
  absl::Status deleted = conntrack_->Delete(keys);
  EXPECT_EQ(deleted.code(), absl::StatusCode::kInvalidArgument) << deleted;
  EXPECT_THAT(deleted.message(), HasSubstr(absl::StrCat("1 of ", keys.size(), " deletes failed")));
  EXPECT_THAT(deleted.message(), HasSubstr("family"));
  EXPECT_TRUE(Dump(*conntrack_).empty());
  EXPECT_TRUE(conntrack_->Delete({}).ok());
}

TEST_F(ConntrackTest, OwnWritesAreNotReported) {
  ASSERT_TRUE(conntrack_->StartEvents().ok());
  std::unique_ptr<Conntrack> other = Open({});
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->StartEvents().ok());

  std::vector<SessionRecord> records = ManySessions(0, 3, NowMs());
  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit(records);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->created, records.size()) << stats->first_error;
  for (SessionRecord& record : records) record.value.mark = 4;
  stats = conntrack_->Commit(records);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->updated, records.size()) << stats->first_error;
  ASSERT_TRUE(conntrack_->Delete({records[0].key, records[1].key, records[2].key}).ok());
  Insert(With(kTcpFlow, {"--state", "ESTABLISHED", "--timeout", "600"}));

  // Events come in order: the tool's insert is the first this instance
  // reports, after its own creates, updates and deletes went unreported.
  std::optional<SessionChange> first =
      WaitFor(*conntrack_, [](const SessionChange&) { return true; });
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->record.key, Key(IPPROTO_TCP, "198.18.5.1", 1000, "198.18.6.1", 80));
  EXPECT_EQ(first->op, SessionChange::Op::kUpsert);

  // Another instance sees them all.
  size_t upserts = 0;
  std::optional<SessionChange> deleted = WaitFor(*other, [&](const SessionChange& c) {
    if (c.op == SessionChange::Op::kUpsert && c.record.key == records[0].key) ++upserts;
    return c.op == SessionChange::Op::kDelete && c.record.key == records[2].key;
  });
  EXPECT_TRUE(deleted.has_value());
  EXPECT_EQ(upserts, 2u);  // created, then updated
}

TEST_F(ConntrackTest, ALostEventIsReportedAsOverrun) {
  ConntrackOptions options;
  options.receive_buffer_bytes = 4096;
  std::unique_ptr<Conntrack> tiny = Open(options);
  ASSERT_NE(tiny, nullptr);
  ASSERT_TRUE(tiny->StartEvents().ok());
  constexpr int kSessions = 5000;
  std::vector<SessionRecord> records;
  for (int i = 0; i < kSessions; ++i) {
    std::string src = absl::StrCat("198.18.", 10 + i / 250, ".", 1 + i % 250);
    records.push_back(Plain(Key(IPPROTO_TCP, src.c_str(), 1000, "198.19.0.1", 443), NowMs()));
  }
  absl::StatusOr<Conntrack::CommitStats> stats = conntrack_->Commit(records);  // not its own
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->created, records.size()) << stats->first_error;

  bool overrun = false;
  size_t read = 0;
  for (;;) {
    std::vector<SessionChange> changes;
    absl::StatusOr<Conntrack::ReadResult> result =
        tiny->ReadEvents(absl::ZeroDuration(), 100000, &changes);
    ASSERT_TRUE(result.ok()) << result.status();
    read += changes.size();
    if (*result == Conntrack::ReadResult::kOverrun) {
      overrun = true;
      continue;
    }
    if (changes.empty()) break;
  }
  std::cout << "events read after " << kSessions << " creates with a 4 KiB buffer: " << read
            << (overrun ? ", overrun reported" : ", no overrun observed") << "\n";
  if (read < records.size()) {
    EXPECT_TRUE(overrun) << "events were lost without an overrun";
  }
  // The recovery the overrun asks for: a dump has everything.
  EXPECT_EQ(Dump(*tiny).size(), records.size());
}

// Create checks CAP_NET_ADMIN up front, in a child that drops it.
TEST_F(ConntrackTest, CreateWithoutCapNetAdminIsPermissionDenied) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &header, data) != 0) _exit(10);
    data[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
    if (syscall(SYS_capset, &header, data) != 0) _exit(11);
    absl::StatusOr<std::unique_ptr<Conntrack>> conntrack = Conntrack::Create({}, &clock_);
    if (conntrack.ok()) _exit(12);
    if (conntrack.status().code() != absl::StatusCode::kPermissionDenied) _exit(13);
    if (!absl::StrContains(conntrack.status().message(), "CAP_NET_ADMIN")) _exit(14);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 capget, 11 capset, 12 opened, 13 code, 14 message";
}

}  // namespace
}  // namespace cloudha
